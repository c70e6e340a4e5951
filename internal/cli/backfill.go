package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/backfill"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
)

// BackfillOptions are the flags of backfill.
type BackfillOptions struct {
	Accounts []string
	Since    string
	Wait     bool
	Parallel int
	Poll     time.Duration
}

func newBackfillCmd(streams IO, g *Globals) *cobra.Command {
	opts := &BackfillOptions{}
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Bring into the archive the log files replication never copied (written before the rule, or FAILED)",
		Long: `Live replication copies only what is written after the rule exists, and never retries an object whose
replication FAILED. For each source account with log files missing from the archive, backfill starts an S3 Batch
Replication job in that account and region (the role apply created, a manifest of the objects the rule covers
whose status is NONE or FAILED, a completion report under trailkeeper/backfill/ in the trail bucket) and records
it there, so that a rerun follows an unfinished job instead of starting another. With --wait it follows the jobs,
then prints per account what was tried, what succeeded and failed, why, and the fix, and compares the archive
with the source again. Batch Operations costs $0.25 per job and $1.00 per million objects (docs/cost.md).

Exit codes: 0 every account complete (or, without --wait, its job started), 1 anything missing or failed,
2 configuration error, 3 AWS access error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(runBackfill(cmd.Context(), streams, g, opts))
		},
	}
	cmd.Flags().StringSliceVar(&opts.Accounts, "account", nil, "only this source account (repeatable)")
	cmd.Flags().StringVar(&opts.Since, "since", "", "only log files from this day on (2025-09-10, 7d); default: all")
	cmd.Flags().BoolVar(&opts.Wait, "wait", false, "follow the jobs to their end and report their results")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 16, "accounts handled at once")
	cmd.Flags().DurationVar(&opts.Poll, "poll", 5*time.Second, "how often a job's progress is asked for while waiting")
	return cmd
}

func runBackfill(ctx context.Context, streams IO, g *Globals, opts *BackfillOptions) error {
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	since, err := timerange.ParseTime(opts.Since, now)
	if err != nil {
		return usageErr("use --since 2025-09-10 or --since 7d", "%v", err)
	}
	var sources []config.Source
	for _, a := range opts.Accounts {
		if c.Source(a) == nil {
			return usageErr("list the accounts of the config", "account %s is not a source in %s", a, c.Path)
		}
	}
	for _, s := range c.Sources {
		if len(opts.Accounts) == 0 || contains(opts.Accounts, s.AccountID) {
			sources = append(sources, s)
		}
	}
	env, err := setup.Connect(ctx, c, sources, opts.Parallel)
	if err != nil {
		return err
	}
	prog := newProgress(streams.Err, g, "backfill", 0)
	var mu sync.Mutex
	done, total := map[string]int{}, map[string]int{}
	results, err := backfill.Run(ctx, env, backfill.Options{Accounts: opts.Accounts, Since: since, Wait: opts.Wait, Parallel: opts.Parallel, Poll: opts.Poll,
		Progress: func(account string, d, t int) {
			mu.Lock()
			defer mu.Unlock()
			done[account], total[account] = d, t
			sd, st := 0, 0
			for a := range total {
				sd, st = sd+done[a], st+total[a]
			}
			prog.update(sd, st, "tasks of "+plural(len(total), "job", "jobs"))
		}})
	prog.finish()
	if err != nil {
		return err
	}
	if g.Output == "json" {
		if err := writeJSON(streams.Out, map[string]any{"since": since, "waited": opts.Wait, "accounts": results}); err != nil {
			return err
		}
	} else {
		printBackfill(streams.Out, results, since, opts.Wait)
	}
	for _, r := range results {
		if r.Problem != "" || r.Failed > 0 || len(r.JobFailures) > 0 || opts.Wait && r.Remaining != 0 {
			return &exitError{code: ExitProblems, err: fmt.Errorf("")}
		}
	}
	return nil
}

func printBackfill(w io.Writer, results []*backfill.Result, since time.Time, waited bool) {
	paint := coloursFor(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tMISSING\tJOB\tSTATUS\tTRIED\tSUCCEEDED\tFAILED\tSTILL MISSING")
	complete := 0
	for _, r := range results {
		job, still := r.JobID, "-"
		if job == "" {
			job = "-"
		}
		if r.Resumed {
			job += " (earlier run)"
		}
		if r.Remaining >= 0 {
			still = fmt.Sprint(r.Remaining)
			if r.Remaining == 0 {
				complete++
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Account, r.Missing, job, r.Status, r.Tried, r.Succeeded, r.Failed, still)
	}
	tw.Flush()
	for _, r := range results {
		for _, f := range r.JobFailures {
			fmt.Fprintf(w, "\n%s job %s failed: %s\n  fix: %s\n", r.Account, r.JobID, f, backfill.Fix(firstWord(f)))
		}
		for _, code := range r.Codes() {
			fmt.Fprintf(w, "\n%s %s: %s\n  fix: %s\n", r.Account, code, plural(r.Reasons[code], "object", "objects"), backfill.Fix(code))
		}
		if r.Problem != "" {
			fmt.Fprintf(w, "\n%s: %s\n", r.Account, r.Problem)
		}
	}
	window := ""
	if !since.IsZero() {
		window = " since " + since.Format("2006-01-02")
	}
	switch {
	case !waited:
		fmt.Fprintln(w, "\nThe jobs run in AWS: follow them with trailkeeper backfill --wait (a rerun follows them and starts none twice).")
	case complete == len(results):
		fmt.Fprintf(w, "\n%s: the archive holds every log file and digest%s of %s.\n", paint.good("Complete"), window, plural(len(results), "account", "accounts"))
	default:
		fmt.Fprintf(w, "\n%d of %s still miss log files or digests%s in the archive.\n", len(results)-complete, plural(len(results), "account", "accounts"), window)
	}
}

func firstWord(s string) string {
	for i, r := range s {
		if r == ':' || r == ' ' {
			return s[:i]
		}
	}
	return s
}
