// Package testenv is what the test suites share: the outside tools CI must have
// (a missing one fails in CI and skips elsewhere), moto as a second emulator,
// and small helpers: must(call).OK(t), Gunzip.
package testenv

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// RequireTool fails in CI and skips elsewhere when a tool is missing. With
// check, the tool is run with those arguments and must succeed.
func RequireTool(t testing.TB, name string, check ...string) {
	t.Helper()
	if len(check) == 0 {
		if _, err := exec.LookPath(name); err == nil {
			return
		}
	} else if exec.Command(name, check...).Run() == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI and missing (.ci/run installs or checks it)", name)
	}
	t.Skipf("%s not installed", name)
}

// StartMoto runs moto's server (installed with the AWS CLI in this image) on a
// free loopback port until the test ends, and returns its URL.
func StartMoto(t testing.TB) string {
	t.Helper()
	RequireTool(t, "python3", "-c", "import moto.server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(url + "/moto-api/"); err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto did not start on %s", url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Patience is how long a test waits for an event it expects (a delivery, a
// replication, a server starting): until shortly before the test binary's own
// deadline (go test -timeout), never a fixed few seconds that a loaded
// machine can exceed. Only the event ends the wait early, so a test that
// passes does not pass by luck, and one that fails still says what it awaited.
func Patience(t testing.TB) (context.Context, context.CancelFunc) {
	if dt, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if d, ok := dt.Deadline(); ok {
			// Leave the test time to report what it waited for.
			return context.WithDeadline(context.Background(), d.Add(-time.Until(d)/20-5*time.Second))
		}
	}
	return context.WithCancel(context.Background())
}

// Await polls cond until it holds, or fails the test when its patience runs
// out, saying what it awaited.
func Await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := Patience(t)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waited until the test's deadline for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Gunzip returns the uncompressed bytes, or fails the test.
func Gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Must(call).OK(t) fails the test when the call returned an error.
func Must[T any](v T, err error) Result[T] { return Result[T]{v, err} }

// Result is a call's value and error, waiting for OK.
type Result[T any] struct {
	v   T
	err error
}

// OK returns the value, or fails the test with the error.
func (r Result[T]) OK(t testing.TB) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// RealCloudTrail returns the folder of one set of real CloudTrail logs: from
// the repository's testdata/cloudtrail for the sets whose licenses allow a
// copy, else from ../shared/data/cloudtrail (SOURCES.md there says where each
// came from). CI has ../shared beside the clone, and a test that needs it
// fails there without it; elsewhere it skips.
func RealCloudTrail(t testing.TB, set string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	if dir := filepath.Join(repo, "testdata", "cloudtrail", set); exists(dir) {
		return dir
	}
	dir := filepath.Join(repo, "..", "shared", "data", "cloudtrail", set)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI has ../shared beside the clone: %s must be there", dir)
		}
		t.Skipf("shared data not present: %s", dir)
	}
	return dir
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
