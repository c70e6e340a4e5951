package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/cli"
	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// deliveries makes activity and lets CloudTrail deliver n times (a digest each).
func (e *env) deliveries(account string, n int) {
	e.t.Helper()
	for range n {
		if err := world.Activity(ctx, e.url, account, region, 2); err != nil {
			e.t.Fatal(err)
		}
		e.sb.Deliver()
	}
	e.sb.WaitReplication(ctx)
}

// TestVerifyTheArchive: the archive built by apply and CloudTrail's deliveries
// verifies, and a log rewritten by someone with write access to the archive is caught.
func TestVerifyTheArchive(t *testing.T) {
	e := archived(t, 3, acctA, acctB)
	out, errOut, code := e.run("verify")
	if code != 0 || !strings.Contains(out, ": valid.") || strings.Contains(out, "Findings") {
		t.Fatalf("verify of an intact archive: exit %d\n%s%s", code, out, errOut)
	}
	// The archive account (write access, GOVERNANCE lock) writes a new version over a log.
	arch := world.S3(e.url, archiveAcct, region)
	list := must(arch.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(archive), Prefix: aws.String("AWSLogs/" + acctA + "/CloudTrail/")})).OK(t)
	victim := *list.Contents[0].Key
	must(arch.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(archive), Key: &victim, Body: bytes.NewReader(fixture.Gzip([]byte(`{"Records":[]}`))), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})).OK(t)
	out, _, code = e.run("verify", "--output", "json")
	if code != 1 || !strings.Contains(out, `"kind": "shadowing-version"`) || !strings.Contains(out, victim) {
		t.Fatalf("verify after tampering: exit %d\n%s", code, out)
	}
	// search and index read the newest version only, and say that the key has two.
	shadowed := "warning: " + victim + ": 2 versions in the archive; only the newest was"
	if out, errOut, _ := e.run("search", "--account", acctA, "--since", "30d", "--no-index"); !strings.Contains(errOut, shadowed+" searched") {
		t.Fatalf("search over a log written over does not say so:\n%s%s", out, errOut)
	}
	if out, errOut, code := e.run("index", "--to", filepath.Join(t.TempDir(), "index")); code != 0 || !strings.Contains(errOut, shadowed+" indexed") {
		t.Fatalf("index over a log written over: exit %d\n%s%s", code, out, errOut)
	}
	// A local copy (aws s3 sync keeps the latest bytes only) shows the alteration too.
	dir := t.TempDir()
	copyLatest(t, e, dir)
	out, _, code = e.run("verify", dir)
	if code != 1 || !strings.Contains(out, "altered-log") || !strings.Contains(out, "local copy without object metadata") {
		t.Fatalf("verify of a local copy: exit %d\n%s", code, out)
	}
	// Offline: keys exported once, then a local copy verified without reaching AWS.
	keys := filepath.Join(t.TempDir(), "keys.json")
	if out, errOut, code := e.run("keys", "export", keys); code != 0 {
		t.Fatalf("keys export: exit %d %s%s", code, out, errOut)
	}
	var errb strings.Builder
	var outb strings.Builder
	code = cli.Main([]string{"verify", dir, "--public-keys", keys, "--config", filepath.Join(t.TempDir(), "none.yaml"), "--no-progress"}, strings.NewReader(""), &outb, &errb)
	if code != 1 || !strings.Contains(outb.String(), "altered-log") || !strings.Contains(outb.String(), "digests and") {
		t.Fatalf("offline verify: exit %d\n%s%s", code, outb.String(), errb.String())
	}
	if code := cli.Main([]string{"verify", dir, "--config", filepath.Join(t.TempDir(), "none.yaml")}, strings.NewReader(""), &outb, &errb); code != 2 {
		t.Fatalf("verify without keys or config: exit %d, want 2", code)
	}
}

