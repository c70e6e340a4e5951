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
	"strings"

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

// Open opens the index in dir.
func Open(ctx context.Context, dir string) (*DB, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no index at %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "events")); err != nil {
		return nil, ErrEmpty
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)                                                 // the views live in the one in-memory database
	glob := filepath.Join(dir, "events", "*", "*", "*", "*", "*.parquet") // account=A/region=R/YYYY/MM/
	stmts := []string{
		fmt.Sprintf("SET threads=%d", runtime.NumCPU()),
		// hive_types_autocast off: account ids keep their leading zeros.
		fmt.Sprintf("CREATE VIEW events AS SELECT * FROM read_parquet('%s', hive_partitioning=true, hive_types_autocast=false)",
			strings.ReplaceAll(glob, "'", "''")),
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
