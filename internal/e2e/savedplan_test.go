package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// plan --out FILE saves what a reviewer approves; apply FILE applies exactly
// that, or, when anything it depends on changed in between (another grant
// in the archive policy, a rule edited by hand, the config), names it and
// writes nothing. A plan from another trailkeeper, or of another format, is
// refused.
func TestSavedPlanAppliesExactlyWhatWasReviewed(t *testing.T) {
	e := newEnv(t, sandboxDefaults())
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctB})
	e.writeConfig([]string{acctA}, "")
	saved := func(name string) string {
		t.Helper()
		path := filepath.Join(e.dir, name)
		out, errOut, code := e.run("plan", "--out", path)
		if code != 0 || !strings.Contains(errOut, "Saved to "+path) {
			t.Fatalf("plan --out: exit %d\n%s%s", code, out, errOut)
		}
		return path
	}
	noWrites := func(what string) {
		t.Helper()
		if w := e.writes(); len(w) > 0 {
			t.Fatalf("%s wrote %v", what, w)
		}
	}

	// Reviewed, then applied: it converges.
	first := saved("first.json")
	planned, _, _ := e.run("plan")
	shown, errOut, code := e.run("show", first)
	if code != 0 || !strings.Contains(shown, planned) || !strings.Contains(shown, "Plan saved ") {
		t.Fatalf("show: exit %d\n%s%s\nplan printed:\n%s", code, shown, errOut, planned)
	}
	if out, errOut, code := e.run("apply", first); code != 0 || !strings.Contains(out, "Applied") {
		t.Fatalf("apply FILE: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, _ := e.run("plan"); !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply FILE:\n%s", out)
	}

	// Another grant in the archive policy between plan and apply.
	e.writeConfig([]string{acctA, acctB}, "")
	second := saved("second.json")
	arch := world.S3(e.url, archiveAcct, region)
	doc, err := policy.Parse([]byte(archivePolicy(t, e)), policy.Resource)
	if err != nil {
		t.Fatal(err)
	}
	doc.Statements = append(doc.Statements, policy.Statement{Sid: "SomeoneElsesReader", Effect: policy.Allow,
		Principal: &policy.Principal{AWS: policy.Strings{"arn:aws:iam::" + acctC + ":root"}}, Action: policy.Strings{"s3:GetObject"},
		Resource: policy.Strings{"arn:aws:s3:::" + archive + "/AWSLogs/" + acctC + "/*"}})
	must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: aws.String(string(mustJSON(doc)))})).OK(t)
	e.sb.ResetCalls()
	_, errOut, code = e.run("apply", second)
	if code != cli.ExitProblems || !strings.Contains(errOut, "bucket policy") || !strings.Contains(errOut, "nothing was written") {
		t.Fatalf("apply of a plan the archive policy outran: exit %d\n%s", code, errOut)
	}
	noWrites("apply of a stale plan")

	// A replication rule edited by hand between plan and apply.
	e.apply()
	src := world.S3(e.url, acctA, region)
	bucket := "cm-members-cloudtrail-" + acctA
	rep := must(src.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &bucket})).OK(t).ReplicationConfiguration
	rep.Rules[0].Status = "Disabled"
	must(src.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: rep})).OK(t)
	third := saved("third.json")
	must(src.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: &bucket})).OK(t)
	e.sb.ResetCalls()
	_, errOut, code = e.run("apply", third)
	if code != cli.ExitProblems || !strings.Contains(errOut, "replication of "+bucket) {
		t.Fatalf("apply of a plan whose rule was deleted since: exit %d\n%s", code, errOut)
	}
	noWrites("apply of a plan whose rule changed")

	// The config changed since the plan.
	fourth := saved("fourth.json")
	text, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, append(text, "# reviewed later\n"...), 0o600)
	if _, errOut, code := e.run("apply", fourth); code != cli.ExitProblems || !strings.Contains(errOut, "the config "+e.config+" changed") {
		t.Fatalf("apply after the config changed: exit %d\n%s", code, errOut)
	}
	os.WriteFile(e.config, text, 0o600)

	// Another trailkeeper's plan, another format, options beside a file.
	for field, want := range map[string]any{"trailkeeper": "v0.1.0", "format": 0} {
		var m map[string]any
		data, _ := os.ReadFile(fourth)
		json.Unmarshal(data, &m)
		m[field] = want
		data, _ = json.Marshal(m)
		old := filepath.Join(e.dir, "old-"+field+".json")
		os.WriteFile(old, data, 0o600)
		if _, errOut, code := e.run("apply", old); code != cli.ExitUsage || !strings.Contains(errOut, "plan --out again") {
			t.Errorf("a plan with %s %v: exit %d\n%s", field, want, code, errOut)
		}
	}
	// A saved step edited by hand (here the document it writes) is refused.
	data, _ := os.ReadFile(fourth)
	edited := filepath.Join(e.dir, "edited.json")
	if !strings.Contains(string(data), `"StorageClass": "STANDARD"`) {
		t.Fatalf("the saved plan does not hold the replication rule it writes:\n%s", data)
	}
	os.WriteFile(edited, []byte(strings.Replace(string(data), `"StorageClass": "STANDARD"`, `"StorageClass": "GLACIER"`, 1)), 0o600)
	if _, errOut, code := e.run("apply", edited); code != cli.ExitUsage || !strings.Contains(errOut, "was edited after it was saved") {
		t.Errorf("a plan edited by hand: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := e.run("apply", fourth, "--prune"); code != cli.ExitUsage || !strings.Contains(errOut, "the plan carries the options") {
		t.Errorf("apply FILE --prune: exit %d\n%s", code, errOut)
	}
	// And, untouched, the fourth still applies.
	if out, errOut, code := e.run("apply", fourth); code != 0 {
		t.Fatalf("apply of a plan nothing outran: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, _ := e.run("plan"); !strings.Contains(out, "No changes") {
		t.Fatalf("plan after the last apply FILE:\n%s", out)
	}
}
