// Package corpus writes the benchmarks' corpus, replayed from the real
// CloudTrail logs of ../shared/data/cloudtrail, and the three questions asked
// of it, written for each tool (search and query bench them).
package corpus

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Options are the corpus's shape.
type Options struct {
	Data, Dir                                    string
	Accounts, Regions, Days, FilesPerDay, Events int
}

// Flags registers the corpus's flags.
func Flags() *Options {
	o := &Options{}
	flag.StringVar(&o.Data, "data", "../shared/data/cloudtrail", "folder of the real CloudTrail logs")
	flag.StringVar(&o.Dir, "corpus", filepath.Join(os.TempDir(), "trailkeeper-search-corpus"), "where the corpus is written (and kept)")
	flag.IntVar(&o.Accounts, "accounts", 20, "accounts")
	flag.IntVar(&o.Regions, "regions", 4, "regions per account")
	flag.IntVar(&o.Days, "days", 30, "days")
	flag.IntVar(&o.FilesPerDay, "files-per-day", 12, "log files per account, region and day")
	flag.IntVar(&o.Events, "events", 70, "events per log file")
	return o
}

// Start is the corpus's first day.
const Start = "2025-09-01T00:00:00Z"

var allRegions = []string{"us-east-1", "ap-northeast-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-2"}

// Query is one question, for each tool.
type Query struct {
	Name   string
	Args   []string // trailkeeper search's filters
	JQ     string
	DuckDB string   // over the gzip files
	SQL    string   // over trailkeeper's index
	Scope  []string // trailkeeper query's flags narrowing its table to what the peers read
	Files  string   // a shell pipeline printing the files to read, NUL-separated
}

// Source is one real record, with what the queries are chosen by.
type Source struct {
	raw     []byte // one record, compact JSON
	account string
	name    string
	arn     string
}

// readPool reads every record of the real logs once.
func ReadPool(data string) []Source {
	var pool []Source
	for _, set := range []string{"sans504-s3-ransomware-lab", "invictus-ir-aws-dataset", "flaws2"} {
		filepath.Walk(filepath.Join(data, set), func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || !(strings.HasSuffix(p, ".json.gz") || strings.HasSuffix(p, ".json")) {
				return nil
			}
			b, err := os.ReadFile(p)
			check(err)
			if strings.HasSuffix(p, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(b))
				check(err)
				b, err = io.ReadAll(zr)
				check(err)
			}
			var doc struct{ Records []json.RawMessage }
			if json.Unmarshal(b, &doc) != nil {
				return nil
			}
			for _, r := range doc.Records {
				var e struct {
					EventName, RecipientAccountID string
					UserIdentity                  struct{ ARN string }
				}
				json.Unmarshal(r, &e)
				var c bytes.Buffer
				json.Compact(&c, r)
				pool = append(pool, Source{raw: c.Bytes(), account: e.RecipientAccountID, name: e.EventName, arn: e.UserIdentity.ARN})
			}
			return nil
		})
	}
	if len(pool) == 0 {
		log.Fatalf("no CloudTrail records under %s", data)
	}
	return pool
}

var (
	timeRE   = regexp.MustCompile(`"eventTime":"[^"]*"`)
	idRE     = regexp.MustCompile(`"eventID":"[^"]*"`)
	regionRE = regexp.MustCompile(`"awsRegion":"[^"]*"`)
)

