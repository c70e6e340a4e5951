package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// A source account is hostile: it widens its own replication role and writes
// a forged log under another account's folder of its bucket. The archive's
// grant confines each source to its own folder, so the forgery fails to
// replicate and nobody finds it as the other account's event.
func TestSourceCannotWriteIntoAnotherAccountsFolder(t *testing.T) {
	e := archived(t, 1, acctA, acctB)
	if pol := archivePolicy(t, e); !strings.Contains(pol, "AWSLogs/${aws:PrincipalAccount}/*") {
		t.Fatalf("the grant is not confined to each account's folder: %s", pol)
	}
	// Account A lets its role write anywhere under AWSLogs/ of the archive.
	roles := iam.NewFromConfig(world.Config(e.url, acctA, region))
	got := must(roles.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String("trailkeeper-replication")})).OK(t)
	wide := strings.ReplaceAll(decodeURL(aws.ToString(got.PolicyDocument)), "/AWSLogs/"+acctA+"/*", "/AWSLogs/*")
	must(roles.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String("trailkeeper-replication"), PolicyDocument: &wide})).OK(t)

	day := time.Now().UTC().Format("2006/01/02")
	forged := "AWSLogs/" + acctB + "/CloudTrail/" + region + "/" + day + "/" + acctB + "_CloudTrail_" + region + "_" + time.Now().UTC().Format("20060102T1504Z") + "_forgedforgedforg.json.gz"
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write([]byte(`{"Records":[{"eventVersion":"1.08","eventTime":"` + time.Now().UTC().Format(time.RFC3339) + `","eventSource":"iam.amazonaws.com","eventName":"ForgedEvent","awsRegion":"` + region + `","recipientAccountId":"` + acctB + `","userIdentity":{"type":"Root","accountId":"` + acctB + `"}}]}`))
	zw.Close()
	srcBucket := "cm-members-cloudtrail-" + acctA
	must(world.S3(e.url, acctA, region).PutObject(ctx, &s3.PutObjectInput{Bucket: &srcBucket, Key: &forged, Body: bytes.NewReader(body.Bytes())})).OK(t)
	wctx, cancel := testenv.Patience(t)
	defer cancel()
	if err := e.sb.WaitReplication(wctx); err != nil {
		t.Fatal(err)
	}
	h := must(world.S3(e.url, acctA, region).HeadObject(ctx, &s3.HeadObjectInput{Bucket: &srcBucket, Key: &forged})).OK(t)
	if h.ReplicationStatus != s3types.ReplicationStatusFailed {
		t.Fatalf("the forged log's replication: %s, want FAILED", h.ReplicationStatus)
	}
	if _, why, _ := e.sb.ReplicationFailure(srcBucket, forged, aws.ToString(h.VersionId)); why != "DstPutObjectNotPermitted" {
		t.Fatalf("the forged log failed for %q, want DstPutObjectNotPermitted", why)
	}
	if _, err := world.S3(e.url, archiveAcct, region).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: &forged}); err == nil {
		t.Fatal("the forged log reached the archive under account B's folder")
	}
	out, errOut, code := e.run("search", "--event-name", "ForgedEvent")
	if code != 0 || strings.Contains(out, "ForgedEvent") {
		t.Fatalf("search for the forged event: exit %d\n%s%s", code, out, errOut)
	}
	// Its own folder still replicates.
	e.freshLogReplicates(acctA)
}

// An archive that still holds a stray under an account's folder, written
// before the grant was narrowed (or by anyone with write access to the
// archive): status names it, since the account's own bucket does not hold it.
func TestStatusFlagsAForeignReplica(t *testing.T) {
	e := healthy(t, world.Member{Account: acctA}, "")
	key := "AWSLogs/" + acctA + "/CloudTrail/" + region + "/" + time.Now().UTC().Format("2006/01/02") + "/" + acctA + "_CloudTrail_" + region + "_" + time.Now().UTC().Format("20060102T1504Z") + "_strangerstranger.json.gz"
	must(world.S3(e.url, archiveAcct, region).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(archive), Key: &key, Body: strings.NewReader("x"),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})).OK(t)
	r, code, out := e.status()
	if code != cli.ExitProblems || r.Healthy || !slices.Contains(findingCodes(r), "foreign-replica") || r.Accounts[0].Foreign != 1 {
		t.Fatalf("status with a stray in the archive: exit %d\n%s", code, out)
	}
	if f := finding(r, "foreign-replica"); !strings.Contains(f.Message, key) || f.Account != acctA {
		t.Fatalf("the finding does not name the stray: %+v", f)
	}
}

