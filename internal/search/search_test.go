package search

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

var ctx = context.Background()

// The reference: decode every record of every file with encoding/json into
// plain maps and filter in Go, written apart from the scanner it checks.
type refEvent struct {
	key, account, region string
	rec                  map[string]any
}

var layoutRE = regexp.MustCompile(`AWSLogs/(\d{12})/CloudTrail/([^/]+)/`)

func reference(t *testing.T, dir string) []refEvent {
	t.Helper()
	var out []refEvent
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !(strings.HasSuffix(p, ".json.gz") || strings.HasSuffix(p, ".json")) {
			return nil
		}
		data, _ := os.ReadFile(p)
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			data, _ = io.ReadAll(zr)
		}
		var recs []map[string]any
		var doc struct{ Records []map[string]any }
		if json.Unmarshal(data, &doc) == nil && doc.Records != nil {
			recs = doc.Records
		} else if err := json.Unmarshal(data, &recs); err != nil {
			return nil // not a log (LICENSE and such)
		}
		rel, _ := filepath.Rel(dir, p)
		key := filepath.ToSlash(rel)
		for _, r := range recs {
			e := refEvent{key: key, rec: r}
			if m := layoutRE.FindStringSubmatch(key); m != nil {
				e.account, e.region = m[1], m[2]
			} else {
				e.account, _ = r["recipientAccountId"].(string)
				e.region, _ = r["awsRegion"].(string)
			}
			out = append(out, e)
		}
		return nil
	})
	if len(out) == 0 {
		t.Fatalf("no events under %s", dir)
	}
	return out
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

func (e refEvent) matches(f Filter) bool {
	r := e.rec
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	if len(f.Accounts) > 0 && !in(f.Accounts, e.account) || len(f.Regions) > 0 && !in(f.Regions, e.region) ||
		len(f.EventNames) > 0 && !in(f.EventNames, str(r, "eventName")) ||
		f.EventSource != "" && str(r, "eventSource") != f.EventSource ||
		f.AccessKey != "" && str(r, "userIdentity", "accessKeyId") != f.AccessKey ||
		f.SourceIP != "" && str(r, "sourceIPAddress") != f.SourceIP ||
		f.AnyError && str(r, "errorCode") == "" || f.ErrorCode != "" && str(r, "errorCode") != f.ErrorCode {
		return false
	}
	if f.Principal != "" && !strings.Contains(str(r, "userIdentity", "arn"), f.Principal) && !strings.Contains(str(r, "userIdentity", "userName"), f.Principal) &&
		!strings.Contains(str(r, "userIdentity", "sessionContext", "sessionIssuer", "userName"), f.Principal) {
		return false
	}
	if f.Resource != "" {
		found := false
		if rs, ok := r["resources"].([]any); ok {
			for _, x := range rs {
				if m, ok := x.(map[string]any); ok && strings.Contains(str(m, "ARN"), f.Resource) {
					found = true
				}
			}
		}
		if rp, ok := r["requestParameters"]; ok && rp != nil && !found {
			found = containsString(rp, f.Resource)
		}
		if !found {
			return false
		}
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		t, err := time.Parse(time.RFC3339, str(r, "eventTime"))
		if err != nil || t.Before(f.Since) || !f.Until.IsZero() && !t.Before(f.Until) {
			return false
		}
	}
	return true
}

// id names an event for comparison: its object, its eventID and its time.
func refID(key string, rec map[string]any) string {
	return key + " " + str(rec, "eventID") + " " + str(rec, "eventTime") + " " + str(rec, "eventName")
}

