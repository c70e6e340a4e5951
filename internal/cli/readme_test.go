package cli

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// TestREADMECommandsExist runs --help of every trailkeeper command the README
// names, so that the README never shows a command the binary does not accept.
func TestREADMECommandsExist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Commands are in code: fenced blocks and `inline` spans.
	var code []string
	for _, m := range regexp.MustCompile("(?s)```[a-z]*\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		code = append(code, strings.Split(m[1], "\n")...)
	}
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(string(readme), -1) {
		code = append(code, m[1])
	}
	seen := map[string]bool{}
	for _, line := range code {
		m := regexp.MustCompile(`(?:^|\s|/)trailkeeper ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?`).FindStringSubmatch(line)
		if m == nil {
			continue
		}
		seen[m[1]] = true
		if m[1] == "keys" || m[1] == "completion" {
			seen[m[1]+" "+m[2]] = true
		}
	}
	if len(seen) < 8 {
		t.Fatalf("found only %v in the README", seen)
	}
	for cmd := range seen {
		var out bytes.Buffer
		if code := Main(append(strings.Fields(cmd), "--help"), strings.NewReader(""), &out, &out); code != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("README names 'trailkeeper %s', but --help exits %d:\n%s", cmd, code, out.String())
		}
	}
}

func TestVersionAndCompletion(t *testing.T) {
	var out bytes.Buffer
	if code := Main([]string{"--version"}, strings.NewReader(""), &out, &out); code != 0 || !strings.Contains(out.String(), "trailkeeper version") {
		t.Fatalf("--version: %d %s", code, out.String())
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out.Reset()
		if code := Main([]string{"completion", shell}, strings.NewReader(""), &out, &out); code != 0 || !strings.Contains(out.String(), "trailkeeper") {
			t.Fatalf("completion %s: exit %d", shell, code)
		}
	}
}

// TestREADMEDemoCommand runs the README's first command exactly as a newcomer
// would, and checks its exit code and its proof lines.
func TestREADMEDemoCommand(t *testing.T) {
	cmd := exec.Command("go", "run", "./cmd/trailkeeper", "demo", "--dir", t.TempDir())
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./cmd/trailkeeper demo: %v\n%s", err, out)
	}
	for _, proof := range []string{"accounts", "plan", "apply", "replicate", "status", "add", "backfill", "alert", "watch", "query", "verify", "tamper", "report"} {
		if !regexp.MustCompile(`(?m)^ok   ` + proof + ` `).Match(out) {
			t.Errorf("no proof line for %s:\n%s", proof, out)
		}
	}
	if !bytes.Contains(out, []byte("All 13 proofs held")) || !bytes.Contains(out, []byte("is caught by verify (exit 1: shadowing-version)")) {
		t.Fatalf("demo output:\n%s", out)
	}
	// The commands it leaves for going on by hand work as pasted, from another
	// folder: source the env file, start the sandbox, then status.
	_, block, ok := bytes.Cut(out, []byte("paste into a shell:\n\n"))
	block, _, _ = bytes.Cut(block, []byte("\n\n"))
	lines := strings.Split(strings.TrimSpace(string(block)), "\n")
	if !ok || len(lines) != 3 || !strings.HasPrefix(strings.TrimSpace(lines[0]), ". ") || !strings.HasSuffix(lines[1], "&") {
		t.Fatalf("no commands to go on by hand:\n%s", out)
	}
	source, serve, status := strings.TrimSpace(lines[0]), strings.TrimSuffix(strings.TrimSpace(lines[1]), "&"), strings.TrimSpace(lines[2])
	addr := regexp.MustCompile(`--addr (\S+)`).FindStringSubmatch(serve)[1]
	elsewhere := t.TempDir()
	sandbox := exec.Command("bash", "-c", source+" && "+serve)
	sandbox.Dir = elsewhere
	sandbox.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sandbox.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-sandbox.Process.Pid, syscall.SIGTERM)
		sandbox.Wait()
		// bash is gone; the sandbox it ran (a child of go run) may still be
		// saving into the data dir, which t.TempDir's cleanup removes next.
		testenv.Await(t, "the sandbox's process group to end", func() bool { return !groupAlive(sandbox.Process.Pid) })
	}()
	testenv.Await(t, serve+" to serve (go run compiles first)", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	by := exec.Command("bash", "-c", source+" && "+status)
	by.Dir = elsewhere
	if got, err := by.CombinedOutput(); err != nil || !bytes.Contains(got, []byte("Healthy")) {
		t.Fatalf("%s: %v\n%s", status, err, got)
	}
}

// TestREADMEWalkthrough runs the README's sandbox walkthrough as a newcomer
// pastes it into a shell: in a copy of the repository's tracked files, with
// bash -e, the one change being a free port for the sandbox instead of 4566.
// It must end healthy (status) and valid (verify), with a report written.
func TestREADMEWalkthrough(t *testing.T) {
	testenv.RequireTool(t, "bash")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- walkthrough -->\n```sh\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 || !strings.Contains(block, "sandbox --seed sandbox ") {
		t.Fatal("the README has no walkthrough block")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	script := "set -e\n" + strings.Replace(block, "sandbox --seed sandbox ", "sandbox --seed sandbox --addr "+addr+" ", 1)

	clone := t.TempDir()
	files, err := exec.Command("git", "-C", "../..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join("../..", f))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(clone, filepath.Dir(f)), 0o755)
		if err := os.WriteFile(filepath.Join(clone, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := testenv.Patience(t)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = clone
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the sandbox, if the script stopped early
	}
	log, _ := os.ReadFile(filepath.Join(clone, "sandbox.log"))
	if err != nil {
		t.Fatalf("the README's walkthrough failed: %v\n%s\nsandbox.log:\n%s", err, out, log)
	}
	for _, want := range []string{"Healthy: every account's trail reaches the archive", "log files proven: valid."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walkthrough did not end %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(clone, "report.html")); err != nil {
		t.Errorf("no report: %v", err)
	}
}

// groupAlive says whether a process of the group is still running (a zombie
// is not: in a container nobody may reap it).
func groupAlive(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so cut after its ")".
		i := bytes.LastIndexByte(data, ')')
		fields := strings.Fields(string(data[i+1:]))
		if len(fields) > 2 && fields[0] != "Z" && fields[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}
