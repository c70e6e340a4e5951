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
	"github.com/trailkeeper/trailkeeper/internal/index"
	"github.com/trailkeeper/trailkeeper/internal/query"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

func newQueryCmd(streams IO, g *Globals) *cobra.Command {
	var dir, named string
	cmd := &cobra.Command{
		Use:   "query [--index DIR] SQL | --named NAME",
		Short: "SQL over the index (DuckDB): table events, views errors and console_logins",
		Long: `query runs one SQL statement with DuckDB over the index that trailkeeper index wrote. The table events
has Athena's CloudTrail column names (eventtime, eventname, useridentity.arn, requestparameters as JSON text, ...)
and the partition columns account, region and day; the views errors and console_logins narrow it. The same
statements run on Athena over the tables trailkeeper athena writes.

  trailkeeper query "SELECT eventname, count(*) AS n FROM errors GROUP BY ALL ORDER BY n DESC LIMIT 10"
  trailkeeper query -o csv "SELECT eventtime, useridentity.arn, sourceipaddress FROM console_logins"

Exit codes: 0 answered, 2 usage error (bad SQL, no index).`,
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
			return classify(runQuery(cmd.Context(), streams, g, dir, args[0]))
		},
	}
	cmd.Flags().StringVar(&dir, "index", "", "the index folder (default: the config's archive's, as trailkeeper index writes it)")
	cmd.Flags().StringVar(&named, "named", "", "run a named query (trailkeeper athena lists them; they run unchanged in Athena)")
	return cmd
}

func runQuery(ctx context.Context, streams IO, g *Globals, dir, sql string) error {
	if dir == "" {
		c, err := loadConfig(g)
		if err != nil {
			return err
		}
		if dir, err = index.DefaultDir(store.S3{Bucket: c.Archive.Bucket}, ""); err != nil {
			return usageErr("give the index folder with --index DIR", "%v", err)
		}
	}
	db, err := query.Open(ctx, dir)
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
	n, err := writeRows(out, g.Output, rows)
	if err != nil {
		return usageErr("", "%v", err)
	}
	out.Flush() // the answer before the summary, when both go to a terminal
	fmt.Fprintf(streams.Err, "%s in %s\n", plural(n, "row", "rows"), time.Since(start).Round(time.Millisecond))
	return nil
}

// writeRows prints an answer: a table for people, JSON Lines or CSV for scripts.
func writeRows(w io.Writer, format string, rows *query.Rows) (int, error) {
	var emit func([]any) error
	var flush func() error
	switch format {
	case "json":
		emit = func(row []any) error {
			obj := make(map[string]any, len(row))
			for i, c := range rows.Columns {
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
		cw.Write(rows.Columns)
		emit = func(row []any) error { return cw.Write(cells(row)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	default:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(rows.Columns, "\t")))
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
		row, err := rows.Next()
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
