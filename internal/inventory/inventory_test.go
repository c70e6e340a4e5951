package inventory_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/inventory"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/sandbox/sandboxtest"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

const (
	archiveAcct = "999999999999"
	archive     = "aggregation-cloudtrail-logs-999999999999"
	dest        = "trailkeeper-inventory-999999999999"
)

var lock = config.ObjectLock{Mode: "GOVERNANCE", Days: 400}

type env struct {
	sb   *sandbox.Sandbox
	s3   *s3.Client
	b    fixture.Builder
	keys verify.Keys
	// written chains, by account
	chains map[string]*fixture.Written
}

// start makes an Object Lock archive with two accounts' chains of four days
// and an inventory configuration of format, whose destination lets S3 write.
func start(t *testing.T, format s3types.InventoryFormat, versions s3types.InventoryIncludedObjectVersions) *env {
	t.Helper()
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sb, url := sandboxtest.Start(t, sandbox.Options{SigningKey: key, DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	e := &env{sb: sb, s3: world.S3(url, archiveAcct, "us-east-1"), chains: map[string]*fixture.Written{}}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(archive), ObjectLockEnabledForBucket: aws.Bool(true)}))
	must(e.s3.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String(archive), ObjectLockConfiguration: &s3types.ObjectLockConfiguration{
		ObjectLockEnabled: s3types.ObjectLockEnabledEnabled, Rule: &s3types.ObjectLockRule{DefaultRetention: &s3types.DefaultRetention{Mode: "GOVERNANCE", Days: aws.Int32(400)}}}}))
	must(e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(dest)}))
	// What apply writes (setup), but for the format and versions under test.
	pol, err := json.Marshal(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		setup.InventoryStatement(&config.Config{Archive: config.Archive{AccountID: archiveAcct, Bucket: archive}}, dest)}})
	if err != nil {
		t.Fatal(err)
	}
	must(e.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(dest), Policy: aws.String(string(pol))}))
	cfg := setup.InventoryConfiguration(dest)
	cfg.IncludedObjectVersions = versions
	cfg.Destination.S3BucketDestination.Format = format
	cfg.Destination.S3BucketDestination.Prefix = aws.String("inventory")
	must(e.s3.PutBucketInventoryConfiguration(ctx, &s3.PutBucketInventoryConfigurationInput{Bucket: aws.String(archive), Id: cfg.Id, InventoryConfiguration: cfg}))
	e.b = fixture.Builder{Key: key, W: store.S3{Client: e.s3, Bucket: archive}}
	e.keys = verify.StaticKeys([]string{"us-east-1"}, e.b.PublicKeyDER())
	begin := time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(time.Hour)
	for _, acct := range []string{"111111111111", "222222222222"} {
		w, err := e.b.Write(ctx, fixture.Chain{Account: acct, Region: "us-east-1", Trail: "Members", Bucket: "trail-" + acct,
			Start: begin, Digests: int(time.Since(begin)/time.Hour) - 1, LogsPerDigest: 1})
		if err != nil {
			t.Fatal(err)
		}
		e.chains[acct] = w
	}
	return e
}

// verify runs verify over the archive bucket as the CLI does, holding every
// version it reads (and, with --inventory, every version the report lists)
// to the archive's retention.
func (e *env) verify(t *testing.T, state *verify.State, rep *inventory.Report) *verify.Report {
	t.Helper()
	opts := verify.Options{Keys: e.keys, State: state, Until: time.Now().UTC(), CheckTail: true,
		ShortRetention: func(created, until time.Time) bool { return setup.ShortRetention(lock, created, until) }}
	if rep != nil {
		opts.Inventory = rep
	}
	r, err := verify.Run(context.Background(), store.S3{Client: e.s3, Bucket: archive}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) report(t *testing.T) *inventory.Report {
	t.Helper()
	if err := e.sb.DeliverInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := inventory.Latest(context.Background(), e.s3, archive, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rep.Close)
	return rep
}

func codes(r *verify.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Code)
	}
	return out
}

