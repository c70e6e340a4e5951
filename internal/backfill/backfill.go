// Package backfill brings into the archive what live replication never copies:
// log files written before the replication rule existed, and those whose
// replication FAILED (S3 never retries them). Per source account it runs an
// S3 Batch Replication job (AWS-FACTS.md section 11) in the source account and
// region, remembers it in the trail bucket (AWS forgets jobs 90 days after
// they end, and a rerun must not start a duplicate), follows it, and reads
// its completion report for the failure reasons.
package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3control"
	s3ctypes "github.com/aws/aws-sdk-go-v2/service/s3control/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/batchjob"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// Options shape a run.
type Options struct {
	Accounts []string  // only these sources; all when empty
	Since    time.Time // objects delivered from this day on; zero: all
	Wait     bool      // follow the jobs to their end and read their reports
	Parallel int
	Poll     time.Duration // how often DescribeJob is asked while waiting
	// Progress hears, while waiting, how far each account's job is.
	Progress func(account string, done, total int)
}

// Result is one account's backfill.
type Result struct {
	Account   string `json:"account"`
	Missing   int    `json:"missingBefore"` // source objects not in the archive when the run began
	JobID     string `json:"jobId"`
	Resumed   bool   `json:"resumed"` // an earlier, unfinished job was followed instead of starting one
	Status    string `json:"status"`  // the job's status, "nothing-missing", or "not-ready"
	Tried     int    `json:"tried"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	// Reasons counts failed tasks by S3's failure code, from the completion report.
	Reasons map[string]int `json:"failureReasons"`
	// JobFailures are why the job itself failed, if it did.
	JobFailures []string `json:"jobFailures"`
	// Remaining is what is still missing after the job (with Wait), -1 unknown.
	Remaining int    `json:"missingAfter"`
	Problem   string `json:"problem"` // why no job could run, with its fix
}

// Fix says what to do about a failure code.
func Fix(code string) string {
	if f, ok := fixes[code]; ok {
		return f
	}
	return "see the S3 User Guide, \"Replication failure reasons\"; then run trailkeeper backfill again"
}

// fixes name, per failure code of the User Guide's "Amazon S3 replication
// failure reasons" (the codes a Batch Replication report carries), the cause
// in trailkeeper's setup and what to do about it.
var fixes = map[string]string{
	"AssumeRoleNotPermitted":            "S3 cannot assume a role (the replication role by s3.amazonaws.com, or the backfill role by batchoperations.s3.amazonaws.com): its trust policy was changed or the role is gone; trailkeeper apply restores both",
	"InitiateReplicationNotPermitted":   "the backfill role " + setup.BatchRoleName + " may not s3:InitiateReplication on the trail's objects (its inline policy was changed): trailkeeper apply",
	"SrcBucketReplicationConfigMissing": "the trail bucket has no replication configuration (deleted since the job started): trailkeeper apply, then backfill again",
	"SrcGetObjectNotPermitted":          "the replication role cannot read the log files (its policy, the bucket policy, or a KMS key policy denies s3:GetObjectVersionForReplication): trailkeeper apply, and for SSE-KMS let the role use the key",
	"SrcObjectNotEligible":              "no enabled rule covers the object: its key is outside the rule's [prefix/]AWSLogs/, or it is SSE-KMS encrypted and the rule does not replicate KMS objects: trailkeeper apply",
	"DstPutObjectNotPermitted":          "the archive refuses this account's replicas: the archive policy's grant lacks the account or its role (or the object is outside its AWSLogs/ACCOUNT/ folder): trailkeeper apply",
	"DstBucketNotFound":                 "the archive bucket named in the rule does not exist: check archive.bucket in the config, then trailkeeper apply",
	"DstBucketUnversioned":              "the archive bucket is not versioned: trailkeeper apply",
	"DstBucketInvalidRegion":            "the archive bucket is not in the region the job expects: check archive.region in the config, then trailkeeper apply",
	"DstBucketObjectLockConfigMissing":  "the trail bucket has Object Lock, so the archive must have it too: trailkeeper apply (it creates the archive with Object Lock; an existing archive without it cannot be fixed in place)",
	"DstKmsKeyNotFound":                 "the rule's replica KMS key does not exist or is not usable: set replication.replica_kms_key to a key of the archive account, then trailkeeper apply",
}

// record is what trailkeeper keeps of its jobs, next to their reports.
type record struct {
	Jobs []recordedJob `json:"jobs"`
}

type recordedJob struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Since   time.Time `json:"since,omitzero"`
	Missing int       `json:"missing"`
	Status  string    `json:"status"`
}

const recordKey = setup.BackfillPrefix + "jobs.json"

// Run backfills every selected source account of e in parallel. An error
// (access, network) stops the run; what each account reached is in the results.
func Run(ctx context.Context, e *setup.Env, opts Options) ([]*Result, error) {
	c := e.Config
	var sources []config.Source
	for _, s := range c.Sources {
		if (len(opts.Accounts) == 0 || slices.Contains(opts.Accounts, s.AccountID)) && e.Sources[s.AccountID] != nil {
			sources = append(sources, s)
		}
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	results := make([]*Result, len(sources))
	err := parallel.For(ctx, max(1, opts.Parallel), len(sources), func(ctx context.Context, i int) error {
		r := &Result{Account: sources[i].AccountID, Reasons: map[string]int{}, JobFailures: []string{}, Remaining: -1}
		results[i] = r
		return account(ctx, e, sources[i], opts, r)
	})
	return results, err
}

func account(ctx context.Context, e *setup.Env, src config.Source, opts Options, r *Result) error {
	c, cl := e.Config, e.Sources[src.AccountID]
	st, err := setup.ObserveSource(ctx, c, src, cl)
	if err != nil {
		return err
	}
	switch {
	case !st.HasRule():
		r.Status, r.Problem = "not-ready", "the trail bucket has no enabled trailkeeper replication rule: run trailkeeper apply first"
		return nil
	case st.BatchRole == nil:
		r.Status, r.Problem = "not-ready", "the backfill role "+setup.BatchRoleName+" does not exist: run trailkeeper apply first"
		return nil
	}
	t := st.Trail
	now := time.Now().UTC()
	cmp, err := setup.Compare(ctx, cl, e.Archive, c.Archive.Bucket, t, src.AccountID, opts.Since, now, nil)
	if err != nil {
		return err
	}
	r.Missing = len(cmp.All()) // a NONE object is missing however young it is
	// A job runs in the bucket's region, which need not be the trail's.
	region, err := setup.BucketRegion(ctx, cl, t.Bucket)
	if err != nil {
		return fmt.Errorf("the region of bucket %s: %w", t.Bucket, err)
	}
	jobs := cl.InRegion(region)
	rec, err := readRecord(ctx, cl, t.Bucket)
	if err != nil {
		return err
	}
	// An unfinished job of an earlier run is followed, not duplicated.
	changed := false
	if n := len(rec.Jobs); n > 0 && !batchjob.Terminal(rec.Jobs[n-1].Status) {
		changed = true
		last := &rec.Jobs[n-1]
		d, err := batchjob.Describe(ctx, jobs, src.AccountID, last.ID)
		switch {
		case batchjob.NotFound(err):
			last.Status = "Forgotten" // AWS no longer knows it
		case err != nil:
			return wrapAccess(src.AccountID, "s3control DescribeJob", err)
		case !batchjob.Terminal(string(d.Status)):
			r.JobID, r.Resumed = last.ID, true
		default:
			last.Status = string(d.Status)
		}
	}
	if r.JobID == "" {
		if r.Missing == 0 {
			r.Status, r.Remaining = "nothing-missing", 0
			if changed { // how the earlier job ended
				return writeRecord(ctx, cl, t.Bucket, rec)
			}
			return nil
		}
		id, err := create(ctx, jobs, src.AccountID, t, opts.Since)
		if err != nil {
			return err
		}
		r.JobID = id
		rec.Jobs = append(rec.Jobs, recordedJob{ID: id, Created: now, Since: opts.Since, Missing: r.Missing, Status: "New"})
	}
	var d *s3ctypes.JobDescriptor
	if opts.Wait {
		d, err = batchjob.Wait(ctx, jobs, src.AccountID, r.JobID, opts.Poll, func(done, total int) {
			if opts.Progress != nil {
				opts.Progress(src.AccountID, done, total)
			}
		})
	} else {
		d, err = batchjob.Describe(ctx, jobs, src.AccountID, r.JobID)
	}
	if err != nil {
		return wrapAccess(src.AccountID, "s3control DescribeJob", err)
	}
	r.Status = string(d.Status)
	rec.Jobs[len(rec.Jobs)-1].Status = r.Status
	if err := writeRecord(ctx, cl, t.Bucket, rec); err != nil {
		return err
	}
	if d.ProgressSummary != nil {
		r.Succeeded, r.Failed = int(aws.ToInt64(d.ProgressSummary.NumberOfTasksSucceeded)), int(aws.ToInt64(d.ProgressSummary.NumberOfTasksFailed))
		done, total := batchjob.Progress(d)
		r.Tried = total
		if opts.Progress != nil {
			opts.Progress(src.AccountID, done, total)
		}
	}
	r.JobFailures = append(r.JobFailures, batchjob.Failures(d)...)
	if !batchjob.Terminal(r.Status) {
		return nil
	}
	if r.Failed > 0 {
		if r.Reasons, err = batchjob.FailureCodes(ctx, cl, t.Bucket, setup.BackfillPrefix, r.JobID); err != nil {
			return err
		}
	}
	after, err := setup.Compare(ctx, cl, e.Archive, c.Archive.Bucket, t, src.AccountID, opts.Since, time.Now().UTC(), nil)
	if err != nil {
		return err
	}
	r.Remaining = len(after.All())
	return nil
}

// create starts the job AWS documents for Batch Replication: a generated
// manifest of the objects the rule covers whose status is NONE or FAILED.
func create(ctx context.Context, cl *awsapi.Clients, account string, t setup.Trail, since time.Time) (string, error) {
	// The rule's filter is [prefix/]AWSLogs/, which other accounts' folders (an
	// organization trail's, another tool's) may share: the job holds only
	// this trail's own account folder.
	filter := &s3ctypes.JobManifestGeneratorFilter{EligibleForReplication: aws.Bool(true),
		ObjectReplicationStatuses: []s3ctypes.ReplicationStatus{s3ctypes.ReplicationStatusNone, s3ctypes.ReplicationStatusFailed},
		KeyNameConstraint:         &s3ctypes.KeyNameConstraint{MatchAnyPrefix: []string{t.LogPrefix() + account + "/"}}}
	if !since.IsZero() {
		filter.CreatedAfter = aws.Time(since)
	}
	out, err := cl.S3Control.CreateJob(ctx, &s3control.CreateJobInput{
		AccountId:            aws.String(account),
		ConfirmationRequired: aws.Bool(false),
		Operation:            &s3ctypes.JobOperation{S3ReplicateObject: &s3ctypes.S3ReplicateObjectOperation{}},
		Priority:             aws.Int32(10),
		RoleArn:              aws.String(setup.RoleARN(account, setup.BatchRoleName)),
		Description:          aws.String("trailkeeper backfill of trail " + t.Name),
		Report: &s3ctypes.JobReport{Enabled: true, Bucket: aws.String("arn:aws:s3:::" + t.Bucket),
			Format: s3ctypes.JobReportFormatReportCsv20180820, Prefix: aws.String(strings.TrimSuffix(setup.BackfillPrefix, "/")),
			ReportScope: s3ctypes.JobReportScopeFailedTasksOnly},
		ManifestGenerator: &s3ctypes.JobManifestGeneratorMemberS3JobManifestGenerator{Value: s3ctypes.S3JobManifestGenerator{
			SourceBucket: aws.String("arn:aws:s3:::" + t.Bucket), EnableManifestOutput: false, Filter: filter,
			ExpectedBucketOwner: aws.String(account)}},
	})
	if err != nil {
		if batchjob.NoBatchOperations(err) {
			return "", &awsapi.AccessError{Account: account, Err: fmt.Errorf("s3control CreateJob: this endpoint has no S3 Batch Operations (it answered %v)", batchjob.HTTPStatus(err)),
				Hint: "backfill needs S3 Batch Replication, which AWS has in its commercial regions; moto does not emulate it: run backfill against AWS or the sandbox"}
		}
		return "", wrapAccess(account, "s3control CreateJob", err)
	}
	return aws.ToString(out.JobId), nil
}

func wrapAccess(account, what string, err error) error {
	if awsapi.IsAccess(err) {
		return &awsapi.AccessError{Account: account, Err: fmt.Errorf("%s: %w", what, err),
			Hint: "the credentials need s3:CreateJob, s3:DescribeJob and iam:PassRole on role " + setup.BatchRoleName + " (docs/security.md)"}
	}
	return fmt.Errorf("account %s: %s: %w", account, what, err)
}

func readRecord(ctx context.Context, cl *awsapi.Clients, bucket string) (*record, error) {
	out, err := cl.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(recordKey)})
	if code := awsapi.Code(err); code == "NoSuchKey" {
		return &record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, recordKey, err)
	}
	defer out.Body.Close()
	var rec record
	if err := json.NewDecoder(io.LimitReader(out.Body, 16<<20)).Decode(&rec); err != nil {
		return nil, fmt.Errorf("s3://%s/%s is not trailkeeper's job record: %v (remove it to start over)", bucket, recordKey, err)
	}
	return &rec, nil
}

var recordMu sync.Mutex // one writer per process; each account has its own record

func writeRecord(ctx context.Context, cl *awsapi.Clients, bucket string, rec *record) error {
	recordMu.Lock()
	defer recordMu.Unlock()
	data, _ := json.MarshalIndent(rec, "", "  ")
	_, err := cl.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(recordKey), Body: bytes.NewReader(data),
		ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", bucket, recordKey, err)
	}
	return nil
}

// Codes lists a result's failure codes, most frequent first.
func (r *Result) Codes() []string {
	var out []string
	for c := range r.Reasons {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		return r.Reasons[out[i]] > r.Reasons[out[j]] || r.Reasons[out[i]] == r.Reasons[out[j]] && out[i] < out[j]
	})
	return out
}
