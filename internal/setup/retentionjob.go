package setup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3control"
	s3ctypes "github.com/aws/aws-sdk-go-v2/service/s3control/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/batchjob"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Many short replicas (a source's Object Lock default over a year of logs)
// are extended by S3 Batch Operations' Object Lock retention operation
// rather than one PutObjectRetention each: a job takes a CSV manifest and
// sets one retention on every object it lists, so the replicas go in jobs
// by month of creation and mode, each locked until its group's newest
// replica needs. No replica is locked for less than the archive's default,
// and none for more than 31 days beyond it.

const (
	// RetentionRoleName is the archive's role for retention jobs.
	RetentionRoleName = "trailkeeper-retention"
	// RetentionPrefix is where the jobs' manifests and completion reports go
	// in the archive, outside every AWSLogs/ (they are locked like the rest).
	RetentionPrefix = store.StatePrefix + "retention/"
	// DefaultBatchAbove is how many short replicas are extended one by one
	// before jobs take over: 100,000 PutObjectRetention calls take minutes at
	// 16 at a time, and a job takes minutes to start.
	DefaultBatchAbove = 100_000
)

// retentionRolePolicy is what a retention job needs (User Guide, "S3 Object
// Lock retention"): confirm the archive has Object Lock, extend the
// retention of the logs under any [prefix/]AWSLogs/, read its manifest and
// write its report under RetentionPrefix.
func retentionRolePolicy(c *config.Config) *policy.Document {
	b := bucketARN(c.Archive.Bucket)
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		{Sid: "ExtendRetention", Effect: policy.Allow, Action: policy.Strings{"s3:PutObjectRetention"}, Resource: policy.Strings{b + "/*AWSLogs/*"}},
		{Sid: "CheckObjectLock", Effect: policy.Allow, Action: policy.Strings{"s3:GetBucketObjectLockConfiguration"}, Resource: policy.Strings{b}},
		{Sid: "ManifestAndReport", Effect: policy.Allow, Action: policy.Strings{"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"},
			Resource: policy.Strings{b + "/" + RetentionPrefix + "*"}},
	}}
}

// retentionJob is the replicas one job extends, and to what.
type retentionJob struct {
	Mode     string
	Until    time.Time
	Replicas []ShortReplica
}

// retentionJobs groups short replicas by month of creation and the mode
// they keep (COMPLIANCE stays COMPLIANCE), each group locked until its
// newest replica's default ends.
func retentionJobs(lock config.ObjectLock, short []ShortReplica) []retentionJob {
	groups := map[string]*retentionJob{}
	for _, r := range short {
		mode := lock.Mode
		if r.Mode == "COMPLIANCE" {
			mode = "COMPLIANCE"
		}
		k := mode + r.Created.UTC().Format("2006-01")
		g := groups[k]
		if g == nil {
			g = &retentionJob{Mode: mode}
			groups[k] = g
		}
		g.Replicas = append(g.Replicas, r)
		if until := retainUntil(lock, r.Created); until.After(g.Until) {
			g.Until = until
		}
	}
	out := make([]retentionJob, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Until.Before(out[j].Until) || out[i].Until.Equal(out[j].Until) && out[i].Mode < out[j].Mode
	})
	return out
}

// manifest is a job's CSV manifest (Bucket, Key, VersionId; keys URL-encoded).
func (j retentionJob) manifest(bucket string) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, r := range j.Replicas {
		w.Write([]string{bucket, url.QueryEscape(r.Key), r.VersionID})
	}
	w.Flush()
	return buf.Bytes()
}

// planRetentionJobs plans the archive's role for retention jobs (created or
// corrected first, in the same account and phase, so before the jobs) and
// the jobs, each with its mode, date and replicas.
func (p *Plan) planRetentionJobs(ctx context.Context, e *Env, jobs []retentionJob, total int, opts Options) error {
	c := e.Config
	a := c.Archive.AccountID
	role, err := getRole(ctx, e.Archive, a, RetentionRoleName)
	if err != nil {
		return err
	}
	p.planOwnRole(a, PhaseRetention, role, BatchTrust(), retentionRolePolicy(c),
		roleArgs{Name: RetentionRoleName, Description: "trailkeeper: extends replica retention in the archive " + c.Archive.Bucket + " with S3 Batch Operations", Archive: true},
		"the role the retention jobs run with, trusted by batchoperations.s3.amazonaws.com")
	p.add(&Step{Account: a, Phase: PhaseRetention, Resource: "replica retention", Action: ActionUpdate,
		Summary: fmt.Sprintf("extend %d replicas locked for less than %s with %s (one per month and mode, each until its newest replica's default ends) run by role %s",
			total, c.Archive.ObjectLock, plural(len(jobs), "S3 Batch Operations job"), RetentionRoleName),
		Op: opOf("archive.extendRetentionByJobs", retentionJobsArgs{jobs, opts.poll()})})
	return nil
}

