package search

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/cloudtrail"
	"github.com/trailkeeper/trailkeeper/internal/cloudtrail/fixture"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

func TestRecordsFindsEachRecord(t *testing.T) {
	cases := map[string]int{
		`{"Records":[{"a":1},{"b":"}{[\"]"}]}`:                   2,
		` { "Other" : [1,{"x":"]"}], "Records" : [ { } , {} ] }`: 2,
		`[{"eventName":"A"},{"eventName":"B"},{"c":[{}]}]`:       3,
		`{"Records":[]}`: 0,
	}
	for doc, want := range cases {
		n := 0
		err := records([]byte(doc), func(rec []byte) error {
			if !json.Valid(rec) {
				t.Fatalf("%s: record %q is not JSON", doc, rec)
			}
			n++
			return nil
		})
		if err != nil || n != want {
			t.Fatalf("%s: %d records, %v", doc, n, err)
		}
	}
	for _, bad := range []string{``, `{}`, `{"Records":{}}`, `{"Records":[{"a":1}`, `{"Records":[{"a":"1}]}`, `"x"`, `{"Records":[{}x]}`} {
		if err := records([]byte(bad), func([]byte) error { return nil }); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzRecords(f *testing.F) {
	f.Add([]byte(`{"Records":[{"eventName":"A","x":"\"}"}]}`))
	f.Add([]byte(`[{"a":[1,2,{"b":null}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		records(data, func(rec []byte) error {
			if len(rec) < 2 || rec[0] != '{' || rec[len(rec)-1] != '}' {
				t.Fatalf("record %q does not span an object", rec)
			}
			return nil
		})
	})
}

// A filter's byte shortcut must never drop a record that matches: values that
// JSON may escape get no shortcut.
func TestNeedlesOnlyForPlainValues(t *testing.T) {
	if n := (&Filter{Principal: `a"b`}).needles(); len(n) != 0 {
		t.Fatalf("%q", n)
	}
	if n := (&Filter{Resource: "bucket<1>"}).needles(); len(n) != 0 {
		t.Fatalf("%q", n)
	}
	rec := []byte(`{"eventName":"GetObject","requestParameters":{"key":"caf\u00e9"}}`)
	var e Event
	json.Unmarshal(rec, &e)
	if !(&Filter{Resource: "café"}).match(&e, "", "") {
		t.Fatal("an escaped request parameter was not found")
	}
}

// Files are pruned by the minute in their name: a file delivered before
// --since cannot hold a later event, and one delivered more than the slack
// after --until is not read; the events themselves decide at the edges.
func TestTimeRangeByDeliveryAndEventTime(t *testing.T) {
	dir := store.Dir{Root: t.TempDir()}
	base := time.Date(2025, 9, 10, 12, 0, 0, 0, time.UTC)
	for i := range 6 { // a file every 10 minutes, its events 0-9 minutes before delivery
		delivered := base.Add(time.Duration(i) * 10 * time.Minute)
		var recs []string
		for j := range 10 {
			at := delivered.Add(-time.Duration(j) * time.Minute)
			recs = append(recs, fmt.Sprintf(`{"eventTime":"%s","eventName":"E%d","eventID":"%d-%d","awsRegion":"us-east-1"}`, at.Format(time.RFC3339), i, i, j))
		}
		key := cloudtrail.LogKey("", "111111111111", "us-east-1", delivered, fmt.Sprintf("%016d", i))
		dir.Put(ctx, key, fixture.Gzip([]byte(`{"Records":[`+strings.Join(recs, ",")+`]}`)), nil)
	}
	since, until := base.Add(15*time.Minute), base.Add(31*time.Minute)
	var got []time.Time
	stats, err := Run(ctx, dir, Options{Filter: Filter{Since: since, Until: until}}, func(m Match) error {
		got = append(got, m.Event.Time())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Events at 12:15 ... 12:30, one per minute, some in several files' ranges: 16 minutes,
	// each minute held by one or two files.
	want := 0
	for i := range 6 {
		for j := range 10 {
			at := base.Add(time.Duration(i)*10*time.Minute - time.Duration(j)*time.Minute)
			if !at.Before(since) && at.Before(until) {
				want++
			}
		}
	}
	for _, at := range got {
		if at.Before(since) || !at.Before(until) {
			t.Fatalf("event at %s outside [%s, %s)", at, since, until)
		}
	}
	if len(got) != want || stats.ObjectsListed != 4 { // 12:20, 12:30, and 12:40, 12:50 within the slack
		t.Fatalf("%d events (want %d) from %d objects listed", len(got), want, stats.ObjectsListed)
	}
}

// In the archive layout, a JSON file whose name CloudTrail would not write is
// still searched (account and region from its folder), anything else is named
// in a warning; a record with megabytes of request parameters is found whole.
func TestOddNamesAndLargeRecords(t *testing.T) {
	dir := store.Dir{Root: t.TempDir()}
	folder := "AWSLogs/111111111111/CloudTrail/eu-west-1/2025/09/10/"
	big := strings.Repeat("x", 5<<20)
	dir.Put(ctx, folder+"exported.json", []byte(`{"Records":[{"eventName":"PutObject","eventTime":"2025-09-10T01:00:00Z","requestParameters":{"key":"`+big+`needle"}}]}`), nil)
	dir.Put(ctx, folder+"notes.txt", []byte("hello"), nil)
	var got []Match
	stats, err := Run(ctx, dir, Options{Filter: Filter{Resource: "needle", Regions: []string{"eu-west-1"}}, Decode: true}, func(m Match) error {
		got = append(got, m)
		return nil
	})
	if err != nil || len(got) != 1 || got[0].Account != "111111111111" || got[0].Region != "eu-west-1" || len(got[0].Raw) < 5<<20 {
		t.Fatalf("%v, %d matches", err, len(got))
	}
	if len(stats.Warnings) != 1 || !strings.HasPrefix(stats.Warnings[0], folder+"notes.txt: ") {
		t.Fatalf("warnings %q", stats.Warnings)
	}
}
