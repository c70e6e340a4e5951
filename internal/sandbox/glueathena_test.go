package sandbox

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// TestGlueAndAthenaWithTheCLI: the catalog and the workgroups answer the AWS
// CLI as AWS does, errors included, and survive nothing they should not.
func TestGlueAndAthenaWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	c.ok(archiveAcct, "glue", "create-database", "--database-input", "Name=trailkeeper")
	if _, err := c.run(archiveAcct, "glue", "create-database", "--database-input", "Name=trailkeeper"); err == nil || !strings.Contains(err.Error(), "AlreadyExistsException") {
		t.Errorf("a second create-database: %v", err)
	}
	if _, err := c.run(archiveAcct, "glue", "create-database", "--database-input", "Name=Trail-Keeper"); err == nil || !strings.Contains(err.Error(), "InvalidInputException") {
		t.Errorf("a database name Athena cannot read: %v", err)
	}
	table := c.file("table.json", `{"Name":"events","TableType":"EXTERNAL_TABLE","Parameters":{"projection.enabled":"true"},
"PartitionKeys":[{"Name":"day","Type":"string"}],"StorageDescriptor":{"Columns":[{"Name":"eventname","Type":"string"}],"Location":"s3://archive/AWSLogs/"}}`)
	c.ok(archiveAcct, "glue", "create-table", "--database-name", "trailkeeper", "--table-input", table)
	if got := c.ok(archiveAcct, "glue", "get-table", "--database-name", "trailkeeper", "--name", "events", "--query", "Table.Parameters.\"projection.enabled\"", "--output", "text"); got != "true" {
		t.Errorf("get-table: %q", got)
	}
	if _, err := c.run(archiveAcct, "glue", "get-table", "--database-name", "trailkeeper", "--name", "nothing"); err == nil || !strings.Contains(err.Error(), "EntityNotFoundException") {
		t.Errorf("a missing table: %v", err)
	}
	if _, err := c.run(otherAcct, "glue", "get-table", "--database-name", "trailkeeper", "--name", "events"); err == nil || !strings.Contains(err.Error(), "EntityNotFoundException") {
		t.Errorf("another account's catalog: %v", err)
	}
	c.ok(archiveAcct, "athena", "create-work-group", "--name", "trailkeeper", "--configuration", "ResultConfiguration={OutputLocation=s3://results/athena/}")
	if got := c.ok(archiveAcct, "athena", "get-work-group", "--work-group", "trailkeeper", "--query", "WorkGroup.Configuration.ResultConfiguration.OutputLocation", "--output", "text"); got != "s3://results/athena/" {
		t.Errorf("get-work-group: %q", got)
	}
	if _, err := c.run(archiveAcct, "athena", "get-work-group", "--work-group", "nothing"); err == nil || !strings.Contains(err.Error(), "InvalidRequestException") {
		t.Errorf("a missing workgroup: %v", err)
	}
	id := c.ok(archiveAcct, "athena", "create-named-query", "--name", "root", "--database", "trailkeeper", "--query-string", "SELECT 1", "--work-group", "trailkeeper", "--query", "NamedQueryId", "--output", "text")
	if got := c.ok(archiveAcct, "athena", "batch-get-named-query", "--named-query-ids", id, "--query", "NamedQueries[0].QueryString", "--output", "text"); got != "SELECT 1" {
		t.Errorf("batch-get-named-query: %q", got)
	}
}