// TestVerifyCommandEdges: what a cron job or a careless user meets: a missing
// bucket is an access error (3), an empty directory is not "valid" (1), `verify .`
// works from inside a copy, and --state makes the next run read only what is new.
func TestVerifyCommandEdges(t *testing.T) {
	e := archived(t, 3, acctA)

	out, errOut, code := e.run("verify", "s3://no-such-bucket-here")
	if code != 3 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("missing bucket: exit %d\n%s%s", code, out, errOut)
	}
	empty := t.TempDir()
	out, errOut, code = e.run("verify", empty)
	if code != 1 || !strings.Contains(out, "no CloudTrail digests under "+empty) || strings.Contains(out, ": valid") {
		t.Fatalf("empty directory: exit %d\n%s%s", code, out, errOut)
	}

	dir := t.TempDir()
	copyLatest(t, e, dir)
	t.Chdir(dir)
	out, errOut, code = e.run("verify", ".")
	if code != 1 || !strings.Contains(out, "unsigned-tail") {
		t.Fatalf("verify . of a local copy: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code = e.run("verify", ".", "--accept-unsigned-tail"); code != 0 || !strings.Contains(out, "valid, with 1 chain's newest digest accepted unsigned") {
		t.Fatalf("--accept-unsigned-tail: exit %d\n%s%s", code, out, errOut)
	}

	state := filepath.Join(t.TempDir(), "verify-state.json")
	if out, errOut, code = e.run("verify", "--state", state, "--output", "json"); code != 0 {
		t.Fatalf("first --state run: exit %d\n%s%s", code, out, errOut)
	}
	e.deliveries(acctA, 1)
	out, errOut, code = e.run("verify", "--state", state, "--output", "json")
	var r verify.Report
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("second --state run: exit %d\n%s%s", code, out, errOut)
	}
	// From the proven tail's day on (here, all of it): each digest and log
	// file once, and the chain linked to the tail.
	if tot := r.Totals(); r.ObjectsRead != int64(tot.Digests+tot.Logs) || tot.DigestsProven != 4 || r.Chains[0].ProvenBefore == "" || r.Verdict != "valid" {
		t.Fatalf("incremental run read %d objects: %+v", r.ObjectsRead, r.Chains)
	}
	// --sample is never "valid": exit 5, and the state stays.
	before, _ := os.ReadFile(state)
	out, errOut, code = e.run("verify", "--state", state, "--sample", "1/1000")
	if after, _ := os.ReadFile(state); code != 5 || !strings.Contains(out, "NOT read, so NOT proven") || !bytes.Equal(before, after) {
		t.Fatalf("--sample 1/1000: exit %d\n%s%s", code, out, errOut)
	}
}

// TestReadmeFlowVerifies: the archive made as the README says (the seed's
// trail logging, without validation, before apply turns it on) is valid after
// backfill, however many times verify runs; the log files written before
// validation started are said to be, and do not fail the verdict.
func TestReadmeFlowVerifies(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA}) // logging, log file validation off: the seed's trail
	e.deliveries(acctA, 2)
	e.writeConfig([]string{acctA}, "")
	// A log file's name holds its minute, a chain's start its second: validation
	// turned on in a minute's first second starts the chain at that minute, and
	// the files written just before it cannot be told from the chain's own (verify
	// rightly does not claim them). Let apply turn it on in a later second.
	for time.Now().UTC().Second() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	e.apply()
	e.deliveries(acctA, 3)
	if out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms"); code != 0 {
		t.Fatalf("backfill: exit %d\n%s%s", code, out, errOut)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	for i := range 3 {
		e.deliveries(acctA, 1)
		args := []string{"verify", "--output", "json"}
		if i > 0 {
			args = append(args, "--state", state)
		}
		out, errOut, code := e.run(args...)
		var r verify.Report
		json.Unmarshal([]byte(out), &r)
		if code != 0 || r.Verdict != "valid" {
			t.Fatalf("run %d: exit %d\n%s%s", i+1, code, out, errOut)
		}
		var before int
		for _, f := range r.Findings {
			if f.Code == verify.UncoveredLogs && strings.Contains(f.Message, "before log file validation started at") {
				before += f.Count
			}
		}
		if i == 0 && before == 0 {
			t.Fatalf("the log files written before validation started are not named:\n%s", out)
		}
	}
}

// TestVerifyAcrossAKeyRotation: CloudTrail rotates its signing keys; verify
// asks ListPublicKeys for the range its digests need (without a start time it
// returns only the current key), and keys export writes every key of a range.
func TestVerifyAcrossAKeyRotation(t *testing.T) {
	e := archived(t, 2, acctA)
	if err := e.sb.RotateSigningKey(region); err != nil {
		t.Fatal(err)
	}
	e.deliveries(acctA, 2)
	if out, errOut, code := e.run("verify"); code != 0 || !strings.Contains(out, ": valid.") {
		t.Fatalf("verify across a rotation: exit %d\n%s%s", code, out, errOut)
	}
	keys := filepath.Join(t.TempDir(), "keys.json")
	out, errOut, code := e.run("keys", "export", keys, "--region", region, "--output", "json")
	var exported struct {
		Keys []verify.PublicKey `json:"keys"`
	}
	if json.Unmarshal([]byte(out), &exported); code != 0 || len(exported.Keys) != 2 {
		t.Fatalf("keys export: exit %d, %d keys\n%s%s", code, len(exported.Keys), out, errOut)
	}
	dir := t.TempDir()
	copyLatest(t, e, dir)
	out, errOut, code = e.run("verify", dir, "--public-keys", keys, "--accept-unsigned-tail")
	if code != 0 {
		t.Fatalf("offline verify across a rotation: exit %d\n%s%s", code, out, errOut)
	}
}

