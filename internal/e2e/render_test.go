package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// TestRenderThenDeployWithTheCLI: what render writes deploys with the AWS CLI
// (CloudFormation for the role), replicates, and trailkeeper then accepts the
// stack-managed role without editing it.
func TestRenderThenDeployWithTheCLI(t *testing.T) {
	requireTool(t, "aws")
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, Validation: true})
	e.writeConfig([]string{acctA}, "")
	dir := t.TempDir()
	out, errOut, code := e.run("render", dir)
	if code != 0 || !strings.Contains(out, filepath.Join(dir, acctA, "replication-role.cfn.json")) {
		t.Fatalf("render exited %d: %s%s", code, out, errOut)
	}
	// The archive as a pipeline would build it: bucket, then the rendered files.
	cli := func(acct string, args ...string) {
		t.Helper()
		if _, err := runAWS(e, acct, args...); err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
	}
	file := func(name string) string { return "file://" + filepath.Join(dir, name) }
	cli(archiveAcct, "s3api", "create-bucket", "--bucket", archive, "--create-bucket-configuration", "LocationConstraint="+region, "--object-lock-enabled-for-bucket")
	// Step 1 of the rendered README, its archive commands as written.
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	ran := 0
	for _, line := range strings.Split(string(readme), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "aws s3api put-") && strings.Contains(line, "--bucket "+archive) {
			args := strings.Fields(strings.TrimPrefix(line, "aws "))
			for i, a := range args {
				if strings.HasPrefix(a, "file://") {
					args[i] = file(strings.TrimPrefix(a, "file://"))
				}
			}
			cli(archiveAcct, args...)
			ran++
		}
	}
	if ran != 3 {
		t.Fatalf("%d archive commands in the rendered README (want lock, public access block, ownership):\n%s", ran, readme)
	}
	cli(archiveAcct, "s3api", "put-bucket-policy", "--bucket", archive, "--policy", file("archive/bucket-policy.json"))
	bucket := "cm-members-cloudtrail-" + acctA
	cli(acctA, "s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled")
	cli(acctA, "cloudformation", "create-stack", "--stack-name", "trailkeeper-replication", "--template-body", file(acctA+"/replication-role.cfn.json"), "--capabilities", "CAPABILITY_NAMED_IAM")
	cli(acctA, "cloudformation", "wait", "stack-create-complete", "--stack-name", "trailkeeper-replication")
	cli(acctA, "s3api", "put-bucket-replication", "--bucket", bucket, "--replication-configuration", file(acctA+"/replication-configuration.json"))
	e.freshLogReplicates(acctA)

	out, errOut, code = e.run("plan", "--detailed-exitcode")
	if code != 0 {
		t.Fatalf("plan after deploying the rendered files: exit %d\n%s%s", code, out, errOut)
	}
	pol := must(world.S3(e.url, archiveAcct, region).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(archive)})).OK(t)
	rendered, _ := os.ReadFile(filepath.Join(dir, "archive/bucket-policy.json"))
	if byMeaning(t, *pol.Policy) != byMeaning(t, string(rendered)) {
		t.Fatalf("deployed policy differs from the rendered one")
	}
}

// TestRenderedAlertsDeployWithTheCLI: the alert files render writes deploy with
// the AWS CLI, and plan then has nothing left to change.
func TestRenderedAlertsDeployWithTheCLI(t *testing.T) {
	requireTool(t, "aws")
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	e.apply()
	person := newInbox(t)
	e.writeConfig([]string{acctA}, "alerts:\n  subscribe: ["+person.url+"]\n")
	dir := t.TempDir()
	if out, errOut, code := e.run("render", dir); code != 0 {
		t.Fatalf("render exited %d: %s%s", code, out, errOut)
	}
	cli := func(acct string, args ...string) string {
		t.Helper()
		out, err := runAWS(e, acct, args...)
		if err != nil {
			t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(out)
	}
	file := func(name string) string { return "file://" + filepath.Join(dir, name) }
	topic := cli(archiveAcct, "sns", "create-topic", "--name", "trailkeeper-replication-failures", "--query", "TopicArn", "--output", "text")
	cli(archiveAcct, "sns", "set-topic-attributes", "--topic-arn", topic, "--attribute-name", "Policy", "--attribute-value", file("archive/topic-policy-"+region+".json"))
	cli(archiveAcct, "sns", "subscribe", "--topic-arn", topic, "--protocol", "http", "--notification-endpoint", person.url)
	person.waitConfirmed(1)
	bucket := "cm-members-cloudtrail-" + acctA
	cli(acctA, "s3api", "put-bucket-notification-configuration", "--bucket", bucket, "--notification-configuration", file(acctA+"/notification-configuration.json"))
	person.next(testEventFrom(bucket))
	if out, errOut, code := e.run("plan", "--detailed-exitcode"); code != 0 {
		t.Fatalf("plan after deploying the rendered alert files: exit %d\n%s%s", code, out, errOut)
	}
}
