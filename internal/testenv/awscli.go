package testenv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// AWSCLI is the real AWS CLI (v1, the image's awscli package) kept running in
// one Python process for a test: each command goes through the CLI's own
// driver (awscli.clidriver), arguments, parser, botocore and all, as `aws`
// would run it, without paying a Python start and the CLI's imports (about a
// second on a busy machine) for every command. Each command gets a new driver
// (a command keeps state between runs: validate-logs counts), its own working
// directory and environment; the botocore session, which keeps the loaded
// service models and the credentials it read, is kept per environment.
type AWSCLI struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
	cmd *exec.Cmd
}

// driver reads one JSON request a line and answers one JSON line.
const driver = `
import sys, json, os, io, contextlib
from awscli.clidriver import CLIDriver, create_clidriver
base = dict(os.environ)
sessions = {}
for line in sys.stdin:
    req = json.loads(line)
    os.chdir(req["dir"])
    os.environ.clear()
    os.environ.update({k: v for k, v in base.items() if not k.startswith("AWS_") or k == "AWS_DATA_PATH"})
    os.environ.update(req["env"])
    key = json.dumps(req["env"], sort_keys=True)
    if key not in sessions:
        sessions[key] = create_clidriver().session
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = CLIDriver(session=sessions[key]).main(req["args"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except Exception as e:
            print(repr(e), file=sys.stderr)
            rc = 255
    sys.__stdout__.write(json.dumps({"rc": rc, "out": out.getvalue(), "err": err.getvalue()}) + "\n")
    sys.__stdout__.flush()
`

// StartAWSCLI starts the CLI's driver for the test; it stops with the test.
func StartAWSCLI(t testing.TB) *AWSCLI {
	t.Helper()
	RequireTool(t, "aws")
	RequireTool(t, "python3", "-c", "import awscli.clidriver")
	cmd := exec.Command("python3", "-c", driver)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &AWSCLI{in: in, out: bufio.NewReaderSize(out, 1<<20), cmd: cmd}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	return c
}

// Run runs `aws ARGS...` in dir with env (NAME=value entries; AWS_* variables
// of this process are not passed on) and returns what it printed and its exit
// code.
func (c *AWSCLI) Run(dir string, env []string, args ...string) (stdout, stderr string, code int, err error) {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	req, _ := json.Marshal(map[string]any{"dir": dir, "env": vars, "args": args})
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.in.Write(append(req, '\n')); err != nil {
		return "", "", 0, fmt.Errorf("the AWS CLI driver is gone: %w", err)
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return "", "", 0, fmt.Errorf("the AWS CLI driver is gone: %w", err)
	}
	var res struct {
		RC  int    `json:"rc"`
		Out string `json:"out"`
		Err string `json:"err"`
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return "", "", 0, fmt.Errorf("the AWS CLI driver answered %q: %w", line, err)
	}
	return res.Out, res.Err, res.RC, nil
}
