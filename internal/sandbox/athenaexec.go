package sandbox

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver "duckdb"
)

// How an Athena query runs in the sandbox: planQuery finds, under s.mu, the
// objects each named table's partition projection names and checks that the
// caller may read them; runQuery, without it, loads them into an in-memory
// DuckDB (a schema named as the Glue database) and runs the statement.

// planQuery finds, holding s.mu, the tables a query names and the objects
// it will read, checking that the caller may read them and write the answer.
func (s *Sandbox) planQuery(c *call, q *queryExecution) ([]*scanTable, error) {
	if !isSelect(q.sql) {
		return nil, userError("the sandbox runs SELECT statements only (DDL and views: run them in Athena)")
	}
	d := s.st.Glue[catalogKey(c, q.database)]
	if d == nil {
		return nil, userError("SCHEMA_NOT_FOUND: Schema '%s' does not exist", q.database)
	}
	var tables []*scanTable
	for _, name := range slices.Sorted(maps.Keys(d.Tables)) {
		if !regexp.MustCompile(`(?i)\b` + regexp.QuoteMeta(name) + `\b`).MatchString(q.sql) {
			continue
		}
		t, err := s.scanOf(c, name, d.Tables[name])
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	bkt, key, _ := strings.Cut(strings.TrimPrefix(q.output, "s3://"), "/")
	b := s.st.Buckets[bkt]
	if b == nil {
		return nil, userError("Unable to verify/create output bucket %s", bkt)
	}
	if s.authorize(c, b, "s3:PutObject", bucketARN(bkt)+"/"+key, nil) != nil {
		return nil, userError("Access denied when writing output to url: %s", q.output)
	}
	return tables, nil
}

// isSelect says whether a statement is a query, after any comments.
func isSelect(text string) bool {
	for {
		text = strings.TrimLeft(text, " \t\r\n(")
		if !strings.HasPrefix(text, "--") {
			break
		}
		_, text, _ = strings.Cut(text, "\n")
	}
	word, _, _ := strings.Cut(strings.ToUpper(text), " ")
	word = strings.TrimSpace(word)
	return word == "SELECT" || word == "WITH" || word == "VALUES"
}

// scanOf lists the objects of a table that its partition projection names.
// A partitioned table without projection reads nothing: the sandbox's Glue
// keeps no partitions.
func (s *Sandbox) scanOf(c *call, name string, t map[string]any) (*scanTable, error) {
	sd := obj(t, "StorageDescriptor")
	out := &scanTable{name: name, parquet: strings.Contains(strings.ToLower(str(sd, "InputFormat")+str(obj(sd, "SerdeInfo"), "SerializationLibrary")), "parquet")}
	keys := anyList(t["PartitionKeys"])
	for _, list := range [][]any{anyList(sd["Columns"]), keys} {
		for _, v := range list {
			col, _ := v.(map[string]any)
			typ, err := parseHiveType(str(col, "Type"))
			if err != nil {
				return nil, userError("table %s, column %s: %v", name, str(col, "Name"), err)
			}
			out.columns = append(out.columns, hiveColumn{name: strings.ToLower(str(col, "Name")), typ: typ})
		}
	}
	out.partitions = len(keys)
	params := map[string]string{}
	for k, v := range obj(t, "Parameters") {
		params[k], _ = v.(string)
	}
	location := str(sd, "Location")
	template := location
	if out.partitions > 0 {
		if params["projection.enabled"] != "true" {
			return out, nil
		}
		template = params["storage.location.template"]
		if template == "" {
			var parts []string
			for _, col := range out.columns[len(out.columns)-out.partitions:] {
				parts = append(parts, col.name+"=${"+col.name+"}")
			}
			template = strings.TrimSuffix(location, "/") + "/" + strings.Join(parts, "/")
		}
	}
	match, names, err := templateRE(template, params)
	if err != nil {
		return nil, userError("table %s: %v", name, err)
	}
	bkt, rest, _ := strings.Cut(strings.TrimPrefix(template, "s3://"), "/")
	prefix, _, _ := strings.Cut(rest, "${")
	b := s.st.Buckets[bkt]
	if b == nil {
		return nil, userError("table %s: the bucket %s of its location does not exist", name, bkt)
	}
	if s.authorize(c, b, "s3:ListBucket", bucketARN(bkt), map[string][]string{"s3:prefix": {prefix}}) != nil {
		return nil, userError("Permission denied on S3 path: s3://%s/%s", bkt, prefix)
	}
	type partition struct {
		group  int // of the key's match
		allows func(string) bool
	}
	var parts []partition
	for _, col := range out.columns[len(out.columns)-out.partitions:] {
		j := slices.Index(names, col.name)
		if j < 0 {
			return nil, userError("table %s: storage.location.template does not name the partition key %s", name, col.name)
		}
		parts = append(parts, partition{j + 1, projection(params, col.name)})
	}
	for _, key := range sortedKeys(b, prefix) {
		m := match.FindStringSubmatch(key)
		base := key[strings.LastIndexByte(key, '/')+1:]
		if m == nil || base == "" || base[0] == '_' || base[0] == '.' { // Hive skips hidden files
			continue
		}
		values := make([]string, len(parts))
		inRange := true
		for i, p := range parts {
			values[i] = m[p.group]
			inRange = inRange && p.allows(values[i])
		}
		v := findVersion(b, key, "")
		if !inRange || v == nil || v.DeleteMarker {
			continue
		}
		if s.authorize(c, b, "s3:GetObject", bucketARN(bkt)+"/"+key, nil) != nil {
			return nil, userError("Permission denied on S3 path: s3://%s/%s", bkt, key)
		}
		out.files = append(out.files, scanFile{uri: "s3://" + bkt + "/" + key, blob: blobID(bkt, v.ID, v.Key), size: v.Size, values: values})
	}
	return out, nil
}

// templateRE is the key pattern of a location template: each ${name}
// stands for what its projection allows, then one or more path elements.
func templateRE(template string, params map[string]string) (*regexp.Regexp, []string, error) {
	_, rest, _ := strings.Cut(strings.TrimPrefix(template, "s3://"), "/")
	rest = strings.TrimSuffix(rest, "/")
	var re strings.Builder
	var names []string
	re.WriteString("^")
	for {
		before, after, ok := strings.Cut(rest, "${")
		re.WriteString(regexp.QuoteMeta(before))
		if !ok {
			break
		}
		name, tail, ok := strings.Cut(after, "}")
		if !ok {
			return nil, nil, fmt.Errorf("storage.location.template %q: an unclosed ${", template)
		}
		names = append(names, name)
		switch params["projection."+name+".type"] {
		case "date":
			re.WriteString("(" + dateRE(params["projection."+name+".format"]) + ")")
		case "integer":
			re.WriteString(`(-?\d+)`)
		default: // enum, injected: checked against the projection after matching
			re.WriteString(`([^/]+)`)
		}
		rest = tail
	}
	re.WriteString("/.+$")
	out, err := regexp.Compile(re.String())
	return out, names, err
}

// javaLayout turns a Java date format (yyyy/MM/dd) into Go's layout.
func javaLayout(format string) string {
	return strings.NewReplacer("yyyy", "2006", "MM", "01", "dd", "02", "HH", "15", "mm", "04", "ss", "05").Replace(format)
}

func dateRE(format string) string {
	return strings.NewReplacer("yyyy", `\d{4}`, "MM", `\d{2}`, "dd", `\d{2}`, "HH", `\d{2}`, "mm", `\d{2}`, "ss", `\d{2}`).Replace(regexp.QuoteMeta(format))
}

// projection is what a partition key's projection allows: the values of an
// enum, the dates of a range (NOW as the query starts), the integers of a
// range; anything for injected.
func projection(params map[string]string, name string) func(string) bool {
	p := "projection." + name + "."
	switch params[p+"type"] {
	case "enum":
		values := strings.Split(params[p+"values"], ",")
		return func(v string) bool { return slices.Contains(values, v) }
	case "date":
		layout := javaLayout(params[p+"format"])
		bound := func(s string) time.Time {
			if strings.HasPrefix(strings.TrimSpace(s), "NOW") {
				return time.Now().UTC()
			}
			t, _ := time.Parse(layout, strings.TrimSpace(s))
			return t
		}
		from, to, _ := strings.Cut(params[p+"range"], ",")
		first, last := bound(from), bound(to)
		return func(v string) bool {
			at, err := time.Parse(layout, v)
			return err == nil && !at.Before(first) && !at.After(last)
		}
	case "integer":
		lo, hi, _ := strings.Cut(params[p+"range"], ",")
		l, _ := strconv.Atoi(strings.TrimSpace(lo))
		h, _ := strconv.Atoi(strings.TrimSpace(hi))
		return func(v string) bool {
			n, err := strconv.Atoi(v)
			return err == nil && n >= l && n <= h
		}
	}
	return func(string) bool { return true }
}

// runQuery runs a planned query without s.mu and records its end.
func (s *Sandbox) runQuery(ctx context.Context, q *queryExecution, tables []*scanTable, planned error) {
	s.mu.Lock()
	if q.state == "QUEUED" {
		q.state = "RUNNING"
	}
	s.mu.Unlock()
	var scanned int64
	var cols []queryColumn
	var rows [][]*string
	err := planned
	if err == nil {
		cols, rows, scanned, err = s.execute(ctx, q, tables)
	}
	var result []byte
	if err == nil {
		result = resultCSV(cols, rows)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.state != "RUNNING" { // cancelled
		return
	}
	if err == nil {
		bkt, key, _ := strings.Cut(strings.TrimPrefix(q.output, "s3://"), "/")
		if b := s.st.Buckets[bkt]; b == nil {
			err = userError("Unable to verify/create output bucket %s", bkt)
		} else if err = s.putAsService(b, key, result, map[string]string{"content-type": "text/csv"}); err == nil {
			s.changed()
		}
	}
	q.completed, q.scanned = time.Now().UTC(), scanned
	if err != nil {
		var qe *queryError
		if !errors.As(err, &qe) {
			qe = &queryError{category: 1, message: err.Error()}
		}
		q.state, q.reason, q.category = "FAILED", qe.message, qe.category
		return
	}
	q.state, q.columns, q.rows = "SUCCEEDED", cols, rows
}

// execute loads the tables into an in-memory DuckDB, in a schema named as
// the Glue database, and runs the statement.
func (s *Sandbox) execute(ctx context.Context, q *queryExecution, tables []*scanTable) ([]queryColumn, [][]*string, int64, error) {
	tmp, err := os.MkdirTemp("", "sandbox-athena-")
	if err != nil {
		return nil, nil, 0, err
	}
	defer os.RemoveAll(tmp)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, nil, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	schema := `"` + strings.ReplaceAll(q.database, `"`, `""`) + `"`
	setup := fmt.Sprintf("SET threads=2; SET memory_limit='512MB'; SET temp_directory=%s; CREATE SCHEMA %s; SET schema=%s",
		sqlString(tmp), schema, sqlString(q.database))
	if _, err := db.ExecContext(ctx, setup); err != nil {
		return nil, nil, 0, err
	}
	var scanned int64
	for i, t := range tables {
		n, err := s.loadTable(ctx, db, schema, t, filepath.Join(tmp, strconv.Itoa(i)))
		scanned += n
		if err != nil {
			return nil, nil, scanned, err
		}
	}
	rs, err := db.QueryContext(ctx, q.sql)
	if err != nil {
		return nil, nil, scanned, userError("%v", err)
	}
	defer rs.Close()
	types, err := rs.ColumnTypes()
	if err != nil {
		return nil, nil, scanned, err
	}
	cols := make([]queryColumn, len(types))
	for i, t := range types {
		cols[i] = queryColumn{name: t.Name(), typ: athenaType(t.DatabaseTypeName())}
	}
	var rows [][]*string
	for rs.Next() {
		if len(rows) == maxQueryRows {
			return nil, nil, scanned, userError("the sandbox keeps at most %d rows of an answer: add a LIMIT", maxQueryRows)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, nil, scanned, err
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			row[i] = render(v)
		}
		rows = append(rows, row)
	}
	return cols, rows, scanned, rs.Err()
}

// load creates a table of the Glue table's columns and fills it with its
// objects; it returns the bytes read.
func (s *Sandbox) loadTable(ctx context.Context, db *sql.DB, schema string, t *scanTable, dir string) (int64, error) {
	var defs, names []string
	for _, col := range t.columns {
		defs = append(defs, quoteIdent(col.name)+" "+col.typ.duck())
		names = append(names, quoteIdent(col.name))
	}
	table := schema + "." + quoteIdent(t.name)
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return 0, err
	}
	if len(t.files) == 0 {
		return 0, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	var scanned int64
	if t.parquet {
		data := t.columns[:len(t.columns)-t.partitions]
		for i, f := range t.files {
			path := filepath.Join(dir, strconv.Itoa(i)+".parquet")
			if err := s.copyBlob(f, path); err != nil {
				return scanned, err
			}
			scanned += f.size
			sel := make([]string, 0, len(t.columns))
			for _, col := range data {
				sel = append(sel, quoteIdent(col.name))
			}
			for j, v := range f.values {
				sel = append(sel, sqlString(v)+" AS "+quoteIdent(t.columns[len(data)+j].name))
			}
			stmt := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM read_parquet(%s)", table, strings.Join(names, ", "), strings.Join(sel, ", "), sqlString(path))
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return scanned, userError("HIVE_BAD_DATA: %s: %v", f.uri, err)
			}
		}
		return scanned, nil
	}
	path := filepath.Join(dir, "records.ndjson")
	n, err := s.serdeFile(ctx, t, path)
	if err != nil {
		return n, err
	}
	var read []string
	for _, col := range t.columns {
		read = append(read, sqlString(col.name)+": "+sqlString(col.typ.duck()))
	}
	stmt := fmt.Sprintf("INSERT INTO %s SELECT %s FROM read_json(%s, format='newline_delimited', columns={%s}, maximum_object_size=%d)",
		table, strings.Join(names, ", "), sqlString(path), strings.Join(read, ", "), maxRecordSize)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return n, userError("HIVE_BAD_DATA: table %s: %v", t.name, err)
	}
	return n, nil
}

