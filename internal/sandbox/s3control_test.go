package sandbox

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const batchTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"batchoperations.s3.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

func batchRolePolicy(bucket string, initiate bool) string {
	actions := `"s3:InitiateReplication"`
	if !initiate {
		actions = `"s3:GetObject"`
	}
	return `{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Action":[` + actions + `],"Resource":"arn:aws:s3:::` + bucket + `/AWSLogs/*"},
{"Effect":"Allow","Action":["s3:GetReplicationConfiguration","s3:PutInventoryConfiguration"],"Resource":"arn:aws:s3:::` + bucket + `"},
{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/batch-reports/*"}]}`
}

// controlCLI is the AWS CLI for S3 Control: it sends requests to
// ACCOUNT.HOST, which does not resolve for an IP endpoint, so the sandbox
// serves as the CLI's HTTP proxy too.
func controlCLI(t *testing.T, e *env) *cli {
	c := newCLI(t, e.url)
	c.env = []string{"HTTP_PROXY=" + e.url, "http_proxy=" + e.url, "NO_PROXY=", "no_proxy="}
	return c
}

func (c *cli) createJob(acct, bucket, role string, statuses ...string) string {
	gen, _ := json.Marshal(map[string]any{"S3JobManifestGenerator": map[string]any{"SourceBucket": "arn:aws:s3:::" + bucket, "EnableManifestOutput": false,
		"Filter": map[string]any{"EligibleForReplication": true, "ObjectReplicationStatuses": statuses}}})
	return c.ok(acct, "s3control", "create-job", "--account-id", acct, "--operation", `{"S3ReplicateObject":{}}`,
		"--report", "Bucket=arn:aws:s3:::"+bucket+",Format=Report_CSV_20180820,Enabled=true,Prefix=batch-reports,ReportScope=AllTasks",
		"--manifest-generator", string(gen), "--priority", "10", "--role-arn", "arn:aws:iam::"+acct+":role/"+role,
		"--no-confirmation-required", "--query", "JobId", "--output", "text")
}

func (c *cli) describeJob(acct, id string) map[string]any {
	var out struct{ Job map[string]any }
	if err := json.Unmarshal([]byte(c.ok(acct, "s3control", "describe-job", "--account-id", acct, "--job-id", id)), &out); err != nil {
		c.t.Fatal(err)
	}
	return out.Job
}

// jobReport reads a job's completion report as S3 writes it: manifest.json
// under PREFIX/job-ID/ names one result CSV, of the tasks with status.
func (c *cli) jobReport(acct, bucket, prefix, id, status string) string {
	c.t.Helper()
	var manifest struct {
		Results []struct{ TaskExecutionStatus, Key string }
	}
	json.Unmarshal([]byte(c.ok(acct, "s3", "cp", "s3://"+bucket+"/"+prefix+"/job-"+id+"/manifest.json", "-")), &manifest)
	if len(manifest.Results) != 1 || manifest.Results[0].TaskExecutionStatus != status {
		c.t.Fatalf("report manifest of job %s: %+v, want one result of %s tasks", id, manifest, status)
	}
	return c.ok(acct, "s3", "cp", "s3://"+bucket+"/"+manifest.Results[0].Key, "-")
}