// Ensure writes the corpus unless a complete one of the same shape is there,
// and returns how many events it holds.
func Ensure(o Options, pool []Source) int {
	shape := fmt.Sprintf("%d %d %d %d %d %d", o.Accounts, o.Regions, o.Days, o.FilesPerDay, o.Events, len(pool))
	stamp := filepath.Join(o.Dir, "CORPUS")
	total := o.Accounts * o.Regions * o.Days * o.FilesPerDay * o.Events
	if b, err := os.ReadFile(stamp); err == nil && string(b) == shape {
		return total
	}
	os.RemoveAll(o.Dir)
	t0 := time.Now()
	begin, _ := time.Parse(time.RFC3339, Start)
	type job struct {
		account, region string
		n               int
	}
	var jobs []job
	for a := range o.Accounts {
		for r := range o.Regions {
			jobs = append(jobs, job{fmt.Sprintf("%012d", 210000000000+a*1111), allRegions[r%len(allRegions)], len(jobs)})
		}
	}
	dir := store.Dir{Root: o.Dir}
	var wg sync.WaitGroup
	next := make(chan job)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for j := range next {
				rng := rand.New(rand.NewPCG(uint64(j.n), 7))
				cursor := j.n * 7919
				for d := range o.Days {
					for f := range o.FilesPerDay {
						step := 24 * time.Hour / time.Duration(o.FilesPerDay)
						delivered := begin.AddDate(0, 0, d).Add(time.Duration(f+1)*step - time.Duration(rng.IntN(300))*time.Second)
						buf.Reset()
						buf.WriteString(`{"Records":[`)
						for e := range o.Events {
							src := pool[cursor%len(pool)]
							cursor++
							at := delivered.Add(-step + time.Duration(e+1)*step/time.Duration(o.Events+1))
							rec := src.raw
							if src.account != "" {
								rec = bytes.ReplaceAll(rec, []byte(src.account), []byte(j.account))
							}
							rec = timeRE.ReplaceAllLiteral(rec, []byte(`"eventTime":"`+at.UTC().Format(time.RFC3339)+`"`))
							rec = idRE.ReplaceAllLiteral(rec, []byte(fmt.Sprintf(`"eventID":"%08x-%04x-4%03x-8%03x-%012x"`, j.n, d, f, e, rng.Uint64()>>16)))
							rec = regionRE.ReplaceAllLiteral(rec, []byte(`"awsRegion":"`+j.region+`"`))
							if e > 0 {
								buf.WriteByte(',')
							}
							buf.Write(rec)
						}
						buf.WriteString(`]}`)
						var gz bytes.Buffer
						zw := gzip.NewWriter(&gz)
						zw.Write(buf.Bytes())
						zw.Close()
						key := cloudtrail.LogKey("", j.account, j.region, delivered, fmt.Sprintf("%016X", rng.Uint64()))
						check(dir.Put(context.Background(), key, gz.Bytes(), nil))
					}
				}
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	check(os.WriteFile(stamp, []byte(shape), 0o644))
	fmt.Fprintf(os.Stderr, "corpus written in %s\n", time.Since(t0).Round(time.Second))
	return total
}

// Size counts the corpus's files and their gzip bytes.
func Size(dir string) (files int, gz int64) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".json.gz") {
			files++
			gz += info.Size()
		}
		return nil
	})
	return files, gz
}

