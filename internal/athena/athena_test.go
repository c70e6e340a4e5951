package athena

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
)

var update = flag.Bool("update", false, "rewrite the golden file")

func example() Options {
	return Options{Bucket: "aggregation-cloudtrail-logs-999999999999", Accounts: []string{"111111111111", "222222222222"},
		Regions: []string{"ap-northeast-1", "us-east-1"}, From: "2025/09/10", Parquet: "s3://trailkeeper-index-999999999999/archive"}
}

// TestDDLGolden: the DDL for the example archive is the reviewed file.
func TestDDLGolden(t *testing.T) {
	got := strings.Join(DDL(example()), ";\n\n") + ";\n"
	path := "testdata/example.sql.golden"
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the DDL differs from %s (go test -update to accept):\n%s", path, got)
	}
}

// columns parses the column list of a CREATE TABLE: names and types with the
// whitespace and case AWS's samples vary in taken out.
func columns(t *testing.T, ddl string) map[string]string {
	ddl = regexp.MustCompile(`(?m)^--.*$`).ReplaceAllString(ddl, "")
	open := strings.Index(ddl, "(")
	depth, end := 0, -1
	for i := open; i < len(ddl) && end < 0; i++ {
		switch ddl[i] {
		case '(', '<':
			depth++
		case ')', '>':
			depth--
			if depth == 0 {
				end = i
			}
		}
	}
	body := ddl[open+1 : end]
	out := map[string]string{}
	depth, start := 0, 0
	for i := 0; i <= len(body); i++ {
		if i < len(body) && (body[i] == '<' || body[i] == '(') {
			depth++
		} else if i < len(body) && (body[i] == '>' || body[i] == ')') {
			depth--
		}
		if i == len(body) || body[i] == ',' && depth == 0 {
			def := strings.TrimSpace(body[start:i])
			name, typ, ok := strings.Cut(def, " ")
			if !ok {
				t.Fatalf("column %q", def)
			}
			out[strings.ToLower(name)] = strings.ToLower(regexp.MustCompile(`\s+`).ReplaceAllString(typ, ""))
			start = i + 1
		}
	}
	return out
}

// TestTheEventsTableIsAWSs: the table over the log files has the columns,
// types, SerDe and input format of the Athena User Guide's CloudTrail table,
// and its projection uses the properties Athena documents.
func TestTheEventsTableIsAWSs(t *testing.T) {
	aws, err := os.ReadFile("testdata/aws-cloudtrail-table.sql")
	if err != nil {
		t.Fatal(err)
	}
	ours := DDL(example())[1]
	want, got := columns(t, string(aws)), columns(t, ours)
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("column %s: %q, AWS documents %q", name, got[name], typ)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("column %s is not in AWS's table", name)
		}
	}
	for _, line := range []string{"ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'",
		"STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'",
		"OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'"} {
		if !strings.Contains(string(aws), line) || !strings.Contains(ours, line) {
			t.Errorf("%q: in AWS's table %v, in ours %v", line, strings.Contains(string(aws), line), strings.Contains(ours, line))
		}
	}
	// Partition projection: every partition column projected with a type
	// Athena knows and that type's properties; the template names each.
	props := map[string]string{}
	for _, m := range regexp.MustCompile(`'([^']+)'='([^']*)'`).FindAllStringSubmatch(ours, -1) {
		props[m[1]] = m[2]
	}
	known := map[string][]string{"enum": {"values"}, "date": {"range", "format", "interval", "interval.unit"}, "integer": {"range"}, "injected": nil}
	if props["projection.enabled"] != "true" {
		t.Error("projection.enabled is not true")
	}
	for _, p := range eventschema.Partitions {
		typ := props["projection."+p+".type"]
		need, ok := known[typ]
		if !ok {
			t.Errorf("partition %s: projection type %q", p, typ)
		}
		for _, n := range need {
			if props["projection."+p+"."+n] == "" {
				t.Errorf("partition %s: %s projection without %s", p, typ, n)
			}
		}
		if !strings.Contains(props["storage.location.template"], "${"+p+"}") {
			t.Errorf("storage.location.template %q does not name ${%s}", props["storage.location.template"], p)
		}
	}
	for k := range props {
		if !regexp.MustCompile(`^(projection\.enabled|storage\.location\.template|projection\.(account|region|day)\.(type|values|range|format|interval|interval\.unit))$`).MatchString(k) {
			t.Errorf("property %s is not one Athena documents for partition projection", k)
		}
	}
	// The day as AWS projects CloudTrail's folders.
	for _, k := range []string{"format", "interval", "interval.unit"} {
		if props["projection.day."+k] != regexp.MustCompile(`'projection\.timestamp\.` + regexp.QuoteMeta(k) + `'='([^']*)'`).FindStringSubmatch(string(aws))[1] {
			t.Errorf("projection.day.%s %q differs from AWS's timestamp projection", k, props["projection.day."+k])
		}
	}
	if props["storage.location.template"] != "s3://aggregation-cloudtrail-logs-999999999999/AWSLogs/${account}/CloudTrail/${region}/${day}" {
		t.Errorf("template %s", props["storage.location.template"])
	}
}

func TestNamedQueries(t *testing.T) {
	qs := Queries()
	if len(qs) < 3 {
		t.Fatalf("%d named queries", len(qs))
	}
	for _, q := range qs {
		if q.Description == "" || !strings.HasPrefix(q.SQL, "SELECT") || strings.Contains(q.SQL, ";") {
			t.Errorf("%s: %q %q", q.Name, q.Description, q.SQL)
		}
	}
}

// Sources whose trails write under different key prefixes each get a table,
// and events is the view over them all, so the views and named queries read
// every source.
func TestATablePerPrefix(t *testing.T) {
	o := Options{Bucket: "archive", Regions: []string{"us-east-1"}, Groups: []Group{
		{Prefix: "", Accounts: []string{"111111111111"}}, {Prefix: "Org-A/logs", Accounts: []string{"222222222222", "333333333333"}}}}
	tables := o.Tables()
	if len(tables) != 2 || tables[0].Name != "events_root" || tables[1].Name != "events_org_a_logs" ||
		tables[1].Location != "s3://archive/Org-A/logs/AWSLogs/" {
		t.Fatalf("tables: %+v", tables)
	}
	for _, p := range tables[1].Properties {
		if p[0] == "projection.account.values" && p[1] != "222222222222,333333333333" {
			t.Errorf("the prefixed table projects %s", p[1])
		}
		if p[0] == "storage.location.template" && p[1] != "s3://archive/Org-A/logs/AWSLogs/${account}/CloudTrail/${region}/${day}" {
			t.Errorf("the prefixed table's template: %s", p[1])
		}
	}
	ddl := strings.Join(DDL(o), ";\n")
	union := "CREATE OR REPLACE VIEW trailkeeper.events AS\nSELECT * FROM trailkeeper.events_root\nUNION ALL\nSELECT * FROM trailkeeper.events_org_a_logs"
	if !strings.Contains(ddl, union) || strings.Index(ddl, union) > strings.Index(ddl, "VIEW trailkeeper.errors") {
		t.Fatalf("the union view, before the views over it:\n%s", ddl)
	}
	// One prefix keeps the table events (what earlier versions created).
	if one := (Options{Bucket: "archive", Prefix: "p"}).Tables(); len(one) != 1 || one[0].Name != "events" || one[0].Location != "s3://archive/p/AWSLogs/" {
		t.Fatalf("one prefix: %+v", one)
	}
}
