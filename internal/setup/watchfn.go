package setup

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/flate"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// The scheduled verdict's side of watch: the function trailkeeper-watch in
// the archive account (this very binary, as the provided.al2023 runtime's
// bootstrap), its role, the hourly schedule that invokes it, the config it
// runs with, and in every source the read-only role it reads through.
const (
	WatchPrefix        = store.StatePrefix + "watch/" // in the archive: config, code, verdict, status
	WatchFunctionName  = "trailkeeper-watch"
	WatchFunctionRole  = "trailkeeper-watch-function"
	ObserverRoleName   = "trailkeeper-observer"
	WatchScheduleRule  = "trailkeeper-watch-schedule"
	WatchSchedule      = "rate(1 hour)"
	watchPermissionSid = "trailkeeper-watch-schedule"
	buildEnv           = "TRAILKEEPER_BUILD" // the function's code, by the hash of the binary
	configEnv          = "TRAILKEEPER_CONFIG"
)

// FunctionState is the deployed function as it is.
type FunctionState struct {
	Build, Config, Role string
	Scheduled           bool // its policy lets the schedule invoke it
}

func watchConfigKey() string { return WatchPrefix + "config.yaml" }

// observeWatchFunction reads the function, its role and schedule, and the
// config it runs with.
func observeWatchFunction(ctx context.Context, c *config.Config, cl *awsapi.Clients, w *WatchArchive) error {
	a := c.Archive.AccountID
	arch := cl.InRegion(c.Archive.Region)
	var err error
	if w.FunctionRole, err = getRole(ctx, cl, a, WatchFunctionRole); err != nil {
		return err
	}
	fn, err := arch.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(WatchFunctionName)})
	switch {
	case awsapi.Code(err) == "ResourceNotFoundException":
	case err != nil:
		return wrap(a, "lambda GetFunction "+WatchFunctionName, err)
	default:
		w.Function = &FunctionState{Role: aws.ToString(fn.Configuration.Role)}
		if env := fn.Configuration.Environment; env != nil {
			w.Function.Build, w.Function.Config = env.Variables[buildEnv], env.Variables[configEnv]
		}
		pol, err := arch.Lambda.GetPolicy(ctx, &lambda.GetPolicyInput{FunctionName: aws.String(WatchFunctionName)})
		switch {
		case awsapi.Code(err) == "ResourceNotFoundException":
		case err != nil:
			return wrap(a, "lambda GetPolicy "+WatchFunctionName, err)
		default:
			w.Function.Scheduled = strings.Contains(aws.ToString(pol.Policy), `"`+watchPermissionSid+`"`)
		}
	}
	if w.Schedule, err = getRule(ctx, arch.Events, "", WatchScheduleRule); err != nil {
		return wrap(a, "events DescribeRule "+WatchScheduleRule, err)
	}
	out, err := cl.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.Archive.Bucket, Key: aws.String(watchConfigKey())})
	switch {
	case awsapi.Code(err) == "NoSuchKey" || awsapi.Code(err) == "NoSuchBucket":
		err = nil
	case err != nil:
		return wrap(a, "s3 GetObject "+watchConfigKey(), err)
	default:
		defer out.Body.Close()
		w.ConfigText, err = io.ReadAll(io.LimitReader(out.Body, 4<<20))
	}
	return err
}

// functionTrust lets Lambda assume the function's role.
func functionTrust() *policy.Document {
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{{Effect: policy.Allow,
		Principal: &policy.Principal{Service: policy.Strings{"lambda.amazonaws.com"}}, Action: policy.Strings{"sts:AssumeRole"}}}}
}

