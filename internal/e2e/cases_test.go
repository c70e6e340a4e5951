package e2e

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

func TestTrailWithKeyPrefix(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, Prefix: "org/logs"})
	e.writeConfig([]string{acctA}, "")
	out, _, _ := e.run("plan")
	if !strings.Contains(out, "org/logs/AWSLogs/ -> ") {
		t.Fatalf("plan does not filter on the trail's prefix:\n%s", out)
	}
	e.apply()
	e.freshLogReplicates(acctA)
}

func TestKMSEncryptedTrail(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	key := "arn:aws:kms:" + region + ":" + acctA + ":key/11111111-2222-3333-4444-555555555555"
	replicaKey := "arn:aws:kms:" + region + ":" + archiveAcct + ":key/99999999-8888-7777-6666-555555555555"
	e.member(world.Member{Account: acctA, KMSKey: key})
	e.writeConfig([]string{acctA}, "")
	out, errOut, code := e.run("plan")
	if code != 1 || !strings.Contains(errOut, "replica_kms_key") {
		t.Fatalf("a KMS trail without a replica key: exit %d\n%s%s", code, out, errOut)
	}
	e.writeConfig([]string{acctA}, "  replica_kms_key: "+replicaKey+"\n")
	e.apply()
	e.freshLogReplicates(acctA)
	// The replica is re-encrypted with the archive's key.
	list, _ := world.S3(e.url, archiveAcct, region).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/" + acctA + "/CloudTrail/")})
	h, err := world.S3(e.url, archiveAcct, region).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: list.Contents[0].Key})
	if err != nil || h.ServerSideEncryption != s3types.ServerSideEncryptionAwsKms || aws.ToString(h.SSEKMSKeyId) != replicaKey {
		t.Fatalf("replica encryption %s %s (%v)", h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId), err)
	}
}

