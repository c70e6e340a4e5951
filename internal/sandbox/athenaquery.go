package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Athena's query executions, as far as trailkeeper query --athena uses them.
// A query runs in the background with embedded DuckDB (so in DuckDB's SQL
// dialect, not Trino's) over the Glue tables of its database that it names.
// Each table is read as Athena reads it: the objects its partition
// projection names, from the sandbox's own buckets, as the caller (who needs
// s3:ListBucket and s3:GetObject there); CloudTrail's gzip JSON through a
// JSON SerDe of the table's columns, Parquet as it is. The answer is written
// as CSV to the output location and kept for GetQueryResults. Unlike Athena
// the sandbox does not prune partitions by the WHERE clause: the bytes
// scanned are every projected partition's.

const (
	maxQueryRows  = 100_000   // rows kept of one answer; a larger one fails (add a LIMIT)
	maxQueryChars = 262_144   // StartQueryExecution's QueryString limit
	maxRecordSize = 64 << 20  // of one record, as DuckDB reads it
	maxLogSize    = 256 << 20 // uncompressed, of one log file (CloudTrail's are a few MB)
)

type queryExecution struct {
	id, sql, database, workgroup, output string
	state, reason                        string
	category                             int // AthenaError's ErrorCategory: 1 system, 2 user
	submitted, completed                 time.Time
	scanned                              int64
	columns                              []queryColumn
	rows                                 [][]*string
	cancel                               context.CancelFunc
}

type queryColumn struct{ name, typ string }

// scanTable is what a query reads of one Glue table.
type scanTable struct {
	name       string
	columns    []hiveColumn // the data columns, then the partition keys
	partitions int          // how many of columns are partition keys
	parquet    bool
	files      []scanFile
}

type scanFile struct {
	uri    string // s3://bucket/key, for messages
	blob   string
	size   int64
	values []string // the partition keys' values
}

// queryError fails an execution with Athena's error category and message.
type queryError struct {
	category int
	message  string
}

func (e *queryError) Error() string { return e.message }

func userError(format string, a ...any) *queryError {
	return &queryError{category: 2, message: fmt.Sprintf(format, a...)}
}

