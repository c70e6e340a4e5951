package e2e

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// healthy builds an applied setup whose logs are flowing.
func healthy(t *testing.T, m world.Member, replication string) *env {
	e := newEnv(t, sandbox.Options{})
	e.member(m)
	e.writeConfig([]string{m.Account}, replication)
	e.apply()
	e.deliveries(m.Account, 2)
	return e
}

func (e *env) status() (*status.Report, int, string) {
	e.t.Helper()
	out, errOut, code := e.run("status", "--output", "json")
	var r status.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("status --output json (exit %d): %v\n%s%s", code, err, out, errOut)
	}
	return &r, code, out
}

func findingCodes(r *status.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	sort.Strings(out)
	return out
}

func TestStatusHealthy(t *testing.T) {
	e := healthy(t, world.Member{Account: acctA}, "")
	r, code, _ := e.status()
	if code != 0 || !r.Healthy || len(r.Findings) != 0 {
		t.Fatalf("exit %d, findings %+v", code, r.Findings)
	}
	a := r.Accounts[0]
	if !a.Logging || !a.ReplicationAllows || a.Recent["COMPLETED"] == 0 || a.LagSeconds == nil || *a.LagSeconds != 0 || a.NewestArchiveLog == nil {
		t.Fatalf("account status %+v", a)
	}
	out, _, _ := e.run("status")
	if !strings.Contains(out, "Healthy: every account's trail reaches the archive, and the archive holds every log file and digest since ") || !strings.Contains(out, "Object Lock GOVERNANCE 400 days") {
		t.Fatalf("text status:\n%s", out)
	}
}

// TestStatusNamesWhatIsBroken breaks one thing at a time.
func TestStatusNamesWhatIsBroken(t *testing.T) {
	kmsKey := "arn:aws:kms:" + region + ":" + acctA + ":key/11111111-2222-3333-4444-555555555555"
	replicaKey := "  replica_kms_key: arn:aws:kms:" + region + ":" + archiveAcct + ":key/99999999-8888-7777-6666-555555555555\n"
	bucket := "cm-members-cloudtrail-" + acctA
	cases := []struct {
		name        string
		member      world.Member
		replication string
		breakIt     func(t *testing.T, e *env)
		code        string
		fix         string
	}{
		{"archive policy missing the account", world.Member{Account: acctA}, "", func(t *testing.T, e *env) {
			pol := strings.Replace(archivePolicy(t, e), grantOf(acctA), grantOf(acctB), 1)
			must(world.S3(e.url, archiveAcct, region).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: &pol})).OK(t)
		}, "archive-policy-missing-grant", "trailkeeper apply"},
		{"rule prefix does not match a trail with a key prefix", world.Member{Account: acctA, Prefix: "org"}, "", func(t *testing.T, e *env) {
			c := world.S3(e.url, acctA, region)
			rep := must(c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &bucket})).OK(t).ReplicationConfiguration
			rep.Rules[0].Filter.Prefix = aws.String("AWSLogs/")
			must(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: rep})).OK(t)
		}, "rule-prefix-mismatch", "trailkeeper apply"},
		{"KMS trail without SseKmsEncryptedObjects", world.Member{Account: acctA, KMSKey: kmsKey}, replicaKey, func(t *testing.T, e *env) {
			c := world.S3(e.url, acctA, region)
			rep := must(c.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &bucket})).OK(t).ReplicationConfiguration
			rep.Rules[0].SourceSelectionCriteria, rep.Rules[0].Destination.EncryptionConfiguration = nil, nil
			must(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: rep})).OK(t)
		}, "kms-not-replicated", "replica_kms_key"},
		{"stopped trail", world.Member{Account: acctA}, "", func(t *testing.T, e *env) {
			must(cloudtrail.NewFromConfig(world.Config(e.url, acctA, region)).StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("Members")})).OK(t)
		}, "trail-not-logging", "aws cloudtrail start-logging --name arn:aws:cloudtrail:"},
		{"role missing s3:ReplicateObject", world.Member{Account: acctA}, "", func(t *testing.T, e *env) {
			im := iam.NewFromConfig(world.Config(e.url, acctA, region))
			doc := must(im.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String(setup.RolePolicyName)})).OK(t)
			pol := strings.Replace(decodeURL(*doc.PolicyDocument), `"s3:ReplicateObject",`, "", 1)
			must(im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String(setup.RolePolicyName), PolicyDocument: &pol})).OK(t)
		}, "role-permission", "trailkeeper apply"},
		{"role deleted and recreated", world.Member{Account: acctA}, "", func(t *testing.T, e *env) {
			im := iam.NewFromConfig(world.Config(e.url, acctA, region))
			must(im.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String(setup.RolePolicyName)})).OK(t)
			must(im.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("trailkeeper-replication")})).OK(t)
			must(im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("trailkeeper-replication"), AssumeRolePolicyDocument: aws.String(string(mustJSON(setup.ReplicationTrust())))})).OK(t)
		}, "role-permission", "trailkeeper apply"},
		{"source bucket policy denies CloudTrail", world.Member{Account: acctA}, "", func(t *testing.T, e *env) {
			deny := `{"Version":"2012-10-17","Statement":[{"Sid":"NoCloudTrail","Effect":"Deny","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/*"}]}`
			must(world.S3(e.url, acctA, region).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &deny})).OK(t)
		}, "trail-delivery-error", "cloudtrail.amazonaws.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := healthy(t, tc.member, tc.replication)
			tc.breakIt(t, e)
			e.deliveries(acctA, 2) // new logs meet the broken setup
			r, code, out := e.status()
			var hit *status.Finding
			for _, f := range r.Findings {
				if f.Code == tc.code {
					hit = f
				}
			}
			if code != 1 || r.Healthy || hit == nil || !strings.Contains(hit.Fix, tc.fix) {
				t.Fatalf("exit %d, want finding %s with a fix mentioning %q; got %v\n%s", code, tc.code, tc.fix, findingCodes(r), out)
			}
		})
	}
}

