package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/athena"
	"github.com/trailkeeper/trailkeeper/internal/athenaquery"
	"github.com/trailkeeper/trailkeeper/internal/index"
	"github.com/trailkeeper/trailkeeper/internal/query"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
)

func newQueryCmd(streams IO, g *Globals) *cobra.Command {
	var dir, named, since, until string
	var onAthena bool
	var scope query.Scope
	cmd := &cobra.Command{
		Use:   "query [--index DIR | --athena] [--account ID] [--region R] [--since T] [--until T] SQL | --named NAME",
		Short: "SQL over the index (DuckDB) or in Athena: table events, views errors and console_logins",
		Long: `query runs one SQL statement with DuckDB over the index that trailkeeper index wrote. The table events
has Athena's CloudTrail column names (eventtime, eventname, useridentity.arn, requestparameters as JSON text, ...)
and the partition columns account, region and day; the views errors and console_logins narrow it. The same
statements run on Athena over the tables trailkeeper athena writes.

  trailkeeper query "SELECT eventname, count(*) AS n FROM errors GROUP BY ALL ORDER BY n DESC LIMIT 10"
  trailkeeper query -o csv "SELECT eventtime, useridentity.arn, sourceipaddress FROM console_logins"

--account, --region, --since and --until narrow the events table (and the views) to those accounts, regions
and that span of eventTime, and only their folders are read: on a large index a narrow statement spends most
of its time listing folders otherwise.

  trailkeeper query --account 111122223333 --since 7d "SELECT eventtime, eventname FROM events WHERE useridentity.arn LIKE '%/alice'"

With --athena the statement runs in Athena instead, in the workgroup and database that apply made from the
config's athena: section, over the tables of the log files themselves (the views are defined in front of the
statement as a WITH clause). Athena's dialect is Trino's; the views and named queries run on both. The bytes
scanned and their cost are shown on stderr. Needs athena:StartQueryExecution, GetQueryExecution,
GetQueryResults, StopQueryExecution, glue:GetTable and GetDatabase, s3:GetObject and ListBucket on the archive,
and s3:PutObject on the results location.

Exit codes: 0 answered, 1 Athena failed the query for a reason of its own, 2 usage error (bad SQL, no index).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var names []string
			for _, q := range athena.Queries() {
				names = append(names, q.Name)
				if q.Name == named {
					args = append(args, q.SQL)
				}
			}
			if len(args) != 1 {
				return classify(usageErr("give one SQL statement, or --named with one of: "+strings.Join(names, ", "), "nothing to run"))
			}
			if onAthena && dir != "" {
				return classify(usageErr("give --athena to run in Athena, or --index DIR to run over a local index", "--athena and --index both given"))
			}
			narrowed := len(scope.Accounts) > 0 || len(scope.Regions) > 0 || since != "" || until != ""
			if onAthena {
				if narrowed {
					return classify(usageErr("in Athena, narrow the statement's WHERE clause (account, region and day are the table's partitions)",
						"--account, --region, --since and --until narrow the local index, not Athena's table"))
				}
				return classify(runAthenaQuery(cmd.Context(), streams, g, args[0]))
			}
			var err error
			if scope.Since, scope.Until, err = timerange.Parse(since, until, time.Now().UTC()); err != nil {
				return classify(err)
			}
			return classify(runQuery(cmd.Context(), streams, g, dir, scope, args[0]))
		},
	}
	cmd.Flags().BoolVar(&onAthena, "athena", false, "run the statement in Athena (the config's athena: workgroup and database) instead of over the index")
	cmd.Flags().StringVar(&dir, "index", "", "the index folder (default: the config's archive's, as trailkeeper index writes it)")
	cmd.Flags().StringVar(&named, "named", "", "run a named query (trailkeeper athena lists them; they run unchanged in Athena)")
	cmd.Flags().StringSliceVar(&scope.Accounts, "account", nil, "only this account's events (repeatable): only its folders are read")
	cmd.Flags().StringSliceVar(&scope.Regions, "region", nil, "only this region's events (repeatable)")
	cmd.Flags().StringVar(&since, "since", "", "only events from this time on (inclusive): 2025-09-10T15:00:00Z, 2025-09-10, 48h, 7d")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time (exclusive)")
	return cmd
}

func runQuery(ctx context.Context, streams IO, g *Globals, dir string, scope query.Scope, sql string) error {
	if dir == "" {
		c, err := loadConfig(g)
		if err != nil {
			return err
		}
		if dir, err = index.DefaultDir(store.S3{Bucket: c.Archive.Bucket}, ""); err != nil {
			return usageErr("give the index folder with --index DIR", "%v", err)
		}
	}
	db, err := query.Open(ctx, dir, scope)
	if errors.Is(err, query.ErrEmpty) {
		return usageErr("run trailkeeper index first", "the index at %s holds no events", dir)
	}
	if err != nil {
		return usageErr("run trailkeeper index first, or give --index DIR", "%v", err)
	}
	defer db.Close()
	start := time.Now()
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return usageErr("the table is events (views: errors, console_logins); columns as in Athena's CloudTrail table", "%v", err)
	}
	defer rows.Close()
	out := bufio.NewWriterSize(streams.Out, 64<<10)
	defer out.Flush()
	n, err := writeRows(out, g.Output, rows.Columns, rows.Next)
	if err != nil {
		return usageErr("", "%v", err)
	}
	out.Flush() // the answer before the summary, when both go to a terminal
	fmt.Fprintf(streams.Err, "%s in %s\n", plural(n, "row", "rows"), time.Since(start).Round(time.Millisecond))
	return nil
}

// runAthenaQuery runs the statement in the config's Athena workgroup.
func runAthenaQuery(ctx context.Context, streams IO, g *Globals, sql string) error {
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	if !c.Athena.Enabled {
		return usageErr("add an athena: section to the config (docs/query.md) and run trailkeeper apply", "%s has no athena: section: no workgroup to run in", g.Config)
	}
	env, err := setup.Connect(ctx, c, nil, 1) // the archive's credentials, checked as every command checks them
	if err != nil {
		return err
	}
	start := time.Now()
	req := athenaquery.Request{SQL: sql, Database: c.Athena.Database, Workgroup: c.Athena.Workgroup, Started: func(id string) {
		if !g.NoProgress {
			fmt.Fprintf(streams.Err, "Athena query %s running in workgroup %s (Ctrl-C stops it)\n", id, c.Athena.Workgroup)
		}
	}}
	answer, err := athenaquery.Run(ctx, env.Archive.Athena, req)
	var failed *athenaquery.Failed
	if errors.As(err, &failed) && failed.User {
		return usageErr("the tables are "+c.Athena.Database+".events (views: errors, console_logins); Athena's dialect is Trino's", "%v", err)
	}
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(streams.Out, 64<<10)
	defer out.Flush()
	n, err := writeRows(out, g.Output, answer.Columns, func() ([]any, error) { return answer.Next(ctx) })
	if err != nil {
		return err
	}
	out.Flush()
	fmt.Fprintf(streams.Err, "%s in %s; Athena scanned %s, about $%.6f (at $5 per TB, 10 MB at least); query %s, results %s\n",
		plural(n, "row", "rows"), time.Since(start).Round(time.Millisecond), megabytes(answer.Scanned), athenaquery.Cost(answer.Scanned), answer.ID, answer.Output)
	return nil
}

// writeRows prints an answer: a table for people, JSON Lines or CSV for scripts.
func writeRows(w io.Writer, format string, columns []string, next func() ([]any, error)) (int, error) {
	var emit func([]any) error
	var flush func() error
	switch format {
	case "json":
		emit = func(row []any) error {
			obj := make(map[string]any, len(row))
			for i, c := range columns {
				obj[c] = row[i]
			}
			data, err := json.Marshal(obj)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "%s\n", data)
			return err
		}
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(columns)
		emit = func(row []any) error { return cw.Write(cells(row)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
		emit = func(row []any) error {
			c := cells(row)
			for i := range c {
				c[i] = truncate(c[i], 80)
			}
			_, err := fmt.Fprintln(tw, strings.Join(c, "\t"))
			return err
		}
		flush = tw.Flush
	}
	n := 0
	for {
		row, err := next()
		if err != nil {
			return n, err
		}
		if row == nil {
			break
		}
		if err := emit(row); err != nil {
			return n, err
		}
		n++
	}
	if flush != nil {
		return n, flush()
	}
	return n, nil
}

// cells renders values as text: NULL as empty, structs and lists as JSON.
func cells(row []any) []string {
	out := make([]string, len(row))
	for i, v := range row {
		switch x := v.(type) {
		case nil:
		case string:
			out[i] = x
		case []byte:
			out[i] = string(x)
		case time.Time:
			out[i] = x.UTC().Format(time.RFC3339)
		case map[string]any, []any:
			data, _ := json.Marshal(x)
			out[i] = string(data)
		default:
			out[i] = fmt.Sprint(x)
		}
	}
	return out
}