func copyLatest(t *testing.T, e *env, dir string) {
	s := store.S3{Client: world.S3(e.url, archiveAcct, region), Bucket: archive}
	d := store.Dir{Root: dir}
	s.Versions(ctx, "", func(v store.Version) error {
		if !v.Latest || v.DeleteMarker {
			return nil
		}
		r, _, err := s.Open(ctx, v.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		r.Close()
		return d.Put(ctx, v.Key, data, nil)
	})
}

// TestAgreesWithTheAWSCLI: on the sandbox's source buckets, where the AWS CLI
// can validate, trailkeeper and 'aws cloudtrail validate-logs' reach the same
// verdict for each case the CLI can express.
func TestAgreesWithTheAWSCLI(t *testing.T) {
	requireTool(t, "aws")
	cases := []struct {
		name   string
		trail  string
		tamper func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string)
		valid  bool
	}{
		{"all valid", "Members", nil, true},
		{"trail named a.b_c-d", "a.b_c-d", nil, true},
		{"one log altered", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			body := bytes.Replace(testenv.Gunzip(t, getObject(t, src, bucket, logs[1])), []byte(`"readOnly":true`), []byte(`"readOnly":false`), 1)
			purge(t, src, bucket, logs[1])
			must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &logs[1], Body: bytes.NewReader(fixture.Gzip(body))})).OK(t)
		}, false},
		{"shadowing version", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &logs[0], Body: bytes.NewReader(fixture.Gzip([]byte(`{"Records":[]}`)))})).OK(t)
		}, false},
		{"one log deleted", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			purge(t, src, bucket, logs[2])
		}, false},
		{"two consecutive digests deleted", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			purge(t, src, bucket, digests[1])
			purge(t, src, bucket, digests[2])
		}, false},
		{"forged signature", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			last := digests[len(digests)-1]
			data := getObject(t, src, bucket, last)
			purge(t, src, bucket, last)
			must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &last, Body: bytes.NewReader(data),
				Metadata: map[string]string{"signature": strings.Repeat("0f", 256), "signature-algorithm": "SHA256withRSA"}})).OK(t)
		}, false},
		{"re-signed with an unknown key", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			last := digests[len(digests)-1]
			df, err := ct.ReadDigest(bytes.NewReader(getObject(t, src, bucket, last)))
			if err != nil {
				t.Fatal(err)
			}
			k, _ := rsa.GenerateKey(rand.Reader, 2048)
			forger := fixture.Builder{Key: k}
			df.Fingerprint = forger.Fingerprint()
			raw, sig, _ := forger.Sign(df)
			purge(t, src, bucket, last)
			must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &last, Body: bytes.NewReader(fixture.Gzip(raw)),
				Metadata: map[string]string{"signature": sig, "signature-algorithm": "SHA256withRSA"}})).OK(t)
		}, false},
		{"chain restart after logging was stopped", "Members", func(t *testing.T, e *env, src *s3.Client, bucket string, logs, digests []string) {
			c := cloudtrail.NewFromConfig(world.Config(e.url, acctA, region))
			must(c.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("Members")})).OK(t)
			must(c.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("Members")})).OK(t)
			e.deliveries(acctA, 2)
		}, true},
	}
	awsCLI := testenv.StartAWSCLI(t) // one for every case: the CLI starts once
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Options{})
			e.aws = awsCLI
			m := e.member(world.Member{Account: acctA, Trail: tc.trail, Validation: true})
			startAt := time.Now().UTC().Add(-time.Minute)
			e.deliveries(acctA, 4)
			src := world.S3(e.url, acctA, region)
			bucket := "cm-members-cloudtrail-" + acctA
			logs, digests := keysUnder(t, src, bucket, "AWSLogs/"+acctA+"/CloudTrail/"), keysUnder(t, src, bucket, "AWSLogs/"+acctA+"/CloudTrail-Digest/")
			if len(digests) < 4 || len(logs) < 4 {
				t.Fatalf("%d digests, %d logs", len(digests), len(logs))
			}
			if tc.tamper != nil {
				tc.tamper(t, e, src, bucket, logs, digests)
			}
			cliOut, cliErr := runAWS(e, acctA, "cloudtrail", "validate-logs", "--trail-arn", m.TrailARN(), "--start-time", startAt.Format(time.RFC3339))
			cliValid := cliErr == nil && !strings.Contains(cliOut, "INVALID")
			ct := cloudtrail.NewFromConfig(world.Config(e.url, acctA, region))
			r, err := verify.Run(ctx, store.S3{Client: src, Bucket: bucket}, verify.Options{
				Registry: map[string]string{acctA: bucket},
				Keys:     verify.NewCloudTrailKeys(func(string) *cloudtrail.Client { return ct }, time.Time{}, time.Time{})})
			if err != nil {
				t.Fatal(err)
			}
			ours := r.Problems() == 0
			if cliValid != tc.valid || ours != tc.valid {
				t.Fatalf("want valid=%v; AWS CLI valid=%v, trailkeeper valid=%v\nCLI:\n%s\ntrailkeeper findings: %+v", tc.valid, cliValid, ours, cliOut, findingsText(r))
			}
		})
	}
}

