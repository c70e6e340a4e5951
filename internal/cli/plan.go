package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// PlanOptions are the flags of plan, apply and remove-source.
type PlanOptions struct {
	DetailedExitCode bool
	Yes              bool
	Prune            bool
	AllowCompliance  bool
	ExtendRetention  bool
	BatchAbove       int
	Parallel         int
	Remove           []string
	Out              string // plan --out: where to save the plan
}

func newPlanCmd(streams IO, g *Globals) *cobra.Command {
	opts := &PlanOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show, per account, what apply would change",
		Long: `Read the archive and every source account and show what apply would change, with the
policy and replication rule differences as diffs. Nothing is written.

With --out FILE the plan is also saved, for review: 'trailkeeper apply FILE' then applies exactly
those changes, or nothing if anything they depend on changed in the meantime.

Exit codes: 0 success (with --detailed-exitcode: nothing to change), 1 a problem that needs a person,
2 configuration error, 3 AWS access error, 4 changes pending (--detailed-exitcode).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(runPlan(cmd.Context(), streams, g, opts, false))
		},
	}
	cmd.Flags().BoolVar(&opts.DetailedExitCode, "detailed-exitcode", false, "exit 4 when there are changes, 0 when none")
	cmd.Flags().StringVar(&opts.Out, "out", "", "also save the plan to this file, for 'trailkeeper apply FILE'")
	cmd.Flags().BoolVar(&opts.Prune, "prune", false, "also plan to take away grants of accounts no longer in the config")
	cmd.Flags().BoolVar(&opts.AllowCompliance, "allow-compliance", false, "accept COMPLIANCE retention")
	cmd.Flags().BoolVar(&opts.ExtendRetention, "extend-retention", false, "also read every replica's retention and plan to extend those shorter than the archive's default")
	cmd.Flags().IntVar(&opts.BatchAbove, "batch-above", setup.DefaultBatchAbove, "with --extend-retention: above this many short replicas, extend them with S3 Batch Operations jobs instead of one call each")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 8, "accounts read or changed at once")
	return cmd
}

func newApplyCmd(streams IO, g *Globals) *cobra.Command {
	opts := &PlanOptions{}
	cmd := &cobra.Command{
		Use:   "apply [FILE]",
		Short: "Converge the archive and every source account to the config",
		Long: `Plan, ask for confirmation (on a terminal; --yes for scripts), then apply: the archive bucket with
Object Lock, its policy, and in each source account versioning, the replication role and the
replication rule. Each write is read back. apply never deletes a log, never removes a policy statement
or replication rule it did not write, and never weakens Object Lock. A second apply writes nothing.

apply FILE applies a plan saved by 'trailkeeper plan --out FILE', without asking: it plans again and
applies only if every step is the one saved; if the config or anything in the accounts changed since,
it names what and writes nothing (exit 1).

Exit codes: 0 applied (or nothing to do), 1 a problem that needs a person, 2 configuration error,
3 AWS access error, 130 interrupted (run apply again to finish).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				for _, f := range []string{"prune", "allow-compliance", "extend-retention", "batch-above"} {
					if cmd.Flags().Changed(f) {
						return classify(usageErr("plan again with --"+f+" and --out", "--%s with a saved plan: the plan carries the options it was made with", f))
					}
				}
				return classify(runApplySaved(cmd.Context(), streams, g, args[0], opts.Parallel))
			}
			return classify(runPlan(cmd.Context(), streams, g, opts, true))
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&opts.Prune, "prune", false, "take away grants of accounts no longer in the config")
	cmd.Flags().BoolVar(&opts.AllowCompliance, "allow-compliance", false, "accept COMPLIANCE retention, which nobody can shorten or remove")
	cmd.Flags().BoolVar(&opts.ExtendRetention, "extend-retention", false, "read every replica's retention and extend those shorter than the archive's default (a source with Object Lock, or a default lowered for a while, leaves them short)")
	cmd.Flags().IntVar(&opts.BatchAbove, "batch-above", setup.DefaultBatchAbove, "with --extend-retention: above this many short replicas, extend them with S3 Batch Operations jobs instead of one call each")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 8, "accounts read or changed at once")
	return cmd
}

