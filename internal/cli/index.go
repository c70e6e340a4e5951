package cli

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/archive"
	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/index"
)

// IndexOptions are the flags of index.
type IndexOptions struct {
	Location string
	To       string
	Parallel int
}

func newIndexCmd(streams IO, g *Globals) *cobra.Command {
	opts := &IndexOptions{}
	cmd := &cobra.Command{
		Use:   "index [LOCATION]",
		Short: "Convert the archive's events into a Parquet index for trailkeeper query (incremental)",
		Long: `index reads the archive's CloudTrail log files once and writes their events as Parquet, one folder per
account, region and month (events/account=A/region=R/YYYY/MM/), with the day as a column ('2026/12/03', as
CloudTrail's folders write it) and Athena's CloudTrail column names. A month folder that gathers more than 4
files over many runs is merged into one. It records each object it has read (objects.tsv): a rerun reads only
new objects, an interrupted run resumes (and finishes a merge it did not reach), and an object rewritten in
the archive since it was indexed is reported, not indexed again. Ctrl-C or SIGTERM stops it (exit 130);
run it again to go on.

LOCATION is the config's archive (default), s3://bucket[/prefix], or a local directory, as for search. The
index goes to --to DIR, by default a folder of the user's cache directory named after the location. With
--to s3://bucket/prefix the index is kept in that default folder and its new Parquet files are then uploaded
there (each once), for the Athena table that trailkeeper athena --parquet writes.

Exit codes: 0 indexed, 1 something could not be indexed (named), 2 usage error, 3 AWS access error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.Location = args[0]
			}
			return classify(runIndex(cmd.Context(), streams, g, opts))
		},
	}
	cmd.Flags().StringVar(&opts.To, "to", "", "the index folder (default: under the user's cache directory); s3://bucket/prefix publishes a copy there too, for Athena")
	cmd.Flags().IntVar(&opts.Parallel, "parallel", 0, "objects read at once (default: 256 from S3, 2 per core from a directory)")
	return cmd
}

// indexMemoryLimit is the Go heap that index aims to stay under, unless
// GOMEMLIMIT says otherwise.
const indexMemoryLimit = 192 << 20

func runIndex(ctx context.Context, streams IO, g *Globals, opts *IndexOptions) error {
	a, err := archive.Open(ctx, g.Config, opts.Location)
	if err != nil {
		return err
	}
	s, root, c, cl := a.Store, a.Root, a.Config, a.Clients
	dir, publish := opts.To, ""
	if strings.HasPrefix(dir, "s3://") {
		publish, dir = dir, ""
	}
	if dir == "" {
		if dir, err = index.DefaultDir(s, root); err != nil {
			return usageErr("give the index folder with --to DIR", "%v", err)
		}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// The garbage a build makes (records, pages) would let Go's heap grow
		// to twice what is live; near this limit the collector runs sooner.
		// What is live stays near 130 MB on the benchmark corpus.
		debug.SetMemoryLimit(indexMemoryLimit)
	}
	prog := newProgress(streams.Err, g, "index", 0)
	start := time.Now()
	merging := newProgress(streams.Err, g, "index: merging month folders", 0)
	res, err := index.Build(ctx, s, dir, index.Options{Root: root, Parallel: opts.Parallel, Progress: func(p index.Progress) {
		if p.ToMerge > 0 {
			prog.finish() // reading is over: one line on the terminal at a time
			merging.update(p.Merged, p.ToMerge, "folders")
			return
		}
		prog.update(p.Done, p.Listed, fmt.Sprintf("objects, %s", plural(int(p.Events), "event", "events")))
	}})
	merging.finish()
	prog.finish()
	if err != nil {
		return archiveError(err, s, c)
	}
	var pub *index.Published
	if publish != "" {
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(publish, "s3://"), "/")
		if cl == nil {
			region := os.Getenv("AWS_REGION")
			if region == "" {
				region = "us-east-1"
			}
			if cl, err = awsapi.New(ctx, awsapi.Target{Region: region}); err != nil {
				return err
			}
		}
		if pub, err = index.Publish(ctx, cl.S3, dir, bucket, prefix, 16); err != nil {
			return archiveError(err, s, c)
		}
	}
	if g.Output == "json" {
		if err := writeJSON(streams.Out, map[string]any{"index": res, "published": pub}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(streams.Out, "Indexed %s (%s) in %s into %s: %s of Parquet in all, %s held from earlier runs and not read again.\n",
			plural(res.Objects, "object", "objects"), plural(int(res.Events), "event", "events"), time.Since(start).Round(time.Millisecond),
			dir, megabytes(res.Bytes), plural(res.Held, "object", "objects"))
		if pub != nil {
			fmt.Fprintf(streams.Out, "Published %s (%s) to %s (%s there already); Athena's table over it: trailkeeper athena --parquet %s\n",
				plural(pub.Files, "file", "files"), megabytes(pub.Bytes), pub.To, thousands(pub.Held), pub.To)
		}
		if res.Objects+res.Held > 0 {
			fmt.Fprintf(streams.Out, "Query it: trailkeeper query --index %s \"SELECT eventname, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 10\"\n", dir)
		}
	}
	for _, k := range res.Rewritten {
		fmt.Fprintf(streams.Err, "warning: rewritten since it was indexed (the index keeps what it read first; trailkeeper verify tells which is CloudTrail's): %s\n", k)
	}
	for _, w := range res.Unreadable {
		fmt.Fprintf(streams.Err, "warning: not indexed: %s\n", w)
	}
	warnShadowed(streams.Err, res.Shadowed, "indexed")
	if res.Dropped > 0 {
		fmt.Fprintf(streams.Err, "warning: %s left out: not valid JSON (a broken escape or literal)\n", plural(int(res.Dropped), "event", "events"))
	}
	if n := len(res.Rewritten) + len(res.Unreadable); n > 0 || res.Dropped > 0 {
		return &exitError{code: ExitProblems, err: fmt.Errorf("%s not indexed as it is now", plural(n, "object", "objects")),
			hint: "each is named above; unreadable objects are tried again on the next run"}
	}
	return nil
}
