// Package athenaquery runs one SQL statement in Athena, in the workgroup and
// database apply made, and reads its answer page by page: the engine for
// archives that outgrow one machine, behind the same query command.
package athenaquery

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/athena/types"

	"github.com/trailkeeper/trailkeeper/internal/eventschema"
)

// API is the part of Athena's client a query uses.
type API interface {
	StartQueryExecution(context.Context, *athena.StartQueryExecutionInput, ...func(*athena.Options)) (*athena.StartQueryExecutionOutput, error)
	GetQueryExecution(context.Context, *athena.GetQueryExecutionInput, ...func(*athena.Options)) (*athena.GetQueryExecutionOutput, error)
	GetQueryResults(context.Context, *athena.GetQueryResultsInput, ...func(*athena.Options)) (*athena.GetQueryResultsOutput, error)
	StopQueryExecution(context.Context, *athena.StopQueryExecutionInput, ...func(*athena.Options)) (*athena.StopQueryExecutionOutput, error)
}

// Request is a statement and where it runs.
type Request struct {
	SQL, Database, Workgroup string
	// Poll is the first wait between two looks at the query's state; it
	// grows to 2 s. Default 200 ms.
	Poll time.Duration
	// Started, when set, is told the query's id as soon as Athena gives it.
	Started func(id string)
}

// Failed is a query that Athena ran and that failed, or was cancelled.
type Failed struct {
	ID, State, Reason string
	User              bool // Athena blames the statement (ErrorCategory 2), not itself
}

func (f *Failed) Error() string {
	return fmt.Sprintf("Athena query %s %s: %s", f.ID, strings.ToLower(f.State), f.Reason)
}

// Answer is a finished query: its statistics, and its rows as they are paged in.
type Answer struct {
	ID      string
	Columns []string
	Scanned int64 // bytes, as Athena bills them
	Engine  time.Duration
	Output  string // the CSV Athena wrote

	api   API
	types []string
	page  []types.Row
	next  *string
	first bool // the first page, whose first row holds the column names
	done  bool
}

