package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/finding"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
)

// StatusOptions are the flags of status.
type StatusOptions struct {
	Accounts []string
	Parallel int
	Since    string
}

func newStatusCmd(streams IO, g *Globals) *cobra.Command {
	opts := &StatusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Is every account's trail reaching the archive right now? If not, why, and what to run",
		Long: `For each source account: is the trail logging and delivering, is replication configured as the
trail needs (prefix, KMS, RTC), would the role be allowed to replicate end to end (checked offline with the
policy evaluator: trust, role policy, archive policy, TLS deny), have the newest log files replicated, and how
far behind is the archive. For the archive: Object Lock and retention, versioning, public access, the TLS deny
and the policy's room. Every finding comes with a one-line fix. --output json follows docs/status.md.

Completeness: every log file and digest the trail bucket holds since --since must be in the archive; what is
missing is counted, with why (never replicated, FAILED, PENDING) and trailkeeper backfill as the fix. Drift:
everything plan would change is a finding. Healthy needs both.

Exit codes: 0 healthy, 1 any problem, 2 configuration error, 3 AWS access error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(runStatus(cmd.Context(), streams, g, opts))
		},
	}
	cmd.Flags().StringSliceVar(&opts.Accounts, "account", nil, "only this source account (repeatable)")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 16, "accounts checked at once")
	cmd.Flags().StringVar(&opts.Since, "since", "7d", "the archive must hold every log file and digest from here on (2025-09-10, 30d)")
	return cmd
}

func runStatus(ctx context.Context, streams IO, g *Globals, opts *StatusOptions) error {
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	since, err := timerange.ParseTime(opts.Since, now)
	if err != nil || since.IsZero() {
		return usageErr("use --since 2025-09-10 or --since 30d", "--since %q is not a time", opts.Since)
	}
	var sources []config.Source
	for _, s := range c.Sources {
		if len(opts.Accounts) == 0 || contains(opts.Accounts, s.AccountID) {
			sources = append(sources, s)
		}
	}
	for _, a := range opts.Accounts {
		if c.Source(a) == nil {
			return usageErr("list the accounts of the config", "account %s is not a source in %s", a, c.Path)
		}
	}
	env, err := setup.Connect(ctx, c, sources, opts.Parallel)
	if err != nil {
		return err
	}
	r, err := status.Check(ctx, env, status.Options{Accounts: opts.Accounts, Parallel: opts.Parallel, Now: now, Since: since})
	if err != nil {
		return err
	}
	if g.Output == "json" {
		if err := writeJSON(streams.Out, r); err != nil {
			return err
		}
	} else {
		printStatus(streams.Out, r)
	}
	if code := finding.Exit(r.Findings); code != ExitOK {
		return &exitError{code: code, err: fmt.Errorf("")}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(*t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func printStatus(w io.Writer, r *status.Report) {
	paint := coloursFor(w)
	now := r.CheckedAt
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tTRAIL\tLOGGING\tDELIVERED\tVALIDATION\tREPLICATION\tRECENT LOGS\tLAG\tSTATUS")
	for _, a := range r.Accounts {
		repl := "no rule"
		if a.ReplicationRule {
			repl = "rule"
			if a.ReplicationAllows {
				repl += ", allowed"
			} else {
				repl += ", BLOCKED"
			}
		}
		recent := "-"
		if n := a.Recent["COMPLETED"] + a.Recent["PENDING"] + a.Recent["FAILED"] + a.Recent["NONE"]; n > 0 {
			recent = fmt.Sprintf("%d/%d completed", a.Recent["COMPLETED"], n)
			if a.Recent["FAILED"] > 0 {
				recent += fmt.Sprintf(", %d FAILED", a.Recent["FAILED"])
			}
			if a.Recent["PENDING"] > 0 {
				recent += fmt.Sprintf(", %d pending", a.Recent["PENDING"])
			}
		}
		lag := "-"
		if a.LagSeconds != nil {
			lag = (time.Duration(*a.LagSeconds) * time.Second).String()
		}
		state := "ok"
		if a.Problems > 0 {
			state = plural(a.Problems, "problem", "problems")
		}
		trail, logging, validation := a.Trail, yesNo(a.Logging), yesNo(a.LogFileValidation)
		if trail == "" { // the trail was not found: nothing about it is known
			trail, logging, validation, repl = "(not found)", "?", "?", "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Account, trail, logging, ago(a.LatestDelivery, now),
			validation, repl, recent, lag, state)
	}
	tw.Flush()
	ar := r.Archive
	lock := "NO Object Lock"
	if ar.ObjectLock {
		lock = "Object Lock " + ar.Retention
		if ar.Retention == "" {
			lock = "Object Lock without retention"
		}
	}
	fmt.Fprintf(w, "\narchive %s %s: %s, versioning %s, public access blocked %s, TLS deny %s, policy %s of 20,480 bytes (about %s more accounts fit)\n",
		ar.Account, ar.Bucket, lock, orDash(ar.Versioning), yesNo(ar.PublicAccessBlocked), yesNo(ar.TLSDeny), thousands(ar.PolicyBytes), thousands(ar.AccountsThatFit))
	if r.Alerts != nil {
		for _, t := range r.Alerts.Topics {
			fmt.Fprintf(w, "alerts %s: failures of %s reach %s\n", t.ARN, plural(t.Wired, "source bucket", "source buckets"),
				plural(t.Confirmed, "confirmed subscription", "confirmed subscriptions"))
		}
	}
	if r.Watch != nil {
		wired := "tell the alert topic"
		if !r.Watch.Wired {
			wired = paint.bad("tell nobody")
		}
		fmt.Fprintf(w, "watch %s: tampering calls of %s of %d sources reach it, its rules %s\n", r.Watch.Bus, thousands(r.Watch.SourcesWired), len(r.Accounts), wired)
		switch {
		case r.Watch.Schedule == "":
			fmt.Fprintf(w, "watch function: %s\n", paint.bad("not scheduled"))
		case r.Watch.LastRun == nil:
			fmt.Fprintf(w, "watch function: runs %s, not run yet\n", r.Watch.Schedule)
		default:
			verdict := paint.good("healthy")
			if !*r.Watch.LastHealthy {
				verdict = paint.bad("not healthy")
			}
			fmt.Fprintf(w, "watch function: runs %s, last at %s: %s\n", r.Watch.Schedule, r.Watch.LastRun.Format("2006-01-02 15:04 MST"), verdict)
		}
	}
	printCost(w, &r.Cost)
	if len(r.Findings) == 0 {
		fmt.Fprintf(w, "\n%s: every account's trail reaches the archive, and the archive holds every log file and digest since %s.\n",
			paint.good("Healthy"), r.Since.Format("2006-01-02 15:04 MST"))
		return
	}
	fmt.Fprintln(w, "\nFindings:")
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  %s %s %s: %s\n          fix: %s\n", paint.severity(string(f.Severity))+strings.Repeat(" ", max(0, 7-len(f.Severity))), f.Account, f.Code, f.Message, f.Fix)
	}
}

func orDash(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
