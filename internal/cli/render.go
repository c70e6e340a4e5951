package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/setup"
)

func newRenderCmd(streams IO, g *Globals) *cobra.Command {
	parallel := 8
	cmd := &cobra.Command{
		Use:   "render DIR",
		Short: "Write what apply would create as reviewable files, for your own deployment pipeline",
		Long: `Read each source's trail and write, under DIR, what apply would create: per source account a
CloudFormation template for the replication role and the replication configuration JSON; for the archive
its policy statements and Object Lock configuration; and a README with the order to deploy them in.
Nothing is changed in AWS.

Exit codes: 0 written, 1 a problem that needs a person, 2 configuration error, 3 AWS access error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := connectAll(cmd.Context(), g, parallel)
			if err != nil {
				return classify(err)
			}
			files, err := setup.Render(cmd.Context(), env, parallel)
			if err != nil {
				return classify(err)
			}
			names := make([]string, 0, len(files))
			for name := range files {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				p := filepath.Join(args[0], name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return usageErr("", "%v", err)
				}
				if err := os.WriteFile(p, files[name], 0o644); err != nil {
					return usageErr("", "%v", err)
				}
			}
			if g.Output == "json" {
				return writeJSON(streams.Out, map[string]any{"dir": args[0], "files": names})
			}
			for _, name := range names {
				fmt.Fprintln(streams.Out, filepath.Join(args[0], name))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&parallel, "parallel", 8, "accounts read at once")
	return cmd
}
