package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/report"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

// The scheduled verdict: trailkeeper itself, deployed as the Lambda function
// trailkeeper-watch in the archive account (the same binary, as the
// provided.al2023 runtime's bootstrap), runs status on EventBridge's
// schedule. It reads each source through the read-only role
// trailkeeper-observer there, keeps its verdict and the latest status under
// trailkeeper/watch/ in the archive, and publishes to the alert topic only
// when the verdict changes: a new problem, or healthy again.

// ConfigEnv names the S3 object holding the config the function runs with.
const ConfigEnv = "TRAILKEEPER_CONFIG"

// Verdict is what a run concluded, kept between runs.
type Verdict struct {
	CheckedAt time.Time `json:"checkedAt"`
	Healthy   bool      `json:"healthy"`
	// Problems are the errors found, as "code account": what a change is
	// measured by (messages hold counts and times that change every run).
	Problems []string `json:"problems"`
	Runs     int      `json:"runs"`
	Notified int      `json:"notified"` // messages sent so far
	// Message is what the last message said.
	Message string `json:"message,omitempty"`
	// The daily incremental verify: when it last ran, its verdict, and what
	// it found, carried to the hourly runs between.
	VerifiedAt    time.Time `json:"verifiedAt,omitzero"`
	VerifyVerdict string    `json:"verifyVerdict,omitempty"`
	VerifyFound   []Problem `json:"verifyFound"`
}

// Problem is one thing a run found, as a person reads it.
type Problem struct {
	Code, Account, Message, Fix string
}

// verifyEvery is how often the function also verifies the archive: from
// where the last verify left off (its state under trailkeeper/watch/), so a
// day's run reads a day of digests and logs.
const verifyEvery = 24 * time.Hour

// IsFunction says whether this process runs as a Lambda function.
func IsFunction() bool { return os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" }

// RunFunction serves the Lambda Runtime API until Lambda ends the process.
func RunFunction() { lambda.Start(Handle) }

// Handle is one scheduled run.
func Handle(ctx context.Context, _ json.RawMessage) (*Verdict, error) {
	bucket, key, ok := strings.Cut(strings.TrimPrefix(os.Getenv(ConfigEnv), "s3://"), "/")
	if !ok {
		return nil, fmt.Errorf("%s is %q, not s3://BUCKET/KEY", ConfigEnv, os.Getenv(ConfigEnv))
	}
	self, err := awsapi.New(ctx, awsapi.Target{Region: os.Getenv("AWS_REGION")})
	if err != nil {
		return nil, err
	}
	text, err := get(ctx, self.S3, bucket, key)
	if err != nil {
		return nil, fmt.Errorf("read the config s3://%s/%s: %w", bucket, key, err)
	}
	c, err := FunctionConfig(key, text)
	if err != nil {
		return nil, err
	}
	env, err := setup.Connect(ctx, c, c.Sources, 16)
	if err != nil {
		return nil, err
	}
	st, err := status.Check(ctx, env, status.Options{Parallel: 16})
	if err != nil {
		return nil, err
	}
	prev := &Verdict{}
	if data, err := get(ctx, env.Archive.S3, c.Archive.Bucket, setup.WatchPrefix+"verdict.json"); err == nil {
		json.Unmarshal(data, prev)
	} else if awsapi.Code(err) != "NoSuchKey" {
		return nil, err
	}
	verified, err := dailyVerify(ctx, env, prev, st.CheckedAt)
	if err != nil {
		return nil, err
	}
	next := judge(prev, st, verified)
	if next.Message != "" {
		topic := setup.TopicARN(c, c.Archive.Region)
		if _, err := env.Archive.InRegion(c.Archive.Region).SNS.Publish(ctx, &sns.PublishInput{TopicArn: &topic,
			Subject: aws.String(subject(next)), Message: &next.Message}); err != nil {
			return nil, fmt.Errorf("publish to %s: %w", topic, err)
		}
		next.Notified++
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := put(ctx, env.Archive.S3, c.Archive.Bucket, setup.WatchPrefix+"status.json", data, "application/json"); err != nil {
		return nil, err
	}
	if err := writeReport(ctx, env, st, next); err != nil {
		return nil, err
	}
	data, _ = json.MarshalIndent(next, "", "  ")
	return next, put(ctx, env.Archive.S3, c.Archive.Bucket, setup.WatchPrefix+"verdict.json", data, "application/json")
}

// FunctionConfig is the config as the function runs it: the archive through
// the function's own role, each source through its observer role, and
// without Athena (which status does not need).
func FunctionConfig(name string, text []byte) (*config.Config, error) {
	c, err := config.Parse(name, text)
	if err != nil {
		return nil, err
	}
	c.Archive.Credentials = config.Credentials{}
	for i := range c.Sources {
		c.Sources[i].Credentials = config.Credentials{RoleARN: setup.RoleARN(c.Sources[i].AccountID, setup.ObserverRoleName)}
	}
	c.Athena = config.Athena{}
	c.EndpointURL = "" // AWS_ENDPOINT_URL, where set, points the function elsewhere
	return c, nil
}

// judge compares a run with the last verdict: a message when a problem is
// new, or when all are gone; none when nothing changed. verified is this
// run's verify, or the last one's carried over.
func judge(prev *Verdict, r *status.Report, verified *Verdict) *Verdict {
	next := &Verdict{CheckedAt: r.CheckedAt, Problems: []string{}, Runs: prev.Runs + 1, Notified: prev.Notified,
		VerifiedAt: verified.VerifiedAt, VerifyVerdict: verified.VerifyVerdict, VerifyFound: verified.VerifyFound}
	byKey := map[string]Problem{}
	found := func(p Problem) {
		k := p.Code + " " + p.Account
		if _, ok := byKey[k]; !ok {
			byKey[k] = p
			next.Problems = append(next.Problems, k)
		}
	}
	for _, f := range r.Findings {
		if f.Severity == status.Error {
			found(Problem{f.Code, f.Account, f.Message, f.Fix})
		}
	}
	for _, p := range next.VerifyFound {
		found(p)
	}
	next.Healthy = len(next.Problems) == 0
	slices.Sort(next.Problems)
	var fresh []string
	for _, k := range next.Problems {
		if !slices.Contains(prev.Problems, k) {
			fresh = append(fresh, k)
		}
	}
	switch {
	case len(fresh) > 0:
		var b strings.Builder
		fmt.Fprintf(&b, "trailkeeper watch: the archive is not healthy (%d problems, %d new since %s).\n", len(next.Problems), len(fresh), since(prev))
		for _, k := range fresh {
			f := byKey[k]
			fmt.Fprintf(&b, "- account %s: %s: %s\n  fix: %s\n", f.Account, f.Code, f.Message, f.Fix)
		}
		b.WriteString("trailkeeper status says the rest; this is said again only when something changes.")
		next.Message = b.String()
	case len(next.Problems) == 0 && len(prev.Problems) > 0:
		next.Message = fmt.Sprintf("trailkeeper watch: healthy again: every account's trail reaches the archive, and the archive holds every log file and digest (checked %s; verified %s: %s).",
			r.CheckedAt.Format(time.RFC3339), next.VerifiedAt.Format(time.RFC3339), next.VerifyVerdict)
	}
	return next
}

func since(v *Verdict) string {
	if v.Runs == 0 {
		return "the first run"
	}
	return "the run of " + v.CheckedAt.Format(time.RFC3339)
}

func subject(v *Verdict) string {
	if v.Healthy {
		return "trailkeeper: the archive is healthy again"
	}
	return "trailkeeper: the archive is not healthy"
}

func get(ctx context.Context, client *s3.Client, bucket, key string) ([]byte, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 4<<20+1))
	if len(data) > 4<<20 {
		return nil, errors.New("s3://" + bucket + "/" + key + " is over 4 MiB")
	}
	return data, err
}

