// Package athena writes the Athena tables for the archive: one over the
// CloudTrail log files themselves, with partition projection on account,
// region and day, and one over a Parquet copy of the index; the views and
// named queries run unchanged there and in trailkeeper query (DuckDB). The
// same tables come out as DDL (trailkeeper athena) and as Glue tables (apply).
package athena

import (
	"embed"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
)

// Options say what the tables cover.
type Options struct {
	Bucket   string   // the archive
	Prefix   string   // the trails' S3 key prefix, "" for none (when Groups is empty)
	Accounts []string // projected as an enum: every query may span them all
	// Groups are the sources by key prefix, when their trails write under
	// more than one: a table each, and a view events over their union.
	Groups   []Group
	Regions  []string // likewise
	From     string   // first day projected, yyyy/MM/dd
	Database string   // the tables' database; the Parquet table's is DATABASE_index
	Parquet  string   // s3://bucket/prefix where the index is published; "" for none
}

// Group is the accounts whose trails write under one key prefix.
type Group struct {
	Prefix   string
	Accounts []string
}

// groups are the options' prefixes, one group when none are given.
func (o Options) groups() []Group {
	if len(o.Groups) > 0 {
		return o.Groups
	}
	return []Group{{Prefix: o.Prefix, Accounts: o.Accounts}}
}

