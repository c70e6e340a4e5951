package e2e

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

var (
	acctA = "111111111111"
	acctB = "222222222222"
	acctC = "333333333333"
	acctD = "444444444444"
)

// TestApplyLifecycle: an archive and three sources from nothing, a second apply
// that writes nothing, a fourth source added, one removed; after each step a
// freshly delivered log reaches the archive.
func TestApplyLifecycle(t *testing.T) {
	e := newEnv(t, sandboxDefaults())
	for _, a := range []string{acctA, acctB, acctC, acctD} {
		e.member(world.Member{Account: a})
	}
	e.writeConfig([]string{acctA, acctB, acctC}, "")

	out, _, code := e.run("plan", "--detailed-exitcode")
	if code != 4 || !strings.Contains(out, "+ bucket "+archive) || !strings.Contains(out, "+ role trailkeeper-replication") {
		t.Fatalf("plan from nothing exited %d:\n%s", code, out)
	}
	out = e.apply()
	// The room left is counted on the policy as S3 stores it, in the grant's
	// large form, which apply turns to when the accounts no longer fit as principals.
	if !strings.Contains(out, "Applied") || !regexp.MustCompile(`about 1,3\d\d more accounts fit`).MatchString(out) {
		t.Fatalf("apply output:\n%s", out)
	}
	for _, a := range []string{acctA, acctB, acctC} {
		e.freshLogReplicates(a)
	}

	// A second apply reads and writes nothing.
	e.sb.ResetCalls()
	out = e.apply()
	if w := e.writes(); len(w) != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("second apply wrote %v:\n%s", w, out)
	}
	if _, _, code := e.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("plan after apply exited %d, want 0", code)
	}

	// Adding a source changes only the archive policy and the new account.
	e.writeConfig([]string{acctA, acctB, acctC, acctD}, "")
	e.sb.ResetCalls()
	e.apply()
	if got := e.accountsWritten(); !slices.Equal(got, []string{acctD, archiveAcct}) {
		t.Fatalf("adding %s wrote in accounts %v (%v)", acctD, got, e.writes())
	}
	// The archive: the policy, and the policy lease taken and given back.
	if w := e.writes(); w[archiveAcct+" PutBucketPolicy"] != 1 || w[archiveAcct+" PutObject"] != 2 || len(w) != 2+countAccount(w, acctD) {
		t.Fatalf("archive writes when adding a source: %v", w)
	}
	e.freshLogReplicates(acctD)

	// Removing one takes away its grant, rule and role, and no log.
	before := objectCount(t, e, archive)
	out, errOut, code := e.run("remove-source", acctB, "--yes")
	if code != 0 {
		t.Fatalf("remove-source exited %d: %s%s", code, out, errOut)
	}
	pol := archivePolicy(t, e)
	if strings.Contains(pol, acctB) || !strings.Contains(pol, acctA) {
		t.Fatalf("archive policy after removal: %s", pol)
	}
	if _, err := world.S3(e.url, acctB, region).GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: aws.String("cm-members-cloudtrail-" + acctB)}); err == nil {
		t.Fatal("the removed account still replicates")
	}
	if _, err := iam.NewFromConfig(world.Config(e.url, acctB, region)).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("trailkeeper-replication")}); err == nil {
		t.Fatal("the removed account still has the role")
	}
	if after := objectCount(t, e, archive); after != before {
		t.Fatalf("removal changed the archive: %d objects before, %d after", before, after)
	}
	e.writeConfig([]string{acctA, acctC, acctD}, "")
	e.freshLogReplicates(acctA)
	e.sb.ResetCalls()
	e.apply()
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("apply after removal wrote %v", w)
	}

	// An entry deleted from the config keeps its grant until apply --prune.
	e.writeConfig([]string{acctA, acctC}, "")
	out, _, _ = e.run("plan")
	if !strings.Contains(out, "account "+acctD+" is granted in the archive policy but not in the config") {
		t.Fatalf("plan does not mention the unlisted account:\n%s", out)
	}
	if strings.Contains(out, "bucket policy") {
		t.Fatalf("plan without --prune changes the policy:\n%s", out)
	}
	out = e.apply("--prune")
	if pol := archivePolicy(t, e); strings.Contains(pol, acctD) || !strings.Contains(out, "run 'trailkeeper remove-source "+acctD+"'") {
		t.Fatalf("--prune: policy %s\n%s", pol, out)
	}
}

func sandboxDefaults() sandbox.Options { return sandbox.Options{} }

func countAccount(w map[string]int, acct string) int {
	n := 0
	for k := range w {
		if strings.HasPrefix(k, acct+" ") {
			n++
		}
	}
	return n
}

// objectCount counts the log versions (under AWSLogs/) in bucket.
func objectCount(t *testing.T, e *env, bucket string) int {
	t.Helper()
	n := 0
	p := s3.NewListObjectVersionsPaginator(world.S3(e.url, archiveAcct, region), &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: aws.String("AWSLogs/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Versions)
	}
	return n
}

func archivePolicy(t *testing.T, e *env) string {
	t.Helper()
	out, err := world.S3(e.url, archiveAcct, region).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(archive)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Policy)
}