func put(ctx context.Context, client *s3.Client, bucket, key string, data []byte, contentType string) error {
	_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ContentType: &contentType})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// dailyVerify verifies the archive incrementally once a day, from the state
// the last verify left under trailkeeper/watch/; between, the last one's
// verdict stands. A verify that is not "valid" is a problem of its own.
func dailyVerify(ctx context.Context, env *setup.Env, prev *Verdict, now time.Time) (*Verdict, error) {
	if !prev.VerifiedAt.IsZero() && now.Sub(prev.VerifiedAt) < verifyEvery {
		return prev, nil
	}
	c := env.Config
	s := store.S3{Client: env.Archive.S3, Bucket: c.Archive.Bucket}
	stateKey := setup.WatchPrefix + "verify-state.json"
	data, err := get(ctx, env.Archive.S3, c.Archive.Bucket, stateKey)
	if awsapi.Code(err) == "NoSuchKey" {
		data, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	state, err := verify.DecodeState(data, s.String())
	if err != nil {
		state = nil // a state this run cannot use: verify everything again
	}
	registry := map[string]string{}
	for _, src := range c.Sources {
		if src.Bucket != "" {
			registry[src.AccountID] = src.Bucket
		}
	}
	keys := verify.NewCloudTrailKeys(func(region string) *cloudtrail.Client { return env.Archive.InRegion(region).CloudTrail }, time.Time{}, now)
	report, err := verify.Run(ctx, s, verify.Options{Until: now, CheckTail: true, Keys: keys, State: state, Registry: registry, Parallel: 64})
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	out := &Verdict{VerifiedAt: now, VerifyVerdict: report.Verdict, VerifyFound: []Problem{}}
	for _, f := range report.Findings {
		if f.Failing() {
			out.VerifyFound = append(out.VerifyFound, Problem{"verify " + f.Code, f.Account, f.Message, f.Fix})
		}
	}
	if report.State != nil {
		data, _ := json.Marshal(report.State)
		if err := put(ctx, env.Archive.S3, c.Archive.Bucket, stateKey, data, "application/json"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeReport keeps the latest HTML report (7 days) beside the verdict. Its
// integrity line names the function's daily verify rather than verifying the
// week again every hour.
func writeReport(ctx context.Context, env *setup.Env, st *status.Report, v *Verdict) error {
	data, err := report.Collect(ctx, env, st, report.Options{Days: 7, Parallel: 16})
	if err != nil {
		return err
	}
	data.VerifyError = fmt.Sprintf("verified once a day by the watch function, incrementally: last at %s, %s (trailkeeper/watch/verdict.json)",
		v.VerifiedAt.Format(time.RFC3339), v.VerifyVerdict)
	var page bytes.Buffer
	if err := report.WriteHTML(&page, data); err != nil {
		return err
	}
	return put(ctx, env.Archive.S3, env.Config.Archive.Bucket, setup.WatchPrefix+"report.html", page.Bytes(), "text/html")
}