func findingsText(r *verify.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		if f.Severity == verify.Error {
			b.WriteString(f.Code + " " + f.Key + ": " + f.Message + "\n")
		}
	}
	return b.String()
}

func keysUnder(t *testing.T, c *s3.Client, bucket, prefix string) []string {
	var out []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		for _, o := range must(p.NextPage(ctx)).OK(t).Contents {
			out = append(out, *o.Key)
		}
	}
	return out
}

func getObject(t *testing.T, c *s3.Client, bucket, key string) []byte {
	out := must(c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})).OK(t)
	defer out.Body.Close()
	data, _ := io.ReadAll(out.Body)
	return data
}

// purge deletes every version of a key (the source bucket has no Object Lock).
func purge(t *testing.T, c *s3.Client, bucket, key string) {
	vs := must(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &key})).OK(t)
	for _, v := range vs.Versions {
		must(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &key, VersionId: v.VersionId})).OK(t)
	}
}

// TestVerifyFromAnInventoryReport: --inventory says what it needs when it
// cannot be used; archive.inventory_bucket makes apply configure the
// inventory (plan shows it, a second plan has nothing to do), and a --state
// run re-attests from the report S3 delivers and says which report it read.
// Without the setting, apply takes the configuration away again.
func TestVerifyFromAnInventoryReport(t *testing.T) {
	e := archived(t, 3, acctA)
	state := filepath.Join(t.TempDir(), "state.json")
	if _, errOut, code := e.run("verify", "--inventory"); code != 2 || !strings.Contains(errOut, "--inventory needs --state") {
		t.Fatalf("--inventory without --state: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := e.run("verify", "--state", state, "--inventory"); code != 2 || !strings.Contains(errOut, "no usable S3 Inventory report") || !strings.Contains(errOut, "inventory_bucket") {
		t.Fatalf("--inventory without an inventory: exit %d\n%s", code, errOut)
	}
	plain, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	dest := "trailkeeper-inventory-" + archiveAcct
	withInventory := strings.Replace(string(plain), "  object_lock:", "  inventory_bucket: "+dest+"\n  object_lock:", 1)
	if err := os.WriteFile(e.config, []byte(withInventory), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := e.run("plan")
	for _, want := range []string{"create bucket " + dest, "statement TrailkeeperInventoryReports", "daily S3 Inventory of every version"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("plan with inventory_bucket: exit %d, no %q\n%s%s", code, want, out, errOut)
		}
	}
	if out, errOut, code := e.run("apply", "--yes"); code != 0 {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, _ := e.run("plan"); !strings.Contains(out, "No changes") {
		t.Fatalf("plan after apply:\n%s", out)
	}
	if out, errOut, code := e.run("verify", "--state", state); code != 0 {
		t.Fatalf("first --state run: exit %d\n%s%s", code, out, errOut)
	}
	if err := e.sb.DeliverInventory(ctx); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = e.run("verify", "--state", state, "--inventory", "--output", "json")
	if code != 0 || !strings.Contains(errOut, "inventory: s3://"+dest+"/"+archive+"/trailkeeper/") || !strings.Contains(out, "re-attested from the S3 Inventory report") {
		t.Fatalf("--state --inventory: exit %d\n%s%s", code, out, errOut)
	}

	if err := os.WriteFile(e.config, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := e.run("apply", "--yes"); code != 0 || !strings.Contains(out, "stop the daily S3 Inventory report") {
		t.Fatalf("apply without inventory_bucket: exit %d\n%s%s", code, out, errOut)
	}
	arch := world.S3(e.url, archiveAcct, region)
	if _, err := arch.GetBucketInventoryConfiguration(ctx, &s3.GetBucketInventoryConfigurationInput{Bucket: aws.String(archive), Id: aws.String("trailkeeper")}); err == nil {
		t.Fatal("the inventory configuration is still there")
	}
	if pol := must(arch.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(dest)})).OK(t); !strings.Contains(aws.ToString(pol.Policy), "TrailkeeperInventoryReports") {
		t.Fatalf("the inventory bucket's policy lost its statement: %s", aws.ToString(pol.Policy))
	}
}
