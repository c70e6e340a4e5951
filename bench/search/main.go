// Command search measures trailkeeper search against the tools a user would
// otherwise use, in one run, on a replayed corpus of real CloudTrail events:
//
//   - the corpus: N accounts x R regions x D days of files in the archive's key
//     layout, made from the real records of ../shared/data/cloudtrail with
//     rewritten times, accounts, regions and event ids (kept between runs);
//   - three queries: one rare event name, one principal in one account over 7
//     days, and the count of the most common event name;
//   - peers: `xargs -P2` of `zcat | jq`, DuckDB's read_json over the same gzip
//     files (bench/search/duckdb, its own module), and the decompression floor
//     (`zcat > /dev/null`, two at a time);
//   - the same rare-event search over S3 in the sandbox with a latency per request.
//
// It prints markdown.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/bench/internal/corpus"
	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

var (
	shape     = corpus.Flags()
	latency   = flag.Duration("latency", 20*time.Millisecond, "latency per request of the S3 run (0: no S3 run)")
	skipPeers = flag.Bool("skip-peers", false, "only trailkeeper")
)

func main() {
	flag.Parse()
	pool, _, bin, duck := corpus.Prepare(*shape, "trailkeeper-bench-search", *skipPeers)
	q := corpus.Choose(*shape, pool)
	t := &corpus.Table{O: *shape}
	t.Header()
	for _, query := range q {
		fmt.Fprintf(os.Stderr, "query: %s\n", query.Name)
		var floor time.Duration
		if !*skipPeers {
			floor, _, _ = t.Peers(query, duck)
		}
		t.Row(query, "**trailkeeper search**", exec.Command(bin, append([]string{"search", shape.Dir, "--count", "--no-progress", "--config", "/nonexistent"}, query.Args...)...), floor, "the floor")
	}
	if *latency > 0 {
		s3Run(bin, q[0])
	}
}

// s3Run puts the corpus in the sandbox's archive bucket and searches it there.
func s3Run(bin string, q corpus.Query) {
	ctx := context.Background()
	sb, err := sandbox.New(sandbox.Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	check(err)
	defer sb.Close()
	srv, err := sb.Start("127.0.0.1:0", false)
	check(err)
	defer srv.Close()
	const acct = "999999999999"
	c := world.S3(srv.URL, acct, "us-east-1")
	bucket := "archive-search"
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	check(err)
	dst := store.S3{Client: c, Bucket: bucket}
	var keys []string
	filepath.Walk(shape.Dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".json.gz") {
			rel, _ := filepath.Rel(shape.Dir, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	var wg sync.WaitGroup
	next := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				b, err := os.ReadFile(filepath.Join(shape.Dir, k))
				check(err)
				check(dst.Put(ctx, k, b, nil))
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	sb.SetLatency(*latency)
	cmd := exec.Command(bin, append([]string{"search", "s3://" + bucket, "--count", "--no-progress", "--config", "/nonexistent"}, q.Args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+acct, "AWS_SECRET_ACCESS_KEY=x", "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL="+srv.URL,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	m, err := measure.Run(cmd)
	check(err)
	local := exec.Command(bin, append([]string{"search", shape.Dir, "--count", "--no-progress", "--config", "/nonexistent"}, q.Args...)...)
	l, err := measure.Run(local)
	check(err)
	fmt.Printf("\n%s over S3 in the sandbox with %s per request: %s (%s events, peak %d MiB); the same on the local copy: %s. S3/local: **%.2fx**.\n",
		q.Name, *latency, m.Wall.Round(10*time.Millisecond), strings.TrimSpace(string(m.Stdout)), m.PeakKiB/1024, l.Wall.Round(10*time.Millisecond), m.Wall.Seconds()/l.Wall.Seconds())
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
