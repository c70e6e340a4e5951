package eventparquet

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// realRecords are every record of the real CloudTrail sets.
func realRecords(t *testing.T) [][]byte {
	var out [][]byte
	for _, set := range []string{"sans504-s3-ransomware-lab", "invictus-ir-aws-dataset", "flaws2", "stratus-red-team-detonation-logs"} {
		root := testenv.RealCloudTrail(t, set)
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.Contains(path, ".json") {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if strings.HasSuffix(path, ".gz") {
				data = testenv.Gunzip(t, data)
			}
			var doc struct{ Records []json.RawMessage }
			if err := json.Unmarshal(data, &doc); err != nil { // some exports are a plain array
				err = json.Unmarshal(data, &doc.Records)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
			}
			for _, r := range doc.Records {
				out = append(out, r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// writeFile writes records with a Writer and returns the file and how many
// records were refused.
func writeFile(t *testing.T, records [][]byte) (string, int) {
	path := filepath.Join(t.TempDir(), "go.parquet")
	f := testenv.Must(os.Create(path)).OK(t)
	w := testenv.Must(NewWriter(f)).OK(t)
	refused := 0
	for _, r := range records {
		if err := w.Append(r); err != nil {
			refused++
		}
	}
	if err := w.Close(); err != nil { // and f
		t.Fatal(err)
	}
	return path, refused
}

// duckdbFile converts the same records with DuckDB's read_json and the
// schema's own select list: the index's writer until it was written in Go,
// and the sandbox's Athena over the log files still.
func duckdbFile(t *testing.T, db *sql.DB, records [][]byte) string {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.ndjson"), filepath.Join(dir, "duck.parquet")
	f := testenv.Must(os.Create(in)).OK(t)
	bw := bufio.NewWriter(f)
	for _, r := range records {
		bw.WriteString(`{"r":`)
		bw.WriteString(strings.NewReplacer("\n", " ", "\r", " ").Replace(string(r)))
		bw.WriteString("}\n")
	}
	bw.Flush()
	f.Close()
	day := `coalesce(strftime(try_cast(r."eventTime" AS TIMESTAMP), '%Y/%m/%d'), 'unknown/unknown/unknown')`
	q := fmt.Sprintf(`COPY (SELECT %s, %s AS day FROM read_json('%s', format='newline_delimited', columns={'r': '%s'}, ignore_errors=true)) TO '%s' (FORMAT parquet)`,
		eventschema.SelectColumns("r"), day, in, eventschema.RecordType(), out)
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	return out
}

// differ counts the rows of a that b does not hold, and shows a few. JSON
// text is compared as JSON: the Writer keeps it as CloudTrail wrote it
// ("\u003d", 1.5E9), DuckDB writes it anew ("=", 1500000000.0).
func differ(t *testing.T, db *sql.DB, a, b string) int {
	var cols []string
	for _, c := range eventschema.Columns {
		if c.Kind == eventschema.JSONText {
			cols = append(cols, fmt.Sprintf("json(%[1]s)::VARCHAR AS %[1]s", c.Name))
		} else {
			cols = append(cols, c.Name)
		}
	}
	sel := strings.Join(append(cols, "day"), ", ")
	q := fmt.Sprintf(`SELECT to_json(x)::VARCHAR FROM (SELECT %[1]s FROM '%[2]s' EXCEPT ALL SELECT %[1]s FROM '%[3]s') x`, sel, a, b)
	rows := testenv.Must(db.Query(q)).OK(t)
	defer rows.Close()
	n := 0
	for rows.Next() {
		var s string
		rows.Scan(&s)
		if n < 3 {
			t.Logf("only in %s: %.600s", filepath.Base(a), s)
		}
		n++
	}
	return n
}

func TestSameRowsAsDuckDBOnRealLogs(t *testing.T) {
	records := realRecords(t)
	db := testenv.Must(sql.Open("duckdb", "")).OK(t)
	defer db.Close()
	mine, refused := writeFile(t, records)
	theirs := duckdbFile(t, db, records)
	if refused != 0 {
		t.Errorf("%d of %d real records refused", refused, len(records))
	}
	var n int
	db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM '%s'`, mine)).Scan(&n)
	if n != len(records) {
		t.Fatalf("file holds %d rows, want %d", n, len(records))
	}
	if d := differ(t, db, mine, theirs) + differ(t, db, theirs, mine); d != 0 {
		t.Fatalf("%d rows differ from DuckDB's conversion of the same %d records", d, len(records))
	}
	// The schema is the index's: the same columns, types and order.
	var a, b string
	db.QueryRow(fmt.Sprintf(`SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE SELECT * FROM '%s')`, mine)).Scan(&a)
	db.QueryRow(fmt.Sprintf(`SELECT string_agg(column_name || ' ' || column_type, ', ') FROM (DESCRIBE SELECT * FROM '%s')`, theirs)).Scan(&b)
	if a != b {
		t.Fatalf("schema:\n%s\nwant\n%s", a, b)
	}
}

// TestHostileRecords: a field that is not of its type is NULL and the rest
// of the record is kept; a record that is not JSON where it is read is
// refused. (DuckDB's read_json with ignore_errors keeps such a record as a
// row of NULLs, and a mistyped struct as a struct of NULLs.)
func TestHostileRecords(t *testing.T) {
	cases := []struct{ record, want string }{
		{`{"eventName":"A","userIdentity":"root"}`, `{"eventname":"A","useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":"A","resources":{"ARN":"x"}}`, `{"eventname":"A","useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":"A","resources":[1,null,{"ARN":"x","accountId":12}]}`, `{"eventname":"A","useridentity":null,"resources":[null,null,{"arn":"x","accountid":"12","type":null}],"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":1.5e3,"eventSource":true,"errorCode":null}`, `{"eventname":"1.5e3","useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":{"a":[1, 2]}}`, `{"eventname":"{\"a\":[1,2]}","useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"requestParameters":"text"}`, `{"eventname":null,"useridentity":null,"resources":null,"requestparameters":"\"text\"","day":"unknown/unknown/unknown"}`},
		{`{ "eventName" : "spaced" , "requestParameters" : { "a" : [ 1 , "b c" ] } }`, `{"eventname":"spaced","useridentity":null,"resources":null,"requestparameters":"{\"a\":[1,\"b c\"]}","day":"unknown/unknown/unknown"}`},
		{`{"eventTime":"2026-12-03T23:30:00-02:00"}`, `{"eventname":null,"useridentity":null,"resources":null,"requestparameters":null,"day":"2026/12/04"}`},
		{`{"eventTime":"2026-12-03T23:30:00.123Z","eventName":"A","eventName":"B"}`, `{"eventname":"A","useridentity":null,"resources":null,"requestparameters":null,"day":"2026/12/03"}`},
		{`{"eventTime":17}`, `{"eventname":null,"useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":"esc\"aped \u00e9 \ud83d\ude00 \\ \/"}`, `{"eventname":"esc\"aped é 😀 \\ /","useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"userIdentity":{"type":"x","sessionContext":{"webIdFederationData":{"attributes":{"k":"v","n":1,"z":null}}}}}`, `{"eventname":null,"useridentity":{"type":"x","principalid":null,"arn":null,"accountid":null,"invokedby":null,"accesskeyid":null,"username":null,"onbehalfof":null,"sessioncontext":{"attributes":null,"sessionissuer":null,"ec2roledelivery":null,"webidfederationdata":{"federatedprovider":null,"attributes":{"k":"v","n":"1","z":null}}}},"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"userIdentity":{"type":"x","sessionContext":{"attributes":[]}}}`, `{"eventname":null,"useridentity":{"type":"x","principalid":null,"arn":null,"accountid":null,"invokedby":null,"accesskeyid":null,"username":null,"onbehalfof":null,"sessioncontext":{"attributes":null,"sessionissuer":null,"ec2roledelivery":null,"webidfederationdata":null}},"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":"A","unknownField":{"deep":[{"x":"]"}]}}`, `{"eventname":"A","useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		{`{"eventName":"bad` + "\xff" + `","requestParameters":{"k":"` + "\xfe" + `"}}`, `{"eventname":"bad�","useridentity":null,"resources":null,"requestparameters":"{\"k\":\"�\"}","day":"unknown/unknown/unknown"}`},
		{`{}`, `{"eventname":null,"useridentity":null,"resources":null,"requestparameters":null,"day":"unknown/unknown/unknown"}`},
		// Not JSON where it is read: refused.
		{`{"eventName":"bad \x escape"}`, ""},
		{`{"eventName":tru}`, ""},
		{`{"eventName":01}`, ""},
		{`{"eventName":"ctl` + "\x01" + `"}`, ""},
		{`{"requestParameters":{"a":}}`, ""},
		{`{"eventName":"A",}`, ""},
		{`["eventName"]`, ""},
		{`{"resources":[{"ARN":"x"}`, ""},
	}
	db := testenv.Must(sql.Open("duckdb", "")).OK(t)
	defer db.Close()
	for _, c := range cases {
		path, refused := writeFile(t, [][]byte{[]byte(c.record)})
		if c.want == "" {
			if refused != 1 {
				t.Errorf("%s: kept, want refused", c.record)
			}
			continue
		}
		var got string
		err := db.QueryRow(fmt.Sprintf(`SELECT to_json(x)::VARCHAR FROM (SELECT eventname, useridentity, resources, requestparameters, day FROM '%s') x`, path)).Scan(&got)
		if err != nil || got != c.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.record, got, err, c.want)
		}
	}
}

// FuzzAppend: any bytes are a record or an error, never a panic; a refused
// record leaves nothing behind, so that the file read back holds exactly the
// records taken, and the one after it intact.
func FuzzAppend(f *testing.F) {
	f.Add([]byte(`{"eventName":"A","userIdentity":{"type":"IAMUser","sessionContext":{"webIdFederationData":{"attributes":{"k":"v"}}}},"resources":[{"ARN":"x"}],"requestParameters":{"a":[1,2]}}`))
	f.Add([]byte(`{"eventTime":"2026-12-03T23:30:00Z","resources":[null,1,{}],"tlsDetails":"x"}`))
	f.Add([]byte(`{"eventName":"\ud800","requestParameters":{"a":`))
	f.Add([]byte(`{"resources":[{"ARN":"x"},{"ARN":tru}],"eventName":"B"}`))
	f.Fuzz(func(t *testing.T, rec []byte) {
		var out bytes.Buffer
		w, err := NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		taken := 0
		for range 2 {
			if w.Append(rec) == nil {
				taken++
			}
		}
		last := `{"eventName":"Last","resources":[{"ARN":"arn:last"}],"userIdentity":{"type":"Root"}}`
		if err := w.Append([]byte(last)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("%q: %v", rec, err)
		}
		pr, err := file.NewParquetReader(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("%q: the file does not read back: %v", rec, err)
		}
		fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatalf("%q: the file does not read back: %v", rec, err)
		}
		defer tbl.Release()
		if int(tbl.NumRows()) != taken+1 {
			t.Fatalf("%q: %d rows, %d records taken and one more", rec, tbl.NumRows(), taken+1)
		}
		col := func(name string) arrow.Array {
			c, err := array.Concatenate(tbl.Column(tbl.Schema().FieldIndices(name)[0]).Data().Chunks(), memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if got := col("eventname").(*array.String).Value(taken); got != "Last" {
			t.Fatalf("%q: the record after it reads back as eventname %q", rec, got)
		}
		if got := col("useridentity").(*array.Struct).Field(0).(*array.String).Value(taken); got != "Root" {
			t.Fatalf("%q: the record after it reads back as useridentity.type %q", rec, got)
		}
	})
}