func (s *Sandbox) copyBlob(f scanFile, path string) error {
	b, err := s.blobs.open(f.blob)
	if err != nil {
		return userError("HIVE_CANNOT_OPEN_SPLIT: %s: %v", f.uri, err)
	}
	defer b.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(b, 0, b.Size())); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// serdeFile writes a table's CloudTrail records as JSON Lines in the table's
// shape, as Hive's JSON SerDe reads them, with the partition values added.
func (s *Sandbox) serdeFile(ctx context.Context, t *scanTable, path string) (int64, error) {
	out, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	data := t.columns[:len(t.columns)-t.partitions]
	var scanned int64
	for _, f := range t.files {
		if err := ctx.Err(); err != nil {
			return scanned, err
		}
		scanned += f.size
		records, err := s.cloudTrailRecords(f)
		if err != nil {
			return scanned, err
		}
		for _, raw := range records {
			row, err := serdeRow(raw, data)
			if err != nil {
				return scanned, userError("HIVE_CURSOR_ERROR: %s: %v", f.uri, err)
			}
			for i, v := range f.values {
				row[t.columns[len(data)+i].name] = v
			}
			line, err := json.Marshal(row)
			if err != nil {
				return scanned, err
			}
			w.Write(line)
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		return scanned, err
	}
	return scanned, out.Close()
}

// cloudTrailRecords reads a log file as CloudTrail's input format does: a
// gzip (or plain) JSON document whose Records are the rows.
func (s *Sandbox) cloudTrailRecords(f scanFile) ([]json.RawMessage, error) {
	b, err := s.blobs.open(f.blob)
	if err != nil {
		return nil, userError("HIVE_CANNOT_OPEN_SPLIT: %s: %v", f.uri, err)
	}
	defer b.Close()
	var r io.Reader = io.NewSectionReader(b, 0, b.Size())
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, userError("HIVE_CURSOR_ERROR: %s: %v", f.uri, err)
		}
		r = zr
	} else {
		r = br
	}
	var doc struct{ Records []json.RawMessage }
	if err := json.NewDecoder(io.LimitReader(r, maxLogSize)).Decode(&doc); err != nil {
		return nil, userError("HIVE_CURSOR_ERROR: %s: not a CloudTrail log file of at most %d MiB: %v", f.uri, maxLogSize>>20, err)
	}
	return doc.Records, nil
}

