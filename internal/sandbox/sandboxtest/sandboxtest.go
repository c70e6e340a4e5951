// Package sandboxtest starts a sandbox for one test, outside the sandbox's
// own package (whose tests have their own harness).
package sandboxtest

import (
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
)

// Start runs a sandbox on a free loopback port until the test ends and
// returns it with its URL.
func Start(t testing.TB, opts sandbox.Options) (*sandbox.Sandbox, string) {
	t.Helper()
	sb, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sb.Start("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); sb.Close() })
	return sb, srv.URL
}
