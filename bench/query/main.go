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
	wide      = flag.Int("wide", 1000, "then time a one-account query over an index of this many accounts x 4 regions x 12 months (0: skip)")
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
		ours := t.Row(q, "**trailkeeper query** (the index)", exec.Command(bin, append(append([]string{"query", "--index", dir, "-o", "csv", "--config", "/nonexistent"}, q.Scope...), q.SQL)...), 0, "")
		if !*skipPeers {
			summary = append(summary, ratios{q.Name, jq.Seconds() / ours.Seconds(), duckdb.Seconds() / ours.Seconds()})
		}
	}
	fmt.Println()
	for _, r := range summary {
		fmt.Printf("- %s: **%.0fx** faster than `zcat | jq`, **%.0fx** faster than DuckDB on the gzip files\n", r.name, r.jq, r.duck)
	}
	if *wide > 0 {
		wideIndex(bin, dir, *wide)
	}
}

// wideIndex times one account's count over an index of a year of many
// accounts, with and without --account: its folders are what a statement
// over the whole table lists. The index's files are links to one small
// file of the real index, one per account, region and month.
func wideIndex(bin, real string, accounts int) {
	var small string
	var smallest int64
	filepath.Walk(filepath.Join(real, "events"), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") && (small == "" || info.Size() < smallest) {
			small, smallest = p, info.Size()
		}
		return nil
	})
	dir := filepath.Join(os.TempDir(), "trailkeeper-bench-wide-index")
	check(os.RemoveAll(dir))
	defer os.RemoveAll(dir)
	for a := range accounts {
		for _, r := range []string{"us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"} {
			for m := 1; m <= 12; m++ {
				folder := filepath.Join(dir, "events", fmt.Sprintf("account=%012d", 100000000000+a), "region="+r, "2025", fmt.Sprintf("%02d", m))
				check(os.MkdirAll(folder, 0o755))
				check(os.Link(small, filepath.Join(folder, "b000000_0.parquet")))
			}
		}
	}
	acct := fmt.Sprintf("%012d", 100000000000+accounts/2)
	sql := "SELECT count(*) FROM events WHERE account = '" + acct + "'"
	fmt.Printf("\nOne account's count over an index of %s accounts x 4 regions x 12 months (%s files), three runs each:\n\n", corpus.Thousands(accounts), corpus.Thousands(accounts*48))
	fmt.Println("| query | wall time | CPU time | peak RSS |")
	fmt.Println("|---|---|---|---|")
	var answer string // the same from every run, and not 0
	for _, scope := range [][]string{nil, {"--account", acct}} {
		for range 3 {
			m, err := measure.Run(exec.Command(bin, append(append([]string{"query", "--index", dir, "-o", "csv", "--config", "/nonexistent"}, scope...), sql)...))
			if answer == "" {
				answer = string(m.Stdout)
			}
			if err != nil || string(m.Stdout) != answer || strings.HasSuffix(answer, "\n0\n") {
				log.Fatalf("wide index: %v %q, before %q", err, m.Stdout, answer)
			}
			fmt.Printf("| `%s` | %s | %s | %d MiB |\n", strings.Join(append([]string{"query"}, scope...), " "), m.Wall.Round(time.Millisecond), m.CPU.Round(time.Millisecond), m.PeakKiB/1024)
		}
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
