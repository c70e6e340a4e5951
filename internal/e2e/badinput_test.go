package e2e

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

func TestMalformedConfigExits2(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.writeConfig([]string{acctA}, "")
	good, _ := os.ReadFile(e.config)
	for _, tt := range []struct{ name, from, to, want string }{
		{"bad account id", `account_id: "111111111111"`, `account_id: "11111"`, `sources[0].account_id: "11111" is not a 12-digit AWS account id`},
		{"unknown key", "  time_control: true\n", "  time_contrl: true\n", "replication.time_contrl: unknown key"},
		{"unknown region", "region: " + region, "region: mars-north-1", `archive.region: "mars-north-1" is not an AWS region`},
		{"duplicate account", "sources:\n", "sources:\n  - account_id: \"111111111111\"\n", "is listed twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(e.config, []byte(strings.Replace(string(good), tt.from, tt.to, 1)), 0o600)
			out, errOut, code := e.run("plan")
			if code != 2 || !strings.Contains(errOut, e.config+":") || !strings.Contains(errOut, tt.want) || out != "" {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
		})
	}
	var errb strings.Builder
	if code := cli.Main([]string{"plan", "--config", "/nonexistent.yaml"}, strings.NewReader(""), &errb, &errb); code != 2 || !strings.Contains(errb.String(), "hint: run 'trailkeeper init'") || strings.Contains(errb.String(), "fix the file") {
		errOut := errb.String()
		t.Fatalf("missing config: exit %d: %s", code, errOut)
	}
}

func TestProfileOfTheWrongAccount(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	// The profile named for account A holds B's keys.
	cfg, _ := os.ReadFile(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"))
	os.WriteFile(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), []byte(strings.Replace(string(cfg), "aws_access_key_id = "+acctA, "aws_access_key_id = "+acctB, 1)), 0o600)
	e.sb.ResetCalls()
	_, errOut, code := e.run("apply", "--yes")
	if code != 3 || !strings.Contains(errOut, "profile member-"+acctA+" acts as account "+acctB) || !strings.Contains(errOut, "hint:") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("wrote before checking identities: %v", w)
	}
}

// TestMissingPermissions: a source whose credentials may only read fails with
// AccessDenied naming the action and the account, and a rerun with enough
// permissions finishes the job.
func TestMissingPermissions(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	im := iam.NewFromConfig(world.Config(e.url, acctA, region))
	must(im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("readonly"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + acctA + `"},"Action":"sts:AssumeRole"}]}`)})).OK(t)
	must(im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("readonly"), PolicyName: aws.String("read"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*","s3:List*","iam:Get*","iam:List*","cloudtrail:Describe*","cloudtrail:Get*","cloudformation:Describe*"],"Resource":"*"}]}`)})).OK(t)
	e.writeConfig([]string{acctA}, "")
	// The source now acts through the read-only role (a profile with role_arn and source_profile).
	cfgFile := os.Getenv("AWS_CONFIG_FILE")
	data, _ := os.ReadFile(cfgFile)
	os.WriteFile(cfgFile, append(data, []byte("[profile limited]\nrole_arn = arn:aws:iam::"+acctA+":role/readonly\nsource_profile = member-"+acctA+"\n")...), 0o600)
	yaml, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(yaml), "profile: member-"+acctA, "profile: limited", 1)), 0o600)

	out, errOut, code := e.run("apply", "--yes")
	if code != 3 || !strings.Contains(errOut, "account "+acctA) || !strings.Contains(errOut, "PutBucketVersioning") || !strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// The archive side was done; with the right credentials a rerun converges.
	os.WriteFile(e.config, yaml, 0o600)
	e.apply()
	e.freshLogReplicates(acctA)
}

func TestArchiveBucketOwnedBySomeoneElse(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	squatter := world.S3(e.url, "888888888888", region)
	must(squatter.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(archive), CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	e.writeConfig([]string{acctA}, "")
	e.sb.ResetCalls()
	_, errOut, code := e.run("apply", "--yes")
	if code != 1 || !strings.Contains(errOut, "archive bucket "+archive+" exists but does not belong to account "+archiveAcct) || !strings.Contains(errOut, "hint: bucket names are global") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("wrote %v", w)
	}
}

func TestComplianceNeedsExplicitConsent(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	yaml, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(yaml), "mode: GOVERNANCE", "mode: COMPLIANCE", 1)), 0o600)
	if _, errOut, code := e.run("apply", "--yes"); code != 1 || !strings.Contains(errOut, "--allow-compliance") {
		t.Fatalf("COMPLIANCE without consent: exit %d: %s", code, errOut)
	}
	e.apply("--allow-compliance")
	// Going back to GOVERNANCE would weaken the lock: refused.
	os.WriteFile(e.config, yaml, 0o600)
	if _, errOut, code := e.run("apply", "--yes"); code != 1 || !strings.Contains(errOut, "never weakens Object Lock") {
		t.Fatalf("weakening: exit %d: %s", code, errOut)
	}
}

// TestNothingListening: with the endpoint down, every command says so, with
// the endpoint, as an access error (3), after one attempt: a refused
// connection is not retried.
func TestNothingListening(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, bytes.ReplaceAll(data, []byte(strings.TrimPrefix(e.url, "http://")), []byte(closed)), 0o600)
	for _, args := range [][]string{{"plan"}, {"status"}, {"verify"}, {"search", "--count"}} {
		_, errOut, code := e.run(args...)
		t.Logf("%v: exit %d\n%s", args, code, errOut)
		if code != 3 || !strings.Contains(errOut, "nothing answers at "+closed) || strings.Count(errOut, "connection refused") > 3 {
			t.Errorf("%v: exit %d\n%s", args, code, errOut)
		}
	}
}

func TestRefusedConnectionIsNotRetried(t *testing.T) {
	_, err := net.Dial("tcp", "127.0.0.1:1")
	if awsapi.Unreachable(err) == "" {
		t.Fatalf("%v is not taken for an unreachable endpoint", err)
	}
	if awsapi.Unreachable(errors.New("AccessDenied")) != "" {
		t.Fatal("an ordinary error taken for an unreachable endpoint")
	}
}

// TestApplyFromDevNull: /dev/null is a character device but no terminal:
// apply asks for --yes instead of a confirmation nobody can give.
func TestApplyFromDevNull(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	var out, errb bytes.Buffer
	code := cli.Main([]string{"apply", "--config", e.config, "--no-progress"}, null, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "pass --yes") {
		t.Fatalf("apply < /dev/null: exit %d\n%s", code, errb.String())
	}
}

// TestMisspelledTrail: status names the trail it could not find and the trails
// that are there, and claims nothing about a trail it never saw.
func TestMisspelledTrail(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	data, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, bytes.Replace(data, []byte("    profile: member-"+acctA+"\n"), []byte("    profile: member-"+acctA+"\n    trail: Membres\n"), 1), 0o600)
	out, errOut, code := e.run("status")
	if code != 1 || !strings.Contains(out, "(not found)") || !strings.Contains(out, "trail-not-found") || !strings.Contains(out, "trails there: Members") ||
		strings.Contains(out, "trail-not-logging") || strings.Contains(out, "log-file-validation-off") {
		t.Fatalf("status with a misspelled trail: exit %d\n%s%s", code, out, errOut)
	}
}
