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
	"bytes"
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

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"

	"github.com/trailkeeper/trailkeeper/bench/internal/measure"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

var (
	data         = flag.String("data", "../shared/data/cloudtrail", "folder of the real CloudTrail logs")
	corpus       = flag.String("corpus", filepath.Join(os.TempDir(), "trailkeeper-search-corpus"), "where the corpus is written (and kept)")
	accounts     = flag.Int("accounts", 20, "accounts")
	regionsN     = flag.Int("regions", 4, "regions per account")
	days         = flag.Int("days", 30, "days")
	filesPerDay  = flag.Int("files-per-day", 12, "log files per account, region and day")
	eventsPerLog = flag.Int("events", 70, "events per log file")
	latency      = flag.Duration("latency", 20*time.Millisecond, "latency per request of the S3 run (0: no S3 run)")
	skipPeers    = flag.Bool("skip-peers", false, "only trailkeeper")
)

var allRegions = []string{"us-east-1", "ap-northeast-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-2"}

const start = "2025-09-01T00:00:00Z"

func main() {
	flag.Parse()
	pool := readPool()
	events := ensureCorpus(pool)
	bin := filepath.Join(os.TempDir(), "trailkeeper-bench-search")
	build := exec.Command("go", "build", "-o", bin, "./cmd/trailkeeper")
	build.Stderr = os.Stderr
	check(build.Run())
	duck := filepath.Join(os.TempDir(), "trailkeeper-bench-duckdb")
	if !*skipPeers {
		b := exec.Command("go", "build", "-o", duck, ".")
		b.Dir, b.Stderr = "bench/search/duckdb", os.Stderr
		check(b.Run())
	}

	q := chooseQueries(pool)
	files, gz := corpusSize()
	fmt.Printf("Machine: %d cores, %s/%s, %s. Corpus: %d accounts x %d regions x %d days, %s events in %s files, %.0f MB gzip (replayed from the real logs of %s).\n\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), *accounts, *regionsN, *days, thousands(events), thousands(files), float64(gz)/1e6, *data)
	fmt.Println("| query | tool | wall time | events found | events/s | MB/s (gzip) | peak RSS |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, query := range q {
		fmt.Fprintf(os.Stderr, "query: %s\n", query.name)
		var floor time.Duration
		if !*skipPeers {
			floor = run(query, "decompression floor (`xargs -P2 zcat > /dev/null`)", exec.Command("sh", "-c", query.files+" | xargs -0 -P2 -n 256 zcat > /dev/null; echo 0"), 0)
			prog := filepath.Join(os.TempDir(), "trailkeeper-bench-search.jq")
			check(os.WriteFile(prog, []byte(query.jq), 0o644))
			run(query, "`xargs -P2` of `zcat | jq`", exec.Command("sh", "-c", query.files+" | xargs -0 -P2 -n 256 sh -c 'zcat \"$@\" | jq -c -f "+prog+" | wc -l' _ | awk '{s+=$1} END {print s}'"), floor)
			run(query, "DuckDB `read_json` over the gzip files", exec.Command(duck, query.duckdb), floor)
		}
		run(query, "**trailkeeper search**", exec.Command(bin, append([]string{"search", *corpus, "--count", "--no-progress", "--config", "/nonexistent"}, query.args...)...), floor)
	}
	if *latency > 0 {
		s3Run(bin, q[0])
	}
}

type query struct {
	name   string
	args   []string // trailkeeper's filters
	jq     string
	duckdb string
	files  string // a shell pipeline printing the files to read, NUL-separated
}

var results = map[string]string{}

// run times one tool on one query, checks that it found what the others did, and prints a row.
func run(q query, tool string, cmd *exec.Cmd, floor time.Duration) time.Duration {
	m, err := measure.Run(cmd)
	check(err)
	found := strings.Fields(string(m.Stdout))
	count := "0"
	if len(found) > 0 {
		count = found[0]
	}
	if prev, ok := results[q.name]; ok && prev != count && !strings.Contains(tool, "floor") {
		log.Fatalf("%s: %s found %s events, another tool %s", q.name, tool, count, prev)
	}
	if !strings.Contains(tool, "floor") {
		results[q.name] = count
	}
	gz := q.bytes()
	ratio := ""
	if floor > 0 && !strings.Contains(tool, "floor") {
		ratio = fmt.Sprintf(" (%.1fx the floor)", m.Wall.Seconds()/floor.Seconds())
	}
	if strings.Contains(tool, "floor") {
		count = "-"
	}
	fmt.Printf("| %s | %s | %s%s | %s | %s | %.0f | %d MiB |\n", q.name, tool, m.Wall.Round(10*time.Millisecond), ratio, count,
		thousands(int(float64(q.totalEvents())/m.Wall.Seconds())), float64(gz)/1e6/m.Wall.Seconds(), m.PeakKiB/1024)
	return m.Wall
}

// --- the corpus ---

type source struct {
	raw     []byte // one record, compact JSON
	account string
	name    string
	arn     string
}

// readPool reads every record of the real logs once.
func readPool() []source {
	var pool []source
	for _, set := range []string{"sans504-s3-ransomware-lab", "invictus-ir-aws-dataset", "flaws2"} {
		filepath.Walk(filepath.Join(*data, set), func(p string, info os.FileInfo, err error) error {
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
				pool = append(pool, source{raw: c.Bytes(), account: e.RecipientAccountID, name: e.EventName, arn: e.UserIdentity.ARN})
			}
			return nil
		})
	}
	if len(pool) == 0 {
		log.Fatalf("no CloudTrail records under %s", *data)
	}
	return pool
}

