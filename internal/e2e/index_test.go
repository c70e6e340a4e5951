package e2e

import (
	"strings"
	"testing"
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
	want, _, code := e.run("search", "--count", "--event-name", "ListBuckets")
	if code != 0 {
		t.Fatalf("search --count: exit %d", code)
	}
	got, errOut, code := e.run("query", "-o", "csv", "SELECT count(*) AS n FROM events WHERE eventname = 'ListBuckets'")
	if code != 0 || strings.TrimSpace(strings.TrimPrefix(got, "n\n")) != strings.TrimSpace(want) || strings.TrimSpace(want) == "0" {
		t.Fatalf("query says %q (exit %d, %s), search says %q", got, code, errOut, want)
	}
	byAccount, _, _ := e.run("query", "SELECT account, count(*) AS n FROM events GROUP BY ALL ORDER BY account")
	if !strings.Contains(byAccount, acctA) || !strings.Contains(byAccount, acctB) {
		t.Errorf("events by account:\n%s", byAccount)
	}
	again, _, code := e.run("index", "-o", "json")
	if code != 0 || !strings.Contains(again, `"objectsIndexed": 0`) {
		t.Errorf("a second index read objects again (exit %d):\n%s", code, again)
	}
	if _, errOut, code := e.run("query", "SELECT nothing FROM nowhere"); code != 2 || !strings.Contains(errOut, "nowhere") {
		t.Errorf("bad SQL: exit %d\n%s", code, errOut)
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
	ddl, errOut, code := e.run("athena", "--parquet", "s3://published-index/trailkeeper")
	if code != 0 || !strings.Contains(ddl, "'projection.account.values'='"+acctA+","+acctB+"'") || !strings.Contains(ddl, "CREATE EXTERNAL TABLE IF NOT EXISTS trailkeeper_index.events") ||
		!strings.Contains(ddl, "-- named query root-activity") {
		t.Errorf("athena: exit %d\n%s%s", code, ddl, errOut)
	}
}
