// Command verifyhostile measures what hostile objects cost trailkeeper verify:
// peak memory (VmHWM) and time of `trailkeeper verify` as its own process over
// an archive of honest chains plus 24 digest-named 64 MiB gzip bombs, a 4 GiB
// gzip bomb in place of a listed log file and (on the local copy) a FIFO in
// place of another, once as a local copy and once over S3 (the sandbox, 256
// reads in flight). With -peer, the same runs of another trailkeeper binary
// (an older build) are measured beside it. It prints markdown.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/bench/internal/signedarchive"
	ct "github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

const (
	account = "111111111111"
	region  = "us-east-1"
	bucket  = "archive-999999999999"
)

func main() {
	peer := flag.String("peer", "", "another trailkeeper binary to measure beside this one")
	limit := flag.Duration("timeout", 5*time.Minute, "a run that takes longer is killed and reported as hung")
	bombs := flag.Int("bombs", 24, "digest-named gzip bombs")
	logBomb := flag.Int64("log-bomb", 4<<30, "bytes a listed log file inflates to")
	flag.Parse()
	ctx := context.Background()
	work, err := os.MkdirTemp("", "verifyhostile")
	check(err)
	defer os.RemoveAll(work)
	bin := signedarchive.Build(work)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	b := fixture.Builder{Key: key}
	keyFile := filepath.Join(work, "keys.json")
	signedarchive.PublicKeys(keyFile, b, region)

	// The local copy.
	dir := store.Dir{Root: filepath.Join(work, "copy")}
	start := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
	hostile(ctx, fixture.Builder{Key: key, W: dir}, &dir, start, *bombs, *logBomb)

	// The same over S3, in the sandbox.
	sb, err := sandbox.New(sandbox.Options{SigningKey: key, DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	check(err)
	defer sb.Close()
	srv, err := sb.Start("127.0.0.1:0", false)
	check(err)
	defer srv.Close()
	cl := world.S3(srv.URL, "999999999999", region)
	_, err = cl.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket), ObjectLockEnabledForBucket: aws.Bool(true)})
	check(err)
	s3store := store.S3{Client: cl, Bucket: bucket}
	hostile(ctx, fixture.Builder{Key: key, W: s3store}, nil, start, *bombs, *logBomb)

	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=999999999999", "AWS_SECRET_ACCESS_KEY=x", "AWS_REGION="+region, "AWS_ENDPOINT_URL="+srv.URL,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	noConfig := filepath.Join(work, "none.yaml")
	fmt.Printf("verify over hostile input: %d digest-named 64 MiB gzip bombs, a log file inflating to %d MiB, a FIFO (local copy)\n\n", *bombs, *logBomb>>20)
	fmt.Println("| binary | archive | peak RSS | wall | exit |")
	fmt.Println("|---|---|---|---|---|")
	for _, b := range []string{bin, *peer} {
		if b == "" {
			continue
		}
		name := "this build"
		if b == *peer {
			name = "peer (" + filepath.Base(b) + ")"
		}
		for _, where := range []struct{ name, loc string }{{"local copy", dir.Root}, {"S3 (sandbox)", "s3://" + bucket}} {
			run, cancel := context.WithTimeout(ctx, *limit)
			cmd := exec.CommandContext(run, b, "verify", where.loc, "--public-keys", keyFile, "--config", noConfig, "--no-progress", "--accept-unsigned-tail")
			cmd.Env = env
			res, err := measure.Run(cmd)
			hung := errors.Is(run.Err(), context.DeadlineExceeded)
			cancel()
			if cmd.ProcessState == nil {
				log.Fatal(err)
			}
			exit := fmt.Sprint(cmd.ProcessState.ExitCode())
			if hung {
				exit = fmt.Sprintf("hung: killed after %s", *limit)
			}
			fmt.Printf("| %s | %s | %d MiB | %s | %s |\n", name, where.name, res.PeakKiB>>10, res.Wall.Round(10*time.Millisecond), exit)
		}
	}
}

// hostile writes two honest chains and the hostile objects into w; dir is the
// local copy, where a FIFO can lie.
func hostile(ctx context.Context, b fixture.Builder, dir *store.Dir, start time.Time, bombs int, logBomb int64) {
	var chains []*fixture.Written
	for _, r := range []string{region, "eu-west-1"} {
		w, err := b.Write(ctx, fixture.Chain{Account: account, Region: r, HomeRegion: region, Trail: "Members", Bucket: "trail-" + account,
			Start: start, Digests: 24, LogsPerDigest: 3})
		check(err)
		chains = append(chains, w)
	}
	// Digest-named bombs in hours after the chains, as if CloudTrail had gone on.
	bomb := fixture.Gzip(make([]byte, 64<<20))
	for i := range bombs {
		key := ct.DigestKey("", account, region, "Members", region, start.Add(time.Duration(25+i)*time.Hour), false)
		check(b.W.Put(ctx, key, bomb, map[string]string{"signature": "00"}))
	}
	// A listed log file that inflates to logBomb bytes.
	check(b.W.Put(ctx, chains[0].Logs[10], gzipZeros(logBomb), nil))
	if dir != nil {
		victim := filepath.Join(dir.Root, chains[1].Logs[4])
		check(os.Remove(victim))
		check(syscall.Mkfifo(victim, 0o644))
	}
}

// gzipZeros compresses n zero bytes without holding them.
func gzipZeros(n int64) []byte {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	check(err)
	zeros := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zeros)) {
		_, err := w.Write(zeros[:min(int64(len(zeros)), left)])
		check(err)
	}
	check(w.Close())
	return out.Bytes()
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
