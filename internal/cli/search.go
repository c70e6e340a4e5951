package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/archive"
	"github.com/trailkeeper/trailkeeper/internal/index"
	"github.com/trailkeeper/trailkeeper/internal/search"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
)

// SearchOptions are the flags of search.
type SearchOptions struct {
	Location                     string
	Since, Until                 string
	Count                        bool
	Limit                        int
	Parallel                     int
	EventNames, Accounts, Regs   []string
	EventSource, Principal       string
	AccessKey, SourceIP, ErrCode string
	Resource                     string
	AnyError                     bool
	NoIndex                      bool
}

func newSearchCmd(streams IO, g *Globals) *cobra.Command {
	opts := &SearchOptions{}
	cmd := &cobra.Command{
		Use:   "search [LOCATION] [filters]",
		Short: "Find events across every account and region of the archive, straight from the log files",
		Long: `Find CloudTrail events in the archive without an index. LOCATION is the archive of the config (default),
s3://bucket[/prefix], or a local directory (an 'aws s3 sync' copy, or any folder of CloudTrail .json.gz files).

Filters combine (all must hold); --event-name can be repeated (any of them). Objects are pruned by the key
layout first (account, region, day, and the minute in the file name), then read in parallel; each file and each
record is tested for the filter's literal bytes before any JSON is decoded. Digests and Insights files are never
read as events.

Output: a table for people (time, account, region, event, principal, source IP, error); --output json prints
JSON Lines, each event exactly as CloudTrail wrote it plus "trailkeeper:objectKey", the object it came from;
--output csv the table's columns. Within one file events keep CloudTrail's order; files come in key order
(account, region, time). Times: RFC 3339, a date, or a duration back from now (90m, 24h, 7d); --since is
inclusive, --until exclusive.

--count answers from the index (trailkeeper index) when it holds every object of the range, as listed now, in
the version listed; otherwise, or with --no-index, it reads the log files.

Exit codes: 0 searched everything (matches or not), 1 some objects could not be read (each named on stderr),
2 usage or configuration error, 3 AWS access error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Location = args[0]
			}
			return classify(runSearch(cmd.Context(), streams, g, opts))
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&opts.EventNames, "event-name", nil, "eventName, e.g. DeleteBucket (repeatable: any of them)")
	f.StringVar(&opts.EventSource, "event-source", "", "eventSource, e.g. s3.amazonaws.com")
	f.StringVar(&opts.Principal, "principal", "", "a substring of the caller's ARN or user name")
	f.StringVar(&opts.AccessKey, "access-key", "", "the access key id the caller used")
	f.StringVar(&opts.SourceIP, "source-ip", "", "sourceIPAddress")
	f.BoolVar(&opts.AnyError, "error", false, "only calls that failed (any errorCode)")
	f.StringVar(&opts.ErrCode, "error-code", "", "only calls that failed with this errorCode, e.g. AccessDenied")
	f.StringVar(&opts.Resource, "resource", "", "a substring of a resource ARN or of the request parameters")
	f.StringSliceVar(&opts.Accounts, "account", nil, "only this account (repeatable)")
	f.StringSliceVar(&opts.Regs, "region", nil, "only this region (repeatable)")
	f.StringVar(&opts.Since, "since", "", "events from this time on (inclusive)")
	f.StringVar(&opts.Until, "until", "", "events before this time (exclusive)")
	f.BoolVar(&opts.Count, "count", false, "print only how many events match")
	f.IntVar(&opts.Limit, "limit", 0, "stop after N events")
	f.IntVar(&opts.Parallel, "parallel", 0, "objects read at once (default 256 from S3, 2 per core from a directory)")
	f.BoolVar(&opts.NoIndex, "no-index", false, "read the log files even when the index holds them all")
	return cmd
}

func runSearch(ctx context.Context, streams IO, g *Globals, opts *SearchOptions) error {
	now := time.Now().UTC()
	since, until, err := timerange.Parse(opts.Since, opts.Until, now)
	if err != nil {
		return err
	}
	if opts.Limit < 0 {
		return usageErr("", "--limit %d: give a positive number", opts.Limit)
	}
	a, err := archive.Open(ctx, g.Config, opts.Location)
	if err != nil {
		return err
	}
	s, root, c := a.Store, a.Root, a.Config
	filter := search.Filter{EventNames: opts.EventNames, EventSource: opts.EventSource, Principal: opts.Principal, AccessKey: opts.AccessKey,
		SourceIP: opts.SourceIP, AnyError: opts.AnyError, ErrorCode: opts.ErrCode, Resource: opts.Resource, Accounts: opts.Accounts,
		Regions: opts.Regs, Since: since, Until: until}
	out := bufio.NewWriterSize(streams.Out, 64<<10)
	defer out.Flush()
	var listing *search.Listing
	if opts.Count && !opts.NoIndex {
		n, dir, l, ok := index.Count(ctx, s, root, filter)
		if ok {
			if g.Output == "json" {
				return writeJSON(out, map[string]any{"count": n, "index": dir})
			}
			fmt.Fprintln(out, n)
			fmt.Fprintf(streams.Err, "%s, from the index at %s (it holds every object of the range; --no-index reads the log files)\n", plural(int(n), "event", "events"), dir)
			return nil
		}
		listing = l // the index could not answer: read what was listed
	}
	var emit func(search.Match) error
	var table *tabwriter.Writer
	switch {
	case opts.Count:
		emit = func(search.Match) error { return nil }
	case g.Output == "json":
		emit = func(m search.Match) error { return writeEventLine(out, m) }
	case g.Output == "csv":
		w := csv.NewWriter(out)
		w.Write(searchColumns)
		emit = func(m search.Match) error { w.Write(searchRow(m)); w.Flush(); return w.Error() }
	default:
		table = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(table, strings.Join(searchColumns, "\t"))
		emit = func(m search.Match) error {
			row := searchRow(m)
			row[4] = truncate(row[4], 60)
			_, err := fmt.Fprintln(table, strings.Join(row, "\t"))
			return err
		}
	}
	prog := newProgress(streams.Err, g, "search", 0)
	start := time.Now()
	stats, err := search.Run(ctx, s, search.Options{Root: root, Filter: filter, Limit: opts.Limit, Parallel: opts.Parallel, Listing: listing,
		Decode: !opts.Count && g.Output != "json",
		Progress: func(st search.Stats) {
			prog.update(int(st.ObjectsDone), int(st.ObjectsListed), fmt.Sprintf("objects, %s read, %s matched", megabytes(st.BytesRead), plural(int(st.Matched), "event", "events")))
		}}, emit)
	prog.finish()
	if table != nil {
		table.Flush()
	}
	if err != nil {
		return archiveError(err, s, c)
	}
	if opts.Count {
		if g.Output == "json" {
			writeJSON(out, map[string]any{"count": stats.Matched, "stats": stats})
		} else {
			fmt.Fprintln(out, stats.Matched)
		}
	}
	for _, w := range stats.Warnings {
		fmt.Fprintf(streams.Err, "warning: not searched: %s\n", w)
	}
	warnShadowed(streams.Err, stats.Shadowed, "searched")
	fmt.Fprintf(streams.Err, "%s in %s of %s (%s, %s uncompressed) in %s\n", plural(int(stats.Matched), "event", "events"),
		plural(int(stats.ObjectsRead), "object", "objects"), thousands(int(stats.ObjectsListed)), megabytes(stats.BytesRead),
		megabytes(stats.BytesInflated), time.Since(start).Round(time.Millisecond))
	if n := len(stats.Warnings); n > 0 {
		return &exitError{code: ExitProblems, err: fmt.Errorf("incomplete: %s not searched", plural(n, "object", "objects")),
			hint: "each is named above with why; a truncated or corrupt object may be restored from its source bucket"}
	}
	return nil
}

// warnShadowed names the keys that hold more than one version: only the
// newest was read, and it may not be the one CloudTrail wrote.
func warnShadowed(w io.Writer, shadowed []string, verb string) {
	for _, k := range shadowed {
		fmt.Fprintf(w, "warning: %s in the archive; only the newest was %s (trailkeeper verify says which one CloudTrail wrote)\n", k, verb)
	}
}

var searchColumns = []string{"TIME", "ACCOUNT", "REGION", "EVENT", "PRINCIPAL", "SOURCE IP", "ERROR"}

func searchRow(m search.Match) []string {
	e := m.Event
	return []string{e.EventTime, m.Account, m.Region, e.EventSource[:strings.IndexByte(e.EventSource+".", '.')] + ":" + e.EventName,
		e.Principal(), e.SourceIPAddress, e.ErrorCode}
}

// writeEventLine prints the record as CloudTrail wrote it, on one line, with
// the object key added under a name CloudTrail's camelCase fields cannot take.
func writeEventLine(w io.Writer, m search.Match) error {
	var line bytes.Buffer
	if err := json.Compact(&line, m.Raw); err != nil {
		return err
	}
	key, _ := json.Marshal(m.Key)
	b := line.Bytes()
	b = b[:len(b)-1] // the closing brace
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"trailkeeper:objectKey":`...)
	b = append(b, key...)
	b = append(b, '}', '\n')
	_, err := w.Write(b)
	return err
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
