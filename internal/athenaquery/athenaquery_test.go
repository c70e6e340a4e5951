package athenaquery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/athena"
	"github.com/aws/aws-sdk-go-v2/service/athena/types"
)

func TestWithViewsDefinesOnlyTheViewsNamed(t *testing.T) {
	errorsView := "errors AS (SELECT * FROM events WHERE errorcode IS NOT NULL)"
	for _, tt := range []struct{ in, want string }{
		{"SELECT count(*) FROM events", "SELECT count(*) FROM events"},
		{"SELECT eventname FROM errors", "WITH " + errorsView + "\nSELECT eventname FROM errors"},
		{"-- mine\nWITH x AS (SELECT 1) SELECT * FROM ERRORS, x", "-- mine\nWITH " + errorsView + ", x AS (SELECT 1) SELECT * FROM ERRORS, x"},
		{"with recursive r AS (SELECT 1) SELECT * FROM errors", "with recursive " + errorsView + ", r AS (SELECT 1) SELECT * FROM errors"},
		{"WITH errors AS (SELECT 1) SELECT * FROM errors", "WITH errors AS (SELECT 1) SELECT * FROM errors"}, // the user's own
		{"SELECT count(*) AS error_count FROM events", "SELECT count(*) AS error_count FROM events"},
	} {
		if got := WithViews(tt.in); got != tt.want {
			t.Errorf("WithViews(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
	both := WithViews("SELECT * FROM console_logins UNION ALL SELECT * FROM errors")
	if !strings.HasPrefix(both, "WITH errors AS (") || !strings.Contains(both, ", console_logins AS (SELECT * FROM events WHERE eventname = 'ConsoleLogin')") {
		t.Errorf("two views: %q", both)
	}
}

// Athena bills at least 10 MB a query, rounded up to the megabyte, $5 a TB.
func TestCost(t *testing.T) {
	for _, tt := range []struct {
		bytes int64
		want  float64
	}{{0, 10 * 5.0 / (1 << 20)}, {10 << 20, 10 * 5.0 / (1 << 20)}, {10<<20 + 1, 11 * 5.0 / (1 << 20)}, {1 << 40, 5}} {
		if got := Cost(tt.bytes); got != tt.want {
			t.Errorf("Cost(%d) = %v, want %v", tt.bytes, got, tt.want)
		}
	}
}

// fake is Athena as a script: the states GetQueryExecution answers in turn,
// then the pages of the answer.
type fake struct {
	states  []types.QueryExecutionState
	pages   []*athena.GetQueryResultsOutput
	polled  int
	stopped []string
	onPoll  func(n int)
}

func (f *fake) StartQueryExecution(_ context.Context, in *athena.StartQueryExecutionInput, _ ...func(*athena.Options)) (*athena.StartQueryExecutionOutput, error) {
	return &athena.StartQueryExecutionOutput{QueryExecutionId: aws.String("q-1")}, nil
}

func (f *fake) GetQueryExecution(_ context.Context, in *athena.GetQueryExecutionInput, _ ...func(*athena.Options)) (*athena.GetQueryExecutionOutput, error) {
	state := f.states[min(f.polled, len(f.states)-1)]
	f.polled++
	if f.onPoll != nil {
		f.onPoll(f.polled)
	}
	return &athena.GetQueryExecutionOutput{QueryExecution: &types.QueryExecution{Status: &types.QueryExecutionStatus{State: state},
		Statistics: &types.QueryExecutionStatistics{DataScannedInBytes: aws.Int64(123)}}}, nil
}

func (f *fake) GetQueryResults(_ context.Context, in *athena.GetQueryResultsInput, _ ...func(*athena.Options)) (*athena.GetQueryResultsOutput, error) {
	i := 0
	if in.NextToken != nil {
		i, _ = strconv.Atoi(*in.NextToken)
	}
	return f.pages[i], nil
}

func (f *fake) StopQueryExecution(_ context.Context, in *athena.StopQueryExecutionInput, _ ...func(*athena.Options)) (*athena.StopQueryExecutionOutput, error) {
	f.stopped = append(f.stopped, aws.ToString(in.QueryExecutionId))
	return &athena.StopQueryExecutionOutput{}, nil
}

func row(values ...*string) types.Row {
	var r types.Row
	for _, v := range values {
		r.Data = append(r.Data, types.Datum{VarCharValue: v})
	}
	return r
}

// The answer skips the header row of the first page only, follows
// NextToken, types numbers by the column's type and keeps NULL as nil.
func TestRunPagesTheAnswer(t *testing.T) {
	meta := &types.ResultSetMetadata{ColumnInfo: []types.ColumnInfo{{Name: aws.String("name"), Type: aws.String("varchar")}, {Name: aws.String("n"), Type: aws.String("bigint")}}}
	f := &fake{states: []types.QueryExecutionState{types.QueryExecutionStateQueued, types.QueryExecutionStateRunning, types.QueryExecutionStateSucceeded},
		pages: []*athena.GetQueryResultsOutput{
			{ResultSet: &types.ResultSet{ResultSetMetadata: meta, Rows: []types.Row{row(aws.String("name"), aws.String("n")), row(aws.String("a"), aws.String("1"))}}, NextToken: aws.String("1")},
			{ResultSet: &types.ResultSet{ResultSetMetadata: meta, Rows: []types.Row{row(aws.String("name"), aws.String("n")), row(nil, aws.String("3"))}}},
		}}
	a, err := Run(context.Background(), f, Request{SQL: "SELECT 1", Poll: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]any
	for {
		r, err := a.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			break
		}
		got = append(got, r)
	}
	want := [][]any{{"a", int64(1)}, {"name", "n"}, {nil, int64(3)}}
	if fmt.Sprint(got) != fmt.Sprint(want) || a.Scanned != 123 || f.polled != 3 {
		t.Errorf("rows %v, scanned %d after %d polls; want %v", got, a.Scanned, f.polled, want)
	}
}

// A caller that stops waiting (Ctrl-C) stops the query, so that Athena does
// not bill it further; a failed query is the user's when Athena says so.
func TestRunStopsWhatItNoLongerWaitsFor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fake{states: []types.QueryExecutionState{types.QueryExecutionStateRunning}, onPoll: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	if _, err := Run(ctx, f, Request{SQL: "SELECT 1", Poll: time.Microsecond}); !errors.Is(err, context.Canceled) || !slices.Equal(f.stopped, []string{"q-1"}) {
		t.Fatalf("err %v, stopped %v", err, f.stopped)
	}
}
