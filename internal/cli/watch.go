package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/watch"
)

func newWatchCmd(streams IO, g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Check that tampering in a source account reaches a person (the config's watch: section)",
		Args:  cobra.NoArgs,
	}
	test := &cobra.Command{
		Use:   "test",
		Short: "Send a test event through each source's watch rule to the alert topic",
		Long: `Put a test event on each source account's default event bus, in its trail's home region. trailkeeper's
watch rule there sends it to the archive account's bus like a StopLogging or a deleted replication rule, and a
rule there tells the alert topic of the archive's region in one line: "trailkeeper watch test: account ... reaches
this topic". Check that it arrived. Then the watch function runs once, as its schedule would, and what it
concluded is printed (it tells the topic only if its verdict changed).

Exit codes: 0 every source sent its test to a topic with a confirmed subscriber, 1 not, 2 configuration error,
3 AWS access error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(runWatchTest(cmd.Context(), streams, g))
		},
	}
	cmd.AddCommand(test)
	return cmd
}

func runWatchTest(ctx context.Context, streams IO, g *Globals) error {
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	if !c.Watch.Enabled {
		return usageErr("add watch: {} (and alerts: with a subscriber), then trailkeeper apply", "%s has no watch: section: nothing is wired to test", c.Path)
	}
	env, err := setup.Connect(ctx, c, c.Sources, 16)
	if err != nil {
		return err
	}
	results, err := watch.Test(ctx, env, 16)
	if err != nil {
		return err
	}
	verdict, ranErr := watch.Invoke(ctx, env)
	topics, err := setup.ObserveTopics(ctx, c, env.Archive, nil)
	if err != nil {
		return err
	}
	topic := topics[c.Archive.Region]
	confirmed := 0
	for _, s := range topic.Subscriptions {
		if s.Confirmed {
			confirmed++
		}
	}
	if g.Output == "json" {
		if err := writeJSON(streams.Out, map[string]any{"sources": results, "topic": topic.ARN, "subscriptions": orEmpty(topic.Subscriptions), "confirmed": confirmed,
			"function": verdict}); err != nil {
			return err
		}
	} else {
		printWatchTest(streams.Out, results, topic)
		if ranErr == nil {
			said := "said nothing (its verdict did not change)"
			if verdict.Message != "" {
				said = "told the topic: " + firstLine(verdict.Message)
			}
			state := "healthy"
			if !verdict.Healthy {
				state = fmt.Sprintf("not healthy (%s)", plural(len(verdict.Problems), "problem", "problems"))
			}
			fmt.Fprintf(streams.Out, "The watch function ran once: %s; it %s\n", state, said)
		}
	}
	if ranErr != nil {
		return &exitError{code: ExitProblems, err: ranErr, hint: "trailkeeper apply deploys the function; trailkeeper status names what is missing"}
	}
	for _, r := range results {
		if !r.Sent {
			return &exitError{code: ExitProblems, err: fmt.Errorf("the test event of account %s was not sent: %s", r.Account, r.Problem), hint: "trailkeeper apply wires watch; trailkeeper plan shows what is missing"}
		}
	}
	if confirmed == 0 {
		return &exitError{code: ExitProblems, err: fmt.Errorf("topic %s has no confirmed subscriber: the tests reach nobody", topic.ARN), hint: "list a subscriber under alerts.subscribe and apply, then follow the link SNS sends"}
	}
	return nil
}

func orEmpty(s []setup.Subscription) []setup.Subscription {
	if s == nil {
		return []setup.Subscription{}
	}
	return s
}

func printWatchTest(w io.Writer, results []*watch.Result, topic *setup.Topic) {
	paint := coloursFor(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tTEST EVENT")
	sent := 0
	for _, r := range results {
		what := paint.good("sent") + " (" + r.EventID + ")"
		if r.Sent {
			sent++
		} else {
			what = paint.bad("not sent") + ": " + r.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Account, r.Region, what)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s reaches %s\n", topic.ARN, receivers(paint, topic.Subscriptions))
	fmt.Fprintf(w, "\n%d of %s sent a test event. Check that it arrived: it begins \"trailkeeper watch test: account\".\n",
		sent, plural(len(results), "source", "sources"))
}
