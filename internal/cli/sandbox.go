package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
)

// SandboxOptions are the flags of `trailkeeper sandbox`.
type SandboxOptions struct {
	Addr    string
	TLS     bool
	Verbose bool
	// Seed is a folder: the sandbox keeps its state there, creates the seed's
	// world once and writes profiles and an env file to source.
	Seed string
	sandbox.Options
}

func newSandboxCmd(streams IO, g *Globals, runF func(context.Context, *SandboxOptions) error) *cobra.Command {
	opts := &SandboxOptions{}
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Serve a local multi-account AWS (S3, IAM, STS, SNS, CloudFormation, CloudTrail, Glue, Athena)",
		Long: `Serve a local multi-account AWS until interrupted. An access key id of 12 digits acts as that
account's root user:

  AWS_ACCESS_KEY_ID=111111111111 AWS_SECRET_ACCESS_KEY=x AWS_ENDPOINT_URL=http://127.0.0.1:4566 aws s3 ls

S3 replicates across accounts, CloudTrail delivers log files and signed digests, IAM and bucket
policies are enforced. See docs/sandbox.md for what is emulated.

--seed DIR starts from the seed document's world, named as 'trailkeeper init' names it: the archive
account 999999999999 and member accounts 111111111111 and 222222222222, whose trails "Members" log (without
log file validation, as the seed's) to their own buckets in ap-northeast-1, with some history. It keeps its
state in DIR, writes the profiles log-archive, member-a and member-b, and, once it serves, DIR/env:

  . DIR/env          # AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_ENDPOINT_URL for the CLI and trailkeeper

With --seed, CloudTrail delivers every 10 s and digests every minute unless the flags say otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Seed != "" {
				if !cmd.Flags().Changed("delivery-interval") {
					opts.DeliveryInterval = 10 * time.Second
				}
				if !cmd.Flags().Changed("digest-interval") {
					opts.DigestInterval = time.Minute
				}
				if opts.DataDir == "" {
					opts.DataDir = filepath.Join(opts.Seed, "data")
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runSandbox(cmd.Context(), streams, opts)
		},
	}
	cmd.AddCommand(newSandboxDeliverCmd(streams, g))
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:4566", "address to listen on")
	f.StringVar(&opts.DataDir, "data-dir", "", "keep state and objects in this directory across restarts (default: in memory)")
	f.StringVar(&opts.Seed, "seed", "", "start from the seed's world, kept in this folder, and write its profiles and an env file there")
	f.BoolVar(&opts.TLS, "tls", false, "serve https with a generated certificate (its CA is written to DATA-DIR or the temp dir)")
	f.DurationVar(&opts.DeliveryInterval, "delivery-interval", 5*time.Minute, "how often CloudTrail delivers log files")
	f.DurationVar(&opts.DigestInterval, "digest-interval", time.Hour, "how often CloudTrail delivers digest files")
	f.IntVar(&opts.BackgroundEvents, "background-events", 0, "generated management events per trail and delivery")
	f.Float64Var(&opts.FaultRate, "fault-rate", 0, "share of requests that fail with throttling (503 SlowDown) or internal errors (500)")
	f.DurationVar(&opts.Latency, "latency", 0, "delay every answer by this much")
	f.BoolVar(&opts.InsecureHTTP, "insecure-http", false, "count plain-http requests as aws:SecureTransport=false, as AWS would")
	f.BoolVar(&opts.Verbose, "verbose", false, "log replication failures and other events to stderr")
	return cmd
}

// underGoRun reports whether this binary was built by 'go run' (it lives in
// the go-build temporary folder).
func underGoRun() bool {
	exe, err := os.Executable()
	return err == nil && strings.Contains(exe, string(os.PathSeparator)+"go-build")
}

func runSandbox(ctx context.Context, streams IO, opts *SandboxOptions) error {
	level := slog.LevelWarn
	if opts.Verbose {
		level = slog.LevelInfo
	}
	opts.Logger = slog.New(slog.NewTextHandler(streams.Err, &slog.HandlerOptions{Level: level}))
	sb, err := sandbox.New(opts.Options)
	if err != nil {
		return usageErr("check --data-dir and --fault-rate", "sandbox: %w", err)
	}
	defer sb.Close()
	srv, err := sb.Start(opts.Addr, opts.TLS)
	if err != nil {
		return usageErr("pick a free address with --addr 127.0.0.1:PORT", "sandbox: %w", err)
	}
	defer srv.Close()
	if srv.CACert != nil {
		dir := opts.DataDir
		if dir == "" {
			dir = os.TempDir()
		}
		ca := filepath.Join(dir, "trailkeeper-sandbox-ca.pem")
		if err := os.WriteFile(ca, srv.CACert, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(streams.Err, "CA certificate: %s (export AWS_CA_BUNDLE=%s)\n", ca, ca)
	}
	if opts.Seed != "" {
		if err := os.MkdirAll(opts.Seed, 0o755); err != nil {
			return usageErr("", "--seed: %v", err)
		}
		os.Remove(filepath.Join(opts.Seed, "env")) // written again once the world is there
		if err := seed(ctx, sb, srv.URL, opts.Seed); err != nil {
			return fmt.Errorf("--seed: %w", err)
		}
	}
	// Printed last: once this line is out, the sandbox answers.
	fmt.Fprintf(streams.Err, "sandbox serving %s\n", srv.URL)
	if opts.Seed != "" {
		fmt.Fprintf(streams.Err, "the seed's world is there: . %s, then trailkeeper init and plan\n", filepath.Join(opts.Seed, "env"))
	} else {
		fmt.Fprintf(streams.Err, "try: AWS_ACCESS_KEY_ID=111111111111 AWS_SECRET_ACCESS_KEY=x AWS_ENDPOINT_URL=%s aws s3 ls\n", srv.URL)
	}
	if underGoRun() {
		// 'go run' does not pass a kill on to the program it built: stop with it.
		fmt.Fprintln(streams.Err, "started by go run: the sandbox stops when go run does")
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func(parent int) {
			for ctx.Err() == nil && os.Getppid() == parent {
				time.Sleep(200 * time.Millisecond)
			}
			cancel()
		}(os.Getppid())
	}
	<-ctx.Done()
	fmt.Fprintln(streams.Err, "sandbox stopping")
	return nil
}
