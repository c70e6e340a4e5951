// Command verifyscale measures trailkeeper verify on a large archive, as the
// trailkeeper binary a user runs: N source accounts x 2 regions x H hourly
// digests (one small log file each) in one archive bucket of the sandbox and
// in a local copy. It reports wall time, objects per second and peak RSS for
//
//  1. the local copy,
//  2. the bucket with a latency per request (S3's round trips),
//  3. an incremental run (--state) after one more hour, and what it read.
//
// It prints markdown.
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
	"syscall"
	"time"

	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/bench/internal/signedarchive"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

var regions = []string{"us-east-1", "eu-west-1"}

func main() {
	accounts := flag.Int("accounts", 1000, "source accounts")
	hours := flag.Int("hours", 24, "hourly digests per chain")
	latency := flag.Duration("latency", 20*time.Millisecond, "delay of every sandbox answer in the S3 runs")
	flag.Parse()
	ctx := context.Background()
	work, err := os.MkdirTemp("", "bench-verifyscale")
	check(err)
	defer os.RemoveAll(work)
	bin := signedarchive.Build(work)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	check(err)
	a := signedarchive.Start(ctx, key)
	defer a.Close()
	sb, arch, bucket := a.Sandbox, a.S3, a.Bucket
	dir := filepath.Join(work, "copy")
	both := tee{store.S3{Client: arch, Bucket: bucket}, store.Dir{Root: dir}}

	// The archive: what replication would have copied from every account.
	start := time.Now().UTC().Add(-time.Duration(*hours+1) * time.Hour).Truncate(time.Hour)
	b := fixture.Builder{Key: key, W: both}
	type job struct{ account, region string }
	var jobs []job
	for i := range *accounts {
		for _, r := range regions {
			jobs = append(jobs, job{fmt.Sprintf("%012d", 100000000000+i), r})
		}
	}
	written := make([]*fixture.Written, len(jobs))
	t0 := time.Now()
	signedarchive.ForEach(len(jobs), 8, func(i int) {
		j := jobs[i]
		w, err := b.Write(ctx, fixture.Chain{Account: j.account, Region: j.region, Trail: "Members", Bucket: "cm-members-cloudtrail-" + j.account,
			Start: start, Digests: *hours, LogsPerDigest: 1})
		check(err)
		written[i] = w
	})
	objects := len(jobs) * *hours * 2
	fmt.Fprintf(os.Stderr, "wrote %d objects in %s\n", objects, time.Since(t0).Round(time.Second))

	keys := filepath.Join(work, "keys.json")
	signedarchive.PublicKeys(keys, b, regions...)
	noConfig := filepath.Join(work, "none.yaml")
	run := func(args ...string) result {
		cmd := exec.Command(bin, append(args, "--public-keys", keys, "--config", noConfig, "--no-progress", "--output", "json")...)
		cmd.Env = a.Env()
		served := selfCPU()
		m, err := measure.Run(cmd)
		check(err)
		res := result{wall: m.Wall, rss: m.PeakKiB, cpu: m.CPU, sandbox: selfCPU() - served}
		var r verify.Report
		if err := json.Unmarshal(m.Stdout, &r); err != nil {
			log.Fatalf("trailkeeper %v: %v", args, err)
		}
		res.read, res.listed, res.valid = r.ObjectsRead, r.ObjectsListed, r.Valid()
		res.digests, res.logs = r.Totals().DigestsProven, r.Totals().LogsProven
		return res
	}

	fmt.Printf("Machine: %d cores, %s/%s, %s. %d accounts x %d regions x %d hourly digests, 1 log file each: %d objects in one archive bucket. Latency per S3 request: %s.\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), *accounts, len(regions), *hours, objects, *latency)
	fmt.Println("| run | wall time | CPU time | the sandbox's CPU, same cores | objects listed | objects read | objects/s | peak RSS | digests proven | logs proven |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	local := run("verify", dir, "--accept-unsigned-tail")
	local.print("local copy (`verify DIR --accept-unsigned-tail`)")
	sb.SetLatency(*latency)
	state := filepath.Join(work, "state.json")
	remote := run("verify", "s3://"+bucket, "--state", state)
	remote.print(fmt.Sprintf("S3 with %s per request (`verify s3://... --state`)", *latency))

	// One more hour everywhere, then the incremental run.
	sb.SetLatency(0)
	signedarchive.ForEach(len(jobs), 8, func(i int) {
		j := jobs[i]
		_, err := b.Write(ctx, fixture.Chain{Account: j.account, Region: j.region, Trail: "Members", Bucket: "cm-members-cloudtrail-" + j.account,
			Digests: 1, LogsPerDigest: 1, Continue: written[i]})
		check(err)
	})
	sb.SetLatency(*latency)
	inc := run("verify", "s3://"+bucket, "--state", state)
	inc.print("S3, incremental after one more hour (`--state`)")
	fmt.Printf("\nS3 at %s against the local copy: %.2fx the wall time.\n", *latency, remote.wall.Seconds()/local.wall.Seconds())
	if !local.valid || !remote.valid || !inc.valid {
		log.Fatal("a run did not find the archive valid")
	}
}

type result struct {
	wall, cpu     time.Duration
	sandbox       time.Duration // this process's CPU meanwhile: the sandbox answering
	rss           int64         // KiB
	read, listed  int64
	digests, logs int
	valid         bool
}

func (r result) print(name string) {
	fmt.Printf("| %s | %s | %s | %s | %d | %d | %.0f | %d MiB | %d | %d |\n", name, r.wall.Round(10*time.Millisecond), r.cpu.Round(10*time.Millisecond),
		r.sandbox.Round(10*time.Millisecond), r.listed, r.read,
		float64(r.read)/r.wall.Seconds(), r.rss/1024, r.digests, r.logs)
}

// selfCPU is the CPU this process has used: the in-process sandbox's work,
// on the cores the verify being measured runs on too (real S3 answers from
// elsewhere).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tee writes every object to two stores: the bucket and its local copy.
type tee [2]store.Writer

func (t tee) Put(ctx context.Context, key string, data []byte, meta map[string]string) error {
	for _, w := range t {
		if err := w.Put(ctx, key, data, meta); err != nil {
			return err
		}
	}
	return nil
}

var check = signedarchive.Check