func search(t *testing.T, dir string, f Filter) []string {
	t.Helper()
	var got []string
	_, err := Run(ctx, store.Dir{Root: dir}, Options{Filter: f, Decode: len(f.Regions) > 0}, func(m Match) error {
		var rec map[string]any
		if err := json.Unmarshal(m.Raw, &rec); err != nil {
			t.Fatalf("%s: raw record is not JSON: %v", m.Key, err)
		}
		got = append(got, refID(m.Key, rec))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// filters picks filters from the data itself: a common and a rare event name,
// an error code, a principal, an access key, an IP, a resource, time edges.
func filters(events []refEvent) map[string]Filter {
	count := map[string]int{}
	for _, e := range events {
		count[str(e.rec, "eventName")]++
	}
	common, rare := "", ""
	for n, c := range count {
		if common == "" || c > count[common] || c == count[common] && n < common {
			common = n
		}
		if rare == "" || c < count[rare] || c == count[rare] && n < rare {
			rare = n
		}
	}
	first := func(get func(e refEvent) string) string {
		var vals []string
		for _, e := range events {
			if v := get(e); v != "" {
				vals = append(vals, v)
			}
		}
		sort.Strings(vals)
		if len(vals) == 0 {
			return "none-in-this-set"
		}
		return vals[len(vals)/2]
	}
	errCode := first(func(e refEvent) string { return str(e.rec, "errorCode") })
	arn := first(func(e refEvent) string { return str(e.rec, "userIdentity", "arn") })
	principal := arn
	if i := strings.LastIndex(arn, "/"); i >= 0 {
		principal = arn[i:] // a substring: the role or user name part
	}
	key := first(func(e refEvent) string { return str(e.rec, "userIdentity", "accessKeyId") })
	ip := first(func(e refEvent) string { return str(e.rec, "sourceIPAddress") })
	source := first(func(e refEvent) string { return str(e.rec, "eventSource") })
	resource := first(func(e refEvent) string {
		if rs, ok := e.rec["resources"].([]any); ok && len(rs) > 0 {
			if m, ok := rs[0].(map[string]any); ok {
				a := str(m, "ARN")
				if i := strings.LastIndex(a, ":"); i >= 0 {
					return a[i+1:]
				}
			}
		}
		return ""
	})
	at, _ := time.Parse(time.RFC3339, first(func(e refEvent) string { return str(e.rec, "eventTime") }))
	minute := at.Truncate(time.Minute)
	return map[string]Filter{
		"common event":        {EventNames: []string{common}},
		"rare event":          {EventNames: []string{rare}},
		"two event names":     {EventNames: []string{rare, common}},
		"event source":        {EventSource: source},
		"any error":           {AnyError: true},
		"error code":          {ErrorCode: errCode},
		"principal":           {Principal: principal},
		"access key":          {AccessKey: key},
		"source IP":           {SourceIP: ip},
		"resource":            {Resource: resource},
		"account":             {Accounts: []string{events[0].account}},
		"region":              {Regions: []string{events[len(events)-1].region}},
		"one minute":          {Since: minute, Until: minute.Add(time.Minute)},
		"from a minute on":    {Since: minute.Add(time.Minute)},
		"until a minute":      {Until: minute},
		"combined":            {EventSource: source, AnyError: true, Since: minute.Add(-24 * time.Hour), Until: minute.Add(24 * time.Hour)},
		"nothing matches":     {EventNames: []string{"NoSuchEventAnywhere"}},
		"principal and error": {Principal: principal, ErrorCode: errCode},
	}
}

// TestEveryFilterAgreesWithTheReference runs on all four sets of real logs:
// every filter on the three small ones, and on the 3,872 files of the large
// one those that exercise different paths (the race detector makes each
// search of it take seconds).
func TestEveryFilterAgreesWithTheReference(t *testing.T) {
	large := "rare event|principal|one minute|combined"
	for _, set := range []string{"flaws2", "invictus-ir-aws-dataset", "stratus-red-team-detonation-logs", "sans504-s3-ransomware-lab"} {
		t.Run(set, func(t *testing.T) {
			dir := testenv.RealCloudTrail(t, set) // the licensed sets are in testdata; the others need ../shared
			events := reference(t, dir)
			for name, f := range filters(events) {
				if set == "sans504-s3-ransomware-lab" && !strings.Contains(large, name) {
					continue
				}
				t.Run(name, func(t *testing.T) {
					var want []string
					for _, e := range events {
						if e.matches(f) {
							want = append(want, refID(e.key, e.rec))
						}
					}
					sort.Strings(want)
					got := search(t, dir, f)
					t.Logf("%d events", len(want))
					if len(want) == 0 && strings.Contains("common event|rare event|event source|account|region|one minute", name) {
						t.Fatalf("the filter matches nothing in the reference: the case proves nothing")
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("filter %+v: got %d events, the reference %d\nfirst got:  %.300v\nfirst want: %.300v", f, len(got), len(want), got, want)
					}
				})
			}
		})
	}
}
