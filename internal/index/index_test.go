package index

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/query"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// reference is what a plain reading of the files says, record by record.
type reference struct {
	events, errors, root, readOnly, withBucketName, s3Resources int
	bySource                                                    map[string]int
	byPartition                                                 map[string]int // account/region/day
}

var layoutRE = regexp.MustCompile(`AWSLogs/(\d{12})/CloudTrail/([^/]+)/`)

// computeReference reads every .json and .json.gz file under root with
// encoding/json, as a user's script would.
// references caches computeReference per folder: decoding every record of a
// set into maps is the slow part of these tests under the race detector.
var references sync.Map

func computeReference(t *testing.T, root string) reference {
	if ref, ok := references.Load(root); ok {
		return ref.(reference)
	}
	ref := reference{bySource: map[string]int{}, byPartition: map[string]int{}}
	defer func() {
		if !t.Failed() {
			references.Store(root, ref)
		}
	}()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".json.gz")) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return err
			}
			if data, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		var recs []map[string]any
		var wrapped struct{ Records []map[string]any }
		if json.Unmarshal(data, &wrapped) == nil && wrapped.Records != nil {
			recs = wrapped.Records
		} else if err := json.Unmarshal(data, &recs); err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		m := layoutRE.FindStringSubmatch(filepath.ToSlash(path))
		for _, r := range recs {
			str := func(k string) string { s, _ := r[k].(string); return s }
			ref.events++
			if r["errorCode"] != nil {
				ref.errors++
			}
			if u, _ := r["userIdentity"].(map[string]any); u["type"] == "Root" {
				ref.root++
			}
			if r["readOnly"] == true {
				ref.readOnly++
			}
			if p, _ := json.Marshal(r["requestParameters"]); bytes.Contains(p, []byte(`"bucketName"`)) {
				ref.withBucketName++
			}
			if rs, _ := r["resources"].([]any); len(rs) > 0 {
				if first, _ := rs[0].(map[string]any); strings.HasPrefix(fmt.Sprint(first["ARN"]), "arn:aws:s3:::") {
					ref.s3Resources++
				}
			}
			ref.bySource[str("eventSource")]++
			acct, region := str("recipientAccountId"), str("awsRegion")
			if m != nil {
				acct, region = m[1], m[2]
			}
			day := "unknown/unknown/unknown"
			if t, err := time.Parse(time.RFC3339, str("eventTime")); err == nil {
				day = t.UTC().Format("2006/01/02")
			}
			ref.byPartition[acct+"/"+region+"/"+day]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func dataset(t *testing.T, name string) string { return testenv.RealCloudTrail(t, name) }

func count(t *testing.T, db *query.DB, sql string) int {
	t.Helper()
	var n int
	rows := queryAll(t, db, sql)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: %v", sql, rows)
	}
	fmt.Sscan(fmt.Sprint(rows[0][0]), &n)
	return n
}

func queryAll(t *testing.T, db *query.DB, sql string) [][]any {
	t.Helper()
	rows, err := db.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]any
	for {
		row, err := rows.Next()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if row == nil {
			return out
		}
		out = append(out, row)
	}
}

// agree checks the index's answers against the reference's.
func agree(t *testing.T, dir string, ref reference) {
	t.Helper()
	db, err := query.Open(context.Background(), dir, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		sql  string
		want int
	}{
		{"SELECT count(*) FROM events", ref.events},
		{"SELECT count(*) FROM errors", ref.errors},
		{"SELECT count(*) FROM events WHERE useridentity.type = 'Root'", ref.root},
		{"SELECT count(*) FROM events WHERE readonly = 'true'", ref.readOnly},
		{"SELECT count(*) FROM events WHERE requestparameters LIKE '%\"bucketName\"%'", ref.withBucketName},
		{"SELECT count(*) FROM events WHERE resources[1].arn LIKE 'arn:aws:s3:::%'", ref.s3Resources},
	} {
		if got := count(t, db, c.sql); got != c.want {
			t.Errorf("%s: %d, the files say %d", c.sql, got, c.want)
		}
	}
	got := map[string]int{}
	for _, r := range queryAll(t, db, "SELECT coalesce(eventsource, ''), count(*) FROM events GROUP BY ALL") {
		got[r[0].(string)] = int(r[1].(int64))
	}
	if fmt.Sprint(got) != fmt.Sprint(ref.bySource) {
		t.Errorf("events by source differ:\nindex %v\nfiles %v", got, ref.bySource)
	}
	got = map[string]int{}
	for _, r := range queryAll(t, db, "SELECT account || '/' || region || '/' || day, count(*) FROM events GROUP BY ALL") {
		got[r[0].(string)] = int(r[1].(int64))
	}
	if fmt.Sprint(got) != fmt.Sprint(ref.byPartition) {
		t.Errorf("events by account, region and day differ:\nindex %v\nfiles %v", got, ref.byPartition)
	}
}

