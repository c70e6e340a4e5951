package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/s3control"
	s3ctypes "github.com/aws/aws-sdk-go-v2/service/s3control/types"
	smithyendpoints "github.com/aws/smithy-go/endpoints"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// keys lists a bucket's keys under prefix.
func keys(t *testing.T, e *env, account, bucket, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(world.S3(e.url, account, region), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		for _, o := range must(p.NextPage(ctx)).OK(t).Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// TestBackfillBringsInWhatPredatesReplication: logs delivered before apply
// never replicate; status names them with the fix trailkeeper backfill;
// backfill --wait brings every one in; then the source and archive hold the
// same keys, and status and verify exit 0.
func TestBackfillBringsInWhatPredatesReplication(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, Validation: true})
	e.deliveries(acctA, 3) // before trailkeeper
	e.writeConfig([]string{acctA}, "")
	if out := e.apply(); !strings.Contains(out, "were written before replication and will not reach the archive: run trailkeeper backfill --account "+acctA) {
		t.Fatalf("apply does not say what replication will not copy:\n%s", out)
	}
	e.deliveries(acctA, 2)
	src, base := "cm-members-cloudtrail-"+acctA, "AWSLogs/"+acctA+"/"
	// An object under another account's folder of the same bucket (written
	// before the rule): the rule's AWSLogs/ covers it, the job must not.
	stray := "AWSLogs/" + acctB + "/CloudTrail/" + region + "/2026/01/01/stray.json.gz"
	srcS3 := world.S3(e.url, acctA, region)
	must(srcS3.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: &src})).OK(t) // written while no rule: NONE
	must(srcS3.PutObject(ctx, &s3.PutObjectInput{Bucket: &src, Key: &stray, Body: strings.NewReader("{}")})).OK(t)
	e.apply()
	before := keys(t, e, acctA, src, base)
	if archived := keys(t, e, archiveAcct, archive, base); len(archived) >= len(before) {
		t.Fatalf("the archive already holds %d of %d objects", len(archived), len(before))
	}

	out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms")
	if code != 0 || !strings.Contains(out, "Complete: the archive holds every log file and digest of 1 account") {
		t.Fatalf("backfill --wait exited %d:\n%s%s", code, out, errOut)
	}
	if got := keys(t, e, archiveAcct, archive, base); !slices.Equal(got, keys(t, e, acctA, src, base)) {
		t.Fatalf("after backfill the archive holds %d keys, the source %d", len(got), len(before))
	}
	if h := must(srcS3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &src, Key: &stray})).OK(t); h.ReplicationStatus != "" {
		t.Fatalf("the job took an object outside the trail's account folder: %s is %s", stray, h.ReplicationStatus)
	}
	// A rerun finds nothing missing and starts no job.
	out, _, code = e.run("backfill", "--output", "json")
	var r struct {
		Accounts []struct {
			Status string `json:"status"`
			JobID  string `json:"jobId"`
		} `json:"accounts"`
	}
	json.Unmarshal([]byte(out), &r)
	if code != 0 || len(r.Accounts) != 1 || r.Accounts[0].Status != "nothing-missing" || r.Accounts[0].JobID != "" {
		t.Fatalf("backfill rerun exited %d: %s", code, out)
	}
	if out, errOut, code := e.run("verify"); code != 0 {
		t.Fatalf("verify after backfill exited %d:\n%s%s", code, out, errOut)
	}
}