// TestBatchReplicationWithTheCLI: objects written before the rule are not
// replicated; an S3 Batch Replication job created with the AWS CLI as AWS
// documents it brings them in, and writes its completion report. Without
// s3:InitiateReplication its tasks fail; without a replication configuration
// the job fails.
func TestBatchReplicationWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	p.grant(t, sourceAcct)
	src := e.s3(sourceAcct)
	must(src.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: &p.source})).OK(t)
	var before []string
	for _, k := range []string{"a", "b", "c"} {
		key := "AWSLogs/" + sourceAcct + "/CloudTrail/" + region + "/2026/12/01/" + k + ".json.gz"
		must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader([]byte(k))})).OK(t)
		before = append(before, key)
	}
	// The job runs in a later second than the writes, so that a replica's
	// Last-Modified tells its own time from its source's.
	for written := time.Now().Truncate(time.Second); !time.Now().Truncate(time.Second).After(written); {
		time.Sleep(10 * time.Millisecond)
	}
	must(src.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: p.rule(nil)})).OK(t)
	after := "AWSLogs/" + sourceAcct + "/CloudTrail/" + region + "/2026/12/02/d.json.gz"
	must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &after, Body: bytes.NewReader([]byte("d"))})).OK(t)
	e.waitReplication()
	arch := e.s3(archiveAcct)
	for _, k := range before {
		if _, err := arch.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.archive, Key: &k}); err == nil {
			t.Fatalf("%s, written before the rule, was replicated", k)
		}
	}

	im := e.iam(sourceAcct)
	for name, initiate := range map[string]bool{"batch": true, "weak-batch": false} {
		must(im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(batchTrust)})).OK(t)
		must(im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("batch"), PolicyDocument: aws.String(batchRolePolicy(p.source, initiate))})).OK(t)
	}
	c := controlCLI(t, e)
	id := c.createJob(sourceAcct, p.source, "batch", "NONE", "FAILED")
	e.waitReplication()
	job := c.describeJob(sourceAcct, id)
	prog, _ := job["ProgressSummary"].(map[string]any)
	if job["Status"] != "Complete" || prog["TotalNumberOfTasks"] != 3.0 || prog["NumberOfTasksSucceeded"] != 3.0 {
		t.Fatalf("job after running: %v", job)
	}
	for _, k := range before {
		h := must(arch.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.archive, Key: &k})).OK(t)
		sh := must(src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.source, Key: &k})).OK(t)
		// "Creation time of the replica remains the same as the corresponding object in the source bucket."
		if h.ReplicationStatus != "REPLICA" || sh.ReplicationStatus != "COMPLETED" || aws.ToString(h.VersionId) != aws.ToString(sh.VersionId) ||
			!aws.ToTime(h.LastModified).Equal(aws.ToTime(sh.LastModified)) {
			t.Fatalf("%s after the job: archive %s %s %s, source %s %s %s", k, h.ReplicationStatus, aws.ToString(h.VersionId), h.LastModified,
				sh.ReplicationStatus, aws.ToString(sh.VersionId), sh.LastModified)
		}
	}
	// The completion report: manifest.json names the result CSVs.
	csv := c.jobReport(sourceAcct, p.source, "batch-reports", id, "succeeded")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 3 || !strings.Contains(lines[0], ",succeeded,,200,") {
		t.Fatalf("report CSV:\n%s", csv)
	}

	// Without s3:InitiateReplication every task fails, and the report says why.
	id = c.createJob(sourceAcct, p.source, "weak-batch", "COMPLETED")
	e.waitReplication()
	job = c.describeJob(sourceAcct, id)
	prog, _ = job["ProgressSummary"].(map[string]any)
	if job["Status"] != "Complete" || prog["NumberOfTasksFailed"] != 4.0 {
		t.Fatalf("job without s3:InitiateReplication: %v", job)
	}
	if csv := c.jobReport(sourceAcct, p.source, "batch-reports", id, "failed"); !strings.Contains(csv, ",failed,InitiateReplicationNotPermitted,403,") {
		t.Fatalf("report CSV:\n%s", csv)
	}

	// Without a replication configuration the job fails.
	must(src.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: &p.source})).OK(t)
	id = c.createJob(sourceAcct, p.source, "batch", "NONE", "FAILED")
	e.waitReplication()
	job = c.describeJob(sourceAcct, id)
	reasons, _ := job["FailureReasons"].([]any)
	if job["Status"] != "Failed" || len(reasons) != 1 || reasons[0].(map[string]any)["FailureCode"] != "SrcBucketReplicationConfigMissing" {
		t.Fatalf("job without a replication configuration: %v", job)
	}

	// ListJobs knows all three; a finished job cannot be cancelled.
	if n := c.ok(sourceAcct, "s3control", "list-jobs", "--account-id", sourceAcct, "--query", "length(Jobs)"); n != "3" {
		t.Fatalf("list-jobs: %s jobs", n)
	}
	if _, err := c.run(sourceAcct, "s3control", "update-job-status", "--account-id", sourceAcct, "--job-id", id, "--requested-job-status", "Cancelled"); err == nil || !strings.Contains(err.Error(), "JobStatusException") {
		t.Fatalf("cancelling a failed job: %v", err)
	}
	// Another account sees none of them.
	if _, err := c.run(archiveAcct, "s3control", "describe-job", "--account-id", archiveAcct, "--job-id", id); err == nil || !strings.Contains(err.Error(), "NotFoundException") {
		t.Fatalf("describe-job of another account's job: %v", err)
	}
}