var (
	timeRE   = regexp.MustCompile(`"eventTime":"[^"]*"`)
	idRE     = regexp.MustCompile(`"eventID":"[^"]*"`)
	regionRE = regexp.MustCompile(`"awsRegion":"[^"]*"`)
)

// ensureCorpus writes the corpus unless a complete one of the same shape is there.
func ensureCorpus(pool []source) int {
	shape := fmt.Sprintf("%d %d %d %d %d %d", *accounts, *regionsN, *days, *filesPerDay, *eventsPerLog, len(pool))
	stamp := filepath.Join(*corpus, "CORPUS")
	total := *accounts * *regionsN * *days * *filesPerDay * *eventsPerLog
	if b, err := os.ReadFile(stamp); err == nil && string(b) == shape {
		return total
	}
	os.RemoveAll(*corpus)
	t0 := time.Now()
	begin, _ := time.Parse(time.RFC3339, start)
	type job struct {
		account, region string
		n               int
	}
	var jobs []job
	for a := range *accounts {
		for r := range *regionsN {
			jobs = append(jobs, job{fmt.Sprintf("%012d", 210000000000+a*1111), allRegions[r%len(allRegions)], len(jobs)})
		}
	}
	dir := store.Dir{Root: *corpus}
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
				for d := range *days {
					for f := range *filesPerDay {
						step := 24 * time.Hour / time.Duration(*filesPerDay)
						delivered := begin.AddDate(0, 0, d).Add(time.Duration(f+1)*step - time.Duration(rng.IntN(300))*time.Second)
						buf.Reset()
						buf.WriteString(`{"Records":[`)
						for e := range *eventsPerLog {
							src := pool[cursor%len(pool)]
							cursor++
							at := delivered.Add(-step + time.Duration(e+1)*step/time.Duration(*eventsPerLog+1))
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

func corpusSize() (files int, gz int64) {
	filepath.Walk(*corpus, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".json.gz") {
			files++
			gz += info.Size()
		}
		return nil
	})
	return files, gz
}

// chooseQueries picks, from the pool, a rare event name, a principal, and the most common event name.
func chooseQueries(pool []source) []query {
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
	begin, _ := time.Parse(time.RFC3339, start)
	since, until := begin.AddDate(0, 0, 10), begin.AddDate(0, 0, 17)
	all := "find " + *corpus + " -name '*.json.gz' -print0"
	var week []string
	for d := since; d.Before(until); d = d.AddDate(0, 0, 1) {
		week = append(week, filepath.Join(*corpus, "AWSLogs", acct, "CloudTrail", "*", d.Format("2006/01/02"), "*.json.gz"))
	}
	weekFiles := "ls " + strings.Join(week, " ") + " | tr '\\n' '\\0'"
	glob := "'" + filepath.Join(*corpus, "AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz") + "'"
	weekGlob := "['" + strings.Join(week, "','") + "']"
	from := "read_json(%s, columns={'Records': 'JSON[]'}, compression='gzip', maximum_object_size=268435456)"
	sql := func(src, where string) string {
		return "SELECT count(*) FROM (SELECT unnest(Records) AS r FROM " + fmt.Sprintf(from, src) + ") WHERE " + where
	}
	return []query{
		{name: "rare event name (" + rare + ")", args: []string{"--event-name", rare}, files: all,
			jq: `.Records[] | select(.eventName == "` + rare + `")`, duckdb: sql(glob, "json_extract_string(r, '$.eventName') = '"+rare+"'")},
		{name: "principal " + principal + " in one account, 7 days", files: weekFiles,
			args:   []string{"--principal", principal, "--account", acct, "--since", since.Format(time.RFC3339), "--until", until.Format(time.RFC3339)},
			jq:     `.Records[] | select(((.userIdentity.arn // "") | contains("` + principal + `")) or ((.userIdentity.userName // "") | contains("` + principal + `")) or ((.userIdentity.sessionContext.sessionIssuer.userName // "") | contains("` + principal + `"))) | select(.eventTime >= "` + since.Format(time.RFC3339) + `" and .eventTime < "` + until.Format(time.RFC3339) + `")`,
			duckdb: sql(weekGlob, "(contains(coalesce(json_extract_string(r, '$.userIdentity.arn'),''), '"+principal+"') OR contains(coalesce(json_extract_string(r, '$.userIdentity.userName'),''), '"+principal+"') OR contains(coalesce(json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.userName'),''), '"+principal+"')) AND json_extract_string(r, '$.eventTime') >= '"+since.Format(time.RFC3339)+"' AND json_extract_string(r, '$.eventTime') < '"+until.Format(time.RFC3339)+"'")},
		{name: "count of " + common, args: []string{"--event-name", common}, files: all,
			jq: `.Records[] | select(.eventName == "` + common + `")`, duckdb: sql(glob, "json_extract_string(r, '$.eventName') = '"+common+"'")},
	}
}

func (q query) totalEvents() int {
	if strings.Contains(q.name, "7 days") {
		return *regionsN * 7 * *filesPerDay * *eventsPerLog
	}
	return *accounts * *regionsN * *days * *filesPerDay * *eventsPerLog
}

// bytes is the size of the gzip files the query has to read.
func (q query) bytes() int64 {
	out, _ := exec.Command("sh", "-c", q.files+" | xargs -0 du -cb | grep total$ | awk '{s+=$1} END {print s}'").Output()
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n
}

// s3Run puts the corpus in the sandbox's archive bucket and searches it there.
func s3Run(bin string, q query) {
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
	filepath.Walk(*corpus, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".json.gz") {
			rel, _ := filepath.Rel(*corpus, p)
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
				b, err := os.ReadFile(filepath.Join(*corpus, k))
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
	cmd := exec.Command(bin, append([]string{"search", "s3://" + bucket, "--count", "--no-progress", "--config", "/nonexistent"}, q.args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+acct, "AWS_SECRET_ACCESS_KEY=x", "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL="+srv.URL,
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	m, err := measure.Run(cmd)
	check(err)
	local := exec.Command(bin, append([]string{"search", *corpus, "--count", "--no-progress", "--config", "/nonexistent"}, q.args...)...)
	l, err := measure.Run(local)
	check(err)
	fmt.Printf("\n%s over S3 in the sandbox with %s per request: %s (%s events, peak %d MiB); the same on the local copy: %s. S3/local: **%.2fx**.\n",
		q.name, *latency, m.Wall.Round(10*time.Millisecond), strings.TrimSpace(string(m.Stdout)), m.PeakKiB/1024, l.Wall.Round(10*time.Millisecond), m.Wall.Seconds()/l.Wall.Seconds())
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
