// Package athena writes the Athena DDL for the archive: a table over the
// CloudTrail log files themselves, with partition projection on account,
// region and day, and one over a Parquet copy of the index; the views and
// named queries run unchanged there and in trailkeeper query (DuckDB).
package athena

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
)

// Options say what the tables cover.
type Options struct {
	Bucket   string   // the archive
	Prefix   string   // the trails' S3 key prefix, "" for none
	Accounts []string // projected as an enum: every query may span them all
	Regions  []string // likewise
	From     string   // first day projected, yyyy/MM/dd
	Database string   // the tables' database; the Parquet table's is DATABASE_index
	Parquet  string   // s3://bucket/prefix where the index is published; "" for none
}

// Named is a query that runs unchanged on Athena and DuckDB.
type Named struct {
	Name, Description, SQL string
}

//go:embed queries/*.sql
var queryFiles embed.FS

// Queries are the named queries, from queries/*.sql: a first line
// "-- description", then the statement.
func Queries() []Named {
	entries, _ := queryFiles.ReadDir("queries")
	var out []Named
	for _, e := range entries {
		data, _ := queryFiles.ReadFile("queries/" + e.Name())
		desc, sql, _ := strings.Cut(string(data), "\n")
		out = append(out, Named{Name: strings.TrimSuffix(e.Name(), ".sql"), Description: strings.TrimSpace(strings.TrimPrefix(desc, "--")), SQL: strings.TrimSpace(sql)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DDL is the statements to run in Athena, in order.
func DDL(o Options) []string {
	if o.Database == "" {
		o.Database = "trailkeeper"
	}
	if o.From == "" {
		o.From = "2020/01/01"
	}
	base := "s3://" + path.Join(o.Bucket, o.Prefix, "AWSLogs") + "/"
	out := []string{"CREATE DATABASE IF NOT EXISTS " + o.Database}
	out = append(out, table(o.Database+".events", `ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'`, base, projection(o, base+"${account}/CloudTrail/${region}/${day}")))
	out = append(out, views(o.Database)...)
	out = append(out, sync(o.Database+".events", o))
	if o.Parquet != "" {
		db := o.Database + "_index"
		loc := strings.TrimSuffix(o.Parquet, "/") + "/events/"
		out = append(out, "CREATE DATABASE IF NOT EXISTS "+db)
		out = append(out, table(db+".events", "STORED AS PARQUET", loc, projection(o, loc+"account=${account}/region=${region}/${day}")))
		out = append(out, views(db)...)
		out = append(out, sync(db+".events", o))
	}
	return out
}

// sync brings an existing table's projected accounts and regions up to the
// config's: IF NOT EXISTS leaves an older table as it was.
func sync(table string, o Options) string {
	return fmt.Sprintf("ALTER TABLE %s SET TBLPROPERTIES ('projection.account.values'='%s', 'projection.region.values'='%s')",
		table, strings.Join(o.Accounts, ","), strings.Join(o.Regions, ","))
}

// table is a CREATE EXTERNAL TABLE with the events' columns.
func table(name, format, location string, props [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", name)
	for i, c := range eventschema.Columns {
		sep := ","
		if i == len(eventschema.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s %s%s\n", c.Name, c.HiveType(), sep)
	}
	var parts []string
	for _, p := range eventschema.Partitions {
		parts = append(parts, "`"+p+"` STRING")
	}
	fmt.Fprintf(&b, ")\nPARTITIONED BY (%s)\n%s\nLOCATION '%s'\nTBLPROPERTIES (\n", strings.Join(parts, ", "), format, location)
	for i, p := range props {
		sep := ","
		if i == len(props)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  '%s'='%s'%s\n", p[0], p[1], sep)
	}
	b.WriteString(")")
	return b.String()
}

// projection is the partition projection of account and region as enums
// (known from the config, so that a query may span every account; injected
// would demand an account in every WHERE) and of day as a date.
func projection(o Options, template string) [][2]string {
	return [][2]string{
		{"projection.enabled", "true"},
		{"projection.account.type", "enum"},
		{"projection.account.values", strings.Join(o.Accounts, ",")},
		{"projection.region.type", "enum"},
		{"projection.region.values", strings.Join(o.Regions, ",")},
		{"projection.day.type", "date"},
		{"projection.day.format", "yyyy/MM/dd"},
		{"projection.day.range", o.From + ",NOW"},
		{"projection.day.interval", "1"},
		{"projection.day.interval.unit", "DAYS"},
		{"storage.location.template", template},
	}
}

func views(db string) []string {
	var out []string
	for _, v := range eventschema.Views {
		out = append(out, fmt.Sprintf("CREATE OR REPLACE VIEW %s.%s AS %s", db, v.Name, strings.Replace(v.SQL, "FROM events", "FROM "+db+".events", 1)))
	}
	return out
}
