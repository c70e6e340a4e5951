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
	"github.com/trailkeeper/trailkeeper/internal/eventschema"
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
	fmt.Printf("| second (nothing new) | %s | - | %d MiB | |\n", second.Wall.Round(10*time.Millisecond), second.PeakKiB/1024)
	if !*skipPeers {
		// The peer: DuckDB converting the same files to one Parquet file of
		// the same columns itself.
		one := filepath.Join(os.TempDir(), "trailkeeper-bench-duckdb.parquet")
		m, err := measure.Run(exec.Command(duck, convertSQL(filepath.Join(shape.Dir, "AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz"), one)))
		if err != nil {
			log.Fatalf("DuckDB's conversion: %v", err)
		}
		info, err := os.Stat(one)
		check(err)
		fmt.Printf("| peer: DuckDB's own `COPY` of the gzip files to one Parquet file (the same columns) | %s | %s | %d MiB | %.0f MB in 1 file |\n",
			m.Wall.Round(10*time.Millisecond), corpus.Thousands(int(float64(events)/m.Wall.Seconds())), m.PeakKiB/1024, float64(info.Size())/1e6)
		os.Remove(one)
	}
	fmt.Println()

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

// convertSQL is the statement a DuckDB user would write to convert the log
// files into one Parquet file with the index's columns (Athena's names).
func convertSQL(glob, out string) string {
	return fmt.Sprintf(`COPY (SELECT %s, strftime(try_cast(r."eventTime" AS TIMESTAMP), '%%Y/%%m/%%d') AS day FROM
(SELECT unnest(Records) AS r FROM read_json('%s', columns={'Records': '%s'}, compression='gzip', maximum_object_size=268435456)))
TO '%s' (FORMAT parquet, COMPRESSION zstd)`, eventschema.SelectColumns("r"), glob, eventschema.RecordType()+"[]", out)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
