// Command apply measures 'trailkeeper apply' for many source accounts on the
// in-process sandbox (wall time and AWS calls per account, first and second
// run), and the seed document's procedure run with the AWS CLI, its peer, on a
// few accounts of the same sandbox. It prints markdown.
//
// With -report FILE it then gives every trail a day of hourly logs and digests
// (one account with two hours missing, one with a log written over in the
// archive) and writes the HTML report, and with -screenshot PNG renders it in
// headless Chromium at 1400 pixels wide: docs/report-*.png come from here.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/internal/cli"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

const (
	archiveAcct = "999999999999"
	region      = "ap-northeast-1"
)

func main() {
	accounts := flag.Int("accounts", 100, "source accounts for trailkeeper apply")
	peer := flag.Int("peer", 10, "source accounts for the seed's procedure with the AWS CLI (0 to skip)")
	reportFile := flag.String("report", "", "after status, write the HTML report of -report-days of logs here")
	reportDays := flag.Int("report-days", 1, "days of hourly logs the report shows")
	screenshot := flag.String("screenshot", "", "with -report: a PNG of the report, 1400 pixels wide (needs chromium)")
	days := flag.Int("days", 0, "before status, give every trail this many days of hourly signed logs and digests (status checks the last 7)")
	flag.Parse()
	ctx := context.Background()
	signing, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	sb, err := sandbox.New(sandbox.Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour, SigningKey: signing})
	check(err)
	defer sb.Close()
	srv, err := sb.Start("127.0.0.1:0", false)
	check(err)
	defer srv.Close()
	dir, _ := os.MkdirTemp("", "bench-apply")
	defer os.RemoveAll(dir)

	profiles := map[string]string{"log-archive": archiveAcct}
	var src strings.Builder
	for i := range *accounts {
		a := fmt.Sprintf("%012d", 100000000000+i)
		check(world.CreateMember(ctx, srv.URL, world.Member{Account: a, Region: region}))
		profiles["m"+a] = a
		fmt.Fprintf(&src, "  - account_id: %q\n    profile: m%s\n", a, a)
	}
	cfgFile, credsFile, err := world.WriteProfiles(dir, profiles)
	check(err)
	os.Setenv("AWS_CONFIG_FILE", cfgFile)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", credsFile)
	config := filepath.Join(dir, "trailkeeper.yaml")
	check(os.WriteFile(config, []byte(fmt.Sprintf("archive:\n  account_id: %q\n  region: %s\n  profile: log-archive\nsources:\n%sendpoint_url: %s\n",
		archiveAcct, region, src.String(), srv.URL)), 0o600))

	fmt.Printf("Machine: %d cores, %s/%s, %s. Sandbox in-process, plain http on loopback.\n\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	// apply runs as its own process, so that its peak memory is its own and
	// not the in-process sandbox's.
	bin := filepath.Join(dir, "trailkeeper")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trailkeeper")
	build.Stderr = os.Stderr
	check(build.Run())
	fmt.Println("| run | accounts | wall time | per account | AWS calls | calls per account | write calls | peak RSS |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for run := 1; run <= 2; run++ {
		sb.ResetCalls()
		r, err := measure.Run(exec.Command(bin, "apply", "--yes", "--no-progress", "--config", config))
		check(err)
		calls, writes := count(sb)
		n := *accounts + 1
		fmt.Printf("| trailkeeper apply, run %d | %d + archive | %s | %s | %d | %.1f | %d | %d MiB |\n", run, *accounts, r.Wall.Round(time.Millisecond),
			(r.Wall / time.Duration(n)).Round(100*time.Microsecond), calls, float64(calls)/float64(n), writes, r.PeakKiB/1024)
	}
	// status on the same accounts, after each trail delivered and replicated a log.
	for i := range *accounts {
		a := fmt.Sprintf("%012d", 100000000000+i)
		check(world.Activity(ctx, srv.URL, a, region, 1))
	}
	sb.Deliver()
	check(sb.WaitReplication(ctx))
	if *days > 0 {
		start := time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(*days*24) * time.Hour)
		for i := range *accounts {
			a := fmt.Sprintf("%012d", 100000000000+i)
			bucket := "cm-members-cloudtrail-" + a
			b := fixture.Builder{Key: signing, W: store.S3{Client: world.S3(srv.URL, a, region), Bucket: bucket}}
			_, err := b.Write(ctx, fixture.Chain{Account: a, Region: region, Trail: "Members", Bucket: bucket, Start: start, Digests: *days * 24, LogsPerDigest: 2})
			check(err)
		}
		check(sb.WaitReplication(ctx))
	}
	sb.ResetCalls()
	start := time.Now()
	if code := cli.Main([]string{"status", "--no-progress", "--config", config}, strings.NewReader(""), io.Discard, os.Stderr); code != 0 {
		log.Fatalf("status exited %d", code)
	}
	took := time.Since(start)
	calls, writes := count(sb)
	n := *accounts + 1
	fmt.Printf("| trailkeeper status (%d days of logs) | %d + archive | %s | %s | %d | %.1f | %d |\n", *days, *accounts, took.Round(time.Millisecond),
		(took / time.Duration(n)).Round(100*time.Microsecond), calls, float64(calls)/float64(n), writes)
	if *reportFile != "" {
		writeReport(ctx, sb, srv.URL, signing, config, *accounts, *reportDays, *reportFile, *screenshot)
	}
	if *peer > 0 {
		statusPeer(srv.URL, *peer)
		seedPeer(ctx, srv.URL, *peer)
	}
}

