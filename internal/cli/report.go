package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/report"
	"github.com/trailkeeper/trailkeeper/internal/status"
)

func newReportCmd(streams IO, g *Globals) *cobra.Command {
	var file string
	var days, parallel int
	cmd := &cobra.Command{
		Use:   "report --html FILE",
		Short: "Write one self-contained HTML page: status, a heatmap of log files and digests by hour, replication lag",
		Long: `Write one HTML page that needs no network to view: the status table and findings, a heatmap of
accounts by hour showing whether log files and digests exist in each source and in the archive over the
last --days (a gap or a replication stall shows at a glance), and the replication lag per hour.

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
			f, err := os.Create(file)
			if err != nil {
				return usageErr("", "%v", err)
			}
			defer f.Close()
			if err := report.WriteHTML(f, data); err != nil {
				return err
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