// TableName is the table of the log files under a prefix: events when one
// prefix serves every source, events_<prefix> (letters, digits, _) when the
// sources write under several and events is the view over them all.
func TableName(prefix string, several bool) string {
	if !several {
		return "events"
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, strings.Trim(prefix, "/"))
	if name == "" {
		name = "root"
	}
	return "events_" + name
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

// Table is an external table of events.
type Table struct {
	Database, Name string
	Columns        [][2]string // name, Hive type
	Partitions     []string    // STRING columns, projected
	Location       string
	Parquet        bool // else CloudTrail's gzip JSON
	Properties     [][2]string
}

// Formats are the SerDe, input and output format of a table.
func (t Table) Formats() (serde, input, output string) {
	if t.Parquet {
		return "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe", "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
			"org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
	}
	return "org.apache.hive.hcatalog.data.JsonSerDe", "com.amazon.emr.cloudtrail.CloudTrailInputFormat", "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
}

func (o Options) defaults() Options {
	if o.Database == "" {
		o.Database = "trailkeeper"
	}
	if len(o.From) != len("2020/01/01") {
		o.From = "2020/01/01"
	}
	return o
}

// Tables are the tables the options ask for: the log files', and the
// published index's when there is one.
func (o Options) Tables() []Table {
	o = o.defaults()
	var cols [][2]string
	for _, c := range eventschema.Columns {
		cols = append(cols, [2]string{c.Name, c.HiveType()})
	}
	var out []Table
	groups := o.groups()
	for _, g := range groups {
		base := "s3://" + path.Join(o.Bucket, g.Prefix, "AWSLogs") + "/"
		og := o
		og.Accounts = g.Accounts
		out = append(out, Table{Database: o.Database, Name: TableName(g.Prefix, len(groups) > 1), Columns: cols, Partitions: eventschema.Partitions, Location: base,
			Properties: projection(og, "day", "yyyy/MM/dd", "DAYS", o.From, base+"${account}/CloudTrail/${region}/${day}")})
	}
	if o.Parquet != "" {
		// The index's folders are months; day is a column of its files.
		loc := strings.TrimSuffix(o.Parquet, "/") + "/events/"
		out = append(out, Table{Database: o.Database + "_index", Name: "events", Columns: append(cols[:len(cols):len(cols)], [2]string{"day", "STRING"}),
			Partitions: []string{"account", "region", "month"}, Location: loc, Parquet: true,
			Properties: projection(o, "month", "yyyy/MM", "MONTHS", o.From[:7], loc+"account=${account}/region=${region}/${month}")})
	}
	return out
}

// DDL is the statements to run in Athena, in order: per database, its
// tables, the views over them, then the statements that bring an existing
// table's projected accounts up to date.
func DDL(o Options) []string {
	var out []string
	tables := o.Tables()
	var dbs []string
	for _, t := range tables {
		if !slices.Contains(dbs, t.Database) {
			dbs = append(dbs, t.Database)
		}
	}
	for _, db := range dbs {
		out = append(out, "CREATE DATABASE IF NOT EXISTS "+db)
		for _, t := range tables {
			if t.Database == db {
				out = append(out, t.DDL())
			}
		}
		if union := unionView(tables, db); union != "" {
			out = append(out, union)
		}
		out = append(out, views(db)...)
		for _, t := range tables {
			if t.Database == db {
				out = append(out, t.sync())
			}
		}
	}
	return out
}

// unionView is the view events over a database's tables of several
// prefixes, so that the views and named queries read every source.
func unionView(tables []Table, db string) string {
	var parts []string
	for _, t := range tables {
		if t.Database == db && t.Name != "events" {
			parts = append(parts, "SELECT * FROM "+db+"."+t.Name)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "CREATE OR REPLACE VIEW " + db + ".events AS\n" + strings.Join(parts, "\nUNION ALL\n")
}

// DDL is the table's CREATE EXTERNAL TABLE.
func (t Table) DDL() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s.%s (\n", t.Database, t.Name)
	var cols []string
	for _, c := range t.Columns {
		name := c[0]
		if name == "day" {
			name = "`day`"
		}
		cols = append(cols, "  "+name+" "+c[1])
	}
	b.WriteString(strings.Join(cols, ",\n") + "\n")
	var parts []string
	for _, p := range t.Partitions {
		parts = append(parts, "`"+p+"` STRING")
	}
	serde, input, output := t.Formats()
	format := fmt.Sprintf("ROW FORMAT SERDE '%s'\nSTORED AS INPUTFORMAT '%s'\nOUTPUTFORMAT '%s'", serde, input, output)
	if t.Parquet {
		format = "STORED AS PARQUET"
	}
	fmt.Fprintf(&b, ")\nPARTITIONED BY (%s)\n%s\nLOCATION '%s'\nTBLPROPERTIES (\n", strings.Join(parts, ", "), format, t.Location)
	for i, p := range t.Properties {
		sep := ","
		if i == len(t.Properties)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  '%s'='%s'%s\n", p[0], p[1], sep)
	}
	b.WriteString(")")
	return b.String()
}

// sync brings an existing table's projected accounts and regions up to the
// config's: IF NOT EXISTS leaves an older table as it was.
func (t Table) sync() string {
	var set []string
	for _, p := range t.Properties {
		if p[0] == "projection.account.values" || p[0] == "projection.region.values" {
			set = append(set, fmt.Sprintf("'%s'='%s'", p[0], p[1]))
		}
	}
	return fmt.Sprintf("ALTER TABLE %s.%s SET TBLPROPERTIES (%s)", t.Database, t.Name, strings.Join(set, ", "))
}

// projection is the partition projection of account and region as enums
// (known from the config, so that a query may span every account; injected
// would demand an account in every WHERE) and of a date column (day over the
// log files, month over the index).
func projection(o Options, date, format, unit, from, template string) [][2]string {
	return [][2]string{
		{"projection.enabled", "true"},
		{"projection.account.type", "enum"},
		{"projection.account.values", strings.Join(o.Accounts, ",")},
		{"projection.region.type", "enum"},
		{"projection.region.values", strings.Join(o.Regions, ",")},
		{"projection." + date + ".type", "date"},
		{"projection." + date + ".format", format},
		{"projection." + date + ".range", from + ",NOW"},
		{"projection." + date + ".interval", "1"},
		{"projection." + date + ".interval.unit", unit},
		{"storage.location.template", template},
	}
}

// views are the views of a database, over its events.
func views(db string) []string {
	var out []string
	for _, v := range eventschema.Views {
		out = append(out, fmt.Sprintf("CREATE OR REPLACE VIEW %s.%s AS %s", db, v.Name, strings.Replace(v.SQL, "FROM events", "FROM "+db+".events", 1)))
	}
	return out
}