// writeReport gives every trail days of hourly logs and digests, signed with
// the sandbox's CloudTrail key, breaks two accounts on purpose, and writes the report.
func writeReport(ctx context.Context, sb *sandbox.Sandbox, url string, key *rsa.PrivateKey, config string, accounts, days int, file, png string) {
	hours := days*24 - 1
	start := time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(hours) * time.Hour)
	for i := range accounts {
		a := fmt.Sprintf("%012d", 100000000000+i)
		bucket := "cm-members-cloudtrail-" + a
		b := fixture.Builder{Key: key, W: store.S3{Client: world.S3(url, a, region), Bucket: bucket}}
		chain := fixture.Chain{Account: a, Region: region, Trail: "Members", Bucket: bucket, Start: start, Digests: hours, LogsPerDigest: 2}
		if i == 1 { // logging stopped for two hours, at about half the span
			chain.Digests = hours / 2
			_, err := b.Write(ctx, chain)
			check(err)
			chain.Start, chain.Digests = start.Add(time.Duration(hours/2+2)*time.Hour), hours-hours/2-2
		}
		_, err := b.Write(ctx, chain)
		check(err)
	}
	check(sb.WaitReplication(ctx))
	if accounts > 2 { // someone with write access to the archive writes over a log
		arch := world.S3(url, archiveAcct, region)
		a := fmt.Sprintf("%012d", 100000000002)
		list, err := arch.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("aggregation-cloudtrail-logs-" + archiveAcct), Prefix: aws.String("AWSLogs/" + a + "/CloudTrail/")})
		check(err)
		_, err = arch.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("aggregation-cloudtrail-logs-" + archiveAcct), Key: list.Contents[len(list.Contents)/2].Key,
			Body: bytes.NewReader(fixture.Gzip([]byte(`{"Records":[]}`))), ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
		check(err)
	}
	if code := cli.Main([]string{"report", "--html", file, "--days", fmt.Sprint(days), "--no-progress", "--config", config}, strings.NewReader(""), os.Stdout, os.Stderr); code != 0 {
		log.Fatalf("report exited %d", code)
	}
	if png == "" {
		return
	}
	abs, _ := filepath.Abs(png)
	page, _ := filepath.Abs(file)
	profile, _ := os.MkdirTemp("", "bench-chromium")
	defer os.RemoveAll(profile)
	height := 900
	if accounts > 20 {
		height = 1700
	}
	browser := "chromium-headless-shell"
	if _, err := exec.LookPath(browser); err != nil {
		browser = "chromium"
	}
	shot := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir="+profile,
		"--screenshot="+abs, fmt.Sprintf("--window-size=1400,%d", height), "file://"+page)
	if out, err := shot.CombinedOutput(); err != nil {
		log.Fatalf("chromium: %v\n%s", err, out)
	}
}

// statusPeer is what a person checks with the AWS CLI for each account, the way
// the seed checks: the trail, the replication rule, the newest log file and its
// replication status in the source and in the archive.
func statusPeer(endpoint string, n int) {
	calls := 0
	start := time.Now()
	for i := range n {
		a := fmt.Sprintf("%012d", 100000000000+i)
		bucket := "cm-members-cloudtrail-" + a
		awsCLI(endpoint, a, "cloudtrail", "get-trail-status", "--name", "Members")
		awsCLI(endpoint, a, "s3api", "get-bucket-replication", "--bucket", bucket)
		key := strings.TrimSpace(awsOut(endpoint, a, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "AWSLogs/"+a+"/CloudTrail/",
			"--query", "sort_by(Contents,&LastModified)[-1].Key", "--output", "text"))
		awsCLI(endpoint, a, "s3api", "head-object", "--bucket", bucket, "--key", key)
		awsCLI(endpoint, archiveAcct, "s3api", "head-object", "--bucket", "aggregation-cloudtrail-logs-"+archiveAcct, "--key", key)
		calls += 5
	}
	took := time.Since(start)
	fmt.Printf("| the same checks by hand with the AWS CLI (peer of status) | %d | %s | %s | %d CLI commands | %.1f | 0 |\n",
		n, took.Round(time.Millisecond), (took / time.Duration(n)).Round(100*time.Microsecond), calls, float64(calls)/float64(n))
}