// Choose picks, from the pool, a rare event name, a principal, and the most
// common event name, and writes each question for every tool.
func Choose(o Options, pool []Source) []Query {
	count := map[string]int{}
	arns := map[string]int{}
	for _, s := range pool {
		count[s.name]++
		if i := strings.LastIndex(s.arn, ":"); i >= 0 && strings.Contains(s.arn[i:], "/") {
			arns[s.arn[i+1:]]++ // user/NAME or assumed-role/ROLE/SESSION
		}
	}
	names := make([]string, 0, len(count))
	for n := range count {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		return count[names[i]] < count[names[j]] || count[names[i]] == count[names[j]] && names[i] < names[j]
	})
	rare, common := names[0], names[len(names)-1]
	for _, n := range names { // a rare name that is not a prefix of others, e.g. DeleteBucket
		if count[n] == 1 && len(n) > 8 {
			rare = n
			break
		}
	}
	var principal string
	best := 0
	for a, c := range arns {
		if c > best || c == best && a < principal {
			principal, best = a, c
		}
	}
	acct := fmt.Sprintf("%012d", 210000000000)
	begin, _ := time.Parse(time.RFC3339, Start)
	since, until := begin.AddDate(0, 0, 10), begin.AddDate(0, 0, 17)
	all := "find " + o.Dir + " -name '*.json.gz' -print0"
	var week []string
	for d := since; d.Before(until); d = d.AddDate(0, 0, 1) {
		week = append(week, filepath.Join(o.Dir, "AWSLogs", acct, "CloudTrail", "*", d.Format("2006/01/02"), "*.json.gz"))
	}
	weekFiles := "ls " + strings.Join(week, " ") + " | tr '\\n' '\\0'"
	glob := "'" + filepath.Join(o.Dir, "AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz") + "'"
	weekGlob := "['" + strings.Join(week, "','") + "']"
	from := "read_json(%s, columns={'Records': 'JSON[]'}, compression='gzip', maximum_object_size=268435456)"
	sql := func(src, where string) string {
		return "SELECT count(*) FROM (SELECT unnest(Records) AS r FROM " + fmt.Sprintf(from, src) + ") WHERE " + where
	}
	// The same questions of trailkeeper's index (Athena's column names; the
	// day partition narrows the week).
	indexed := func(where string) string { return "SELECT count(*) FROM events WHERE " + where }
	principalSQL := "(contains(coalesce(useridentity.arn, ''), '" + principal + "') OR contains(coalesce(useridentity.username, ''), '" + principal +
		"') OR contains(coalesce(useridentity.sessioncontext.sessionissuer.username, ''), '" + principal + "'))"
	days := fmt.Sprintf("account = '%s' AND day >= '%s' AND day <= '%s' AND eventtime >= '%s' AND eventtime < '%s'", acct, since.Format("2006/01/02"),
		until.AddDate(0, 0, -1).Format("2006/01/02"), since.Format(time.RFC3339), until.Format(time.RFC3339))
	return []Query{
		{Name: "rare event name (" + rare + ")", Args: []string{"--event-name", rare}, Files: all, SQL: indexed("eventname = '" + rare + "'"),
			JQ: `.Records[] | select(.eventName == "` + rare + `")`, DuckDB: sql(glob, "json_extract_string(r, '$.eventName') = '"+rare+"'")},
		{Name: "principal " + principal + " in one account, 7 days", Files: weekFiles, SQL: indexed(days + " AND " + principalSQL),
			Scope:  []string{"--account", acct, "--since", since.Format(time.RFC3339), "--until", until.Format(time.RFC3339)},
			Args:   []string{"--principal", principal, "--account", acct, "--since", since.Format(time.RFC3339), "--until", until.Format(time.RFC3339)},
			JQ:     `.Records[] | select(((.userIdentity.arn // "") | contains("` + principal + `")) or ((.userIdentity.userName // "") | contains("` + principal + `")) or ((.userIdentity.sessionContext.sessionIssuer.userName // "") | contains("` + principal + `"))) | select(.eventTime >= "` + since.Format(time.RFC3339) + `" and .eventTime < "` + until.Format(time.RFC3339) + `")`,
			DuckDB: sql(weekGlob, "(contains(coalesce(json_extract_string(r, '$.userIdentity.arn'),''), '"+principal+"') OR contains(coalesce(json_extract_string(r, '$.userIdentity.userName'),''), '"+principal+"') OR contains(coalesce(json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.userName'),''), '"+principal+"')) AND json_extract_string(r, '$.eventTime') >= '"+since.Format(time.RFC3339)+"' AND json_extract_string(r, '$.eventTime') < '"+until.Format(time.RFC3339)+"'")},
		{Name: "count of " + common, Args: []string{"--event-name", common}, Files: all, SQL: indexed("eventname = '" + common + "'"),
			JQ: `.Records[] | select(.eventName == "` + common + `")`, DuckDB: sql(glob, "json_extract_string(r, '$.eventName') = '"+common+"'")},
	}
}

// TotalEvents is how many events the query's files hold.
func (q Query) TotalEvents(o Options) int {
	if strings.Contains(q.Name, "7 days") {
		return o.Regions * 7 * o.FilesPerDay * o.Events
	}
	return o.Accounts * o.Regions * o.Days * o.FilesPerDay * o.Events
}