// TestStatusSeesDriftAndIncompleteness: status is healthy only when nothing
// plan would change differs and the archive holds everything of the window.
func TestStatusSeesDriftAndIncompleteness(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, Validation: true})
	e.deliveries(acctA, 2) // before trailkeeper: never replicated
	e.writeConfig([]string{acctA}, "")
	e.apply()
	r, code, _ := e.status()
	f := finding(r, "archive-incomplete")
	if code != 1 || f == nil || f.Fix != "trailkeeper backfill --account "+acctA || !strings.Contains(f.Message, "never replicated") {
		t.Fatalf("status with logs older than replication: exit %d, %+v", code, r.Findings)
	}
	if _, _, code := e.run("backfill", "--wait", "--poll", "10ms"); code != 0 {
		t.Fatalf("backfill exited %d", code)
	}
	if r, code, out := e.status(); code != 0 || !r.Healthy || r.Accounts[0].Missing != 0 || r.Accounts[0].SourceObjects == 0 {
		t.Fatalf("status after backfill: exit %d\n%s", code, out)
	}

	// The archive's retention cut to a day, and the role allowed to write anywhere in the archive.
	arch := world.S3(e.url, archiveAcct, region)
	must(arch.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(archive), ObjectLockConfiguration: &s3types.ObjectLockConfiguration{
		ObjectLockEnabled: s3types.ObjectLockEnabledEnabled, Rule: &s3types.ObjectLockRule{DefaultRetention: &s3types.DefaultRetention{Mode: s3types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}})).OK(t)
	widened := strings.Replace(string(mustJSON(setup.RolePolicy(mustConfig(t, e), acctA, setup.Trail{Bucket: "cm-members-cloudtrail-" + acctA}))), "/AWSLogs/"+acctA+"/*", "/AWSLogs/*", 1)
	must(iam.NewFromConfig(world.Config(e.url, acctA, region)).PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("trailkeeper-replication"),
		PolicyName: aws.String(setup.RolePolicyName), PolicyDocument: aws.String(widened)})).OK(t)
	r, code, _ = e.status()
	var drift []string
	for _, f := range r.Findings {
		if f.Code == "drift" {
			drift = append(drift, f.Account+" "+f.Message)
		}
	}
	if code != 1 || len(drift) != 2 || !strings.Contains(strings.Join(drift, "\n"), "object lock: default retention GOVERNANCE 400 days (was GOVERNANCE 1 days)") ||
		!strings.Contains(strings.Join(drift, "\n"), acctA+" apply would change 1 thing: role trailkeeper-replication: inline policy") {
		t.Fatalf("status after the drifts: exit %d\n%s", code, strings.Join(drift, "\n"))
	}
	e.apply()
	if r, code, out := e.status(); code != 0 || !r.Healthy {
		t.Fatalf("status after apply repaired the drift: exit %d\n%s", code, out)
	}

	// Status credentials that may not read log files: exit 3, naming the permission.
	bucket := "cm-members-cloudtrail-" + acctA
	pol := must(world.S3(e.url, acctA, region).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &bucket})).OK(t)
	denied := strings.Replace(aws.ToString(pol.Policy), `"Statement":[`, `"Statement":[{"Sid":"NoReading","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::`+bucket+`/*"},`, 1)
	must(world.S3(e.url, acctA, region).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &denied})).OK(t)
	out, errOut, code := e.run("status")
	if code != 3 || !strings.Contains(errOut, "s3:GetObject") {
		t.Fatalf("status without s3:GetObject: exit %d\n%s%s", code, out, errOut)
	}
}

func finding(r *status.Report, code string) *status.Finding {
	for _, f := range r.Findings {
		if f.Code == code {
			return f
		}
	}
	return nil
}

func mustConfig(t *testing.T, e *env) *config.Config {
	c, err := config.Load(e.config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBackfillAfterAnOutage: with the archive grant gone, new logs FAIL to
// replicate and S3 never retries them; backfill reports why they fail and
// the fix; once apply has restored the grant, backfill brings them in.
func TestBackfillAfterAnOutage(t *testing.T) {
	e := archived(t, 1, acctA)
	arch := world.S3(e.url, archiveAcct, region)
	pol := must(arch.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(archive)})).OK(t)
	doc := must(policy.Parse([]byte(aws.ToString(pol.Policy)), policy.Resource)).OK(t)
	var kept []policy.Statement
	for _, s := range doc.Statements {
		if s.Sid != setup.SidReplication {
			kept = append(kept, s)
		}
	}
	doc.Statements = kept
	must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: aws.String(string(mustJSON(doc)))})).OK(t)
	e.deliveries(acctA, 2)

	r, code, _ := e.status()
	if f := finding(r, "archive-incomplete"); code != 1 || f == nil || !strings.Contains(f.Message, "FAILED") || !strings.HasPrefix(f.Fix, "trailkeeper apply, then trailkeeper backfill") {
		t.Fatalf("status during the outage: exit %d, %+v", code, r.Findings)
	}
	out, _, code := e.run("backfill", "--wait", "--poll", "10ms")
	if code != 1 || !strings.Contains(out, "DstPutObjectNotPermitted") || !strings.Contains(out, "the archive refuses this account's replicas: the archive policy's grant lacks the account or its role") {
		t.Fatalf("backfill while the grant is missing: exit %d\n%s", code, out)
	}
	e.apply()
	out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms")
	if code != 0 || !strings.Contains(out, "Complete") {
		t.Fatalf("backfill after apply: exit %d\n%s%s", code, out, errOut)
	}
	base := "AWSLogs/" + acctA + "/"
	if got, want := keys(t, e, archiveAcct, archive, base), keys(t, e, acctA, "cm-members-cloudtrail-"+acctA, base); !slices.Equal(got, want) {
		t.Fatalf("the archive holds %d keys, the source %d", len(got), len(want))
	}
	if _, code, out := e.status(); code != 0 {
		t.Fatalf("status after backfill: exit %d\n%s", code, out)
	}
}