// TestReattestFromInventory: a state run re-attests old days from the
// report, and a report delivered after an old object was tampered with
// (a new version, a delete marker, a lowered retention) shows all three; a
// full read sees the lowered retention in the answer to its GET, and an
// untouched archive is valid both ways.
func TestReattestFromInventory(t *testing.T) {
	for _, format := range []s3types.InventoryFormat{s3types.InventoryFormatParquet, s3types.InventoryFormatCsv} {
		t.Run(string(format), func(t *testing.T) {
			ctx := context.Background()
			e := start(t, format, s3types.InventoryIncludedObjectVersionsAll)
			first := e.verify(t, nil, nil)
			if first.Verdict != "valid" {
				t.Fatalf("first run: %s %v", first.Verdict, codes(first))
			}
			first = e.verify(t, first.State, nil) // a state run records the listing's fingerprints
			if first.Verdict != "valid" || len(first.State.Folders) != 2 {
				t.Fatalf("state run: %s %v, %d folders", first.Verdict, codes(first), len(first.State.Folders))
			}
			rep := e.report(t)
			if want := int64(len(e.chains["111111111111"].Digests)+len(e.chains["111111111111"].Logs)) * 2; rep.Rows != want {
				t.Fatalf("the report lists %d versions, the archive holds %d", rep.Rows, want)
			}
			again := e.verify(t, first.State, rep)
			if again.Verdict != "valid" || slices.Contains(codes(again), verify.ChangedSinceProven) {
				t.Fatalf("re-attestation from the report of an untouched archive: %s %v", again.Verdict, codes(again))
			}

			// Tamper with the first day of each account, then wait for the next report.
			a, b := e.chains["111111111111"], e.chains["222222222222"]
			if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(archive), Key: aws.String(a.Logs[2]), Body: strings.NewReader("{}"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(archive), Key: aws.String(a.Digests[3])}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.s3.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(archive), Key: aws.String(b.Logs[4]), BypassGovernanceRetention: aws.Bool(true),
				Retention: &s3types.ObjectLockRetention{Mode: "GOVERNANCE", RetainUntilDate: aws.Time(time.Now().Add(24 * time.Hour))}, ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32}); err != nil {
				t.Fatal(err)
			}
			rep = e.report(t)
			caught := e.verify(t, again.State, rep)
			got := codes(caught)
			for _, want := range []string{verify.ShadowingVersion, verify.DeleteMarker, verify.RetentionShort, verify.ChangedSinceProven} {
				if !slices.Contains(got, want) {
					t.Errorf("after tampering, the report's run found %v, not %s", got, want)
				}
			}
			if caught.Verdict == "valid" {
				t.Errorf("verdict %q after tampering", caught.Verdict)
			}
			// A full read sees the lowered retention too: S3 sends it with the bytes.
			full := e.verify(t, nil, nil)
			for _, r := range []*verify.Report{caught, full} {
				shortened := 0
				for _, f := range r.Findings {
					if f.Code == verify.RetentionShort {
						if shortened++; f.Key != b.Logs[4] {
							t.Errorf("retention-short on %s, only %s was shortened", f.Key, b.Logs[4])
						}
					}
				}
				if shortened != 1 || r.Verdict == "valid" {
					t.Errorf("%d retention-short findings, verdict %s: %v", shortened, r.Verdict, codes(r))
				}
			}
		})
	}
}

// TestReportsThatCannotVouch: a configuration of current versions only, a
// manifest that is not the one its checksum names, and a data file that is
// not the one the manifest names are refused, each saying why.
func TestReportsThatCannotVouch(t *testing.T) {
	ctx := context.Background()
	e := start(t, s3types.InventoryFormatParquet, s3types.InventoryIncludedObjectVersionsCurrent)
	if _, err := inventory.Latest(ctx, e.s3, archive, t.TempDir()); !errors.Is(err, inventory.ErrNone) || !strings.Contains(err.Error(), "current versions only") {
		t.Fatalf("current versions only: %v", err)
	}

	e = start(t, s3types.InventoryFormatParquet, s3types.InventoryIncludedObjectVersionsAll)
	if _, err := inventory.Latest(ctx, e.s3, archive, t.TempDir()); !errors.Is(err, inventory.ErrNone) || !strings.Contains(err.Error(), "no report delivered yet") {
		t.Fatalf("before any report: %v", err)
	}
	if err := e.sb.DeliverInventory(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(dest)})
	if err != nil {
		t.Fatal(err)
	}
	var manifest, data string
	for _, o := range list.Contents {
		switch k := aws.ToString(o.Key); {
		case strings.HasSuffix(k, "/manifest.json"):
			manifest = k
		case strings.HasSuffix(k, ".parquet"):
			data = k
		}
	}
	put := func(key, body string) {
		if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(dest), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put(data, "PAR1 not the data file")
	if _, err := inventory.Latest(ctx, e.s3, archive, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not the file S3 wrote") || !strings.Contains(err.Error(), data) {
		t.Fatalf("a replaced data file: %v", err)
	}
	put(manifest, fmt.Sprintf(`{"sourceBucket":%q,"destinationBucket":"arn:aws:s3:::%s","creationTimestamp":"1","fileFormat":"Parquet","files":[]}`, archive, dest))
	if _, err := inventory.Latest(ctx, e.s3, archive, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not the manifest S3 wrote") || !strings.Contains(err.Error(), manifest) {
		t.Fatalf("a replaced manifest: %v", err)
	}
}
