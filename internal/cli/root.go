// Package cli is trailkeeper's command line: one file per command, each turning
// flags into options and calling a run function; output and exit codes live here.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes, documented in the README and in each command's help.
const (
	ExitOK          = 0   // success, healthy, valid
	ExitProblems    = 1   // the command worked and found problems
	ExitUsage       = 2   // usage or configuration error
	ExitAWS         = 3   // AWS access error: credentials, permissions, network
	ExitChanges     = 4   // plan --detailed-exitcode: changes pending
	ExitSampled     = 5   // verify --sample: nothing wrong in what was read, not everything was read
	ExitInterrupted = 130 // interrupted
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3";
// otherwise it is read from the build (version reads it).
var Version = ""

// version is what --version prints: the release, the module version of a
// 'go install ...@v1.2.3', or the commit a build from a clone was made of.
func version() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev (built without version control information: go run, or -buildvcs=false)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += " with local changes"
	}
	return fmt.Sprintf("dev (commit %s, %s)", rev, at)
}

// IO holds the streams a command reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// Globals are the flags every command has.
type Globals struct {
	Config     string
	Output     string
	NoProgress bool
}

// exitError carries an exit code and a hint that says how to fix the problem.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(hint string, format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...), hint: hint}
}

// Main runs the command line and returns the process exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	// Ctrl-C and a plain kill (SIGTERM: systemd, Kubernetes, timeout) stop the
	// same way: the work in flight is cancelled, and the command exits 130.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, IO{In: in, Out: out, Err: errOut})
}

// run executes one command line and turns its outcome into the exit code,
// printing the error and its hint on stderr.
func run(ctx context.Context, args []string, streams IO) int {
	errOut := streams.Err
	root := newRoot(streams)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil {
		fmt.Fprintln(errOut, "interrupted")
		return ExitInterrupted
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(errOut, "error:", ee.err)
		}
		if ee.hint != "" {
			fmt.Fprintln(errOut, "hint:", ee.hint)
		}
		return ee.code
	}
	fmt.Fprintln(errOut, "error:", err)
	return ExitUsage // cobra's own errors are usage errors: unknown flag, missing argument
}

func newRoot(streams IO) *cobra.Command {
	g := &Globals{}
	root := &cobra.Command{
		Use:   "trailkeeper",
		Short: "Keep every AWS account's CloudTrail logs in one tamper-proof archive, without AWS Organizations",
		Long: `trailkeeper sets up S3 cross-account replication of each account's CloudTrail logs into one
Object-Lock archive bucket, proves it works, and proves the archive is complete and unaltered.

Exit codes: 0 success, 1 problems found, 2 usage or configuration error,
3 AWS access error, 4 changes pending (plan --detailed-exitcode), 5 a sample was
clean but not everything was read (verify --sample), 130 interrupted.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.SetIn(streams.In)
	pf := root.PersistentFlags()
	pf.StringVar(&g.Config, "config", "trailkeeper.yaml", "configuration file")
	pf.StringVarP(&g.Output, "output", "o", "text", "output format: text or json (search: csv too)")
	pf.BoolVar(&g.NoProgress, "no-progress", false, "no progress bars on stderr")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if g.Output != "text" && g.Output != "json" && !(g.Output == "csv" && (cmd.Name() == "search" || cmd.Name() == "query")) {
			return usageErr("use --output text or --output json", "unknown output format %q", g.Output)
		}
		return nil
	}
	root.AddCommand(newInitCmd(streams, g), newPlanCmd(streams, g), newApplyCmd(streams, g), newShowCmd(streams, g), newRemoveSourceCmd(streams, g), newRenderCmd(streams, g), newStatusCmd(streams, g), newBackfillCmd(streams, g), newReportCmd(streams, g), newVerifyCmd(streams, g), newSearchCmd(streams, g), newIndexCmd(streams, g), newQueryCmd(streams, g), newAthenaCmd(streams, g), newKeysCmd(streams, g), newAlertsCmd(streams, g), newWatchCmd(streams, g),
		newSandboxCmd(streams, g, nil), newDemoCmd(streams, g))
	return root
}