// TestBackfillFollowsAnUnfinishedJob: a job an earlier run started and
// recorded is followed by the next run, not started twice.
func TestBackfillFollowsAnUnfinishedJob(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, Validation: true})
	e.deliveries(acctA, 2)
	e.writeConfig([]string{acctA}, "")
	e.apply()
	bucket := "cm-members-cloudtrail-" + acctA
	// A job waiting for confirmation stands for one still running.
	ctl := s3control.NewFromConfig(world.Config(e.url, acctA, region), func(o *s3control.Options) { o.EndpointResolverV2 = hostless{e.url} })
	job := must(ctl.CreateJob(ctx, &s3control.CreateJobInput{AccountId: aws.String(acctA), ConfirmationRequired: aws.Bool(true), Priority: aws.Int32(1),
		Operation: &s3ctypes.JobOperation{S3ReplicateObject: &s3ctypes.S3ReplicateObjectOperation{}},
		RoleArn:   aws.String(setup.RoleARN(acctA, setup.BatchRoleName)), Report: &s3ctypes.JobReport{Enabled: false},
		ManifestGenerator: &s3ctypes.JobManifestGeneratorMemberS3JobManifestGenerator{Value: s3ctypes.S3JobManifestGenerator{SourceBucket: aws.String("arn:aws:s3:::" + bucket),
			Filter: &s3ctypes.JobManifestGeneratorFilter{EligibleForReplication: aws.Bool(true), ObjectReplicationStatuses: []s3ctypes.ReplicationStatus{"NONE"}}}},
	})).OK(t)
	record := `{"jobs":[{"id":"` + aws.ToString(job.JobId) + `","created":"2026-12-01T00:00:00Z","missing":4,"status":"Active"}]}`
	must(world.S3(e.url, acctA, region).PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(setup.BackfillPrefix + "jobs.json"), Body: strings.NewReader(record)})).OK(t)

	out, _, _ := e.run("backfill", "--output", "json")
	var r struct {
		Accounts []struct {
			JobID   string `json:"jobId"`
			Resumed bool   `json:"resumed"`
			Status  string `json:"status"`
		} `json:"accounts"`
	}
	json.Unmarshal([]byte(out), &r)
	if len(r.Accounts) != 1 || r.Accounts[0].JobID != aws.ToString(job.JobId) || !r.Accounts[0].Resumed || r.Accounts[0].Status != "Suspended" {
		t.Fatalf("backfill with an unfinished job: %s", out)
	}
	if n := len(must(ctl.ListJobs(ctx, &s3control.ListJobsInput{AccountId: aws.String(acctA)})).OK(t).Jobs); n != 1 {
		t.Fatalf("%d jobs after the rerun, want the one", n)
	}
	// Confirmed, it runs; the next run records how it ended and starts nothing.
	must(ctl.UpdateJobStatus(ctx, &s3control.UpdateJobStatusInput{AccountId: aws.String(acctA), JobId: job.JobId, RequestedJobStatus: s3ctypes.RequestedJobStatusReady})).OK(t)
	e.sb.WaitReplication(ctx)
	if out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms"); code != 0 || !strings.Contains(out, "nothing-missing") {
		t.Fatalf("backfill after the confirmed job ran: exit %d\n%s%s", code, out, errOut)
	}
	rec := must(world.S3(e.url, acctA, region).GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(setup.BackfillPrefix + "jobs.json")})).OK(t)
	var saved struct{ Jobs []struct{ ID, Status string } }
	json.NewDecoder(rec.Body).Decode(&saved)
	if n := len(must(ctl.ListJobs(ctx, &s3control.ListJobsInput{AccountId: aws.String(acctA)})).OK(t).Jobs); n != 1 || len(saved.Jobs) != 1 || saved.Jobs[0].Status != "Complete" {
		t.Fatalf("%d jobs, record %+v; want the one job, recorded Complete", n, saved)
	}
}

// hostless serves S3 Control at the sandbox's address, without the account
// id AWS's rules put in front of the host.
type hostless struct{ url string }

func (h hostless) ResolveEndpoint(ctx context.Context, p s3control.EndpointParameters) (smithyendpoints.Endpoint, error) {
	u, err := url.Parse(h.url)
	return smithyendpoints.Endpoint{URI: *u}, err
}

// TestMultiRegionTrailEndToEnd: a multi-region trail's digests come from all
// 17 default regions, most of them empty; they replicate, status counts them
// complete, and verify proves every chain.
func TestMultiRegionTrailEndToEnd(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, MultiRegion: true})
	e.writeConfig([]string{acctA}, "")
	e.apply()
	e.deliveries(acctA, 2)
	if r, code, out := e.status(); code != 0 || r.Accounts[0].Missing != 0 {
		t.Fatalf("status of a multi-region trail: exit %d\n%s", code, out)
	}
	out, errOut, code := e.run("verify")
	if code != 0 || !strings.Contains(out, "17 chains") {
		t.Fatalf("verify of a multi-region trail: exit %d\n%s%s", code, out, errOut)
	}
}