// TestRetentionJobWithTheCLI: an S3 Batch Operations Object Lock retention
// job, created with the AWS CLI as the User Guide shows, extends the
// retention of what its CSV manifest lists by the API's rules: a GOVERNANCE
// lock is extended, a COMPLIANCE lock is not stepped down, a missing key
// fails its task; the report names both failures. A manifest changed since
// the job was created, or a role that may not read the bucket's Object Lock
// configuration, fails the job.
func TestRetentionJobWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	arch := e.s3(archiveAcct)
	var rows []string
	put := func(key string, in *s3.PutObjectInput) {
		in.Bucket, in.Key, in.Body, in.ChecksumAlgorithm = &p.archive, &key, strings.NewReader(key), "CRC32"
		out := must(arch.PutObject(ctx, in)).OK(t)
		rows = append(rows, p.archive+","+url.QueryEscape(key)+","+aws.ToString(out.VersionId))
	}
	logs := "AWSLogs/" + sourceAcct + "/CloudTrail/" + region + "/2026/12/01/"
	put(logs+"a b.json.gz", &s3.PutObjectInput{})
	put(logs+"c.json.gz", &s3.PutObjectInput{})
	compliance := time.Now().AddDate(2, 0, 0).UTC().Truncate(time.Second)
	put(logs+"d.json.gz", &s3.PutObjectInput{ObjectLockMode: "COMPLIANCE", ObjectLockRetainUntilDate: &compliance})
	rows = append(rows, p.archive+","+url.QueryEscape(logs+"gone.json.gz")+",")
	manifest := func(name string, rows []string) (arn, etag string) {
		key := "retention/manifests/" + name
		out := must(arch.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.archive, Key: &key, Body: strings.NewReader(strings.Join(rows, "\n") + "\n"), ChecksumAlgorithm: "CRC32"})).OK(t)
		return "arn:aws:s3:::" + p.archive + "/" + key, strings.Trim(aws.ToString(out.ETag), `"`)
	}
	im := e.iam(archiveAcct)
	for name, lockRead := range map[string]bool{"retention": true, "blind-retention": false} {
		check := `{"Effect":"Allow","Action":"s3:GetBucketObjectLockConfiguration","Resource":"arn:aws:s3:::` + p.archive + `"},`
		if !lockRead {
			check = ""
		}
		must(im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(batchTrust)})).OK(t)
		must(im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("retention"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[` + check + `
{"Effect":"Allow","Action":"s3:PutObjectRetention","Resource":"arn:aws:s3:::` + p.archive + `/*AWSLogs/*"},
{"Effect":"Allow","Action":["s3:GetObject","s3:GetObjectVersion","s3:PutObject"],"Resource":"arn:aws:s3:::` + p.archive + `/retention/*"}]}`)})).OK(t)
	}
	until := time.Now().AddDate(0, 0, 400).UTC().Truncate(time.Second)
	c := controlCLI(t, e)
	create := func(role, arn, etag string) string {
		return c.ok(archiveAcct, "s3control", "create-job", "--account-id", archiveAcct,
			"--operation", `{"S3PutObjectRetention":{"Retention":{"Mode":"GOVERNANCE","RetainUntilDate":"`+until.Format(time.RFC3339)+`"}}}`,
			"--manifest", `{"Spec":{"Format":"S3BatchOperations_CSV_20180820","Fields":["Bucket","Key","VersionId"]},"Location":{"ObjectArn":"`+arn+`","ETag":"`+etag+`"}}`,
			"--report", "Bucket=arn:aws:s3:::"+p.archive+",Format=Report_CSV_20180820,Enabled=true,Prefix=retention/reports,ReportScope=FailedTasksOnly",
			"--priority", "10", "--role-arn", "arn:aws:iam::"+archiveAcct+":role/"+role, "--no-confirmation-required", "--query", "JobId", "--output", "text")
	}
	arn, etag := manifest("all.csv", rows)
	id := create("retention", arn, etag)
	e.waitReplication()
	job := c.describeJob(archiveAcct, id)
	prog, _ := job["ProgressSummary"].(map[string]any)
	if job["Status"] != "Complete" || prog["TotalNumberOfTasks"] != 4.0 || prog["NumberOfTasksSucceeded"] != 2.0 || prog["NumberOfTasksFailed"] != 2.0 {
		t.Fatalf("retention job: %v", job)
	}
	if op, _ := job["Operation"].(map[string]any); op["S3PutObjectRetention"] == nil {
		t.Fatalf("describe-job does not name the operation: %v", job["Operation"])
	}
	for key, want := range map[string]time.Time{logs + "a b.json.gz": until, logs + "c.json.gz": until, logs + "d.json.gz": compliance} {
		r := must(arch.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &p.archive, Key: &key})).OK(t)
		if !aws.ToTime(r.Retention.RetainUntilDate).Equal(want) {
			t.Errorf("%s locked %s until %s, want %s", key, r.Retention.Mode, r.Retention.RetainUntilDate, want)
		}
	}
	csv := c.jobReport(archiveAcct, p.archive, "retention/reports", id, "failed")
	if !strings.Contains(csv, "d.json.gz") || !strings.Contains(csv, ",failed,AccessDenied,403,") || !strings.Contains(csv, ",failed,NoSuchKey,404,") {
		t.Fatalf("report CSV:\n%s", csv)
	}

	for name, tc := range map[string]struct{ role, etag string }{
		"a manifest changed since": {"retention", "0123456789abcdef0123456789abcdef"},
		"a role blind to the lock": {"blind-retention", etag},
	} {
		id := create(tc.role, arn, tc.etag)
		e.waitReplication()
		if job := c.describeJob(archiveAcct, id); job["Status"] != "Failed" {
			t.Errorf("%s: job %v", name, job)
		}
	}
}
