package cli

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/verify"
)

func newKeysCmd(streams IO, g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "CloudTrail's public keys, for offline verification"}
	var regions []string
	export := &cobra.Command{
		Use:   "export FILE",
		Short: "Write CloudTrail's public keys of the given regions to FILE (for verify --public-keys)",
		Long: `Ask CloudTrail (ListPublicKeys, per region) for the public keys that sign digest files and write them
to FILE, so that verify can run where AWS cannot be reached. Regions default to the config's archive and
source regions.

Exit codes: 0 written, 2 usage or configuration error, 3 AWS access error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, c, cl, err := archiveAccess(cmd.Context(), g, "")
			if err != nil {
				return classify(err)
			}
			if len(regions) == 0 {
				set := map[string]bool{c.Archive.Region: true}
				for _, s := range c.Sources {
					set[s.Region] = true
				}
				for r := range set {
					regions = append(regions, r)
				}
				sort.Strings(regions)
			}
			ks := verify.NewCloudTrailKeys(func(region string) *cloudtrail.Client { return cl.InRegion(region).CloudTrail }, time.Time{}, time.Time{})
			data, err := ks.Export(cmd.Context(), regions)
			if err != nil {
				return classify(err)
			}
			if err := os.WriteFile(args[0], append(data, '\n'), 0o644); err != nil {
				return usageErr("", "%v", err)
			}
			fmt.Fprintf(streams.Out, "wrote the public keys of %s to %s\n", plural(len(regions), "region", "regions"), args[0])
			return nil
		},
	}
	export.Flags().StringSliceVar(&regions, "region", nil, "region whose keys to export (repeatable)")
	cmd.AddCommand(export)
	return cmd
}