// TestStatusJSONSchemaIsDocumented: every field status --output json prints is
// in the example document of docs/status.md, and every documented field is printed.
func TestStatusJSONSchemaIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/status.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/status.md has no json example")
	}
	var documented any
	if err := json.Unmarshal(m[1], &documented); err != nil {
		t.Fatalf("the example in docs/status.md is not JSON: %v", err)
	}
	e := healthy(t, world.Member{Account: acctA}, "alerts:\n  subscribe: [ops@example.com]\nwatch: {}\n")
	must(cloudtrail.NewFromConfig(world.Config(e.url, acctA, region)).StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("Members")})).OK(t)
	_, _, out := e.status()
	var actual any
	json.Unmarshal([]byte(out), &actual)
	a, d := fieldPaths(actual, ""), fieldPaths(documented, "")
	for p := range a {
		if !d[p] && !strings.Contains(p, "recentReplicationStatus.") {
			t.Errorf("status prints %s, which docs/status.md does not document", p)
		}
	}
	for p := range d {
		if !a[p] && !strings.Contains(p, "recentReplicationStatus.") {
			t.Errorf("docs/status.md documents %s, which status does not print", p)
		}
	}
}

func fieldPaths(v any, prefix string) map[string]bool {
	out := map[string]bool{}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := prefix + k
			out[p] = true
			for q := range fieldPaths(e, p+".") {
				out[q] = true
			}
		}
	case []any:
		for _, e := range x {
			for q := range fieldPaths(e, prefix) {
				out[q] = true
			}
		}
	}
	return out
}

// TestRoomInThePolicyIsOneFigure: plan and status count the accounts that
// still fit the archive policy the same way.
func TestRoomInThePolicyIsOneFigure(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	e.apply()
	room := regexp.MustCompile(`about ([\d,]+) more accounts fit`)
	plan, _, _ := e.run("plan")
	status, _, _ := e.run("status")
	p, s := room.FindStringSubmatch(plan), room.FindStringSubmatch(status)
	if p == nil || s == nil || p[1] != s[1] {
		t.Fatalf("plan says %v, status %v\n%s\n%s", p, s, plan, status)
	}
}

// TestJSONArraysAreNeverNull: scripts iterate over steps, notes, findings and
// accounts without checking for null first.
func TestJSONArraysAreNeverNull(t *testing.T) {
	e := healthy(t, world.Member{Account: acctA}, "")
	for _, args := range [][]string{{"plan", "-o", "json"}, {"status", "-o", "json"}, {"verify", "-o", "json"}} {
		out, _, _ := e.run(args...)
		if strings.Contains(out, ": null") {
			t.Errorf("%v prints null:\n%s", args, out)
		}
	}
}