// Run starts the statement, waits until Athena has finished it, and returns
// its answer. A context that ends first stops the query, so that it is not
// billed further.
func Run(ctx context.Context, api API, req Request) (*Answer, error) {
	start, err := api.StartQueryExecution(ctx, &athena.StartQueryExecutionInput{
		QueryString:           aws.String(WithViews(req.SQL)),
		WorkGroup:             aws.String(req.Workgroup),
		QueryExecutionContext: &types.QueryExecutionContext{Database: aws.String(req.Database)},
	})
	if err != nil {
		return nil, fmt.Errorf("athena StartQueryExecution in workgroup %s (trailkeeper apply creates it from the config's athena: section): %w", req.Workgroup, err)
	}
	id := aws.ToString(start.QueryExecutionId)
	if req.Started != nil {
		req.Started(id)
	}
	wait := req.Poll
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	for {
		out, err := api.GetQueryExecution(ctx, &athena.GetQueryExecutionInput{QueryExecutionId: &id})
		if err != nil {
			return nil, stop(ctx, api, id, fmt.Errorf("athena GetQueryExecution %s: %w", id, err))
		}
		q := out.QueryExecution
		switch q.Status.State {
		case types.QueryExecutionStateSucceeded:
			a := &Answer{ID: id, api: api, first: true}
			if q.Statistics != nil {
				a.Scanned = aws.ToInt64(q.Statistics.DataScannedInBytes)
				a.Engine = time.Duration(aws.ToInt64(q.Statistics.EngineExecutionTimeInMillis)) * time.Millisecond
			}
			if q.ResultConfiguration != nil {
				a.Output = aws.ToString(q.ResultConfiguration.OutputLocation)
			}
			return a, a.fetch(ctx)
		case types.QueryExecutionStateFailed, types.QueryExecutionStateCancelled:
			f := &Failed{ID: id, State: string(q.Status.State), Reason: aws.ToString(q.Status.StateChangeReason)}
			if e := q.Status.AthenaError; e != nil {
				f.User = aws.ToInt32(e.ErrorCategory) == 2
				if f.Reason == "" {
					f.Reason = aws.ToString(e.ErrorMessage)
				}
			}
			return nil, f
		}
		select {
		case <-ctx.Done():
			return nil, stop(ctx, api, id, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*3/2, 2*time.Second)
	}
}

// stop asks Athena to stop a query the caller no longer waits for.
func stop(ctx context.Context, api API, id string, why error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := api.StopQueryExecution(ctx, &athena.StopQueryExecutionInput{QueryExecutionId: &id}); err != nil {
		return errors.Join(why, fmt.Errorf("athena StopQueryExecution %s: %w", id, err))
	}
	return why
}

// fetch reads the next page of rows.
func (a *Answer) fetch(ctx context.Context) error {
	out, err := a.api.GetQueryResults(ctx, &athena.GetQueryResultsInput{QueryExecutionId: &a.ID, NextToken: a.next, MaxResults: aws.Int32(1000)})
	if err != nil {
		return fmt.Errorf("athena GetQueryResults %s: %w", a.ID, err)
	}
	if a.first && out.ResultSet != nil && out.ResultSet.ResultSetMetadata != nil {
		for _, c := range out.ResultSet.ResultSetMetadata.ColumnInfo {
			a.Columns = append(a.Columns, aws.ToString(c.Name))
			a.types = append(a.types, aws.ToString(c.Type))
		}
	}
	a.page, a.next = nil, out.NextToken
	if out.ResultSet != nil {
		a.page = out.ResultSet.Rows
	}
	if a.first && len(a.page) > 0 && a.isHeader(a.page[0]) {
		a.page = a.page[1:]
	}
	a.first = false
	a.done = a.next == nil
	return nil
}

// isHeader says whether a row repeats the column names, as the first row of
// a SELECT's answer does.
func (a *Answer) isHeader(r types.Row) bool {
	if len(r.Data) != len(a.Columns) {
		return false
	}
	for i, d := range r.Data {
		if aws.ToString(d.VarCharValue) != a.Columns[i] {
			return false
		}
	}
	return true
}

// Next returns the next row (nil at the end): numbers and booleans as Go
// values, everything else as Athena's text, NULL as nil.
func (a *Answer) Next(ctx context.Context) ([]any, error) {
	for len(a.page) == 0 {
		if a.done {
			return nil, nil
		}
		if err := a.fetch(ctx); err != nil {
			return nil, err
		}
	}
	r := a.page[0]
	a.page = a.page[1:]
	row := make([]any, len(a.Columns))
	for i := range row {
		if i < len(r.Data) && r.Data[i].VarCharValue != nil {
			row[i] = value(*r.Data[i].VarCharValue, a.types[i])
		}
	}
	return row, nil
}

func value(text, typ string) any {
	switch typ {
	case "bigint", "integer", "smallint", "tinyint":
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n
		}
	case "double", "real", "float":
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return f
		}
	case "boolean":
		if b, err := strconv.ParseBool(text); err == nil {
			return b
		}
	}
	return text
}

// Cost is what Athena charges for a query that scanned so many bytes, in
// US dollars: $5 per TB in most regions, at least 10 MB per query, rounded
// up to the megabyte.
func Cost(scanned int64) float64 {
	mb := max((scanned+(1<<20)-1)>>20, 10)
	return float64(mb) * 5 / (1 << 20)
}

// withRE finds a statement's own WITH; built on first use, as every
// command pays only for what it uses.
var withRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?is)^(\s*(?:--[^\n]*\n\s*)*)WITH(\s+RECURSIVE)?\s`) })

// WithViews defines the views a statement names (errors, console_logins)
// in front of it, as a WITH clause: the same text as trailkeeper athena
// prints for Athena, so that a statement runs there whether or not those
// views were created.
func WithViews(sql string) string {
	var defs []string
	for _, v := range eventschema.ViewsNamed(sql) {
		// A statement that defines its own view of that name keeps it.
		own := regexp.MustCompile(`(?i)\b` + v.Name + `\s+AS\s*\(`)
		if !own.MatchString(sql) {
			defs = append(defs, v.Name+" AS ("+v.SQL+")")
		}
	}
	if len(defs) == 0 {
		return sql
	}
	if m := withRE().FindStringSubmatchIndex(sql); m != nil {
		return sql[:m[1]] + strings.Join(defs, ", ") + ", " + sql[m[1]:]
	}
	return "WITH " + strings.Join(defs, ", ") + "\n" + sql
}