// resultCSV is an answer as Athena writes it: every value quoted, NULL empty.
func resultCSV(cols []queryColumn, rows [][]*string) []byte {
	var b bytes.Buffer
	quote := func(v string) string { return `"` + strings.ReplaceAll(v, `"`, `""`) + `"` }
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quote(c.name))
	}
	b.WriteByte('\n')
	for _, row := range rows {
		for i, v := range row {
			if i > 0 {
				b.WriteByte(',')
			}
			if v != nil {
				b.WriteString(quote(*v))
			}
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// athenaType names a DuckDB result type as Athena's ColumnInfo does.
func athenaType(duck string) string {
	switch {
	case duck == "VARCHAR":
		return "varchar"
	case duck == "BIGINT", duck == "HUGEINT", duck == "UBIGINT":
		return "bigint"
	case duck == "INTEGER", duck == "UINTEGER":
		return "integer"
	case duck == "SMALLINT", duck == "TINYINT", duck == "USMALLINT", duck == "UTINYINT":
		return "smallint"
	case duck == "DOUBLE":
		return "double"
	case duck == "FLOAT":
		return "real"
	case duck == "BOOLEAN":
		return "boolean"
	case duck == "DATE":
		return "date"
	case strings.HasPrefix(duck, "TIMESTAMP"):
		return "timestamp"
	case strings.HasPrefix(duck, "DECIMAL"):
		return "decimal"
	case strings.HasPrefix(duck, "STRUCT"):
		return "row"
	case strings.HasPrefix(duck, "MAP"):
		return "map"
	case strings.HasSuffix(duck, "[]"):
		return "array"
	}
	return strings.ToLower(duck)
}

// render is a value as GetQueryResults gives it: text, or nil for NULL.
func render(v any) *string {
	var out string
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		out = x
	case []byte:
		out = string(x)
	case bool:
		out = strconv.FormatBool(x)
	case float32:
		out = strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		out = strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		out = x.UTC().Format("2006-01-02 15:04:05.000")
	case map[string]any, []any:
		data, _ := json.Marshal(x)
		out = string(data)
	default:
		out = fmt.Sprint(x)
	}
	return &out
}

func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