// TestAthenaQueriesWithTheCLI: a query started with the AWS CLI reads what
// the table's partition projection names and nothing else (another
// account's folder, a day before the range, a hidden file), through the
// JSON SerDe (keys in any case, an object kept as its text in a string
// column); its answer pages with NextToken, its CSV is in the output
// location, and the errors are Athena's.
func TestAthenaQueriesWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	for _, b := range []string{"archive", "results"} {
		c.ok(archiveAcct, "s3api", "create-bucket", "--bucket", b, "--create-bucket-configuration", "LocationConstraint="+region)
	}
	today := time.Now().UTC().Format("2006/01/02")
	record := func(name string, n int) string {
		return fmt.Sprintf(`{"eventName":"%s","USERIDENTITY":{"Type":"IAMUser","arn":"arn:aws:iam::%s:user/u%d"},"requestParameters":{"bucketName":"b%d"},"resources":[{"ARN":"arn:aws:s3:::b%d"}]}`,
			name, sourceAcct, n, n, n)
	}
	sizes := int64(0)
	put := func(key string, counted bool, records ...string) {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(`{"Records":[` + strings.Join(records, ",") + `]}`))
		zw.Close()
		os.WriteFile(filepath.Join(c.dir, "log.gz"), buf.Bytes(), 0o600)
		c.ok(archiveAcct, "s3api", "put-object", "--bucket", "archive", "--key", key, "--body", filepath.Join(c.dir, "log.gz"))
		if counted {
			sizes += int64(buf.Len())
		}
	}
	folder := func(acct, day string) string { return "AWSLogs/" + acct + "/CloudTrail/" + region + "/" + day + "/" }
	put(folder(sourceAcct, today)+"a.json.gz", true, record("ListBuckets", 1), record("GetObject", 2), record("ListBuckets", 3))
	put(folder(sourceAcct, today)+"b.json.gz", true, record("ListBuckets", 4))
	put(folder(otherAcct, today)+"c.json.gz", false, record("ListBuckets", 5))         // not a projected account
	put(folder(sourceAcct, "2019/12/31")+"d.json.gz", false, record("ListBuckets", 6)) // before the range
	put(folder(sourceAcct, today)+"_e.json.gz", false, record("ListBuckets", 7))       // hidden
	c.ok(archiveAcct, "glue", "create-database", "--database-input", "Name=trail")
	c.ok(archiveAcct, "glue", "create-table", "--database-name", "trail", "--table-input", c.file("events.json", `{"Name":"events","TableType":"EXTERNAL_TABLE",
"Parameters":{"projection.enabled":"true","projection.account.type":"enum","projection.account.values":"`+sourceAcct+`","projection.region.type":"enum","projection.region.values":"`+region+`",
"projection.day.type":"date","projection.day.format":"yyyy/MM/dd","projection.day.range":"2020/01/01,NOW","projection.day.interval":"1","projection.day.interval.unit":"DAYS",
"storage.location.template":"s3://archive/AWSLogs/${account}/CloudTrail/${region}/${day}"},
"PartitionKeys":[{"Name":"account","Type":"string"},{"Name":"region","Type":"string"},{"Name":"day","Type":"string"}],
"StorageDescriptor":{"Columns":[{"Name":"eventname","Type":"string"},{"Name":"useridentity","Type":"struct<type:string,arn:string>"},
{"Name":"requestparameters","Type":"string"},{"Name":"resources","Type":"array<struct<arn:string>>"}],"Location":"s3://archive/AWSLogs/",
"InputFormat":"com.amazon.emr.cloudtrail.CloudTrailInputFormat","SerdeInfo":{"SerializationLibrary":"org.apache.hive.hcatalog.data.JsonSerDe"}}}`))
	c.ok(archiveAcct, "athena", "create-work-group", "--name", "wg", "--configuration", "ResultConfiguration={OutputLocation=s3://results/out/}")

	start := func(sql string, extra ...string) string {
		return c.ok(archiveAcct, append([]string{"athena", "start-query-execution", "--query-string", sql, "--query-execution-context", "Database=trail",
			"--query", "QueryExecutionId", "--output", "text"}, extra...)...)
	}
	wait := func(id string) map[string]any {
		var q map[string]any
		testenv.Await(t, "query "+id, func() bool {
			var out struct{ QueryExecution map[string]any }
			json.Unmarshal([]byte(c.ok(archiveAcct, "athena", "get-query-execution", "--query-execution-id", id)), &out)
			q = out.QueryExecution
			state := q["Status"].(map[string]any)["State"]
			return state != "QUEUED" && state != "RUNNING"
		})
		return q
	}
	id := start("SELECT eventname, useridentity.arn AS who, requestparameters, resources[1].arn AS res, account, day FROM trail.events ORDER BY who", "--work-group", "wg")
	q := wait(id)
	if st := q["Status"].(map[string]any); st["State"] != "SUCCEEDED" {
		t.Fatalf("query: %v", st)
	}
	if got := int64(q["Statistics"].(map[string]any)["DataScannedInBytes"].(float64)); got != sizes {
		t.Errorf("scanned %d bytes, want %d (the two projected files)", got, sizes)
	}
	// --page-size 2 makes the CLI page with NextToken: the header, then 4 rows.
	var res struct {
		ResultSet struct {
			Rows []struct {
				Data []struct{ VarCharValue *string }
			}
		}
	}
	json.Unmarshal([]byte(c.ok(archiveAcct, "athena", "get-query-results", "--query-execution-id", id, "--page-size", "2")), &res)
	var lines []string
	for _, r := range res.ResultSet.Rows {
		var cells []string
		for _, d := range r.Data {
			cells = append(cells, aws.ToString(d.VarCharValue))
		}
		lines = append(lines, strings.Join(cells, "|"))
	}
	want := []string{"eventname|who|requestparameters|res|account|day"}
	for i, name := range []string{"ListBuckets", "GetObject", "ListBuckets", "ListBuckets"} {
		n := i + 1
		want = append(want, fmt.Sprintf(`%s|arn:aws:iam::%s:user/u%d|{"bucketName":"b%d"}|arn:aws:s3:::b%d|%s|%s`, name, sourceAcct, n, n, n, sourceAcct, today))
	}
	if !slices.Equal(lines, want) {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if csv := c.ok(archiveAcct, "s3", "cp", "s3://results/out/"+id+".csv", "-"); !strings.HasPrefix(csv, `"eventname","who","requestparameters","res","account","day"`) || strings.Count(csv, "\n") != 4 {
		t.Errorf("the CSV in the output location:\n%s", csv)
	}

	// Athena's errors.
	if _, err := c.run(archiveAcct, "athena", "start-query-execution", "--query-string", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "No output location provided") {
		t.Errorf("no output location: %v", err)
	}
	if _, err := c.run(archiveAcct, "athena", "get-query-results", "--query-execution-id", "nothing"); err == nil || !strings.Contains(err.Error(), "InvalidRequestException") {
		t.Errorf("an unknown query: %v", err)
	}
	for sql, reason := range map[string]string{"SELECT nothing FROM trail.nowhere": "nowhere", "DROP TABLE trail.events": "SELECT statements only"} {
		q := wait(start(sql, "--work-group", "wg"))
		st := q["Status"].(map[string]any)
		if st["State"] != "FAILED" || !strings.Contains(st["StateChangeReason"].(string), reason) || st["AthenaError"].(map[string]any)["ErrorCategory"] != 2.0 {
			t.Errorf("%s: %v", sql, st)
		}
		if _, err := c.run(archiveAcct, "athena", "get-query-results", "--query-execution-id", q["QueryExecutionId"].(string)); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("results of a failed query: %v", err)
		}
	}
	// A file in a projected folder that is not a CloudTrail log fails the query, naming it.
	os.WriteFile(filepath.Join(c.dir, "junk.gz"), []byte{0x1f, 0x8b, 8, 0, 0, 0}, 0o600)
	c.ok(archiveAcct, "s3api", "put-object", "--bucket", "archive", "--key", folder(sourceAcct, today)+"junk.json.gz", "--body", filepath.Join(c.dir, "junk.gz"))
	q = wait(start("SELECT count(*) FROM events", "--work-group", "wg"))
	if st := q["Status"].(map[string]any); st["State"] != "FAILED" || !strings.Contains(st["StateChangeReason"].(string), "HIVE_CURSOR_ERROR: s3://archive/"+folder(sourceAcct, today)+"junk.json.gz") {
		t.Errorf("a truncated gzip file: %v", st)
	}
	q = wait(start("SELECT count(*) FROM events", "--work-group", "wg", "--query-execution-context", "Database=nothing"))
	if st := q["Status"].(map[string]any); st["State"] != "FAILED" || !strings.Contains(st["StateChangeReason"].(string), "SCHEMA_NOT_FOUND") {
		t.Errorf("an unknown database: %v", st)
	}
}
