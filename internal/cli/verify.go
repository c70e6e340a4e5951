package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/archive"
	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/inventory"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

// VerifyOptions are the flags of verify.
type VerifyOptions struct {
	Location   string
	Since      string
	Until      string
	Accounts   []string
	Regions    []string
	Sample     string
	PublicKeys string
	Parallel   int
	State      string
	Inventory  bool
	// AcceptUnsignedTail lets a local copy's newest digests pass unproven.
	AcceptUnsignedTail bool
}

func newVerifyCmd(streams IO, g *Globals) *cobra.Command {
	opts := &VerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [LOCATION]",
		Short: "Prove the archive is complete and unaltered: digest chains and log hashes, on the replicated copy",
		Long: `Validate CloudTrail's signed digest chains and the hash of every log file, on the archive copy itself
(which 'aws cloudtrail validate-logs' cannot do). LOCATION is the archive of the config (default),
s3://bucket[/prefix], or a local directory made with 'aws s3 sync'.

Every digest and log file in range is proven (a CloudTrail signature and the chain vouch for it), unproven
(nothing could; the finding says why) or bad. "valid" means everything in range is proven. A local copy keeps
no object metadata, so the newest digest of each chain is unproven there: verify the bucket, pass --state
from an earlier run over the bucket, or accept it with --accept-unsigned-tail, which accepts only a tail that
links to its proven predecessor, names a published key valid at its time and keeps the chain's cadence (the
verdict names each one accepted). Every object under AWSLogs/ACCOUNT/ that is not a CloudTrail file is
reported. Over S3, a chain whose newest digest is more than 2 hours older than --until (default: now) is
reported as chain-tail-missing.

--state FILE makes daily runs incremental: it keeps each chain's newest proven digest and a fingerprint of
the listing of every day before it. The next run lists everything again (listing, not reading), verifies in
full any account and region whose earlier days changed (a new object or version, a delete marker), and reads
only the days from the proven tail's on. --inventory (with --state, over S3) reads the archive's newest S3 Inventory
report (apply configures one with archive.inventory_bucket) instead of listing the days before the report's
eve, and holds every version it lists to the archive's Object Lock retention (retention-short), which a
listing cannot show. --sample 1/N hashes one log file in N: its verdict is "sampled", never
"valid", and it leaves --state as it was.

Times: RFC 3339, a date (2025-09-10) or a duration back from now (48h, 7d).

Exit codes: 0 valid (everything in range proven), 1 problems or unproven files found (or nothing to verify), 2 usage or configuration error,
3 AWS access error (credentials, permissions, a missing bucket, the network), 5 --sample found nothing wrong in what it read
(but did not read everything).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Location = args[0]
			}
			return classify(runVerify(cmd.Context(), streams, g, opts))
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Since, "since", "", "verify digests from this time")
	f.StringVar(&opts.Until, "until", "", "verify digests up to this time")
	f.StringSliceVar(&opts.Accounts, "account", nil, "only this account (repeatable)")
	f.StringSliceVar(&opts.Regions, "region", nil, "only this region (repeatable)")
	f.StringVar(&opts.Sample, "sample", "", "hash one log file in N (1/N); every digest is still checked, the verdict is \"sampled\" (exit 5), never \"valid\", and --state does not move")
	f.StringVar(&opts.PublicKeys, "public-keys", "", "CloudTrail public keys from 'trailkeeper keys export', for offline verification")
	f.IntVar(&opts.Parallel, "parallel", 0, "objects read at once (default 256 from S3, 8 per core from a directory)")
	f.StringVar(&opts.State, "state", "", "incremental: read and update this state file of proven chain tails")
	f.BoolVar(&opts.Inventory, "inventory", false, "with --state over S3: re-attest older days from the archive's S3 Inventory report and check every version's retention")
	f.BoolVar(&opts.AcceptUnsignedTail, "accept-unsigned-tail", false, "on a local copy, accept each chain's newest digest unproven when it fits its chain")
	return cmd
}

func runVerify(ctx context.Context, streams IO, g *Globals, opts *VerifyOptions) error {
	now := time.Now().UTC()
	since, until, err := timerange.Parse(opts.Since, opts.Until, now)
	if err != nil {
		return err
	}
	sample := 0
	if opts.Sample != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(opts.Sample, "1/"))
		if err != nil || n < 1 || !strings.HasPrefix(opts.Sample, "1/") {
			return usageErr("write --sample 1/10 to hash one log file in ten", "--sample %q is not 1/N", opts.Sample)
		}
		sample = n
	}
	a, err := archive.Open(ctx, g.Config, opts.Location)
	if err != nil {
		return err
	}
	s, root, c, cl := a.Store, a.Root, a.Config, a.Clients
	var keys verify.Keys
	switch {
	case opts.PublicKeys != "":
		ks, err := verify.LoadKeys(opts.PublicKeys)
		if err != nil {
			return usageErr("export keys with 'trailkeeper keys export FILE' where AWS is reachable", "%v", err)
		}
		keys = ks
	case cl != nil:
		keys = verify.NewCloudTrailKeys(func(region string) *cloudtrail.Client { return cl.InRegion(region).CloudTrail }, since, until)
	default:
		return usageErr("pass --public-keys FILE (from 'trailkeeper keys export'), or a config whose archive credentials can call cloudtrail:ListPublicKeys",
			"verifying signatures needs CloudTrail's public keys")
	}
	registry := map[string]string{}
	if c != nil {
		for _, src := range c.Sources {
			if src.Bucket != "" {
				registry[src.AccountID] = src.Bucket
			}
		}
	}
	var state *verify.State
	if opts.State != "" {
		if state, err = verify.LoadState(opts.State, s.String()); err != nil {
			return usageErr("give the state file of this archive, or a new file name to start one", "--state: %v", err)
		}
	}
	inv, shortRetention, err := openInventory(ctx, opts, a)
	if err != nil {
		return err
	}
	if inv != nil {
		defer inv.Close()
		fmt.Fprintf(streams.Err, "inventory: %s (taken %s, %d versions)\n", inv.Manifest, inv.At.Format(time.RFC3339), inv.Rows)
	}
	// A live bucket's chains must reach "now"; a local copy was taken at some time.
	checkTail := opts.Until != "" || s.Live()
	if until.IsZero() && s.Live() {
		until = now
	}
	vopts := verify.Options{Root: root, Since: since, Until: until, CheckTail: checkTail, Accounts: opts.Accounts, Regions: opts.Regions,
		Registry: registry, Sample: sample, Parallel: opts.Parallel, Keys: keys, AcceptUnsignedTail: opts.AcceptUnsignedTail, State: state,
	}
	if inv != nil {
		vopts.Inventory, vopts.ShortRetention = inv, shortRetention
	} else if b, ok := s.(store.S3); ok && a.Clients != nil {
		// S3 sends each version's retention with its bytes: a version read is
		// held to the archive's retention too.
		if vopts.ShortRetention, err = retentionRule(ctx, a, b.Bucket); err != nil {
			fmt.Fprintf(streams.Err, "retention of the versions read not checked (allow s3:GetBucketObjectLockConfiguration on %s to check it): %v\n", b.Bucket, err)
		}
	}
	prog := newProgress(streams.Err, g, "verify", 0)
	vopts.Progress = func(done, total int64) { prog.update(int(done), int(total)) }
	report, err := verify.Run(ctx, s, vopts)
	prog.finish()
	if errors.Is(err, verify.ErrNoKeys) {
		return usageErr("export the keys of every home region of the trails: trailkeeper keys export FILE --region R", "--public-keys %s: %v", opts.PublicKeys, err)
	}
	if err != nil {
		return archiveError(err, s, c)
	}
	if opts.State != "" {
		if err := report.State.Save(opts.State); err != nil {
			return fmt.Errorf("--state: %w", err)
		}
	}
	if g.Output == "json" {
		if err := writeJSON(streams.Out, report); err != nil {
			return err
		}
	} else {
		printVerify(streams.Out, report)
	}
	switch report.Verdict {
	case "valid":
		return nil
	case "sampled":
		return &exitError{code: ExitSampled, err: fmt.Errorf("%s: %s", report.Location, verdict(report))}
	}
	return &exitError{code: ExitProblems, err: fmt.Errorf("%s: %s", report.Location, verdict(report))}
}

// openInventory loads the archive's newest S3 Inventory report for
// --inventory, and the rule its versions' retention is held to: the
// config's Object Lock retention, or the bucket's default without a config.
func openInventory(ctx context.Context, opts *VerifyOptions, a *archive.Access) (*inventory.Report, func(created, until time.Time) bool, error) {
	if !opts.Inventory {
		return nil, nil, nil
	}
	b, ok := a.Store.(store.S3)
	if !ok || a.Clients == nil {
		return nil, nil, usageErr("verify the archive bucket itself (s3://BUCKET or the config's archive)", "--inventory: %s is not an S3 bucket", a.Store)
	}
	if opts.State == "" {
		return nil, nil, usageErr("pass --state FILE too: the report re-attests what an earlier run proved", "--inventory needs --state")
	}
	inv, err := inventory.Latest(ctx, a.Clients.S3, b.Bucket, os.TempDir())
	if errors.Is(err, inventory.ErrNone) {
		return nil, nil, usageErr("set archive.inventory_bucket in trailkeeper.yaml and run trailkeeper apply (or configure one yourself: every version, Parquet or CSV, the fields "+
			strings.Join(inventory.Fields, ", ")+"); S3 delivers the first report within 48 hours", "--inventory: %v", err)
	}
	if err != nil {
		return nil, nil, archiveError(err, a.Store, a.Config)
	}
	short, err := retentionRule(ctx, a, b.Bucket)
	if err != nil {
		inv.Close()
		return nil, nil, archiveError(err, a.Store, a.Config)
	}
	return inv, short, nil // without a rule, archive-no-retention is status's finding
}

// retentionRule is what the retention of the archive's versions is held to:
// the config's Object Lock retention, or the bucket's default without a
// config; nil when there is none.
func retentionRule(ctx context.Context, a *archive.Access, bucket string) (func(created, until time.Time) bool, error) {
	var lock *config.ObjectLock
	if a.Config != nil && a.Config.Archive.Bucket == bucket {
		lock = &a.Config.Archive.ObjectLock
	} else {
		var err error
		if lock, _, err = setup.DefaultRetention(ctx, a.Clients, bucket); err != nil || lock == nil {
			return nil, err
		}
	}
	return func(created, until time.Time) bool { return setup.ShortRetention(*lock, created, until) }, nil
}

// archiveError names what went wrong reaching the archive, with exit code 3.
func archiveError(err error, s store.Store, c *config.Config) error {
	switch awsapi.Code(err) {
	case "NoSuchBucket":
		return &awsapi.AccessError{Account: target(c), Err: err, Hint: s.String() + " does not exist: check the bucket name (and the region and endpoint)"}
	}
	if awsapi.IsAccess(err) {
		return &awsapi.AccessError{Account: target(c), Err: err, Hint: "the archive credentials need s3:ListBucketVersions, s3:GetObject and s3:GetObjectVersion, and cloudtrail:ListPublicKeys"}
	}
	return err
}

func target(c *config.Config) string {
	if c == nil {
		return "of the archive"
	}
	return c.Archive.AccountID
}

func printVerify(w io.Writer, r *verify.Report) {
	paint := coloursFor(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tTRAIL\tDIGESTS PROVEN\tLOGS PROVEN\tMISSING\tPROBLEMS")
	for _, c := range r.Chains {
		trail := c.Trail
		if c.Backfill {
			trail += " (backfill)"
		}
		logCol := fmt.Sprintf("%d/%d", c.LogsProven, c.Logs)
		if c.LogsSkipped > 0 {
			logCol += fmt.Sprintf(" (%d sampled out)", c.LogsSkipped)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%d\t%d\n", c.Account, c.Region, trail, c.DigestsProven, c.Digests, logCol, c.MissingDigests, c.Problems)
	}
	tw.Flush()
	var shown []*verify.Finding
	for _, f := range r.Findings {
		if f.Severity != verify.Info {
			shown = append(shown, f)
		}
	}
	if len(shown) > 0 {
		fmt.Fprintln(w, "\nFindings:")
		rank := map[verify.Severity]int{verify.Error: 0, verify.Unproven: 1, verify.Warning: 2}
		sort.SliceStable(shown, func(i, j int) bool { return rank[shown[i].Severity] < rank[shown[j].Severity] })
		for _, f := range shown {
			where := strings.TrimSpace(f.Account + " " + f.Region)
			count := ""
			if f.Count > 0 {
				count = fmt.Sprintf(" [%s]", plural(f.Count, "log file", "log files"))
			}
			fmt.Fprintf(w, "  %s %s %s %s: %s%s\n", paint.severity(string(f.Severity)), f.Code, where, f.Key, f.Message, count)
			if f.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", f.Fix)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	t := r.Totals()
	sampled := ""
	if t.LogsSkipped > 0 {
		sampled = fmt.Sprintf(" (%s not hashed: --sample)", thousands(t.LogsSkipped))
	}
	fmt.Fprintf(w, "\n%s: %s, %s/%s digests and %s/%s log files proven%s: %s.\n", r.Location, plural(len(r.Chains), "chain", "chains"),
		thousands(t.DigestsProven), thousands(t.Digests), thousands(t.LogsProven), thousands(t.Logs), sampled, paintVerdict(paint, r))
}

func paintVerdict(c colours, r *verify.Report) string {
	if r.Valid() {
		return c.good(verdict(r))
	}
	return c.bad(verdict(r))
}

// verdict is the one-line answer: "valid" only when everything in range is
// proven, naming whatever a flag let pass without proof.
func verdict(r *verify.Report) string {
	if r.Valid() {
		if acc := r.Accepted(); len(acc) > 0 {
			shown := acc
			if len(shown) > 3 {
				shown = append(shown[:3:3], fmt.Sprintf("and %d more", len(acc)-3))
			}
			return fmt.Sprintf("valid, with %s accepted unsigned (--accept-unsigned-tail), unproven: %s",
				plural(len(acc), "chain's newest digest", "chains' newest digests"), strings.Join(shown, ", "))
		}
		return "valid"
	}
	if r.Sampled() {
		t := r.Totals()
		return fmt.Sprintf("sample of %s: nothing wrong in what was read; %s NOT read, so NOT proven (--sample)",
			plural(t.Logs-t.LogsSkipped, "log file", "log files"), plural(t.LogsSkipped, "log file", "log files"))
	}
	var bad, unproven int
	for _, f := range r.Findings {
		if f.Failing() {
			if f.Severity == verify.Error {
				bad++
			} else {
				unproven++
			}
		}
	}
	var parts []string
	if bad > 0 {
		parts = append(parts, plural(bad, "problem", "problems"))
	}
	if unproven > 0 {
		parts = append(parts, plural(unproven, "unproven finding", "unproven findings"))
	}
	return "NOT valid: " + strings.Join(parts, ", ")
}
