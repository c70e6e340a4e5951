package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/athena"
	"github.com/trailkeeper/trailkeeper/internal/regions"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

func newAthenaCmd(streams IO, g *Globals) *cobra.Command {
	o := athena.Options{}
	var regionList, prefixes []string
	cmd := &cobra.Command{
		Use:   "athena",
		Short: "Print the Athena DDL for the archive: tables with partition projection, views, named queries",
		Long: `athena prints what to run in Athena (one statement at a time) to query the archive beyond one machine:
the database trailkeeper with the table events over the CloudTrail log files themselves (AWS's CloudTrail
SerDe and input format, AWS's column names) and partition projection on account and region (enums of the
config's accounts and the regions, so that a query may span every account) and day (yyyy/MM/dd, CloudTrail's
folders); the views errors and console_logins; with --parquet, the database trailkeeper_index with the same
table over a published copy of the index (STORED AS PARQUET). The ALTER TABLE statements bring the projected
accounts of an existing table up to the config: run them again after adding a source. The named queries that
follow run unchanged in Athena and in trailkeeper query --named.

Reads only the config (its athena: section gives the defaults; apply creates the same tables in Glue);
calls no AWS API.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadConfig(g)
			if err != nil {
				return classify(err)
			}
			// The config's athena: section, then the flags given.
			base := setup.AthenaOptions(c)
			flags := cmd.Flags()
			if !flags.Changed("regions") {
				o.Regions = base.Regions
			} else {
				o.Regions = regionList
			}
			if !flags.Changed("from") && c.Athena.Enabled {
				o.From = base.From
			}
			if !flags.Changed("database") && c.Athena.Enabled {
				o.Database = base.Database
			}
			if !flags.Changed("parquet") {
				o.Parquet = base.Parquet
			}
			o.Bucket, o.Accounts = base.Bucket, base.Accounts
			switch {
			case len(prefixes) == 1:
				o.Prefix = prefixes[0]
			case len(prefixes) > 1: // which account writes where is not known offline: each table projects them all
				for _, p := range prefixes {
					o.Groups = append(o.Groups, athena.Group{Prefix: strings.Trim(p, "/"), Accounts: o.Accounts})
				}
			}
			for _, r := range o.Regions {
				if !regions.Known(r) {
					return classify(usageErr("give AWS regions, e.g. --regions us-east-1,eu-west-1", "%q is not an AWS region", r))
				}
			}
			if o.Parquet != "" && !strings.HasPrefix(o.Parquet, "s3://") {
				return classify(usageErr("give where the index is published, s3://bucket/prefix", "--parquet %q is not an s3:// location", o.Parquet))
			}
			stmts, named := athena.DDL(o), athena.Queries()
			if g.Output == "json" {
				return writeJSON(streams.Out, map[string]any{"statements": stmts, "namedQueries": named})
			}
			fmt.Fprintf(streams.Out, "-- trailkeeper athena: %s, %s in %d regions; run each statement on its own.\n\n",
				c.Archive.Bucket, plural(len(o.Accounts), "account", "accounts"), len(o.Regions))
			for _, s := range stmts {
				fmt.Fprintf(streams.Out, "%s;\n\n", s)
			}
			for _, q := range named {
				fmt.Fprintf(streams.Out, "-- named query %s: %s\n%s;\n\n", q.Name, q.Description, q.SQL)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&prefixes, "prefix", nil, "a key prefix the trails write under in the archive, \"\" for none (repeatable: a table per prefix, and the view events over them all)")
	cmd.Flags().StringSliceVar(&regionList, "regions", nil, "regions to project (default: athena.regions of the config, else the 17 regions enabled by default)")
	cmd.Flags().StringVar(&o.From, "from", "2020/01/01", "first day projected (yyyy/MM/dd)")
	cmd.Flags().StringVar(&o.Database, "database", "trailkeeper", "database of the tables")
	cmd.Flags().StringVar(&o.Parquet, "parquet", "", "s3://bucket/prefix where a copy of the index is published: a table over it too")
	return cmd
}
