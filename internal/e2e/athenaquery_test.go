package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/athena"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// TestQueryOnAthenaAgreesWithTheIndex: query --athena runs the statement in
// the workgroup apply made, over the Glue table of the log files, and gives
// the same rows as query over the index, for every named query and for
// ad-hoc statements that read structs, JSON text and the partitions. The
// archive holds the sandbox's own deliveries and real CloudTrail events
// (Invictus IR's dataset) replicated from a source, moved to today so that
// the named queries' day ranges hold them.
func TestQueryOnAthenaAgreesWithTheIndex(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctB})
	e.writeConfig([]string{acctA, acctB}, "athena:\n  results: s3://query-results-999999999999/athena/\n")
	e.apply()
	arch := world.S3(e.url, archiveAcct, region)
	must(arch.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("query-results-999999999999"),
		CreateBucketConfiguration: &s3types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	e.deliveries(acctA, 2)
	e.deliveries(acctB, 1)
	events := replayToday(t, e, acctA, "us-east-1", testenv.RealCloudTrail(t, "invictus-ir-aws-dataset"))

	index := t.TempDir()
	if out, errOut, code := e.run("index", "--to", index); code != 0 {
		t.Fatalf("index: exit %d\n%s%s", code, out, errOut)
	}
	type statement struct{ name, sql string }
	var statements []statement
	for _, q := range athena.Queries() {
		statements = append(statements, statement{q.Name, q.SQL})
	}
	statements = append(statements,
		statement{"by partition", "SELECT account, region, day, count(*) AS n FROM events GROUP BY account, region, day ORDER BY account, region, day"},
		statement{"struct fields", "SELECT useridentity.type AS who, useridentity.sessioncontext.sessionissuer.username AS issuer, eventsource, count(*) AS n " +
			"FROM events WHERE account = '" + acctA + "' GROUP BY 1, 2, 3 ORDER BY n DESC, who, issuer, eventsource LIMIT 25"},
		statement{"JSON text and a view", "SELECT eventname, errorcode, count(*) AS n FROM errors WHERE requestparameters LIKE '%bucketName%' " +
			"OR resources IS NOT NULL GROUP BY eventname, errorcode ORDER BY n DESC, eventname, errorcode"},
	)
	nonEmpty := 0
	for _, st := range statements {
		local, errOut, code := e.run("query", "--index", index, "-o", "csv", st.sql)
		if code != 0 {
			t.Fatalf("%s over the index: exit %d\n%s", st.name, code, errOut)
		}
		remote, errOut, code := e.run("query", "--athena", "-o", "csv", st.sql)
		if code != 0 || !regexp.MustCompile(`Athena scanned [0-9.]+ [kMG]?B, about \$[0-9.]+ .* results s3://query-results-999999999999/athena/[0-9a-f-]+\.csv`).MatchString(errOut) {
			t.Fatalf("%s on Athena: exit %d\n%s%s", st.name, code, remote, errOut)
		}
		if header(local) != header(remote) || !slices.Equal(rows(local), rows(remote)) {
			t.Errorf("%s: Athena and the index disagree\nindex:\n%s\nathena:\n%s", st.name, local, remote)
		}
		if len(rows(local)) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < len(statements)-1 {
		t.Errorf("only %d of %d statements found rows: the comparison proves little", nonEmpty, len(statements))
	}
	if n, _, _ := e.run("query", "--athena", "-o", "csv", "SELECT count(*) AS n FROM events WHERE region = 'us-east-1'"); strings.TrimSpace(n) != "n\n"+strconv.Itoa(events) {
		t.Errorf("the real events on Athena: %q, want %d", n, events)
	}
	if out, errOut, code := e.run("query", "--athena", "--named", "root-activity"); code != 0 || !strings.Contains(out, "EVENTTIME") {
		t.Errorf("query --athena --named: exit %d\n%s%s", code, out, errOut)
	}
	// A statement Athena rejects is the user's: exit 2 with Athena's reason.
	if _, errOut, code := e.run("query", "--athena", "SELECT nothing FROM nowhere"); code != 2 || !strings.Contains(errOut, "nowhere") {
		t.Errorf("bad SQL on Athena: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := e.run("query", "--athena", "--index", index, "SELECT 1"); code != 2 || !strings.Contains(errOut, "--athena and --index both given") {
		t.Errorf("--athena with --index: exit %d\n%s", code, errOut)
	}
	e.writeConfig([]string{acctA, acctB}, "")
	if _, errOut, code := e.run("query", "--athena", "SELECT 1"); code != 2 || !strings.Contains(errOut, "no athena: section") {
		t.Errorf("--athena without an athena: section: exit %d\n%s", code, errOut)
	}
}

// replayToday writes the real log files of dir into the source's bucket as
// CloudTrail would have delivered them today (event times moved to today,
// the same time of day), lets replication copy them, and returns how many
// events they hold.
func replayToday(t *testing.T, e *env, account, logRegion, dir string) int {
	t.Helper()
	src := world.S3(e.url, account, region)
	today := time.Now().UTC().Format("2006-01-02")
	files, _ := filepath.Glob(filepath.Join(dir, "CloudTrail", "*.json"))
	if len(files) == 0 {
		t.Fatalf("no log files in %s", dir)
	}
	events := 0
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Records []map[string]any }
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range doc.Records {
			if at, ok := r["eventTime"].(string); ok && len(at) > 10 {
				r["eventTime"] = today + at[10:]
			}
		}
		events += len(doc.Records)
		raw, _ := json.Marshal(doc)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		key := "AWSLogs/" + account + "/CloudTrail/" + logRegion + "/" + strings.ReplaceAll(today, "-", "/") + "/" +
			account + "_CloudTrail_" + logRegion + "_" + strings.ReplaceAll(today, "-", "") + "T0000Z_replay" + strconv.Itoa(i) + ".json.gz"
		must(src.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("cm-members-cloudtrail-" + account), Key: aws.String(key), Body: bytes.NewReader(gz.Bytes())})).OK(t)
	}
	e.sb.WaitReplication(ctx)
	return events
}

func header(csv string) string {
	h, _, _ := strings.Cut(csv, "\n")
	return h
}

// rows are a CSV answer's lines after the header, sorted: the engines may
// order ties differently.
func rows(csv string) []string {
	lines := strings.Split(strings.TrimSpace(csv), "\n")[1:]
	slices.Sort(lines)
	return lines
}
