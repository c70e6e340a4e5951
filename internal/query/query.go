// Package query runs SQL over an index with DuckDB (embedded): a table
// events with Athena's CloudTrail column names, and views for the questions
// asked most.
package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the database/sql driver "duckdb"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
)

// DB is an index opened for queries.
type DB struct {
	db    *sql.DB
	views map[string]bool // created
}

// ErrEmpty means the index holds no events yet.
var ErrEmpty = errors.New("the index holds no events")

// Open opens the index in dir, its events table narrowed to scope.
func Open(ctx context.Context, dir string, scope Scope) (*DB, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no index at %s: %w", dir, err)
	}
	root := filepath.Join(dir, "events")
	if _, err := os.Stat(root); err != nil {
		return nil, ErrEmpty
	}
	files, where, err := scope.files(root)
	if err != nil {
		return nil, fmt.Errorf("open the index at %s: %w", dir, err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // the views live in the one in-memory database
	stmts := []string{
		fmt.Sprintf("SET threads=%d", runtime.NumCPU()),
		// hive_types_autocast off: account ids keep their leading zeros.
		fmt.Sprintf("CREATE VIEW events AS SELECT * FROM read_parquet([%s], hive_partitioning=true, hive_types_autocast=false)%s",
			strings.Join(files, ", "), where),
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			db.Close()
			if strings.Contains(err.Error(), "No files found") {
				return nil, ErrEmpty
			}
			return nil, fmt.Errorf("open the index at %s: %w", dir, err)
		}
	}
	return &DB{db: db, views: map[string]bool{}}, nil
}

// view creates the views a statement names, on first use: each costs a few
// milliseconds, a noticeable share of a query's.
func (d *DB) view(ctx context.Context, query string) error {
	for _, v := range eventschema.ViewsNamed(query) {
		if !d.views[v.Name] {
			if _, err := d.db.ExecContext(ctx, "CREATE VIEW "+v.Name+" AS "+v.SQL); err != nil {
				return err
			}
			d.views[v.Name] = true
		}
	}
	return nil
}

// Scope narrows the events table to some accounts and regions and to a span
// of eventTime. Only the files of the folders that can hold such events are
// named to DuckDB, which lists every folder its glob can match for every
// statement: on a year of a thousand accounts, seconds, most of a narrow
// statement's cost.
type Scope struct {
	Accounts, Regions []string
	Since, Until      time.Time // eventTime, Since inclusive, Until exclusive; zero: open
}

func (s Scope) timed() bool { return !s.Since.IsZero() || !s.Until.IsZero() }

// files are the events table's Parquet files, or a glob of them (SQL
// literals), and the condition that narrows their rows to the scope's span.
// A scope no file matches is the table with no rows: one file's columns, no
// row.
func (s Scope) files(root string) (files []string, where string, err error) {
	if len(s.Accounts) == 0 && len(s.Regions) == 0 && !s.timed() {
		return []string{Literal(filepath.Join(root, "*", "*", "*", "*", "*.parquet"))}, "", nil // account=A/region=R/YYYY/MM/
	}
	// account=A/region=R/YYYY/MM, level by level.
	folders := []string{root}
	for _, level := range []struct {
		prefix string
		only   []string
	}{{"account=", s.Accounts}, {"region=", s.Regions}, {"", nil}, {"", nil}} {
		var next []string
		for _, f := range folders {
			sub, err := subfolders(f, level.prefix, level.only)
			if err != nil {
				return nil, "", err
			}
			next = append(next, sub...)
		}
		folders = next
	}
	for _, m := range folders {
		if !s.holdsMonth(filepath.Base(filepath.Dir(m)), filepath.Base(m)) {
			continue
		}
		entries, err := os.ReadDir(m)
		if err != nil {
			return nil, "", err
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".parquet") {
				files = append(files, Literal(filepath.Join(m, e.Name())))
			}
		}
	}
	if len(files) == 0 {
		one, err := anyFile(root)
		if err != nil {
			return nil, "", err
		}
		return []string{Literal(one)}, " WHERE false", nil
	}
	if s.timed() {
		// The day column (UTC, as the folders) lets Parquet's statistics
		// skip row groups; eventTime itself decides.
		var conds []string
		if !s.Since.IsZero() {
			conds = append(conds, "day >= "+Literal(s.Since.UTC().Format("2006/01/02")),
				"try_cast(eventtime AS TIMESTAMPTZ) >= "+timestamp(s.Since))
		}
		if !s.Until.IsZero() {
			conds = append(conds, "day <= "+Literal(s.Until.Add(-time.Nanosecond).UTC().Format("2006/01/02")),
				"try_cast(eventtime AS TIMESTAMPTZ) < "+timestamp(s.Until))
		}
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return files, where, nil
}

// holdsMonth says whether a month folder (YYYY, MM, in UTC) can hold events
// of the scope's span; a folder of events whose time is not a time
// ("unknown") holds none of a span.
func (s Scope) holdsMonth(year, month string) bool {
	if !s.timed() {
		return true
	}
	t, err := time.Parse("2006/01", year+"/"+month)
	if err != nil {
		return false
	}
	return (s.Until.IsZero() || t.Before(s.Until)) && (s.Since.IsZero() || t.AddDate(0, 1, 0).After(s.Since))
}

// subfolders are dir's folders: prefix+v for each v of only (as the index
// names them), or all of them.
func subfolders(dir, prefix string, only []string) ([]string, error) {
	var out []string
	if len(only) > 0 {
		for _, v := range only {
			p := filepath.Join(dir, prefix+PartitionValue(v))
			if info, err := os.Stat(p); err == nil && info.IsDir() && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return out, nil
	}
	entries, err := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, err
}

// anyFile is one Parquet file of the index, for its columns.
func anyFile(root string) (string, error) {
	var found string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			found = p
			return filepath.SkipAll
		}
		return err
	})
	if err == nil && found == "" {
		err = ErrEmpty
	}
	return found, err
}

// PartitionValue is an account or region as the index's folders name it:
// one safe path element. Account ids and region names are letters, digits
// and hyphens; a record outside the archive layout may claim anything (a
// NUL, "../.."), and a folder name must not fail a batch or leave events/.
func PartitionValue(v string) string {
	if v == "" || v == "." || v == ".." {
		return "unknown"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, v)
}

// Literal is s as an SQL string literal.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func timestamp(t time.Time) string {
	return "TIMESTAMPTZ " + Literal(t.UTC().Format("2006-01-02 15:04:05.999999")+"+00")
}

// Close releases the database.
func (d *DB) Close() error { return d.db.Close() }

// Rows are a statement's answer, read row by row.
type Rows struct {
	rows    *sql.Rows
	Columns []string
}

// Query runs one statement.
func (d *DB) Query(ctx context.Context, query string) (*Rows, error) {
	if err := d.view(ctx, query); err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return nil, err
	}
	return &Rows{rows: rows, Columns: cols}, nil
}

// Next returns the next row, nil at the end. Values are Go values: strings,
// numbers, maps for structs, slices for lists, nil for NULL.
func (r *Rows) Next() ([]any, error) {
	if !r.rows.Next() {
		return nil, r.rows.Err()
	}
	row := make([]any, len(r.Columns))
	ptrs := make([]any, len(row))
	for i := range row {
		ptrs[i] = &row[i]
	}
	return row, r.rows.Scan(ptrs...)
}

// Close ends the answer.
func (r *Rows) Close() error { return r.rows.Close() }
