// Command reattest measures what proving an old archive again costs: a full
// re-read (verify without a state), against a re-attestation by listing
// (verify --state after a first run: the listing of every proven day is
// fingerprinted and compared, nothing is read again but the chains' tails),
// against a re-attestation from the archive's S3 Inventory report (verify
// --state --inventory: the report stands in for the listing of older days),
// as the trailkeeper binary a user runs against an Object Lock archive
// bucket of the sandbox with a latency per request. Then it tampers with
// old objects (a new version over a log, a delete marker on a digest, a
// lowered retention) and shows which run catches what. It counts the S3 requests of each run from the sandbox and
// prints markdown.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/bench/internal/signedarchive"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

func main() {
	accounts := flag.Int("accounts", 100, "source accounts")
	days := flag.Int("days", 30, "days of hourly digests per account (one region, one log file per digest)")
	latency := flag.Duration("latency", 20*time.Millisecond, "delay of every sandbox answer during the runs")
	flag.Parse()
	if *days < 3 {
		log.Fatal("-days: at least 3 (the tampering touches the second and third days)")
	}
	ctx := context.Background()
	work, err := os.MkdirTemp("", "bench-reattest")
	check(err)
	defer os.RemoveAll(work)
	bin := signedarchive.Build(work)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	a := signedarchive.Start(ctx, key)
	defer a.Close()
	sb, arch, bucket := a.Sandbox, a.S3, a.Bucket
	lockArchive(ctx, arch, bucket)

	hours := *days * 24
	// The newest digest ends at the last full hour: the runs must see every
	// chain reach now (within verify's two-hour grace), however long the writing takes.
	start := time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(hours) * time.Hour)
	b := fixture.Builder{Key: key, W: store.S3{Client: arch, Bucket: bucket}}
	written := make([]*fixture.Written, *accounts)
	t0 := time.Now()
	signedarchive.ForEach(*accounts, 8, func(i int) {
		w, err := b.Write(ctx, fixture.Chain{Account: fmt.Sprintf("%012d", 100000000000+i), Region: "us-east-1", Trail: "Members",
			Bucket: fmt.Sprintf("cm-members-cloudtrail-%012d", 100000000000+i), Start: start, Digests: hours, LogsPerDigest: 1})
		check(err)
		written[i] = w
	})
	objects := *accounts * hours * 2
	fmt.Fprintf(os.Stderr, "wrote %d objects in %s\n", objects, time.Since(t0).Round(time.Second))

	keys := filepath.Join(work, "keys.json")
	signedarchive.PublicKeys(keys, b, "us-east-1")
	state := filepath.Join(work, "state.json")
	const (
		full = iota
		listing
		fromInventory
	)
	run := func(name string, how int) result {
		args := []string{"verify", "s3://" + bucket, "--public-keys", keys, "--config", filepath.Join(work, "none.yaml"), "--no-progress", "--output", "json"}
		if how != full {
			args = append(args, "--state", state)
		}
		if how == fromInventory {
			args = append(args, "--inventory")
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = a.Env()
		sb.ResetCalls()
		sb.SetLatency(*latency)
		m, err := measure.Run(cmd)
		sb.SetLatency(0)
		if err != nil && len(m.Stdout) == 0 {
			log.Fatalf("%s: %v", name, err)
		}
		var r verify.Report
		if err := json.Unmarshal(m.Stdout, &r); err != nil {
			log.Fatalf("%s: %v\n%s", name, err, m.Stdout)
		}
		res := result{name: name, wall: m.Wall, cpu: m.CPU, valid: r.Valid()}
		for call, n := range sb.Calls() {
			switch {
			case strings.HasSuffix(call, " ListObjectVersions"), strings.HasSuffix(call, " ListObjectsV2"), strings.HasSuffix(call, " ListObjects"):
				res.lists += n
			case strings.HasSuffix(call, " GetObject"):
				res.gets += n
			case strings.HasSuffix(call, " HeadObject"):
				res.heads += n
			}
		}
		for _, f := range r.Findings {
			if f.Severity == "error" || f.Severity == "warning" || f.Code == verify.ChangedSinceProven {
				res.findings = append(res.findings, f.Code)
			}
		}
		slices.Sort(res.findings)
		res.findings = slices.Compact(res.findings)
		return res
	}

	fmt.Printf("Machine: %d cores, %s/%s, %s. %d accounts x %d days of hourly digests (one region, one log file each): %d objects in one archive bucket of the sandbox. Latency per S3 request: %s.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), *accounts, *days, objects, *latency)
	fmt.Println("| run | wall time | CPU time | LIST requests | GET requests | HEAD requests | verdict | findings |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	first := run("first run, full read (`verify --state`)", listing)
	first.print()
	reread := run("full re-read (`verify`, no state)", full)
	reread.print()
	again := run("re-attestation by listing (`verify --state`, nothing new)", listing)
	again.print()
	check(sb.DeliverInventory(ctx)) // S3 writes the daily report; not timed
	fromReport := run("re-attestation from the S3 Inventory report (`verify --state --inventory`, nothing new)", fromInventory)
	fromReport.print()
	proven, err := os.ReadFile(state)
	check(err)

	// Old objects tampered with, in the first account: a new version over a
	// log of the second day, a delete marker on a digest of the third, and
	// a log of the second day whose retention is lowered to a day (GOVERNANCE,
	// with s3:BypassGovernanceRetention).
	w := written[0]
	_, err = arch.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(w.Logs[30]), Body: strings.NewReader("forged"), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
	check(err)
	_, err = arch.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(w.Digests[50])})
	check(err)
	_, err = arch.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &bucket, Key: aws.String(w.Logs[40]), BypassGovernanceRetention: aws.Bool(true),
		Retention: &s3types.ObjectLockRetention{Mode: s3types.ObjectLockRetentionModeGovernance, RetainUntilDate: aws.Time(time.Now().Add(24 * time.Hour))}, ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
	check(err)
	tamperedListing := run("after tampering: re-attestation by listing (`verify --state`)", listing)
	tamperedListing.print()
	check(os.WriteFile(state, proven, 0o600)) // each run starts from what was proven before the tampering
	check(sb.DeliverInventory(ctx))
	tamperedReport := run("after tampering: re-attestation from the next S3 Inventory report (`verify --state --inventory`)", fromInventory)
	tamperedReport.print()
	tamperedFull := run("after tampering: full re-read (`verify`, no state)", full)
	tamperedFull.print()

	fmt.Printf("\nAgainst a full re-read: re-attestation by listing %.1fx fewer requests and %.1fx less wall time; from the inventory report %.1fx fewer requests and %.1fx less wall time.\n",
		float64(reread.requests())/float64(again.requests()), reread.wall.Seconds()/again.wall.Seconds(),
		float64(reread.requests())/float64(fromReport.requests()), reread.wall.Seconds()/fromReport.wall.Seconds())
	if !first.valid || !again.valid || !fromReport.valid || tamperedListing.valid || tamperedReport.valid || tamperedFull.valid {
		log.Fatal("a run's verdict is wrong: the intact archive must be valid, the tampered one not")
	}
	for _, r := range []result{tamperedListing, tamperedReport, tamperedFull} {
		if !slices.Contains(r.findings, verify.ShadowingVersion) || !slices.Contains(r.findings, verify.DeleteMarker) {
			log.Fatalf("%s missed the tampering: %v", r.name, r.findings)
		}
	}
	for _, r := range []result{tamperedReport, tamperedFull} {
		if !slices.Contains(r.findings, verify.RetentionShort) {
			log.Fatalf("%s missed the lowered retention: %v", r.name, r.findings)
		}
	}
}

