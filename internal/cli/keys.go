package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/archive"
	"github.com/trailkeeper/trailkeeper/internal/timerange"
	"github.com/trailkeeper/trailkeeper/internal/verify"
)

func newKeysCmd(streams IO, g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "CloudTrail's public keys, for offline verification"}
	var regions []string
	var sinceFlag, untilFlag string
	export := &cobra.Command{
		Use:   "export FILE",
		Short: "Write CloudTrail's public keys of the given regions to FILE (for verify --public-keys)",
		Long: `Ask CloudTrail (ListPublicKeys, per region) for the public keys that signed digest files between
--since and --until and write them to FILE, with their validity windows, so that verify can run where AWS
cannot be reached. CloudTrail rotates its keys (about monthly): without a range ListPublicKeys returns only
the current key, so the default range reaches back to November 2015, when log file validation began.
Regions default to the config's archive and source regions.

Exit codes: 0 written, 2 usage or configuration error, 3 AWS access error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			since, until, err := timerange.Parse(sinceFlag, untilFlag, time.Now().UTC())
			if err != nil {
				return classify(err)
			}
			if until.IsZero() {
				until = time.Now().UTC()
			}
			a, err := archive.Open(cmd.Context(), g.Config, "")
			if err != nil {
				return classify(err)
			}
			c, cl := a.Config, a.Clients
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
			ks := verify.NewCloudTrailKeys(func(region string) *cloudtrail.Client { return cl.InRegion(region).CloudTrail }, since, until)
			data, err := ks.Export(cmd.Context(), regions, since, until)
			if err != nil {
				return classify(err)
			}
			if err := os.WriteFile(args[0], append(data, '\n'), 0o644); err != nil {
				return usageErr("", "%v", err)
			}
			var keys []verify.PublicKey
			json.Unmarshal(data, &keys)
			if g.Output == "json" {
				return writeJSON(streams.Out, map[string]any{"file": args[0], "regions": regions, "since": since, "until": until, "keys": keys})
			}
			fmt.Fprintf(streams.Out, "wrote %s of %s (%s to %s) to %s\n", plural(len(keys), "public key", "public keys"), plural(len(regions), "region", "regions"),
				since.Format("2006-01-02"), until.Format("2006-01-02"), args[0])
			return nil
		},
	}
	export.Flags().StringSliceVar(&regions, "region", nil, "region whose keys to export (repeatable)")
	export.Flags().StringVar(&sinceFlag, "since", "2015-11-01", "keys that signed digests from this time (2025-09-10, 400d)")
	export.Flags().StringVar(&untilFlag, "until", "", "keys that signed digests up to this time (default: now)")
	cmd.AddCommand(export)
	return cmd
}