// FunctionPolicy is all the function may do: assume the observer roles,
// read the archive, write under trailkeeper/watch/ only, read and publish to
// the alert topics, read the watch bus.
func FunctionPolicy(c *config.Config) *policy.Document {
	b := bucketARN(c.Archive.Bucket)
	a := c.Archive.AccountID
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		{Sid: "ObserveSources", Effect: policy.Allow, Action: policy.Strings{"sts:AssumeRole"}, Resource: policy.Strings{"arn:aws:iam::*:role/" + ObserverRoleName}},
		{Sid: "ReadArchive", Effect: policy.Allow, Action: policy.Strings{"s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:GetBucketPublicAccessBlock",
			"s3:GetBucketOwnershipControls", "s3:GetBucketPolicy", "s3:ListBucket", "s3:ListBucketVersions"}, Resource: policy.Strings{b}},
		{Sid: "ReadArchiveObjects", Effect: policy.Allow, Action: policy.Strings{"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"}, Resource: policy.Strings{b + "/*"}},
		{Sid: "KeepVerdict", Effect: policy.Allow, Action: policy.Strings{"s3:PutObject"}, Resource: policy.Strings{b + "/" + WatchPrefix + "*"}},
		{Sid: "Alert", Effect: policy.Allow, Action: policy.Strings{"sns:Publish", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"},
			Resource: policy.Strings{"arn:aws:sns:*:" + a + ":*"}},
		{Sid: "ReadWatch", Effect: policy.Allow, Action: policy.Strings{"events:DescribeEventBus", "events:DescribeRule", "events:ListTargetsByRule",
			"lambda:GetFunction", "lambda:GetPolicy", "cloudtrail:ListPublicKeys", "iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "cloudformation:DescribeStackResources"}, Resource: policy.Strings{"*"}},
	}}
}

// observerTrust lets only the function's role assume an observer role.
func observerTrust(c *config.Config) *policy.Document {
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{{Effect: policy.Allow,
		Principal: &policy.Principal{AWS: policy.Strings{RoleARN(c.Archive.AccountID, WatchFunctionRole)}}, Action: policy.Strings{"sts:AssumeRole"}}}}
}

// ObserverPolicy is what status reads in a source, and nothing it writes.
func ObserverPolicy(st *SourceState) *policy.Document {
	b := bucketARN(st.Trail.Bucket)
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		{Sid: "ReadTrail", Effect: policy.Allow, Action: policy.Strings{"cloudtrail:DescribeTrails", "cloudtrail:GetTrail", "cloudtrail:GetTrailStatus",
			"cloudtrail:GetEventSelectors", "cloudtrail:ListTrails"}, Resource: policy.Strings{"*"}},
		{Sid: "ReadBucket", Effect: policy.Allow, Action: policy.Strings{"s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration", "s3:GetReplicationConfiguration",
			"s3:GetBucketNotification", "s3:GetBucketLocation", "s3:ListBucket"}, Resource: policy.Strings{b}},
		{Sid: "ReadLogs", Effect: policy.Allow, Action: policy.Strings{"s3:GetObject"}, Resource: policy.Strings{b + "/*"}},
		{Sid: "ReadRoles", Effect: policy.Allow, Action: policy.Strings{"iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "cloudformation:DescribeStackResources",
			"events:DescribeRule", "events:ListTargetsByRule"}, Resource: policy.Strings{"*"}},
	}}
}

// buildHash names this binary's code: the function is updated when it differs.
var buildHash = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
})

// functionZip is this binary as a provided.al2023 function: bootstrap.
func functionZip() ([]byte, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Unix(0, 0)}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(w, f); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil { // writes the central directory
		return nil, err
	}
	return buf.Bytes(), nil
}

