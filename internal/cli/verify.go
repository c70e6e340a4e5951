package cli

import (
	"context"
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

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/store"
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
}

func newVerifyCmd(streams IO, g *Globals) *cobra.Command {
	opts := &VerifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify [LOCATION]",
		Short: "Prove the archive is complete and unaltered: digest chains and log hashes, on the replicated copy",
		Long: `Validate CloudTrail's signed digest chains and the hash of every log file, on the archive copy itself
(which 'aws cloudtrail validate-logs' cannot do). LOCATION is the archive of the config (default),
s3://bucket[/prefix], or a local directory made with 'aws s3 sync' (there the newest digest's signature,
kept in object metadata, cannot be checked; everything older is checked through the chain).

Every missing digest interval, every missing, altered, shadowed or unreferenced log file, every digest with a
bad signature or an unknown key and every broken chain is reported. Times: RFC 3339, a date (2025-09-10) or
a duration back from now (48h).

Exit codes: 0 all valid, 1 problems found, 2 usage or configuration error, 3 AWS access error.`,
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
	f.StringVar(&opts.Sample, "sample", "", "hash one log file in N (1/N); every digest is still checked")
	f.StringVar(&opts.PublicKeys, "public-keys", "", "CloudTrail public keys from 'trailkeeper keys export', for offline verification")
	f.IntVar(&opts.Parallel, "parallel", 0, "objects read at once (default 32)")
	return cmd
}

// parseTime reads RFC 3339, a date, or a duration back from now.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2025-09-10T15:00:00Z, 2025-09-10, 48h or 7d", s)
}

// archiveAccess resolves a LOCATION to a store and the clients to reach AWS:
// the config's archive, s3://bucket[/prefix], or a local directory.
func archiveAccess(ctx context.Context, g *Globals, location string) (store.Store, string, *config.Config, *awsapi.Clients, error) {
	var c *config.Config
	if _, err := os.Stat(g.Config); err == nil || location == "" {
		cfg, err := loadConfig(g)
		if err != nil {
			return nil, "", nil, nil, err
		}
		c = cfg
	}
	target := awsapi.Target{Region: os.Getenv("AWS_REGION")}
	if target.Region == "" {
		target.Region = "us-east-1"
	}
	if c != nil {
		target = awsapi.Target{Account: c.Archive.AccountID, Region: c.Archive.Region, Credentials: c.Archive.Credentials, Endpoint: c.EndpointURL}
	}
	connect := func() (*awsapi.Clients, error) { return awsapi.New(ctx, target) }
	switch {
	case location == "":
		cl, err := connect()
		if err != nil {
			return nil, "", nil, nil, err
		}
		return store.S3{Client: cl.S3, Bucket: c.Archive.Bucket}, "", c, cl, nil
	case strings.HasPrefix(location, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(location, "s3://"), "/")
		if bucket == "" {
			return nil, "", nil, nil, usageErr("write s3://bucket or s3://bucket/prefix", "%q names no bucket", location)
		}
		cl, err := connect()
		if err != nil {
			return nil, "", nil, nil, err
		}
		return store.S3{Client: cl.S3, Bucket: bucket}, prefix, c, cl, nil
	}
	if st, err := os.Stat(location); err != nil || !st.IsDir() {
		return nil, "", nil, nil, usageErr("give the archive as s3://bucket, or a directory made with 'aws s3 sync'", "%s is not a directory", location)
	}
	var cl *awsapi.Clients
	if c != nil {
		cl, _ = connect()
	}
	return store.Dir{Root: location}, "", c, cl, nil
}

func runVerify(ctx context.Context, streams IO, g *Globals, opts *VerifyOptions) error {
	now := time.Now().UTC()
	since, err := parseTime(opts.Since, now)
	if err != nil {
		return usageErr("", "--since: %v", err)
	}
	until, err := parseTime(opts.Until, now)
	if err != nil {
		return usageErr("", "--until: %v", err)
	}
	sample := 0
	if opts.Sample != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(opts.Sample, "1/"))
		if err != nil || n < 1 || !strings.HasPrefix(opts.Sample, "1/") {
			return usageErr("write --sample 1/10 to hash one log file in ten", "--sample %q is not 1/N", opts.Sample)
		}
		sample = n
	}
	s, root, c, cl, err := archiveAccess(ctx, g, opts.Location)
	if err != nil {
		return err
	}
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
	prog := newProgress(streams.Err, g, "verify", 0)
	report, err := verify.Run(ctx, s, verify.Options{Root: root, Since: since, Until: until, Accounts: opts.Accounts, Regions: opts.Regions,
		Registry: registry, Sample: sample, Parallel: opts.Parallel, Keys: keys,
		Progress: func(done, total int64) { prog.update(int(done), int(total)) }})
	prog.finish()
	if err != nil {
		if awsapi.IsAccess(err) {
			return &awsapi.AccessError{Account: target(c), Err: err, Hint: "the archive credentials need s3:ListBucketVersions, s3:GetObject and s3:GetObjectVersion, and cloudtrail:ListPublicKeys"}
		}
		return err
	}
	if g.Output == "json" {
		if err := writeJSON(streams.Out, report); err != nil {
			return err
		}
	} else {
		printVerify(streams.Out, report)
	}
	if n := report.Problems(); n > 0 {
		return &exitError{code: ExitProblems, err: fmt.Errorf("%d problems found in %s", n, report.Location)}
	}
	return nil
}

func target(c *config.Config) string {
	if c == nil {
		return "of the archive"
	}
	return c.Archive.AccountID
}

func printVerify(w io.Writer, r *verify.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tTRAIL\tDIGESTS\tLOGS\tMISSING\tPROBLEMS")
	var digests, dvalid, logs, lvalid, skipped int
	for _, c := range r.Chains {
		trail := c.Trail
		if c.Backfill {
			trail += " (backfill)"
		}
		logCol := fmt.Sprintf("%d/%d", c.LogsValid, c.Logs)
		if c.LogsSkipped > 0 {
			logCol += fmt.Sprintf(" (%d sampled out)", c.LogsSkipped)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%d\t%d\n", c.Account, c.Region, trail, c.DigestsValid, c.Digests, logCol, c.MissingHours, c.Problems)
		digests, dvalid, logs, lvalid, skipped = digests+c.Digests, dvalid+c.DigestsValid, logs+c.Logs, lvalid+c.LogsValid, skipped+c.LogsSkipped
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
		sort.SliceStable(shown, func(i, j int) bool { return shown[i].Severity < shown[j].Severity })
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range shown {
			fmt.Fprintf(tw, "  %s\t%s\t%s %s\t%s\t%s\n", f.Severity, f.Kind, f.Account, f.Region, f.Key, f.Message)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	verdict := "all valid"
	if p := r.Problems(); p > 0 {
		verdict = fmt.Sprintf("%d problems", p)
	}
	sampled := ""
	if skipped > 0 {
		sampled = fmt.Sprintf(" (%s not hashed: --sample)", thousands(skipped))
	}
	fmt.Fprintf(w, "\n%s: %d chains, %s/%s digests and %s/%s log files valid%s: %s.\n", r.Location, len(r.Chains),
		thousands(dvalid), thousands(digests), thousands(lvalid), thousands(logs), sampled, verdict)
}