func (s *Sandbox) athenaQueryActions(group func(*call, string) (*workgroup, error), invalid func(string, ...any) error) map[string]jsonHandler {
	find := func(c *call, id string) (*queryExecution, error) {
		q := s.queries[catalogKey(c, id)]
		if q == nil {
			return nil, invalid("QueryExecution %s was not found", id)
		}
		return q, nil
	}
	return map[string]jsonHandler{
		"StartQueryExecution": func(c *call, in map[string]any) (any, error) {
			text := str(in, "QueryString")
			if text == "" || len(text) > maxQueryChars {
				return nil, invalid("QueryString: 1 to %d characters", maxQueryChars)
			}
			w, err := group(c, str(in, "WorkGroup"))
			if err != nil {
				return nil, err
			}
			output := str(obj(in, "ResultConfiguration"), "OutputLocation")
			if output == "" {
				output = str(obj(w.Configuration, "ResultConfiguration"), "OutputLocation")
			}
			if output == "" {
				return nil, invalid("No output location provided. An output location is required either through the Workgroup result configuration setting or as an API input.")
			}
			if !strings.HasPrefix(output, "s3://") {
				return nil, invalid("OutputLocation %q is not an s3:// location", output)
			}
			select {
			case <-s.stop:
				return nil, errorf(500, "InternalFailure", "the sandbox is closing")
			default:
			}
			db := str(obj(in, "QueryExecutionContext"), "Database")
			if db == "" {
				db = "default"
			}
			q := &queryExecution{id: uuid(), sql: text, database: db, workgroup: w.Name, state: "QUEUED", submitted: time.Now().UTC(),
				output: strings.TrimSuffix(output, "/") + "/"}
			q.output += q.id + ".csv"
			if s.queries == nil {
				s.queries = map[string]*queryExecution{}
			}
			s.queries[catalogKey(c, q.id)] = q
			tables, err := s.planQuery(c, q)
			ctx, cancel := context.WithCancel(s.stopContext())
			q.cancel = cancel
			s.done.Add(1)
			go func() {
				defer s.done.Done()
				defer cancel()
				s.runQuery(ctx, q, tables, err)
			}()
			return map[string]any{"QueryExecutionId": q.id}, nil
		},
		"GetQueryExecution": func(c *call, in map[string]any) (any, error) {
			q, err := find(c, str(in, "QueryExecutionId"))
			if err != nil {
				return nil, err
			}
			status := map[string]any{"State": q.state, "SubmissionDateTime": epoch(q.submitted)}
			if !q.completed.IsZero() {
				status["CompletionDateTime"] = epoch(q.completed)
			}
			if q.reason != "" {
				status["StateChangeReason"] = q.reason
				status["AthenaError"] = map[string]any{"ErrorCategory": q.category, "ErrorType": 1000 * q.category, "ErrorMessage": q.reason}
			}
			stats := map[string]any{"DataScannedInBytes": q.scanned}
			if !q.completed.IsZero() {
				ms := q.completed.Sub(q.submitted).Milliseconds()
				stats["EngineExecutionTimeInMillis"], stats["TotalExecutionTimeInMillis"] = ms, ms
			}
			return map[string]any{"QueryExecution": map[string]any{
				"QueryExecutionId": q.id, "Query": q.sql, "StatementType": "DML", "WorkGroup": q.workgroup,
				"ResultConfiguration":   map[string]any{"OutputLocation": q.output},
				"QueryExecutionContext": map[string]any{"Database": q.database, "Catalog": "awsdatacatalog"},
				"Status":                status, "Statistics": stats,
				"EngineVersion": map[string]any{"SelectedEngineVersion": "AUTO", "EffectiveEngineVersion": "Athena engine version 3"},
			}}, nil
		},
		"GetQueryResults": func(c *call, in map[string]any) (any, error) {
			q, err := find(c, str(in, "QueryExecutionId"))
			if err != nil {
				return nil, err
			}
			switch q.state {
			case "SUCCEEDED":
			case "FAILED":
				return nil, invalid("%s", q.reason)
			default:
				return nil, invalid("Query has not yet finished. Current state: %s", q.state)
			}
			limit := 1000
			if n, ok := in["MaxResults"].(float64); ok {
				if n < 1 || n > 1000 {
					return nil, invalid("MaxResults: 1 to 1000")
				}
				limit = int(n)
			}
			from := 0
			if t := str(in, "NextToken"); t != "" {
				if from, err = strconv.Atoi(t); err != nil || from < 0 || from > len(q.rows) {
					return nil, invalid("NextToken %q is not valid", t)
				}
			}
			// The first page's first row holds the column names, as Athena's does.
			var rows []any
			if from == 0 {
				header := make([]any, len(q.columns))
				for i, col := range q.columns {
					header[i] = map[string]any{"VarCharValue": col.name}
				}
				rows = append(rows, map[string]any{"Data": header})
				limit--
			}
			to := min(from+limit, len(q.rows))
			for _, row := range q.rows[from:to] {
				data := make([]any, len(row))
				for i, v := range row {
					data[i] = map[string]any{}
					if v != nil {
						data[i] = map[string]any{"VarCharValue": *v}
					}
				}
				rows = append(rows, map[string]any{"Data": data})
			}
			info := make([]any, len(q.columns))
			for i, col := range q.columns {
				info[i] = map[string]any{"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": col.name, "Label": col.name,
					"Type": col.typ, "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": col.typ == "varchar"}
			}
			out := map[string]any{"UpdateCount": 0, "ResultSet": map[string]any{"Rows": rows, "ResultSetMetadata": map[string]any{"ColumnInfo": info}}}
			if to < len(q.rows) {
				out["NextToken"] = strconv.Itoa(to)
			}
			return out, nil
		},
		"StopQueryExecution": func(c *call, in map[string]any) (any, error) {
			q, err := find(c, str(in, "QueryExecutionId"))
			if err != nil {
				return nil, err
			}
			if q.state == "QUEUED" || q.state == "RUNNING" {
				q.state, q.reason, q.category, q.completed = "CANCELLED", "Query cancelled by user", 2, time.Now().UTC()
				q.cancel()
			}
			return map[string]any{}, nil
		},
	}
}
