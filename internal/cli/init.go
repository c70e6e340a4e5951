package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/config"
)

func newInitCmd(streams IO, g *Globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented trailkeeper.yaml to start from",
		Long: `Write a commented trailkeeper.yaml (or the file --config names) to edit: the archive account and
bucket, Object Lock retention, the replication role, and the source accounts with their profiles.

Exit codes: 0 written, 2 the file exists (use --force) or cannot be written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(g.Config, flag, 0o644)
			if errors.Is(err, os.ErrExist) {
				return usageErr("edit it, or pass --force to overwrite it", "%s already exists", g.Config)
			}
			if err != nil {
				return usageErr("", "%v", err)
			}
			defer f.Close()
			if _, err := f.WriteString(config.Example); err != nil {
				return usageErr("", "%v", err)
			}
			if g.Output == "json" {
				return writeJSON(streams.Out, map[string]any{"file": g.Config})
			}
			fmt.Fprintf(streams.Out, "wrote %s: edit the accounts, then run 'trailkeeper plan'\n", g.Config)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}