// planWatchFunction deploys (or takes away) the scheduled verdict.
func (p *Plan) planWatchFunction(e *Env, w *WatchArchive, sources []*SourceState, removing map[string]bool, opts Options) error {
	c := e.Config
	on := c.Watch.Enabled
	for _, st := range sources {
		if st == nil || st.Watch == nil {
			continue
		}
		acct := st.Config.AccountID
		switch {
		case (!on || removing[acct]) && st.Observer != nil:
			p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + ObserverRoleName, Action: "delete", Summary: "the watch function no longer reads this account",
				Op: opOf("role.delete", roleArgs{Name: ObserverRoleName, HasPolicy: st.Observer.Policy != nil})})
		case !on || removing[acct]:
		default:
			p.planOwnRole(acct, PhaseSources, st.Observer, observerTrust(c), ObserverPolicy(st), roleArgs{Name: ObserverRoleName,
				Description: "trailkeeper watch: reads what status reads, for the watch function"},
				"read-only role the watch function reads this account through, trusted by "+RoleARN(c.Archive.AccountID, WatchFunctionRole)+" only")
		}
	}
	if w == nil || w.Unreadable {
		return nil
	}
	a := c.Archive.AccountID
	if !on {
		if w.Schedule != nil {
			p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "EventBridge rule " + WatchScheduleRule, Action: "delete", Summary: "watch is off in the config",
				Op: opOf("events.deleteRule", ruleArgs{Region: c.Archive.Region, Name: WatchScheduleRule, Archive: true})})
		}
		if w.Function != nil {
			p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "function " + WatchFunctionName, Action: "delete", Summary: "watch is off in the config (its verdicts stay under " + WatchPrefix + ")",
				Op: opOf("lambda.deleteFunction", regionalArgs{c.Archive.Region, WatchFunctionName})})
		}
		if w.FunctionRole != nil {
			p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "role " + WatchFunctionRole, Action: "delete", Summary: "watch is off in the config",
				Op: opOf("role.delete", roleArgs{Name: WatchFunctionRole, HasPolicy: w.FunctionRole.Policy != nil, Archive: true})})
		}
		return nil
	}
	p.planOwnRole(a, PhaseArchive, w.FunctionRole, functionTrust(), FunctionPolicy(c),
		roleArgs{Name: WatchFunctionRole, Description: "trailkeeper watch: the watch function's role", Archive: true},
		"the watch function's role: assume the observer roles, read the archive, write under "+WatchPrefix+", publish alerts")
	text := c.Text
	if !bytes.Equal(text, w.ConfigText) {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "object " + watchConfigKey(), Action: verb(w.ConfigText == nil),
			Summary: "the config the watch function runs with (sources read through " + ObserverRoleName + ")",
			Op:      opOf("archive.putObject", objectArgs{watchConfigKey(), text})})
	}
	build := ""
	if w.Function != nil && opts.Drift {
		build = w.Function.Build // another trailkeeper build deployed it: apply's to change, not drift
	} else {
		var err error
		if build, err = buildHash(); err != nil {
			return fmt.Errorf("watch: cannot read this binary to deploy it: %w", err)
		}
	}
	configURL := "s3://" + c.Archive.Bucket + "/" + watchConfigKey()
	if w.Function == nil || w.Function.Build != build || w.Function.Config != configURL || w.Function.Role != RoleARN(a, WatchFunctionRole) {
		p.add(&Step{Account: a, Phase: PhaseSources, Resource: "function " + WatchFunctionName, Action: verb(w.Function == nil),
			Summary: "this trailkeeper build (" + build + ") as a provided.al2023 function, running status on the schedule",
			Op:      opOf("lambda.deployWatch", functionArgs{w.Function != nil, build, configURL})})
	}
	target := ebtypes.Target{Id: aws.String("function"), Arn: aws.String("arn:aws:lambda:" + c.Archive.Region + ":" + a + ":function:" + WatchFunctionName),
		Input: aws.String(`{"source":"trailkeeper-watch-schedule"}`)}
	if !sameRuleSchedule(w.Schedule, target) || w.Function == nil || !w.Function.Scheduled {
		p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "EventBridge rule " + WatchScheduleRule, Action: verb(w.Schedule == nil),
			Summary: "run the watch function " + WatchSchedule, Op: opOf("events.scheduleWatch", scheduleArgs{target})})
	}
	return nil
}