// TestForeignStatementAndRuleSurvive: a statement of another tool in the
// archive policy and another tool's replication rule (with its own role) in a
// source bucket are kept, and keep working.
func TestForeignStatementAndRuleSurvive(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	src := world.S3(e.url, acctA, region)
	bucket := "cm-members-cloudtrail-" + acctA
	// The archive exists with an auditor's read grant.
	arch := world.S3(e.url, archiveAcct, region)
	must(arch.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(archive), ObjectLockEnabledForBucket: aws.Bool(true),
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	auditor := `{"Sid":"AuditorRead","Effect":"Allow","Principal":{"AWS":"555555555555"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::` + archive + `/AWSLogs/*"}`
	must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: aws.String(`{"Version":"2012-10-17","Statement":[` + auditor + `]}`)})).OK(t)
	// The source already replicates other/ to a DR bucket with its own role.
	dr := "dr-" + acctA
	for _, b := range []string{dr, bucket} {
		if b == dr {
			must(src.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
		}
		must(src.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &b, VersioningConfiguration: &s3types.VersioningConfiguration{Status: "Enabled"}})).OK(t)
	}
	im := iam.NewFromConfig(world.Config(e.url, acctA, region))
	must(im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("dr-replication"), AssumeRolePolicyDocument: aws.String(string(mustJSON(setup.ReplicationTrust())))})).OK(t)
	must(im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("dr-replication"), PolicyName: aws.String("dr"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"s3:GetObjectVersionForReplication","Resource":"arn:aws:s3:::` + bucket + `/other/*"},
		{"Effect":"Allow","Action":"s3:ReplicateObject","Resource":"arn:aws:s3:::` + dr + `/*"}]}`)})).OK(t)
	must(src.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: &s3types.ReplicationConfiguration{
		Role: aws.String("arn:aws:iam::" + acctA + ":role/dr-replication"), Rules: []s3types.ReplicationRule{{ID: aws.String("disaster-recovery"),
			Priority: aws.Int32(1), Status: "Enabled", Filter: &s3types.ReplicationRuleFilter{Prefix: aws.String("other/")},
			DeleteMarkerReplication: &s3types.DeleteMarkerReplication{Status: "Disabled"}, Destination: &s3types.Destination{Bucket: aws.String("arn:aws:s3:::" + dr)}}}}})).OK(t)

	e.writeConfig([]string{acctA}, "")
	out := e.apply()
	if !strings.Contains(out, "also replicates rules disaster-recovery with role dr-replication") {
		t.Fatalf("apply does not say it shares the role:\n%s", out)
	}
	if pol := archivePolicy(t, e); !strings.Contains(pol, `"Sid":"AuditorRead"`) || !strings.Contains(pol, "555555555555") {
		t.Fatalf("the auditor's statement was lost: %s", pol)
	}
	rep := must(src.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &bucket})).OK(t)
	if len(rep.ReplicationConfiguration.Rules) != 2 {
		t.Fatalf("rules after apply: %d", len(rep.ReplicationConfiguration.Rules))
	}
	e.freshLogReplicates(acctA)
	// The foreign rule still replicates its own objects.
	key := "other/backup.txt"
	put := must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader([]byte("dr"))})).OK(t)
	e.sb.WaitReplication(ctx)
	if st, why, _ := e.sb.ReplicationFailure(bucket, key, *put.VersionId); st != "COMPLETED" {
		t.Fatalf("the foreign rule broke: %s %s", st, why)
	}
	e.sb.ResetCalls()
	e.apply()
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("second apply wrote %v", w)
	}
}

// TestAdoptSeedSetup: a setup made by the seed's procedure with the AWS CLI is
// recognised and moved to the least-privileged layout, and after every single
// step of apply a fresh log still reaches the archive.
func TestAdoptSeedSetup(t *testing.T) {
	requireTool(t, "aws")
	e := newEnv(t, sandbox.Options{})
	for _, a := range []string{acctA, acctB} {
		e.member(world.Member{Account: a})
	}
	seedProcedure(t, e, []string{acctA, acctB})
	for _, a := range []string{acctA, acctB} {
		e.freshLogReplicates(a) // the seed's setup works
	}
	e.writeConfig([]string{acctA, acctB}, "")
	out, _, code := e.run("plan")
	if code != 0 || !strings.Contains(out, "adopting the seed's setup") || !strings.Contains(out, "- bucket policy") && !strings.Contains(out, "AllowReplicationPolicyCheck") {
		t.Fatalf("plan does not recognise the seed's setup (exit %d):\n%s", code, out)
	}
	if err := build(t, e).Apply(ctx, 1, checkAfterEachStep{e, t}); err != nil {
		t.Fatal(err)
	}
	pol := archivePolicy(t, e)
	if strings.Contains(pol, "AllowReplicationPolicyCheck") || strings.Contains(pol, "s3:List") || strings.Contains(pol, "ReplicateDelete") {
		t.Fatalf("the seed's over-broad statements remain: %s", pol)
	}
	// The stack-managed role was not touched behind CloudFormation's back.
	im := iam.NewFromConfig(world.Config(e.url, acctA, region))
	doc := must(im.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("S3ReplicationRole"), PolicyName: aws.String("S3ReplicationPolicy")})).OK(t)
	if !strings.Contains(*doc.PolicyDocument, "ReplicateDelete") {
		t.Fatal("the stack's role policy was edited")
	}
	if _, err := im.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("S3ReplicationRole"), PolicyName: aws.String(setup.RolePolicyName)}); err == nil {
		t.Fatal("trailkeeper added a policy to the stack's role")
	}
	e.sb.ResetCalls()
	e.apply()
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("apply after adoption wrote %v", w)
	}
}

type checkAfterEachStep struct {
	e *env
	t *testing.T
}

func (c checkAfterEachStep) Start(*setup.Step) {}
func (c checkAfterEachStep) Done(s *setup.Step, err error) {
	if err != nil {
		return
	}
	for _, a := range []string{acctA, acctB} {
		c.t.Logf("after %s %s of %s: checking %s", s.Action, s.Resource, s.Account, a)
		c.e.freshLogReplicates(a)
	}
}

// seedProcedure runs the seed document's steps with the AWS CLI, as a person would.
func seedProcedure(t *testing.T, e *env, sources []string) {
	seed := func(name string, repl ...string) string {
		data, err := os.ReadFile("../sandbox/testdata/seed/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReplacer(repl...).Replace(string(data))
	}
	dir := t.TempDir()
	run := func(acct string, args ...string) {
		if out, err := runAWSIn(e, dir, acct, args...); err != nil {
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	file := func(name, content string) string {
		p := dir + "/" + name
		os.WriteFile(p, []byte(content), 0o600)
		return "file://" + p
	}
	run(archiveAcct, "s3api", "create-bucket", "--bucket", archive, "--region", region, "--create-bucket-configuration", "LocationConstraint="+region, "--object-lock-enabled-for-bucket")
	run(archiveAcct, "s3api", "put-bucket-versioning", "--bucket", archive, "--versioning-configuration", "Status=Enabled")
	var principals []string
	for _, a := range sources {
		run(a, "s3api", "put-bucket-versioning", "--bucket", "cm-members-cloudtrail-"+a, "--versioning-configuration", "Status=Enabled")
		run(a, "cloudformation", "create-stack", "--stack-name", "cloudtrail-replication-role", "--template-body", file("role.yaml", seed("s3-replication-role.yaml")),
			"--parameters", "ParameterKey=DestinationAccountId,ParameterValue="+archiveAcct, "--capabilities", "CAPABILITY_NAMED_IAM")
		run(a, "cloudformation", "wait", "stack-create-complete", "--stack-name", "cloudtrail-replication-role")
		run(a, "s3api", "put-bucket-replication", "--bucket", "cm-members-cloudtrail-"+a, "--replication-configuration",
			file("rc.json", seed("replication-config.json", "${ACCOUNT_ID}", a, "${DESTINATION_ACCOUNT_ID}", archiveAcct)))
		principals = append(principals, `"arn:aws:iam::`+a+`:role/S3ReplicationRole"`)
	}
	// The seed's "adding a source account" form: both role ARNs in both statements.
	bp := seed("bucket-policy.json", "<集約アカウントID>", archiveAcct)
	bp = strings.ReplaceAll(bp, `"arn:aws:iam::<ソースアカウントID>:role/S3ReplicationRole"`, "["+strings.Join(principals, ",")+"]")
	bp = strings.Replace(bp, "AllowReplicationFromSourceAccount", "AllowReplicationFromSourceAccounts", 1)
	run(archiveAcct, "s3api", "put-bucket-policy", "--bucket", archive, "--policy", file("bp.json", bp))
}

// TestLargeGrantReplicates: with more accounts than fit the archive policy as
// principals (here 620 granted by an earlier run), apply grants them by
// aws:PrincipalAccount; S3's Block Public Access accepts the policy, logs
// replicate under it, a second apply writes nothing, and an account outside
// the grant cannot replicate into the archive even with the right role name.
func TestLargeGrantReplicates(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctB})
	arch := world.S3(e.url, archiveAcct, region)
	must(arch.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(archive), ObjectLockEnabledForBucket: aws.Bool(true),
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	var earlier []string
	for i := range 620 {
		earlier = append(earlier, fmt.Sprintf("%012d", 500000000000+i))
	}
	roles := []string{setup.SharedRolePattern("trailkeeper-replication")}
	before := &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{setup.LargeReplicationGrant(archive, earlier, roles, []string{"AWSLogs/"})}}
	must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: aws.String(string(mustJSON(before)))})).OK(t)

	e.writeConfig([]string{acctA, acctB}, "")
	e.apply()
	pol := archivePolicy(t, e)
	doc, err := policy.Parse([]byte(pol), policy.Resource)
	if err != nil {
		t.Fatal(err)
	}
	grant := doc.Statement(setup.SidReplication)
	if grant == nil || len(grant.Principal.AWS) != 1 || grant.Principal.AWS[0] != "*" {
		t.Fatalf("apply did not keep the large grant: %v", grant.Principal)
	}
	if got := setup.GrantedAccounts(grant); len(got) != 622 || !slices.Contains(got, acctA) || !slices.Contains(got, acctB) {
		t.Fatalf("aws:PrincipalAccount has %d accounts, want the 620 earlier ones and %s, %s", len(got), acctA, acctB)
	}
	if size := setup.StoredSize(doc); size > setup.PolicyLimit {
		t.Fatalf("policy is %d bytes", size)
	}
	e.freshLogReplicates(acctA)
	e.freshLogReplicates(acctB)

	e.sb.ResetCalls()
	e.apply()
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("second apply wrote %v", w)
	}
	if _, _, code := e.run("plan"); code != 0 {
		t.Fatalf("plan after apply exited %d", code)
	}

	// An account outside the config with a role of the same name is refused.
	const outsider = "444444444444"
	e.member(world.Member{Account: outsider})
	im := iam.NewFromConfig(world.Config(e.url, outsider, region))
	must(im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("trailkeeper-replication"), AssumeRolePolicyDocument: aws.String(string(mustJSON(setup.ReplicationTrust())))})).OK(t)
	must(im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String("all"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)})).OK(t)
	bucket := "cm-members-cloudtrail-" + outsider
	src := world.S3(e.url, outsider, region)
	must(src.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &bucket, VersioningConfiguration: &s3types.VersioningConfiguration{Status: "Enabled"}})).OK(t)
	must(src.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: &s3types.ReplicationConfiguration{
		Role: aws.String("arn:aws:iam::" + outsider + ":role/trailkeeper-replication"), Rules: []s3types.ReplicationRule{{ID: aws.String("sneak"),
			Priority: aws.Int32(1), Status: "Enabled", Filter: &s3types.ReplicationRuleFilter{Prefix: aws.String("AWSLogs/")},
			DeleteMarkerReplication: &s3types.DeleteMarkerReplication{Status: "Disabled"}, Destination: &s3types.Destination{Bucket: aws.String("arn:aws:s3:::" + archive)}}}}})).OK(t)
	key := "AWSLogs/" + outsider + "/forged.json.gz"
	put := must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: strings.NewReader("forged")})).OK(t)
	e.sb.WaitReplication(ctx)
	if st, _, _ := e.sb.ReplicationFailure(bucket, key, *put.VersionId); st != "FAILED" {
		t.Fatalf("an account outside the grant replicated into the archive: %s", st)
	}
}