func newRemoveSourceCmd(streams IO, g *Globals) *cobra.Command {
	opts := &PlanOptions{}
	cmd := &cobra.Command{
		Use:   "remove-source ACCOUNT",
		Short: "Take a source account out: its archive grant, replication rule and role (never its logs)",
		Long: `Take a source account out of the archive: remove its grant from the archive policy, trailkeeper's
replication rule from its bucket (other rules stay) and trailkeeper's role. Logs already in its bucket and
in the archive stay. The account must be in the config, for its credentials; once it is out of AWS, its entry
is taken out of the config file too (the rest of the file, comments included, stays as it was), so that no
later apply or remove-source grants it again.

Exit codes as for apply.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Remove = args
			return classify(runPlan(cmd.Context(), streams, g, opts, true))
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 8, "accounts read or changed at once")
	return cmd
}

// loadConfig reads the --config file. (AWS_ENDPOINT_URL, read by awsapi, stands
// in for endpoint_url.)
func loadConfig(g *Globals) (*config.Config, error) {
	return config.Load(g.Config)
}

// connectAll loads the config and connects to the archive and every source.
func connectAll(ctx context.Context, g *Globals, parallel int) (*setup.Env, error) {
	c, err := loadConfig(g)
	if err != nil {
		return nil, err
	}
	return setup.Connect(ctx, c, c.Sources, parallel)
}

func runPlan(ctx context.Context, streams IO, g *Globals, opts *PlanOptions, apply bool) error {
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	sources := c.Sources
	if len(opts.Remove) > 0 {
		sources = nil
		for _, a := range opts.Remove {
			s := c.Source(a)
			if s == nil {
				return usageErr("remove-source needs the account's entry in the config for its credentials", "account %s is not in %s", a, c.Path)
			}
			sources = append(sources, *s)
		}
	}
	start := time.Now()
	if !g.NoProgress {
		fmt.Fprintf(streams.Err, "reading %s...\n", plural(len(sources)+1, "account", "accounts"))
	}
	env, err := setup.Connect(ctx, c, sources, opts.Parallel)
	if err != nil {
		return err
	}
	planOpts := setup.Options{Remove: opts.Remove, Prune: opts.Prune, AllowCompliance: opts.AllowCompliance, ExtendRetention: opts.ExtendRetention, BatchAbove: opts.BatchAbove, Parallel: opts.Parallel}
	plan, err := setup.Build(ctx, env, planOpts)
	if err != nil {
		return err
	}
	if !apply {
		if err := printPlan(streams.Out, g, plan); err != nil {
			return err
		}
		if opts.Out != "" {
			if err := savePlan(opts.Out, plan.Save(c, planOpts, version())); err != nil {
				return err
			}
			fmt.Fprintf(streams.Err, "Saved to %s: 'trailkeeper apply %s' applies exactly these %s, or nothing if anything changed.\n",
				opts.Out, opts.Out, plural(len(plan.Steps), "change", "changes"))
		}
		if opts.DetailedExitCode && len(plan.Steps) > 0 {
			return &exitError{code: ExitChanges, err: fmt.Errorf("")}
		}
		return nil
	}
	if len(plan.Steps) == 0 {
		if err := printPlan(streams.Out, g, plan); err != nil {
			return err
		}
		return forget(streams, c, opts.Remove)
	}
	if !opts.Yes {
		if g.Output == "text" {
			printPlan(streams.Err, g, plan)
		}
		if !isTerminal(streams.In) {
			return usageErr("pass --yes to apply without a terminal", "apply changes AWS accounts and needs confirmation")
		}
		fmt.Fprintf(streams.Err, "Apply %s? Only 'yes' is accepted: ", plural(len(plan.Steps), "change", "changes"))
		answer, _ := bufio.NewReader(streams.In).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return &exitError{code: ExitProblems, err: fmt.Errorf("apply cancelled; nothing was changed")}
		}
	}
	return applyPlan(ctx, streams, g, env, plan, opts, start)
}

// applyPlan runs a plan someone approved and says what it did.
func applyPlan(ctx context.Context, streams IO, g *Globals, env *setup.Env, plan *setup.Plan, opts *PlanOptions, start time.Time) error {
	c := env.Config
	prog := newProgress(streams.Err, g, "apply", len(plan.Steps))
	plan.Waiting = func(msg string) { fmt.Fprintln(streams.Err, msg) } // with --no-progress too: a wait must not look like a hang
	err := plan.Apply(ctx, env, opts.Parallel, stepProgress{prog})
	prog.finish()
	done := 0
	for _, s := range plan.Steps {
		if s.Done {
			done++
		}
	}
	if g.Output == "json" {
		result := map[string]any{"applied": done, "planned": len(plan.Steps), "steps": plan.Steps, "notes": plan.Notes,
			"archivePolicyBytes": plan.PolicyBytes, "accountsThatStillFit": plan.AccountsFit, "error": errString(err)}
		if plan.Cost != nil {
			result["cost"] = plan.Cost
		}
		writeJSON(streams.Out, result)
	} else {
		printApplied(streams.Out, plan, done, time.Since(start))
	}
	if err != nil {
		return err
	}
	return forget(streams, c, opts.Remove)
}

// savePlan writes a saved plan, readable by its owner only (it names every
// account and holds the policies).
func savePlan(path string, s *setup.Saved) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the plan: %w", err)
	}
	return os.Rename(tmp, path)
}

// readSavedPlan reads a plan file; version "" accepts any version's (show).
func readSavedPlan(path, version string) (*setup.Saved, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr("give the file 'trailkeeper plan --out FILE' wrote", "%v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 256<<20))
	if err != nil {
		return nil, usageErr("give the file 'trailkeeper plan --out FILE' wrote", "read %s: %v", path, err)
	}
	s, err := setup.ReadSaved(data, path, version)
	if err != nil {
		return nil, usageErr("run 'trailkeeper plan --out FILE' again", "%v", err)
	}
	return s, nil
}

// runApplySaved applies a saved plan if the world still matches it.
func runApplySaved(ctx context.Context, streams IO, g *Globals, path string, parallel int) error {
	start := time.Now()
	saved, err := readSavedPlan(path, version())
	if err != nil {
		return err
	}
	c, err := loadConfig(g)
	if err != nil {
		return err
	}
	if !g.NoProgress {
		fmt.Fprintf(streams.Err, "checking %s against %s...\n", path, plural(len(c.Sources)+1, "account", "accounts"))
	}
	env, err := setup.Connect(ctx, c, c.Sources, parallel)
	if err != nil {
		return err
	}
	plan, err := setup.Build(ctx, env, saved.PlanOptions(parallel))
	if err != nil {
		return err
	}
	if err := saved.Check(plan, c, path); err != nil {
		return &exitError{code: ExitProblems, err: err, hint: "review what changed, then 'trailkeeper plan --out FILE' again"}
	}
	if len(saved.Steps) == 0 {
		fmt.Fprintln(streams.Out, "No changes: the saved plan has none, and every account still matches it.")
		return nil
	}
	// The world is as planned: the saved steps, operations and documents
	// as the reviewer saw them, are what runs.
	return applyPlan(ctx, streams, g, env, saved.Plan(), &PlanOptions{Parallel: parallel}, start)
}

func newShowCmd(streams IO, g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE",
		Short: "Print a plan saved by 'trailkeeper plan --out FILE'",
		Long: `Print a saved plan as plan printed it (or as JSON with --output json), with when, by which
trailkeeper and for which config it was made. Nothing is read from AWS.

Exit codes: 0 shown, 2 not a saved plan.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			saved, err := readSavedPlan(args[0], "")
			if err != nil {
				return classify(err)
			}
			if g.Output == "json" {
				return classify(writeJSON(streams.Out, saved))
			}
			fmt.Fprintf(streams.Out, "Plan saved %s by trailkeeper %s for %s.\n", saved.Created.Format(time.RFC3339), saved.Trailkeeper, saved.Config)
			return classify(printPlan(streams.Out, g, saved.Plan()))
		},
	}
}