func sameRuleSchedule(have *RuleState, target ebtypes.Target) bool {
	return have != nil && have.Enabled && have.Schedule == WatchSchedule && len(have.Targets) == 1 &&
		aws.ToString(have.Targets[0].Arn) == aws.ToString(target.Arn) && aws.ToString(have.Targets[0].Input) == aws.ToString(target.Input)
}

// deployFunction uploads this binary under trailkeeper/watch/ in the archive
// (over Lambda's 50 MB for an inline zip) and creates or updates the
// function from it. A role just created may not be assumable by Lambda for
// some seconds (IAM is eventually consistent): that is waited out.
func deployFunction(ctx context.Context, e *Env, exists bool, build, configURL string) error {
	c := e.Config
	a := c.Archive.AccountID
	code, err := functionZip()
	if err != nil {
		return err
	}
	key := WatchPrefix + "bootstrap-" + build + ".zip"
	if _, err := e.Archive.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Archive.Bucket, Key: &key, Body: bytes.NewReader(code)}); err != nil {
		return wrap(a, "s3 PutObject "+key, err)
	}
	fn := e.Archive.InRegion(c.Archive.Region).Lambda
	env := &lambdatypes.Environment{Variables: map[string]string{buildEnv: build, configEnv: configURL}}
	role := RoleARN(a, WatchFunctionRole)
	for wait := time.Second; ; wait *= 2 {
		if exists {
			if _, err = fn.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(WatchFunctionName), S3Bucket: &c.Archive.Bucket, S3Key: &key}); err == nil {
				_, err = fn.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(WatchFunctionName), Role: &role, Environment: env,
					Timeout: aws.Int32(900), MemorySize: aws.Int32(1024)})
			}
		} else {
			_, err = fn.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String(WatchFunctionName), Runtime: lambdatypes.RuntimeProvidedal2023,
				Handler: aws.String("bootstrap"), Role: &role, Code: &lambdatypes.FunctionCode{S3Bucket: &c.Archive.Bucket, S3Key: &key}, Environment: env,
				Timeout: aws.Int32(900), MemorySize: aws.Int32(1024), Description: aws.String("trailkeeper watch: status on a schedule, alerts when the verdict changes")})
		}
		if err == nil || !strings.Contains(awsapi.Message(err), "cannot be assumed") || wait > 32*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	return wrap(a, "lambda deploy "+WatchFunctionName, err)
}

// schedule has EventBridge run the function every hour.
func schedule(ctx context.Context, arch *awsapi.Clients, a string, target ebtypes.Target) error {
	rule, err := arch.Events.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(WatchScheduleRule), ScheduleExpression: aws.String(WatchSchedule),
		State: ebtypes.RuleStateEnabled, Description: aws.String("trailkeeper watch: written by trailkeeper apply")})
	if err != nil {
		return wrap(a, "events PutRule "+WatchScheduleRule, err)
	}
	_, err = arch.Lambda.AddPermission(ctx, &lambda.AddPermissionInput{FunctionName: aws.String(WatchFunctionName), StatementId: aws.String(watchPermissionSid),
		Action: aws.String("lambda:InvokeFunction"), Principal: aws.String("events.amazonaws.com"), SourceArn: rule.RuleArn, SourceAccount: aws.String(a)})
	var conflict *lambdatypes.ResourceConflictException
	if err != nil && !errors.As(err, &conflict) {
		return wrap(a, "lambda AddPermission "+WatchFunctionName, err)
	}
	out, err := arch.Events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(WatchScheduleRule), Targets: []ebtypes.Target{target}})
	if err == nil && out.FailedEntryCount > 0 {
		err = fmt.Errorf("%s", aws.ToString(out.FailedEntries[0].ErrorMessage))
	}
	return wrap(a, "events PutTargets "+WatchScheduleRule, err)
}
