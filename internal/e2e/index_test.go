package e2e

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/world"
)

// TestIndexThenQueryTheArchive: index reads the config's archive in S3 into
// the user's cache, query answers from it what search answers from the
// archive, and a second index reads nothing.
func TestIndexThenQueryTheArchive(t *testing.T) {
	e := archived(t, 3, acctA, acctB)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out, errOut, code := e.run("index")
	if code != 0 || !strings.Contains(out, "Indexed ") {
		t.Fatalf("index: exit %d\n%s%s", code, out, errOut)
	}
	want, _, code := e.run("search", "--count", "--no-index", "--event-name", "ListBuckets")
	if code != 0 {
		t.Fatalf("search --count: exit %d", code)
	}
	// search --count answers from the index when it holds every object of the range.
	fromIndex, errOut, code := e.run("search", "--count", "--event-name", "ListBuckets", "--account", acctA)
	scanned, _, _ := e.run("search", "--count", "--no-index", "--event-name", "ListBuckets", "--account", acctA)
	if code != 0 || fromIndex != scanned || !strings.Contains(errOut, "from the index") {
		t.Errorf("search --count from the index: %q (exit %d, %s), from the files %q", fromIndex, code, errOut, scanned)
	}
	// And over a span, which the index's table is narrowed to: the events
	// are all of the last minutes.
	for span, want := range map[string]string{"--since=2d": scanned, "--until=1h": "0\n"} {
		fromIndex, errOut, code = e.run("search", "--count", "--event-name", "ListBuckets", "--account", acctA, span)
		files, _, _ := e.run("search", "--count", "--no-index", "--event-name", "ListBuckets", "--account", acctA, span)
		if code != 0 || fromIndex != files || files != want || !strings.Contains(errOut, "from the index") {
			t.Errorf("search --count %s from the index: %q (exit %d, %s), from the files %q, want %q", span, fromIndex, code, errOut, files, want)
		}
	}
	got, errOut, code := e.run("query", "-o", "csv", "SELECT count(*) AS n FROM events WHERE eventname = 'ListBuckets'")
	if code != 0 || strings.TrimSpace(strings.TrimPrefix(got, "n\n")) != strings.TrimSpace(want) || strings.TrimSpace(want) == "0" {
		t.Fatalf("query says %q (exit %d, %s), search says %q", got, code, errOut, want)
	}
	byAccount, _, _ := e.run("query", "SELECT account, count(*) AS n FROM events GROUP BY ALL ORDER BY account")
	if !strings.Contains(byAccount, acctA) || !strings.Contains(byAccount, acctB) {
		t.Errorf("events by account:\n%s", byAccount)
	}
	// A new log file the index does not hold yet: search reads the files.
	e.deliveries(acctA, 1)
	fallback, errOut, _ := e.run("search", "--count", "--event-name", "ListBuckets")
	files, _, _ := e.run("search", "--count", "--no-index", "--event-name", "ListBuckets")
	if strings.Contains(errOut, "from the index") || fallback != files || fallback == want {
		t.Errorf("with a new object the index lacks: %q (%s), the files say %q, before %q", fallback, errOut, files, want)
	}
	again, _, code := e.run("index", "-o", "json")
	if code != 0 || !strings.Contains(again, `"objectsIndexed": 1,`) {
		t.Errorf("a second index did not read just the new object (exit %d):\n%s", code, again)
	}
	if _, errOut, code := e.run("query", "SELECT nothing FROM nowhere"); code != 2 || !strings.Contains(errOut, "nowhere") {
		t.Errorf("bad SQL: exit %d\n%s", code, errOut)
	}
	// Narrowed to an account and the last two days, the table holds what the
	// whole one holds of them.
	narrowed, errOut, code := e.run("query", "-o", "csv", "--account", acctA, "--since", "2d", "SELECT count(*) AS n FROM events")
	whole, _, _ := e.run("query", "-o", "csv", "SELECT count(*) AS n FROM events WHERE account = '"+acctA+"' AND CAST(eventtime AS TIMESTAMPTZ) >= now() - INTERVAL 2 DAY")
	if code != 0 || narrowed != whole || narrowed == "n\n0\n" {
		t.Errorf("query --account --since: %q (exit %d, %s), the whole table says %q", narrowed, code, errOut, whole)
	}
	if _, errOut, code := e.run("query", "--since", "last tuesday", "SELECT 1"); code != 2 || !strings.Contains(errOut, "--since") {
		t.Errorf("a --since that is not a time: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := e.run("query", "--athena", "--account", acctA, "SELECT 1"); code != 2 || !strings.Contains(errOut, "narrow the statement's WHERE") {
		t.Errorf("--athena with --account: exit %d\n%s", code, errOut)
	}
	// The named queries run here as they would in Athena, on the day values
	// both have: today's events are in the last 7 days.
	recent, errOut, code := e.run("query", "-o", "csv", "SELECT count(*) AS n FROM events WHERE day >= replace(CAST(CAST(current_date - INTERVAL '7' DAY AS date) AS varchar), '-', '/')")
	if code != 0 || strings.TrimSpace(strings.TrimPrefix(recent, "n\n")) == "0" {
		t.Errorf("events of the last 7 days: exit %d %q %s", code, recent, errOut)
	}
	for _, name := range []string{"errors-by-service", "root-activity", "console-logins-without-mfa", "access-denied-by-principal"} {
		if out, errOut, code := e.run("query", "--named", name); code != 0 {
			t.Errorf("query --named %s: exit %d\n%s%s", name, code, out, errOut)
		}
	}
	// Published to S3 for Athena: every Parquet file once, in the index's layout.
	arch := world.S3(e.url, archiveAcct, region)
	must(arch.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("published-index"), CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	out, errOut, code = e.run("index", "--to", "s3://published-index/trailkeeper")
	if code != 0 || !strings.Contains(out, "Published ") {
		t.Fatalf("index --to s3://: exit %d\n%s%s", code, out, errOut)
	}
	list := must(arch.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("published-index")})).OK(t)
	if len(list.Contents) == 0 || !strings.HasPrefix(aws.ToString(list.Contents[0].Key), "trailkeeper/events/account=") {
		t.Fatalf("published: %d objects", len(list.Contents))
	}
	if out, _, _ := e.run("index", "--to", "s3://published-index/trailkeeper", "-o", "json"); !strings.Contains(out, `"filesUploaded": 0`) {
		t.Errorf("a second publish uploaded again:\n%s", out)
	}
	ddl, errOut, code := e.run("athena", "--parquet", "s3://published-index/trailkeeper")
	if code != 0 || !strings.Contains(ddl, "'projection.account.values'='"+acctA+","+acctB+"'") || !strings.Contains(ddl, "CREATE EXTERNAL TABLE IF NOT EXISTS trailkeeper_index.events") ||
		!strings.Contains(ddl, "-- named query root-activity") {
		t.Errorf("athena: exit %d\n%s%s", code, ddl, errOut)
	}
}
