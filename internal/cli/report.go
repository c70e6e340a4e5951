package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/report"
	"github.com/trailkeeper/trailkeeper/internal/status"
	"github.com/trailkeeper/trailkeeper/internal/store"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

func verdictOf(r *verify.Report) string {
	if r == nil {
		return "not checked"
	}
	return r.Verdict
}

func newReportCmd(streams IO, g *Globals) *cobra.Command {
	var file string
	var days, parallel int
	cmd := &cobra.Command{
		Use:   "report --html FILE",
		Short: "Write one self-contained HTML page: is the archive complete and untouched, and what to do if not",
		Long: `Write one HTML page that needs no network to view. It answers first whether the archive is complete and
untouched over the last --days (status and verify together), then lists what to do, one line per kind of
finding with the accounts it concerns; a heatmap of accounts by hour shows whether log files and digests exist
in each source and in the archive (a gap or a replication stall shows at a glance, each cell says why it is
not green), then the replication lag per hour, and the status of each account.

Exit codes: 0 written, 2 configuration error, 3 AWS access error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageErr("write trailkeeper report --html report.html", "--html FILE is required")
			}
			env, err := connectAll(cmd.Context(), g, parallel)
			if err != nil {
				return classify(err)
			}
			st, err := status.Check(cmd.Context(), env, status.Options{Parallel: parallel})
			if err != nil {
				return classify(err)
			}
			data, err := report.Collect(cmd.Context(), env, st, report.Options{Days: days, Parallel: parallel})
			if err != nil {
				return classify(err)
			}
			// The headline needs integrity too: verify the same days of the archive.
			now := time.Now().UTC()
			since := now.AddDate(0, 0, -days)
			registry := map[string]string{}
			for _, src := range env.Config.Sources {
				if src.Bucket != "" {
					registry[src.AccountID] = src.Bucket
				}
			}
			keys := verify.NewCloudTrailKeys(func(region string) *cloudtrail.Client { return env.Archive.InRegion(region).CloudTrail }, since, now)
			data.Verify, err = verify.Run(cmd.Context(), store.S3{Client: env.Archive.S3, Bucket: env.Config.Archive.Bucket},
				verify.Options{Since: since, Until: now, CheckTail: true, Registry: registry, Keys: keys})
			if err != nil {
				data.VerifyError = err.Error()
			}
			f, err := os.Create(file)
			if err != nil {
				return usageErr("", "%v", err)
			}
			defer f.Close()
			if err := report.WriteHTML(f, data); err != nil {
				return err
			}
			if g.Output == "json" {
				h := data.Headline()
				return writeJSON(streams.Out, map[string]any{"file": file, "accounts": len(st.Accounts), "days": days,
					"healthy": st.Healthy, "verdict": verdictOf(data.Verify), "ok": h.OK, "headline": h.Title, "details": h.Details})
			}
			fmt.Fprintf(streams.Out, "wrote %s (%s, %s)\n", file, plural(len(st.Accounts), "account", "accounts"), plural(days, "day", "days"))
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "html", "", "the HTML file to write")
	cmd.Flags().IntVar(&days, "days", 7, "days shown in the heatmap")
	cmd.Flags().IntVar(&parallel, "parallel", 16, "accounts read at once")
	return cmd
}
