// Command query measures trailkeeper index and query against the tools a user
// would otherwise use, in one run, on the corpus of bench/search (replayed
// real CloudTrail events): the index's build time and size, then the same
// three questions asked of `xargs -P2` of `zcat | jq`, DuckDB's read_json
// over the gzip files, and trailkeeper query over the index (DuckDB over
// Parquet). The script stops if two tools disagree on a count. It prints
// markdown.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/bench/internal/corpus"
	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
)

var (
	shape     = corpus.Flags()
	skipPeers = flag.Bool("skip-peers", false, "only trailkeeper")
)

func main() {
	flag.Parse()
	pool, events, bin, duck := corpus.Prepare(*shape, "trailkeeper-bench-query", *skipPeers)
	_, gz := corpus.Size(shape.Dir)

	dir := filepath.Join(os.TempDir(), "trailkeeper-bench-index")
	check(os.RemoveAll(dir))
	index := func() measure.Result {
		m, err := measure.Run(exec.Command(bin, "index", shape.Dir, "--to", dir, "--no-progress", "--config", "/nonexistent"))
		if err != nil {
			log.Fatalf("index: %v\n%s", err, m.Stdout)
		}
		return m
	}
	first := index()
	second := index()
	size, parquet := dirSize(dir)
	fmt.Println("| index run | wall time | events/s | peak RSS | index size |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| first (every object) | %s | %s | %d MiB | %.0f MB in %s Parquet files (%.0f%% of the gzip) |\n", first.Wall.Round(10*time.Millisecond),
		corpus.Thousands(int(float64(events)/first.Wall.Seconds())), first.PeakKiB/1024, float64(size)/1e6, corpus.Thousands(parquet), 100*float64(size)/float64(gz))
	fmt.Printf("| second (nothing new) | %s | - | %d MiB | |\n\n", second.Wall.Round(10*time.Millisecond), second.PeakKiB/1024)

	t := &corpus.Table{O: *shape}
	t.Header()
	type ratios struct {
		name     string
		jq, duck float64
	}
	var summary []ratios
	for _, q := range corpus.Choose(*shape, pool) {
		fmt.Fprintf(os.Stderr, "query: %s\n", q.Name)
		var jq, duckdb time.Duration
		if !*skipPeers {
			_, jq, duckdb = t.Peers(q, duck)
		}
		ours := t.Row(q, "**trailkeeper query** (the index)", exec.Command(bin, "query", "--index", dir, "-o", "csv", "--config", "/nonexistent", q.SQL), 0, "")
		if !*skipPeers {
			summary = append(summary, ratios{q.Name, jq.Seconds() / ours.Seconds(), duckdb.Seconds() / ours.Seconds()})
		}
	}
	fmt.Println()
	for _, r := range summary {
		fmt.Printf("- %s: **%.0fx** faster than `zcat | jq`, **%.0fx** faster than DuckDB on the gzip files\n", r.name, r.jq, r.duck)
	}
}

// dirSize is the Parquet files' total size and count.
func dirSize(dir string) (bytes int64, files int) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