// newestReplicaRetention reads the retention of the newest replica of the account.
func (e *env) newestReplicaRetention(account string) (key string, until time.Time) {
	e.t.Helper()
	arch := world.S3(e.url, archiveAcct, region)
	var newest time.Time
	p := s3.NewListObjectsV2Paginator(arch, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/" + account + "/CloudTrail/")})
	for p.HasMorePages() {
		for _, o := range must(p.NextPage(ctx)).OK(e.t).Contents {
			if !o.LastModified.Before(newest) {
				newest, key = *o.LastModified, *o.Key
			}
		}
	}
	h := must(arch.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: &key})).OK(e.t)
	return key, aws.ToTime(h.ObjectLockRetainUntilDate)
}

// A source turns Object Lock on for its own trail bucket with a one-day
// default: S3 replicates that retention, so its replicas would be locked one
// day instead of the archive's 400. status says so, apply --extend-retention
// extends them (the archive's owner may), and once the source's default is
// gone, status is healthy again.
func TestSourceCannotShortenTheRetentionOfItsReplicas(t *testing.T) {
	e := healthy(t, world.Member{Account: acctA}, "")
	src := world.S3(e.url, acctA, region)
	bucket := "cm-members-cloudtrail-" + acctA
	oneDay := &s3types.ObjectLockConfiguration{ObjectLockEnabled: s3types.ObjectLockEnabledEnabled,
		Rule: &s3types.ObjectLockRule{DefaultRetention: &s3types.DefaultRetention{Mode: s3types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}
	must(src.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: &bucket, ObjectLockConfiguration: oneDay})).OK(t)
	e.deliveries(acctA, 3)
	key, until := e.newestReplicaRetention(acctA)
	if until.After(time.Now().Add(48 * time.Hour)) {
		t.Fatalf("the sandbox did not carry the source's retention over: %s locked until %s", key, until)
	}

	r, code, out := e.status()
	codes := findingCodes(r)
	if code != cli.ExitProblems || !slices.Contains(codes, "source-retention-shorter") || !slices.Contains(codes, "replica-retention-short") || r.Accounts[0].ShortRetention == 0 {
		t.Fatalf("status with a source shortening its replicas: exit %d\n%s", code, out)
	}
	if f := finding(r, "replica-retention-short"); !strings.Contains(f.Fix, "apply --extend-retention") {
		t.Fatalf("the fix does not say how: %+v", f)
	}

	out, errOut, code := e.run("plan", "--extend-retention")
	if code != 0 || !strings.Contains(out, "replica retention of "+acctA) || !strings.Contains(out, "replicas locked for less than GOVERNANCE 400 days") ||
		!strings.Contains(out, "bucket "+bucket+" has Object Lock: its logs replicate with their own retention") {
		t.Fatalf("plan --extend-retention: exit %d\n%s%s", code, out, errOut)
	}
	e.apply("--extend-retention")
	if _, until := e.newestReplicaRetention(acctA); until.Before(time.Now().AddDate(0, 0, 399)) {
		t.Fatalf("after apply --extend-retention, %s is locked until %s", key, until)
	}
	// The source still shortens what comes next; status says that, and only that.
	r, code, out = e.status()
	if codes := findingCodes(r); code != cli.ExitProblems || !slices.Equal(codes, []string{"source-retention-shorter"}) {
		t.Fatalf("status after the extension: exit %d, findings %v\n%s", code, codes, out)
	}
	// A second run finds nothing short.
	if out := e.apply("--extend-retention"); !strings.Contains(out, "No changes") {
		t.Fatalf("a second apply --extend-retention:\n%s", out)
	}
	noDefault := &s3types.ObjectLockConfiguration{ObjectLockEnabled: s3types.ObjectLockEnabledEnabled}
	must(src.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: &bucket, ObjectLockConfiguration: noDefault})).OK(t)
	if r, code, out := e.status(); code != 0 || !r.Healthy {
		t.Fatalf("status once the source's default is gone: exit %d\n%s", code, out)
	}
}

