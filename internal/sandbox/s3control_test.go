package sandbox

import (
	"bytes"
	"encoding/json"
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
	var manifest struct {
		Results []struct{ TaskExecutionStatus, Key string }
	}
	json.Unmarshal([]byte(c.ok(sourceAcct, "s3", "cp", "s3://"+p.source+"/batch-reports/job-"+id+"/manifest.json", "-")), &manifest)
	if len(manifest.Results) != 1 || manifest.Results[0].TaskExecutionStatus != "succeeded" {
		t.Fatalf("report manifest: %+v", manifest)
	}
	csv := c.ok(sourceAcct, "s3", "cp", "s3://"+p.source+"/"+manifest.Results[0].Key, "-")
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
	json.Unmarshal([]byte(c.ok(sourceAcct, "s3", "cp", "s3://"+p.source+"/batch-reports/job-"+id+"/manifest.json", "-")), &manifest)
	if csv := c.ok(sourceAcct, "s3", "cp", "s3://"+p.source+"/"+manifest.Results[0].Key, "-"); !strings.Contains(csv, ",failed,InitiateReplicationNotPermitted,403,") {
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