// extendRetentionByJobs starts the jobs, waits for them, and makes any task
// that failed an error naming its failure codes and the report.
func extendRetentionByJobs(ctx context.Context, cl *awsapi.Clients, c *config.Config, jobs []retentionJob, poll time.Duration) error {
	a, bucket := c.Archive.AccountID, c.Archive.Bucket
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		var err error
		if ids[i], err = startRetentionJob(ctx, cl, c, j); err != nil {
			return err
		}
	}
	var problems []string
	for i, id := range ids {
		d, err := batchjob.Wait(ctx, cl, a, id, poll, nil)
		if err != nil {
			return wrap(a, "s3control DescribeJob "+id, err)
		}
		what := fmt.Sprintf("retention job %s (%d replicas until %s)", id, len(jobs[i].Replicas), jobs[i].Until.Format("2006-01-02"))
		if f := batchjob.Failures(d); len(f) > 0 || string(d.Status) != "Complete" {
			problems = append(problems, fmt.Sprintf("%s ended %s: %s", what, d.Status, strings.Join(f, "; ")))
			continue
		}
		if d.ProgressSummary == nil || aws.ToInt64(d.ProgressSummary.NumberOfTasksFailed) == 0 {
			continue
		}
		codes, err := batchjob.FailureCodes(ctx, cl, bucket, RetentionPrefix+"reports", id)
		if err != nil {
			return wrap(a, "the report of "+what, err)
		}
		var named []string
		for code, n := range codes {
			named = append(named, fmt.Sprintf("%s x%d", code, n))
		}
		sort.Strings(named)
		problems = append(problems, fmt.Sprintf("%s: %d replicas not extended (%s; report under s3://%s/%sreports/job-%s/)",
			what, aws.ToInt64(d.ProgressSummary.NumberOfTasksFailed), strings.Join(named, ", "), bucket, RetentionPrefix, id))
	}
	if len(problems) > 0 {
		return &Conflict{Account: a, Msg: strings.Join(problems, "\n"),
			Hint: "see the report; a replica locked in COMPLIANCE beyond the date, or a role without s3:PutObjectRetention, stops a task; run apply --extend-retention again after fixing it"}
	}
	return nil
}

// startRetentionJob writes a job's manifest and creates the job; the
// manifest's digest names both, so a rerun of the same plan finds the job
// it started instead of starting another.
func startRetentionJob(ctx context.Context, cl *awsapi.Clients, c *config.Config, j retentionJob) (string, error) {
	a, bucket := c.Archive.AccountID, c.Archive.Bucket
	data := j.manifest(bucket)
	sum := sha256.Sum256(append(data, j.Mode+j.Until.Format(time.RFC3339)...))
	digest := hex.EncodeToString(sum[:])
	key := RetentionPrefix + "manifests/" + digest + ".csv"
	put, err := cl.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ContentType: aws.String("text/csv")})
	if err != nil {
		return "", wrap(a, "s3 PutObject s3://"+bucket+"/"+key, err)
	}
	out, err := cl.S3Control.CreateJob(ctx, &s3control.CreateJobInput{
		AccountId:            aws.String(a),
		ClientRequestToken:   aws.String(digest),
		ConfirmationRequired: aws.Bool(false),
		Description:          aws.String(fmt.Sprintf("trailkeeper: extend %d replicas to %s %s", len(j.Replicas), j.Mode, j.Until.Format("2006-01-02"))),
		Priority:             aws.Int32(10),
		RoleArn:              aws.String(RoleARN(a, RetentionRoleName)),
		Operation: &s3ctypes.JobOperation{S3PutObjectRetention: &s3ctypes.S3SetObjectRetentionOperation{
			Retention: &s3ctypes.S3Retention{Mode: s3ctypes.S3ObjectLockRetentionMode(j.Mode), RetainUntilDate: aws.Time(j.Until)}}},
		Manifest: &s3ctypes.JobManifest{
			Spec: &s3ctypes.JobManifestSpec{Format: s3ctypes.JobManifestFormatS3BatchOperationsCsv20180820,
				Fields: []s3ctypes.JobManifestFieldName{s3ctypes.JobManifestFieldNameBucket, s3ctypes.JobManifestFieldNameKey, s3ctypes.JobManifestFieldNameVersionId}},
			Location: &s3ctypes.JobManifestLocation{ObjectArn: aws.String(bucketARN(bucket) + "/" + key), ObjectVersionId: put.VersionId, ETag: aws.String(strings.Trim(aws.ToString(put.ETag), `"`))}},
		Report: &s3ctypes.JobReport{Enabled: true, Bucket: aws.String(bucketARN(bucket)), Format: s3ctypes.JobReportFormatReportCsv20180820,
			Prefix: aws.String(RetentionPrefix + "reports"), ReportScope: s3ctypes.JobReportScopeFailedTasksOnly},
	})
	if err != nil {
		if batchjob.NoBatchOperations(err) {
			return "", &awsapi.AccessError{Account: a, Err: fmt.Errorf("s3control CreateJob: this endpoint has no S3 Batch Operations (it answered %v)", batchjob.HTTPStatus(err)),
				Hint: "extend the replicas one by one: apply --extend-retention --batch-above with a number above the replicas to extend"}
		}
		return "", wrap(a, "s3control CreateJob", err)
	}
	return aws.ToString(out.JobId), nil
}
