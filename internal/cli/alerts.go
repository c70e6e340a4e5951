package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/alerts"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

func newAlertsCmd(streams IO, g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Check where replication failures go (the config's alerts: section)",
		Args:  cobra.NoArgs,
	}
	var accounts []string
	test := &cobra.Command{
		Use:   "test",
		Short: "Have S3 send a test event from each source bucket to its alert topic",
		Long: `S3 proves a bucket's notification destinations each time their configuration is written, by
publishing an s3:TestEvent ("Amazon S3 Notification") to each topic. alerts test writes each source bucket's
configuration again, as it is, so the test event takes the path a failure event takes: the bucket's notification
configuration, the topic's policy, the topic's subscriptions. Check that it arrived.

Exit codes: 0 every bucket sent its test to a topic with a confirmed subscriber, 1 not, 2 configuration
error, 3 AWS access error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(runAlertsTest(cmd.Context(), streams, g, accounts))
		},
	}
	test.Flags().StringSliceVar(&accounts, "account", nil, "only this source account (repeatable)")
	cmd.AddCommand(test)
	return cmd
}

func runAlertsTest(ctx context.Context, streams IO, g *Globals, accounts []string) error {
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	if !c.Alerts.Enabled {
		return usageErr("add alerts: with subscribe: [an email address or https URL], then trailkeeper apply", "%s has no alerts: section: nothing is wired to test", c.Path)
	}
	var sources []config.Source
	for _, a := range accounts {
		if c.Source(a) == nil {
			return usageErr("list the accounts of the config", "account %s is not a source in %s", a, c.Path)
		}
	}
	for _, s := range c.Sources {
		if len(accounts) == 0 || contains(accounts, s.AccountID) {
			sources = append(sources, s)
		}
	}
	env, err := setup.Connect(ctx, c, sources, 16)
	if err != nil {
		return err
	}
	results, topics, err := alerts.Test(ctx, env, 16)
	if err != nil {
		return err
	}
	if g.Output == "json" {
		err = writeJSON(streams.Out, map[string]any{"buckets": results, "topics": topics})
	} else {
		printAlertsTest(streams.Out, results, topics)
	}
	if err != nil {
		return err
	}
	for _, r := range results {
		if !r.Sent {
			return &exitError{code: ExitProblems, err: fmt.Errorf("")}
		}
	}
	for _, t := range topics {
		if t.Confirmed == 0 {
			return &exitError{code: ExitProblems, err: fmt.Errorf("")}
		}
	}
	return nil
}

func printAlertsTest(w io.Writer, results []*alerts.Result, topics []*alerts.Topic) {
	paint := coloursFor(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tBUCKET\tTOPIC\tTEST EVENT")
	sent := 0
	for _, r := range results {
		what := paint.good("sent by S3")
		if r.Sent {
			sent++
		} else {
			what = paint.bad("not sent") + ": " + r.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Account, r.Bucket, r.Topic, what)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, t := range topics {
		fmt.Fprintf(w, "%s reaches %s\n", t.ARN, receivers(paint, t.Subscriptions))
	}
	fmt.Fprintf(w, "\nS3 sent a test event from %d of %s. Check that it arrived: its subject is \"Amazon S3 Notification\", its message names the bucket and \"s3:TestEvent\".\n",
		sent, plural(len(results), "bucket", "buckets"))
}

// receivers says who a topic's messages reach, and who they do not yet.
func receivers(paint colours, subs []setup.Subscription) string {
	var who []string
	for _, s := range subs {
		state := "confirmed"
		if !s.Confirmed {
			state = "pending confirmation: gets nothing"
		}
		who = append(who, fmt.Sprintf("%s (%s)", s.Shown, state))
	}
	if len(who) == 0 {
		return paint.bad("nobody") + ": list a subscriber under alerts.subscribe and apply"
	}
	return strings.Join(who, ", ")
}