// seedPeer runs the seed document's steps with the AWS CLI, account by account,
// as its reader would, and the one archive policy edit at the end.
func seedPeer(ctx context.Context, endpoint string, n int) {
	seedDir := "internal/sandbox/testdata/seed"
	tpl, err := os.ReadFile(filepath.Join(seedDir, "s3-replication-role.yaml"))
	check(err)
	rc, err := os.ReadFile(filepath.Join(seedDir, "replication-config.json"))
	check(err)
	tmp, _ := os.MkdirTemp("", "bench-seed")
	defer os.RemoveAll(tmp)
	check(os.WriteFile(filepath.Join(tmp, "role.yaml"), tpl, 0o600))
	var principals []string
	calls := 0
	start := time.Now()
	for i := range n {
		a := fmt.Sprintf("%012d", 200000000000+i)
		check(world.CreateMember(ctx, endpoint, world.Member{Account: a, Region: region}))
		bucket := "cm-members-cloudtrail-" + a
		check(os.WriteFile(filepath.Join(tmp, "rc.json"), []byte(strings.NewReplacer("${ACCOUNT_ID}", a, "${DESTINATION_ACCOUNT_ID}", archiveAcct).Replace(string(rc))), 0o600))
		for _, args := range [][]string{
			{"sts", "get-caller-identity"},
			{"s3api", "head-bucket", "--bucket", bucket},
			{"s3api", "get-bucket-versioning", "--bucket", bucket},
			{"s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled"},
			{"cloudformation", "create-stack", "--stack-name", "cloudtrail-replication-role", "--template-body", "file://" + filepath.Join(tmp, "role.yaml"),
				"--parameters", "ParameterKey=DestinationAccountId,ParameterValue=" + archiveAcct, "--capabilities", "CAPABILITY_NAMED_IAM"},
			{"cloudformation", "wait", "stack-create-complete", "--stack-name", "cloudtrail-replication-role"},
			{"s3api", "put-bucket-replication", "--bucket", bucket, "--replication-configuration", "file://" + filepath.Join(tmp, "rc.json")},
			{"s3api", "get-bucket-replication", "--bucket", bucket},
		} {
			awsCLI(endpoint, a, args...)
			calls++
		}
		principals = append(principals, `"arn:aws:iam::`+a+`:role/S3ReplicationRole"`)
	}
	pol := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"AllowReplicationFromSourceAccounts","Effect":"Allow","Principal":{"AWS":[%s]},"Action":["s3:ReplicateObject","s3:ReplicateDelete","s3:ReplicateTags","s3:ObjectOwnerOverrideToBucketOwner"],"Resource":"arn:aws:s3:::aggregation-cloudtrail-logs-%s/*"}]}`,
		strings.Join(principals, ","), archiveAcct)
	check(os.WriteFile(filepath.Join(tmp, "bp.json"), []byte(pol), 0o600))
	awsCLI(endpoint, archiveAcct, "s3api", "put-bucket-policy", "--bucket", "aggregation-cloudtrail-logs-"+archiveAcct, "--policy", "file://"+filepath.Join(tmp, "bp.json"))
	calls++
	took := time.Since(start)
	fmt.Printf("| seed procedure with the AWS CLI (peer) | %d + archive | %s | %s | %d CLI commands | %.1f | n/a (not idempotent: a second run fails at create-stack) |\n",
		n, took.Round(time.Millisecond), (took / time.Duration(n+1)).Round(100*time.Microsecond), calls, float64(calls)/float64(n+1))
}

func awsCLI(endpoint, acct string, args ...string) { awsOut(endpoint, acct, args...) }

func awsOut(endpoint, acct string, args ...string) string {
	cmd := exec.Command("aws", args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+acct, "AWS_SECRET_ACCESS_KEY=x", "AWS_DEFAULT_REGION="+region, "AWS_ENDPOINT_URL="+endpoint,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func count(sb *sandbox.Sandbox) (total, writes int) {
	for _, n := range sb.Calls() {
		total += n
	}
	for _, n := range sb.WriteCalls() {
		writes += n
	}
	return total, writes
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