// The archive's own default cut for a while and then restored leaves the
// replicas written meanwhile short: status finds them in its sample, apply
// --extend-retention repairs them.
func TestARestoredDefaultStillShowsTheShortReplicas(t *testing.T) {
	e := newEnv(t, sandboxDefaults())
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	e.apply()
	arch := world.S3(e.url, archiveAcct, region)
	lock := func(days int32) {
		must(arch.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(archive), ObjectLockConfiguration: &s3types.ObjectLockConfiguration{
			ObjectLockEnabled: s3types.ObjectLockEnabledEnabled,
			Rule:              &s3types.ObjectLockRule{DefaultRetention: &s3types.DefaultRetention{Mode: s3types.ObjectLockRetentionModeGovernance, Days: aws.Int32(days)}}}})).OK(t)
	}
	lock(1)
	e.deliveries(acctA, 2)
	lock(400)
	r, code, out := e.status()
	if code != cli.ExitProblems || !slices.Equal(findingCodes(r), []string{"replica-retention-short"}) {
		t.Fatalf("status after the default was cut and restored: exit %d\n%s", code, out)
	}
	// In bulk: S3 Batch Operations' Object Lock retention jobs, whatever the count.
	applied := e.apply("--extend-retention", "--batch-above", "0")
	if !strings.Contains(applied, "with 1 S3 Batch Operations job ") || !strings.Contains(applied, "role "+setup.RetentionRoleName) {
		t.Fatalf("apply --extend-retention --batch-above 0 did not use a job:\n%s", applied)
	}
	if r, code, out := e.status(); code != 0 || !r.Healthy {
		t.Fatalf("status after apply --extend-retention: exit %d\n%s\napply said:\n%s", code, out, applied)
	}
	// Every replica is locked at least as long as the default says, and at
	// most 31 days longer.
	pages := s3.NewListObjectVersionsPaginator(arch, &s3.ListObjectVersionsInput{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/")})
	for pages.HasMorePages() {
		for _, v := range must(pages.NextPage(ctx)).OK(t).Versions {
			r := must(arch.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(archive), Key: v.Key, VersionId: v.VersionId})).OK(t)
			due := aws.ToTime(v.LastModified).AddDate(0, 0, 400)
			if got := aws.ToTime(r.Retention.RetainUntilDate); got.Before(due.Add(-24*time.Hour)) || got.After(due.AddDate(0, 0, 32)) {
				t.Errorf("%s locked until %s, due %s", aws.ToString(v.Key), got, due)
			}
		}
	}
	if out := e.apply("--extend-retention", "--batch-above", "0"); !strings.Contains(out, "No changes") {
		t.Fatalf("a second apply --extend-retention:\n%s", out)
	}
}

// remove-source takes the account out of the config it was given, comments
// kept, so that removing a second account later does not grant the first
// again.
func TestRemoveSourceTwiceGrantsNeitherAgain(t *testing.T) {
	e := newEnv(t, sandboxDefaults())
	for _, a := range []string{acctA, acctB, acctC} {
		e.member(world.Member{Account: a})
	}
	e.writeConfig([]string{acctA, acctB, acctC}, "")
	text := must(os.ReadFile(e.config)).OK(t)
	if err := os.WriteFile(e.config, append([]byte("# the log archive of example corp\n"), text...), 0o600); err != nil {
		t.Fatal(err)
	}
	e.apply()
	for i, a := range []string{acctA, acctB} {
		out, errOut, code := e.run("remove-source", a, "--yes")
		if code != 0 || !strings.Contains(errOut, "took 1 account out of "+e.config) {
			t.Fatalf("remove-source %s: exit %d\n%s%s", a, code, out, errOut)
		}
		pol := archivePolicy(t, e)
		for _, gone := range []string{acctA, acctB}[:i+1] {
			if strings.Contains(pol, gone) {
				t.Fatalf("after removing %s, the archive policy grants %s: %s", a, gone, pol)
			}
		}
		if !strings.Contains(pol, acctC) {
			t.Fatalf("after removing %s, the archive policy lost %s: %s", a, acctC, pol)
		}
	}
	cfg := string(must(os.ReadFile(e.config)).OK(t))
	if strings.Contains(cfg, acctA) || strings.Contains(cfg, acctB) || !strings.Contains(cfg, acctC) || !strings.HasPrefix(cfg, "# the log archive of example corp\n") {
		t.Fatalf("the config after two removals:\n%s", cfg)
	}
	e.sb.ResetCalls()
	if out := e.apply(); len(e.writes()) != 0 {
		t.Fatalf("apply after the removals wrote %v\n%s", e.writes(), out)
	}
	// The last source stays: a config needs one, and remove-source says so.
	out, errOut, code := e.run("remove-source", acctC, "--yes")
	if code != 0 || !strings.Contains(errOut, "still lists account "+acctC) {
		t.Fatalf("remove-source of the last source: exit %d\n%s%s", code, out, errOut)
	}
}

// Before it writes the archive policy, plan asks IAM Access Analyzer; a
// statement of someone else's that makes the policy public stops it, with the
// reason, and nothing is written.
func TestAccessAnalyzerStopsAPublicPolicy(t *testing.T) {
	e := newEnv(t, sandboxDefaults())
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctB})
	e.writeConfig([]string{acctA}, "")
	e.apply()
	arch := world.S3(e.url, archiveAcct, region)
	must(arch.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: aws.String(archive)})).OK(t)
	pol := archivePolicy(t, e)
	public := strings.Replace(pol, `"Statement":[`, `"Statement":[{"Sid":"Website","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::`+archive+`/*"},`, 1)
	must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: &public})).OK(t)
	e.writeConfig([]string{acctA, acctB}, "")
	e.sb.ResetCalls()
	out, errOut, code := e.run("apply", "--yes")
	if code != cli.ExitProblems || !strings.Contains(errOut, "IAM Access Analyzer says the archive policy apply would write grants public access") || !strings.Contains(errOut, "statement Website") {
		t.Fatalf("apply over a public statement: exit %d\n%s%s", code, out, errOut)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("apply wrote %v before stopping", w)
	}
}