// lockArchive gives the archive bucket the Object Lock default retention
// apply gives it, and the S3 Inventory configuration apply writes (daily,
// every version, Parquet, the fields verify --inventory reads) into a
// destination bucket whose policy lets S3 write.
func lockArchive(ctx context.Context, arch *s3.Client, bucket string) {
	_, err := arch.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: &bucket, ObjectLockConfiguration: &s3types.ObjectLockConfiguration{
		ObjectLockEnabled: s3types.ObjectLockEnabledEnabled, Rule: &s3types.ObjectLockRule{DefaultRetention: &s3types.DefaultRetention{Mode: s3types.ObjectLockRetentionModeGovernance, Days: aws.Int32(400)}}}})
	check(err)
	dest := "trailkeeper-inventory-" + signedarchive.Account
	_, err = arch.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &dest})
	check(err)
	pol, err := json.Marshal(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		setup.InventoryStatement(&config.Config{Archive: config.Archive{AccountID: signedarchive.Account, Bucket: bucket}}, dest)}})
	check(err)
	_, err = arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &dest, Policy: aws.String(string(pol))})
	check(err)
	_, err = arch.PutBucketInventoryConfiguration(ctx, &s3.PutBucketInventoryConfigurationInput{Bucket: &bucket, Id: aws.String(setup.InventoryID),
		InventoryConfiguration: setup.InventoryConfiguration(dest)})
	check(err)
}

type result struct {
	name               string
	wall, cpu          time.Duration
	lists, gets, heads int
	valid              bool
	findings           []string
}

func (r result) requests() int { return r.lists + r.gets + r.heads }

func (r result) print() {
	verdict := "valid"
	if !r.valid {
		verdict = "not valid"
	}
	fmt.Printf("| %s | %s | %s | %d | %d | %d | %s | %s |\n", r.name, r.wall.Round(10*time.Millisecond), r.cpu.Round(10*time.Millisecond),
		r.lists, r.gets, r.heads, verdict, strings.Join(r.findings, ", "))
}

var check = signedarchive.Check
