package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// The seed's world, named as 'trailkeeper init' names it: the archive account
// and two member accounts whose trails log, without validation, to their own
// buckets, with a profile each.
var seedProfiles = map[string]string{"log-archive": "999999999999", "member-a": "111111111111", "member-b": "222222222222"}

const seedRegion = "ap-northeast-1"

// seed creates the seed's world in a running sandbox (once: a restart with
// the same folder finds it), writes the profiles and, last, DIR/env, which
// sourced points the AWS CLI and trailkeeper at the sandbox.
func seed(ctx context.Context, sb *sandbox.Sandbox, url, dir string) error {
	done := filepath.Join(dir, "seeded")
	if _, err := os.Stat(done); errors.Is(err, os.ErrNotExist) {
		for _, acct := range []string{"111111111111", "222222222222"} {
			if err := world.CreateMember(ctx, url, world.Member{Account: acct, Region: seedRegion}); err != nil {
				return err
			}
			// Some history before trailkeeper arrives: what backfill brings in.
			if err := world.Activity(ctx, url, acct, seedRegion, 3); err != nil {
				return err
			}
		}
		sb.Deliver()
		if err := os.WriteFile(done, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			return err
		}
	}
	cfg, creds, err := world.WriteProfiles(dir, seedProfiles)
	if err != nil {
		return err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	env := fmt.Sprintf(`# trailkeeper sandbox --seed: source this file (. %[1]s) to reach the sandbox
export AWS_CONFIG_FILE=%[2]s
export AWS_SHARED_CREDENTIALS_FILE=%[3]s
export AWS_ENDPOINT_URL=%[4]s
export AWS_PROFILE=log-archive
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
`, filepath.Join(dir, "env"), abs(cfg), abs(creds), url)
	tmp := filepath.Join(dir, "env.tmp")
	if err := os.WriteFile(tmp, []byte(env), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "env")) // whole or not at all: scripts wait for it
}

// newSandboxDeliverCmd asks a running sandbox to deliver now what CloudTrail
// would deliver at its next intervals, and waits for replication: a person
// walking through the README need not wait a minute for a digest.
func newSandboxDeliverCmd(streams IO, g *Globals) *cobra.Command {
	var endpoint string
	cmd := &cobra.Command{
		Use:   "deliver",
		Short: "Make a running sandbox's CloudTrail deliver log files and digests now, and wait for replication",
		Long: `Make a running sandbox's CloudTrail deliver now what it would deliver at its next intervals (log files,
and a digest for every trail with validation), then wait until replication is idle. The sandbox is the one
--endpoint names, by default $AWS_ENDPOINT_URL (set by the env file of sandbox --seed).

Exit codes: 0 delivered, 2 no endpoint, 3 the sandbox did not answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if endpoint == "" {
				endpoint = os.Getenv("AWS_ENDPOINT_URL")
			}
			if endpoint == "" {
				return usageErr("pass --endpoint http://127.0.0.1:4566, or source the env file sandbox --seed wrote", "no sandbox endpoint")
			}
			for _, path := range []string{"/_sandbox/cloudtrail/deliver", "/_sandbox/replication/wait"} {
				resp, err := http.Post(strings.TrimSuffix(endpoint, "/")+path, "application/json", nil)
				if err != nil {
					return &exitError{code: ExitAWS, err: err, hint: "is the sandbox running at " + endpoint + "?"}
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return &exitError{code: ExitAWS, err: fmt.Errorf("%s%s answered %s", endpoint, path, resp.Status), hint: "is " + endpoint + " a trailkeeper sandbox?"}
				}
			}
			if g.Output == "json" {
				return writeJSON(streams.Out, map[string]string{"endpoint": endpoint, "status": "delivered"})
			}
			fmt.Fprintf(streams.Out, "the sandbox at %s delivered, and replication is idle\n", endpoint)
			return nil
		},
	}
	cmd.Flags().StringVar(&endpoint, "endpoint", "", "the sandbox's URL (default: $AWS_ENDPOINT_URL)")
	return cmd
}