// S3 answers a listing a page at a time; with pages of two entries, every
// command that lists must follow the continuation to say what it says with
// pages of a thousand.
func TestEveryListingFollowsItsPages(t *testing.T) {
	e := newEnv(t, sandbox.Options{PageSize: 2})
	for _, a := range []string{acctA, acctB} {
		e.member(world.Member{Account: a})
	}
	e.writeConfig([]string{acctA, acctB}, "athena:\n  results: s3://query-results-999999999999/athena/\n  regions: [ap-northeast-1]\n")
	e.apply()
	e.deliveries(acctA, 3)
	e.deliveries(acctB, 3)
	if r, code, out := e.status(); code != 0 || !r.Healthy || r.Accounts[0].SourceObjects < 3 {
		t.Fatalf("status with pages of 2: exit %d\n%s", code, out)
	}
	// Four named queries come two to a page: a second apply that read only
	// the first page would create the others again.
	e.sb.ResetCalls()
	if out := e.apply(); len(e.writes()) != 0 {
		t.Fatalf("a second apply with pages of 2 wrote %v\n%s", e.writes(), out)
	}
	// The replication role's third inline policy denies replication: status
	// reads it only if it follows ListRolePolicies' pages.
	roles := iam.NewFromConfig(world.Config(e.url, acctA, region))
	for name, doc := range map[string]string{
		"aa-read":  `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`,
		"zz-block": `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:ReplicateObject","Resource":"*"}]}`,
	} {
		must(roles.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("trailkeeper-replication"), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)})).OK(t)
	}
	if r, code, out := e.status(); code == 0 || finding(r, "role-permission") == nil || !strings.Contains(finding(r, "role-permission").Message, "explicit deny") {
		t.Fatalf("status with a denying third policy, pages of 2: exit %d\n%s", code, out)
	}
	out, errOut, code := e.run("verify", "--output", "json")
	if code != 0 || !strings.Contains(out, `"verdict": "valid"`) {
		t.Fatalf("verify with pages of 2: exit %d\n%s%s", code, out, errOut)
	}
	count, errOut, code := e.run("search", "--count", "--no-index", "--since", "30d")
	if code != 0 || strings.TrimSpace(count) == "0" {
		t.Fatalf("search --count with pages of 2: exit %d %q %s", code, count, errOut)
	}
	src := world.S3(e.url, acctA, region)
	n := 0
	p := s3.NewListObjectsV2Paginator(src, &s3.ListObjectsV2Input{Bucket: aws.String("cm-members-cloudtrail-" + acctA), Prefix: aws.String("AWSLogs/")})
	for p.HasMorePages() {
		page := must(p.NextPage(ctx)).OK(t)
		if len(page.Contents) > 2 {
			t.Fatalf("a page of %d: the sandbox does not page", len(page.Contents))
		}
		n += len(page.Contents)
	}
	if n <= 2 {
		t.Fatalf("only %d objects: the test does not span pages", n)
	}
}

// Credentials that may not ask IAM Access Analyzer stop the plan before any
// policy write, with the permission to add named: the archive policy is not
// written on trailkeeper's reading alone where AWS can be asked.
func TestPlanNamesTheAccessAnalyzerPermission(t *testing.T) {
	e := newEnv(t, sandboxDefaults())
	e.member(world.Member{Account: acctA})
	e.writeConfig([]string{acctA}, "")
	im := iam.NewFromConfig(world.Config(e.url, archiveAcct, region))
	must(im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("operator")})).OK(t)
	must(im.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("operator"), PolicyName: aws.String("all-but-analyzer"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"access-analyzer:*","Resource":"*"}]}`)})).OK(t)
	key := must(im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("operator")})).OK(t).AccessKey
	creds := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	f, err := os.OpenFile(creds, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[operator]\naws_access_key_id = %s\naws_secret_access_key = %s\n", aws.ToString(key.AccessKeyId), aws.ToString(key.SecretAccessKey))
	f.Close()
	text, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, bytes.Replace(text, []byte("profile: log-archive"), []byte("profile: operator"), 1), 0o600)
	e.sb.ResetCalls()
	out, errOut, code := e.run("apply", "--yes")
	if code != cli.ExitAWS || !strings.Contains(errOut, "grant access-analyzer:CheckNoPublicAccess to the archive credentials") {
		t.Fatalf("apply without access-analyzer:CheckNoPublicAccess: exit %d\n%s%s", code, out, errOut)
	}
	if w := e.writes(); len(w) != 0 {
		t.Fatalf("apply wrote %v before stopping", w)
	}
}