// Bytes is the size of the gzip files the query has to read.
func (q Query) Bytes() int64 {
	out, _ := exec.Command("sh", "-c", q.Files+" | xargs -0 du -cb | grep total$ | awk '{s+=$1} END {print s}'").Output()
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// Table runs the tools and prints one markdown row per run; it stops the
// benchmark when two tools disagree on a count.
type Table struct {
	O       Options
	results map[string]string
}

// Header prints the table's head.
func (t *Table) Header() {
	fmt.Println("| query | tool | wall time | events found | events/s | MB/s (gzip) | peak RSS |")
	fmt.Println("|---|---|---|---|---|---|---|")
}

// Row times one tool on one query (its stdout starts with the count) and
// prints a row, with the ratio to base when given. Tools named "floor" find nothing.
func (t *Table) Row(q Query, tool string, cmd *exec.Cmd, base time.Duration, baseName string) time.Duration {
	if t.results == nil {
		t.results = map[string]string{}
	}
	m, err := measure.Run(cmd)
	check(err)
	count := "0" // the first number printed (a CSV's header comes before it)
	for _, f := range strings.Fields(string(m.Stdout)) {
		if _, err := strconv.Atoi(f); err == nil {
			count = f
			break
		}
	}
	floor := strings.Contains(tool, "floor")
	if prev, ok := t.results[q.Name]; ok && prev != count && !floor {
		log.Fatalf("%s: %s found %s events, another tool %s", q.Name, tool, count, prev)
	}
	if floor {
		count = "-"
	} else {
		t.results[q.Name] = count
	}
	ratio := ""
	if base > 0 && !floor {
		ratio = fmt.Sprintf(" (%.1fx %s)", m.Wall.Seconds()/base.Seconds(), baseName)
	}
	fmt.Printf("| %s | %s | %s%s | %s | %s | %.0f | %d MiB |\n", q.Name, tool, m.Wall.Round(10*time.Millisecond), ratio, count,
		Thousands(int(float64(q.TotalEvents(t.O))/m.Wall.Seconds())), float64(q.Bytes())/1e6/m.Wall.Seconds(), m.PeakKiB/1024)
	return m.Wall
}

// Peers runs the decompression floor, `xargs -P2` of `zcat | jq`, and DuckDB
// over the gzip files (the binary duck, bench/search/duckdb), and returns
// their times.
func (t *Table) Peers(q Query, duck string) (floor, jq, duckdb time.Duration) {
	floor = t.Row(q, "decompression floor (`xargs -P2 zcat > /dev/null`)", exec.Command("sh", "-c", q.Files+" | xargs -0 -P2 -n 256 zcat > /dev/null; echo 0"), 0, "")
	prog := filepath.Join(os.TempDir(), "trailkeeper-bench.jq")
	check(os.WriteFile(prog, []byte(q.JQ), 0o644))
	jq = t.Row(q, "`xargs -P2` of `zcat | jq`", exec.Command("sh", "-c", q.Files+" | xargs -0 -P2 -n 256 sh -c 'zcat \"$@\" | jq -c -f "+prog+" | wc -l' _ | awk '{s+=$1} END {print s}'"), floor, "the floor")
	duckdb = t.Row(q, "DuckDB `read_json` over the gzip files", exec.Command(duck, q.DuckDB), floor, "the floor")
	return floor, jq, duckdb
}

// BuildDuckDB builds the DuckDB peer (its own module) and returns its path.
func BuildDuckDB() string {
	duck := filepath.Join(os.TempDir(), "trailkeeper-bench-duckdb")
	b := exec.Command("go", "build", "-o", duck, ".")
	b.Dir, b.Stderr = "bench/search/duckdb", os.Stderr
	check(b.Run())
	return duck
}

// Thousands writes 20480 as 20,480.
func Thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Prepare reads the pool, writes the corpus if needed, builds trailkeeper
// (as name) and, unless skipPeers, the DuckDB peer, and prints the machine
// and the corpus.
func Prepare(o Options, name string, skipPeers bool) (pool []Source, events int, bin, duck string) {
	pool = ReadPool(o.Data)
	events = Ensure(o, pool)
	bin = filepath.Join(os.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, "./cmd/trailkeeper")
	build.Stderr = os.Stderr
	check(build.Run())
	if !skipPeers {
		duck = BuildDuckDB()
	}
	files, gz := Size(o.Dir)
	fmt.Printf("Machine: %d cores, %s/%s, %s. Corpus: %d accounts x %d regions x %d days, %s events in %s files, %.0f MB gzip (replayed from the real logs of %s).\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), o.Accounts, o.Regions, o.Days, Thousands(events), Thousands(files), float64(gz)/1e6, o.Data)
	return pool, events, bin, duck
}