// forget takes removed accounts out of the config file, once AWS no longer
// holds them: a later apply or remove-source must not grant them again. What
// cannot be edited cleanly is said, and left to the user.
func forget(streams IO, c *config.Config, removed []string) error {
	if len(removed) == 0 {
		return nil
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return err
	}
	for _, a := range removed {
		next, err := config.WithoutSource(data, a)
		if err != nil {
			fmt.Fprintf(streams.Err, "note: %s still lists account %s (%v): take its entry out, or the next apply grants it again\n", c.Path, a, err)
			return nil
		}
		data = next
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(c.Path); err == nil {
		mode = fi.Mode().Perm() // the config keeps its permissions
	}
	tmp := c.Path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.Path); err != nil {
		return err
	}
	fmt.Fprintf(streams.Err, "took %s out of %s\n", plural(len(removed), "account", "accounts"), c.Path)
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type stepProgress struct{ p *progress }

func (s stepProgress) Start(*setup.Step) {}
func (s stepProgress) Done(st *setup.Step, err error) {
	msg := "account " + st.Account + ": " + st.Resource
	if err != nil {
		msg += ": FAILED"
	}
	s.p.step(msg)
}

var actionMark = map[setup.Action]string{setup.ActionCreate: "+", setup.ActionUpdate: "~", setup.ActionDelete: "-"}

func printPlan(w io.Writer, g *Globals, p *setup.Plan) error {
	if g.Output == "json" {
		return writeJSON(w, p)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintln(w, "No changes: every account matches the config.")
	}
	last := ""
	for _, s := range p.Steps {
		if s.Account != last {
			fmt.Fprintf(w, "\n%s %s\n", p.Accounts[s.Account], s.Account)
			last = s.Account
		}
		fmt.Fprintf(w, "  %s %s: %s\n", actionMark[s.Action], s.Resource, s.Summary)
		for _, l := range splitNonEmpty(s.Diff) {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
	printNotes(w, p)
	printCost(w, p.Cost)
	summary := "\n"
	if len(p.Steps) > 0 {
		summary = fmt.Sprintf("\nPlan: %s in %s. ", plural(len(p.Steps), "change", "changes"), plural(countAccounts(p), "account", "accounts"))
	}
	fmt.Fprintf(w, "%sArchive policy: %s of 20,480 bytes, about %s more accounts fit.\n", summary, thousands(p.PolicyBytes), thousands(p.AccountsFit))
	return nil
}

func printNotes(w io.Writer, p *setup.Plan) {
	if len(p.Notes) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNotes:")
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  - %s\n", n)
	}
}

func printApplied(w io.Writer, p *setup.Plan, done int, took time.Duration) {
	last := ""
	for _, s := range p.Steps {
		if !s.Done {
			continue
		}
		if s.Account != last {
			fmt.Fprintf(w, "%s %s\n", p.Accounts[s.Account], s.Account)
			last = s.Account
		}
		fmt.Fprintf(w, "  %s %s: %s\n", actionMark[s.Action], s.Resource, s.Summary)
	}
	printNotes(w, p)
	printCost(w, p.Cost)
	fmt.Fprintf(w, "\nApplied %d of %d changes in %s. Archive policy: %s of 20,480 bytes, about %s more accounts fit.\n",
		done, len(p.Steps), took.Round(10*time.Millisecond), thousands(p.PolicyBytes), thousands(p.AccountsFit))
}

func countAccounts(p *setup.Plan) int {
	seen := map[string]bool{}
	for _, s := range p.Steps {
		seen[s.Account] = true
	}
	return len(seen)
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}
