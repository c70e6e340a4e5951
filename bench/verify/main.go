// Command verify measures trailkeeper verify against its peers, in one run:
//
//  1. `aws cloudtrail validate-logs`, once per chain (as a user would run it), and
//     trailkeeper's verifier, on the same chains in the sandbox's source buckets
//     (where the AWS CLI can validate): 2 accounts x 2 regions x 48 hourly digests,
//     their log files the real CloudTrail logs of ../shared/data/cloudtrail.
//  2. Hashing throughput on a local directory: trailkeeper verify against
//     `zcat FILE | sha256sum` run two at a time (xargs -P2) over the same log files.
//
// It prints markdown.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

func main() {
	data := flag.String("data", "../shared/data/cloudtrail/sans504-s3-ransomware-lab", "folder of real CloudTrail .json.gz logs")
	hours := flag.Int("hours", 48, "digests per chain")
	logsPerHour := flag.Int("logs", 20, "log files per digest")
	skipCLI := flag.Bool("skip-cli", false, "do not run the AWS CLI")
	latency := flag.Duration("latency", 0, "delay of every sandbox answer, as S3's round trips (the sandbox's --latency)")
	parallel := flag.Int("parallel", 0, "trailkeeper's requests in flight (0: its default)")
	flag.Parse()
	ctx := context.Background()
	bodies := readLogs(*data)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	sb, err := sandbox.New(sandbox.Options{SigningKey: key, DeliveryInterval: time.Hour, DigestInterval: time.Hour, Latency: *latency})
	check(err)
	defer sb.Close()
	srv, err := sb.Start("127.0.0.1:0", false)
	check(err)
	defer srv.Close()

	accounts := []string{"111111111111", "222222222222"}
	regions := []string{"us-east-1", "ap-northeast-1"}
	start := time.Now().UTC().Add(-time.Duration(*hours+2) * time.Hour).Truncate(time.Hour)
	n := 0
	var logBytes, logFiles int64
	dir, _ := os.MkdirTemp("", "bench-verify")
	defer os.RemoveAll(dir)
	local := store.Dir{Root: dir}
	type trailRun struct{ account, arn string }
	var trails []trailRun
	for _, acct := range accounts {
		bucket := "cm-members-cloudtrail-" + acct
		c := world.S3(srv.URL, acct, "us-east-1")
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
		check(err)
		_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &bucket, VersioningConfiguration: &s3types.VersioningConfiguration{Status: "Enabled"}})
		check(err)
		for _, region := range regions {
			trail := "Members-" + region
			m := world.Member{Account: acct, Region: region, Trail: trail, Bucket: bucket}
			_, err = c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: aws.String(world.TrailBucketPolicy(m))})
			check(err)
			_, err = cloudtrail.NewFromConfig(world.Config(srv.URL, acct, region)).CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: &trail, S3BucketName: &bucket})
			check(err)
			trails = append(trails, trailRun{acct, m.TrailARN()})
			chain := fixture.Chain{Account: acct, Region: region, Trail: trail, Bucket: bucket, Start: start, Digests: *hours, LogsPerDigest: *logsPerHour,
				Log: func(int) []byte { b := bodies[n%len(bodies)]; n++; logBytes += int64(len(b)); logFiles++; return b }}
			_, err = fixture.Builder{Key: key, W: store.S3{Client: c, Bucket: bucket}}.Write(ctx, chain)
			check(err)
			n -= *hours * *logsPerHour // the same bodies again for the local copy
			chain.Log = func(int) []byte { b := bodies[n%len(bodies)]; n++; return b }
			_, err = fixture.Builder{Key: key, W: local}.Write(ctx, chain)
			check(err)
		}
	}
	digests := len(accounts) * len(regions) * *hours
	fmt.Printf("Machine: %d cores, %s/%s, %s. %d chains x %d digests, %d log files, %.1f MB uncompressed (real logs from %s). Sandbox latency per request: %s.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), len(trails), *hours, logFiles, float64(logBytes)/1e6, filepath.Base(*data), *latency)

	fmt.Println("| tool | what | wall time | digests | log files | verdict |")
	fmt.Println("|---|---|---|---|---|---|")
	var cliTime time.Duration
	if !*skipCLI {
		cliStart := time.Now()
		for _, tr := range trails {
			cmd := exec.Command("aws", "cloudtrail", "validate-logs", "--trail-arn", tr.arn, "--start-time", start.Add(-time.Hour).Format(time.RFC3339))
			cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+tr.account, "AWS_SECRET_ACCESS_KEY=x", "AWS_DEFAULT_REGION="+strings.Split(tr.arn, ":")[3],
				"AWS_ENDPOINT_URL="+srv.URL, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d/%d digest files valid", *hours, *hours)) {
				log.Fatalf("validate-logs %s: %v\n%s", tr.arn, err, out)
			}
		}
		cliTime = time.Since(cliStart)
		fmt.Printf("| aws cloudtrail validate-logs (once per chain) | source buckets in the sandbox | %s | %d | %d | all valid |\n", cliTime.Round(time.Millisecond), digests, logFiles)
	}
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	pooled := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) { t.MaxIdleConns, t.MaxIdleConnsPerHost = 512, 256 })
	tkStart := time.Now()
	var valid int
	for _, acct := range accounts {
		// As the binary's clients (internal/awsapi): as many idle connections
		// as requests in flight, not the SDK's default few.
		cfg := world.Config(srv.URL, acct, "us-east-1")
		cfg.HTTPClient = pooled
		c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
		bucket := "cm-members-cloudtrail-" + acct
		r, err := verify.Run(ctx, store.S3{Client: c, Bucket: bucket}, verify.Options{Registry: map[string]string{acct: bucket}, Parallel: *parallel,
			Keys: verify.NewCloudTrailKeys(func(region string) *cloudtrail.Client {
				return cloudtrail.NewFromConfig(world.Config(srv.URL, acct, region))
			}, time.Time{}, time.Time{})})
		check(err)
		if !r.Valid() {
			log.Fatalf("trailkeeper found %d problems", r.Problems())
		}
		for _, ch := range r.Chains {
			valid += ch.LogsProven
		}
	}
	tkTime := time.Since(tkStart)
	fmt.Printf("| trailkeeper verify | the same buckets | %s | %d | %d | all valid |\n", tkTime.Round(time.Millisecond), digests, valid)
	if cliTime > 0 {
		fmt.Printf("\nSpeed ratio on the same chains: trailkeeper is **%.0fx** faster than the AWS CLI.\n", float64(cliTime)/float64(tkTime))
	}

	if *latency > 0 {
		return // the local directory does not depend on the sandbox
	}
	// Throughput on a local directory.
	var files []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, "/CloudTrail/") && strings.HasSuffix(p, ".json.gz") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	list := filepath.Join(os.TempDir(), "bench-verify-files.txt")
	check(os.WriteFile(list, []byte(strings.Join(files, "\n")+"\n"), 0o600))
	defer os.Remove(list)
	peerStart := time.Now()
	cmd := exec.Command("sh", "-c", "xargs -P2 -I{} sh -c 'zcat {} | sha256sum' < "+list+" > /dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("zcat | sha256sum: %v %s", err, out)
	}
	peerTime := time.Since(peerStart)
	tkStart = time.Now()
	// A local copy keeps no metadata: each chain's newest digest is accepted unproven, and said so.
	r, err := verify.Run(ctx, local, verify.Options{Keys: verify.StaticKeys(regions, fixture.Builder{Key: key}.PublicKeyDER()), AcceptUnsignedTail: true})
	check(err)
	tkLocal := time.Since(tkStart)
	mb := float64(logBytes) / 1e6
	fmt.Printf("\n| tool | local directory, %d log files, %.1f MB uncompressed | wall time | MB/s (uncompressed) |\n|---|---|---|---|\n", len(files), mb)
	fmt.Printf("| `zcat FILE \\| sha256sum` via `xargs -P2` | hashes only | %s | %.1f |\n", peerTime.Round(time.Millisecond), mb/peerTime.Seconds())
	fmt.Printf("| trailkeeper verify | hashes, plus %d digests, signatures and chain links (%d findings) | %s | %.1f |\n", digests, r.Problems(), tkLocal.Round(time.Millisecond), mb/tkLocal.Seconds())
}

func readLogs(dir string) [][]byte {
	var out [][]byte
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !strings.HasSuffix(p, ".json.gz") {
			return nil
		}
		data, err := os.ReadFile(p)
		check(err)
		zr, err := gzip.NewReader(bytes.NewReader(data))
		check(err)
		body, err := io.ReadAll(zr)
		check(err)
		out = append(out, body)
		return nil
	})
	if len(out) == 0 {
		log.Fatalf("no .json.gz logs under %s", dir)
	}
	return out
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