// TestIndexAgreesWithTheFiles: index then query the real logs; counts,
// filters (nested fields, JSON kept as text) and group-bys agree with a plain
// reading of the files, for logs in the archive layout and outside it.
func TestIndexAgreesWithTheFiles(t *testing.T) {
	for _, name := range []string{"flaws2", "sans504-s3-ransomware-lab", "invictus-ir-aws-dataset", "stratus-red-team-detonation-logs"} {
		t.Run(name, func(t *testing.T) {
			root := dataset(t, name)
			dir := t.TempDir()
			res, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ref := computeReference(t, root)
			if res.Events != int64(ref.events) || res.Dropped != 0 || len(res.Unreadable) != 0 {
				t.Fatalf("indexed %d events (%d dropped, unreadable %v), the files hold %d", res.Events, res.Dropped, res.Unreadable, ref.events)
			}
			agree(t, dir, ref)
		})
	}
}

// countingStore counts the objects a build opens.
type countingStore struct {
	store.Store
	opened atomic.Int64
}

func (c *countingStore) Open(ctx context.Context, key, version string) (io.ReadCloser, map[string]string, error) {
	c.opened.Add(1)
	return c.Store.Open(ctx, key, version)
}

// TestIndexResumesAndReadsOnlyNewObjects: a build interrupted after some
// batches, and one cut between writing a batch and recording it, resume to
// the same answers; a rerun opens no object; a rewritten object is reported.
func TestIndexResumesAndReadsOnlyNewObjects(t *testing.T) {
	src := dataset(t, "sans504-s3-ransomware-lab")
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	ref := computeReference(t, root)
	dir := t.TempDir()

	// Interrupted once a few batches are in.
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Build(ctx, store.Dir{Root: root}, dir, Options{BatchEvents: 2000, Progress: func(p Progress) {
		if p.Events > 7000 {
			cancel()
		}
	}})
	if err == nil || res.Batches == 0 || res.Events >= int64(ref.events) {
		t.Fatalf("the interrupted build: %v, %d batches, %d events", err, res.Batches, res.Events)
	}
	// A crash after a batch's files were written, before its objects were
	// recorded: a stray file and a half-written manifest line.
	stray := filepath.Join(dir, "events", "account=342082656213", "region=us-east-1", "2021", "07")
	os.MkdirAll(stray, 0o755)
	copyFile(t, firstParquet(t, dir), filepath.Join(stray, "b999999_0.parquet"))
	f, _ := os.OpenFile(filepath.Join(dir, manifestName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("999999\tCloudTrail/us-east-1/x")
	f.Close()

	res2, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{BatchEvents: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events+res2.Events != int64(ref.events) || res2.Held != res.Objects {
		t.Fatalf("resumed: %d + %d events, %d held; the files hold %d", res.Events, res2.Events, res2.Held, ref.events)
	}
	agree(t, dir, ref)

	// A rerun opens nothing.
	cs := &countingStore{Store: store.Dir{Root: root}}
	res3, err := Build(context.Background(), cs, dir, Options{})
	if err != nil || cs.opened.Load() != 0 || res3.Objects != 0 || res3.Held != res.Objects+res2.Objects {
		t.Fatalf("rerun: %v, opened %d objects, indexed %d, held %d", err, cs.opened.Load(), res3.Objects, res3.Held)
	}

	// Someone rewrites an indexed object: reported, not indexed again.
	var victim string
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if victim == "" && strings.HasSuffix(path, ".json.gz") {
			victim = path
		}
		return nil
	})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"Records":[]}`))
	zw.Close()
	os.WriteFile(victim, buf.Bytes(), 0o644)
	res4, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{})
	rel, _ := filepath.Rel(root, victim)
	if err != nil || len(res4.Rewritten) != 1 || res4.Rewritten[0] != filepath.ToSlash(rel) || res4.Objects != 0 {
		t.Fatalf("after a rewrite: %v, rewritten %v, indexed %d", err, res4.Rewritten, res4.Objects)
	}
	agree(t, dir, ref)
}

func firstParquet(t *testing.T, dir string) string {
	var files []string
	filepath.WalkDir(filepath.Join(dir, "events"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".parquet") {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no Parquet file written")
	}
	return files[0]
}

func copyFile(t *testing.T, from, to string) {
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzManifestKeys: any key, tabs and newlines included, survives the
// manifest's lines.
func FuzzManifestKeys(f *testing.F) {
	for _, k := range []string{"AWSLogs/1/CloudTrail/x.json.gz", "a\tb", "a\nb", `a\tb`, `\`, "tab\t\\t"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if e := escape(key); strings.ContainsAny(e, "\t\n") || unescape(e) != key {
			t.Fatalf("key %q escaped as %q, read back as %q", key, e, unescape(e))
		}
	})
}

// TestHostileRecords: a record whose fields are not of CloudTrail's types is
// indexed with those fields empty (as Athena's SerDe reads them), the others
// as they are; one that is not JSON where it is read is counted, not
// indexed; a file that is not a log is named, not indexed.
func TestHostileRecords(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "odd.json"), []byte(`{"Records":[{"eventName":"Kept","eventTime":"2026-12-01T00:00:00Z"},
{"eventName":"Odd","userIdentity":"not an object","eventTime":"2026-12-01T00:00:00Z"},
{"eventName":"AlsoKept","resources":[{"ARN":"arn:aws:s3:::b"}],"requestParameters":"a string, not an object"},
{"eventName":"Broken","errorCode":tru},
{"eventName":"Escaping","recipientAccountId":"../../../x\u0000y","awsRegion":"..","eventTime":"2026-12-01T00:00:00Z"}]}`), 0o644)
	os.WriteFile(filepath.Join(root, "cut.json.gz"), []byte{0x1f, 0x8b, 8, 0, 0}, 0o644)
	dir := t.TempDir()
	res, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 4 || res.Dropped != 1 || len(res.Unreadable) != 1 || !strings.Contains(res.Unreadable[0], "cut.json.gz") {
		t.Fatalf("indexed %d, dropped %d, unreadable %v", res.Events, res.Dropped, res.Unreadable)
	}
	db, err := query.Open(context.Background(), dir, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for sql, want := range map[string]int{
		"SELECT count(*) FROM events WHERE eventname = 'Odd' AND useridentity.type IS NULL AND useridentity.arn IS NULL":                       1,
		"SELECT count(*) FROM events WHERE eventname = 'AlsoKept' AND requestparameters = '\"a string, not an object\"'":                       1,
		"SELECT count(*) FROM events WHERE eventname = 'AlsoKept' AND day = 'unknown/unknown/unknown' AND resources[1].arn = 'arn:aws:s3:::b'": 1,
		"SELECT count(*) FROM events WHERE eventname = 'Escaping' AND account = '.._.._.._x_y' AND region = 'unknown'":                         1,
	} {
		if n := count(t, db, sql); n != want {
			t.Errorf("%s: %d", sql, n)
		}
	}
	// The unreadable object is tried again, and only it.
	again, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{})
	if err != nil || again.Objects != 0 || again.Held != 1 || len(again.Unreadable) != 1 {
		t.Errorf("second run: %v, indexed %d, held %d, unreadable %v", err, again.Objects, again.Held, again.Unreadable)
	}
}

// monthFolders counts the Parquet files of each month folder.
func monthFolders(t *testing.T, dir string) map[string]int {
	out := map[string]int{}
	filepath.WalkDir(filepath.Join(dir, "events"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".parquet") {
			out[filepath.Dir(path)]++
		}
		return nil
	})
	return out
}

// TestCompactionIsCrashSafe: small batches leave many files per month; the
// build merges them, and a merge cut after it was recorded, or before, loses
// and doubles nothing.
func TestCompactionIsCrashSafe(t *testing.T) {
	root := dataset(t, "sans504-s3-ransomware-lab")
	ref := computeReference(t, root)
	dir := t.TempDir()
	// Many batches, merged only later by hand.
	res, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{BatchEvents: 1000, MergeAbove: 1000})
	if err != nil || res.Merged != 0 {
		t.Fatal(err, res.Merged)
	}
	var crowded []string
	for folder, n := range monthFolders(t, dir) {
		if n > mergeAbove {
			rel, _ := filepath.Rel(filepath.Join(dir, "events"), folder)
			crowded = append(crowded, filepath.ToSlash(rel))
		}
	}
	sort.Strings(crowded)
	if len(crowded) < 2 {
		t.Fatalf("only %d crowded month folders", len(crowded))
	}
	// A merge recorded, then a crash before its files moved; another written
	// but never recorded.
	m, err := openManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := sql.Open("duckdb", "")
	c, ok, err := m.merge(context.Background(), db, crowded[0], mergeAbove)
	if err != nil || !ok || m.recordCompaction(c) != nil {
		t.Fatal(err, ok)
	}
	m.next++
	if _, ok, err := m.merge(context.Background(), db, crowded[1], mergeAbove); err != nil || !ok {
		t.Fatal(err, ok)
	}
	db.Close()
	m.close()

	again, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{})
	if err != nil || again.Objects != 0 {
		t.Fatalf("rerun: %v, indexed %d", err, again.Objects)
	}
	agree(t, dir, ref)
	if n := monthFolders(t, dir)[filepath.Join(dir, "events", filepath.FromSlash(crowded[0]))]; n != 1 {
		t.Errorf("the recorded merge left %d files", n)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "events", "*", "*", "*", "*", "*.tmp"))
	if len(leftovers) != 0 {
		t.Errorf("unrecorded merges left %v", leftovers)
	}
	// The rerun read nothing new, and still merged what the crash left crowded.
	for folder, n := range monthFolders(t, dir) {
		if n > mergeAbove {
			t.Errorf("%s holds %d files after a rerun that read nothing new", folder, n)
		}
	}
	// A build that touches the crowded folders merges them.
	fresh := t.TempDir()
	res, err = Build(context.Background(), store.Dir{Root: root}, fresh, Options{BatchEvents: 1000})
	if err != nil || res.Merged == 0 {
		t.Fatalf("%v, merged %d", err, res.Merged)
	}
	for folder, n := range monthFolders(t, fresh) {
		if n > mergeAbove {
			t.Errorf("%s holds %d files after the build", folder, n)
		}
	}
	agree(t, fresh, ref)
}

// TestScopedTableAgreesWithTheFiles: a table narrowed to accounts, regions
// and a span of eventTime holds what a plain reading of the files says those
// hold, reads none of the folders outside it, and a scope no folder matches
// is a table with no rows.
func TestScopedTableAgreesWithTheFiles(t *testing.T) {
	root := dataset(t, "stratus-red-team-detonation-logs") // 35 accounts, 34 regions, five months
	dir := t.TempDir()
	if _, err := Build(context.Background(), store.Dir{Root: root}, dir, Options{}); err != nil {
		t.Fatal(err)
	}
	ref := computeReference(t, root)
	// The busiest account and region, and a day between the first and the last.
	busiest := func(part int) string {
		n := map[string]int{}
		for k, c := range ref.byPartition {
			n[strings.Split(k, "/")[part]] += c
		}
		best := ""
		for v, c := range n {
			if c > n[best] || c == n[best] && v < best {
				best = v
			}
		}
		return best
	}
	acct, region := busiest(0), busiest(1)
	var days []string
	for k := range ref.byPartition {
		if p := strings.SplitN(k, "/", 3); p[2] != "unknown/unknown/unknown" && !slices.Contains(days, p[2]) {
			days = append(days, p[2])
		}
	}
	sort.Strings(days)
	if len(days) < 3 {
		t.Fatalf("the set spans %d days; the test needs three", len(days))
	}
	day := func(s string) time.Time { d, _ := time.Parse("2006/01/02", s); return d }
	mid := day(days[len(days)/2])
	want := func(s query.Scope) (n int) {
		for k, c := range ref.byPartition {
			p := strings.SplitN(k, "/", 3)
			switch {
			case len(s.Accounts) > 0 && !slices.Contains(s.Accounts, p[0]), len(s.Regions) > 0 && !slices.Contains(s.Regions, p[1]):
			case (!s.Since.IsZero() || !s.Until.IsZero()) && p[2] == "unknown/unknown/unknown":
			case !s.Since.IsZero() && day(p[2]).Before(s.Since), !s.Until.IsZero() && !day(p[2]).Before(s.Until):
			default:
				n += c
			}
		}
		return n
	}
	// An empty month folder and a stray file in the account's folders read as nothing.
	empty := filepath.Join(dir, "events", "account="+acct, "region="+region, "2099", "01")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "events", "account="+acct, "region="+region, "notes.txt"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(dir, "events", "account="+acct, "region="+region, mid.Format("2006"), mid.Format("01"), "sub"), 0o755)
	scopes := map[string]query.Scope{
		"an account":                  {Accounts: []string{acct}},
		"a region":                    {Regions: []string{region}},
		"two days":                    {Since: mid, Until: mid.AddDate(0, 0, 2)},
		"an account from a day on":    {Accounts: []string{acct, acct}, Since: mid},
		"a region before a day":       {Regions: []string{region}, Until: mid},
		"an account that has no logs": {Accounts: []string{"000000000000"}},
		"a span before the logs":      {Until: day(days[0])},
	}
	for name, s := range scopes {
		db, err := query.Open(context.Background(), dir, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, w := count(t, db, "SELECT count(*) FROM events"), want(s); got != w {
			t.Errorf("%s: %d events, the files say %d", name, got, w)
		}
		if name == "an account that has no logs" && count(t, db, "SELECT count(*) FROM errors") != 0 { // the views work on no rows
			t.Errorf("%s: errors found", name)
		}
		db.Close()
	}
	if want(scopes["an account"]) == ref.events || want(scopes["two days"]) == 0 || want(scopes["an account that has no logs"]) != 0 {
		t.Fatalf("the scopes do not narrow the set: %d of %d, %d", want(scopes["an account"]), ref.events, want(scopes["two days"]))
	}
	// To the second: --since takes an event at that time, --until leaves it.
	whole, err := query.Open(context.Background(), dir, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprint(queryAll(t, whole, "SELECT min(eventtime) FROM events WHERE day = '"+mid.Format("2006/01/02")+"'")[0][0])
	t0, err := time.Parse(time.RFC3339, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		scope query.Scope
		where string
	}{
		{query.Scope{Since: t0, Until: t0.Add(time.Second)}, "eventtime = '" + at + "'"},
		{query.Scope{Until: t0}, "eventtime < '" + at + "'"},
		{query.Scope{Since: t0}, "eventtime >= '" + at + "'"},
	} {
		db, err := query.Open(context.Background(), dir, c.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got, w := count(t, db, "SELECT count(*) FROM events"), count(t, whole, "SELECT count(*) FROM events WHERE "+c.where); got != w || w == 0 {
			t.Errorf("%+v: %d events, %d where %s", c.scope, got, w, c.where)
		}
		db.Close()
	}
	whole.Close()

	// Another account's files are not read: broken, they fail the whole
	// table and not the account's.
	err = filepath.WalkDir(filepath.Join(dir, "events"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, "account="+acct+string(filepath.Separator)) {
			err = os.WriteFile(p, []byte("not parquet"), 0o644)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := query.Open(context.Background(), dir, scopes["an account"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, w := count(t, db, "SELECT count(*) FROM events"), want(scopes["an account"]); got != w {
		t.Errorf("beside broken files of other accounts: %d events, the files say %d", got, w)
	}
	all, err := query.Open(context.Background(), dir, query.Scope{})
	if err == nil {
		defer all.Close()
		_, err = all.Query(context.Background(), "SELECT count(*) FROM events")
	}
	if err == nil {
		t.Error("the whole table reads the broken files without an error: the check above proves nothing")
	}
}
