package e2e

import (
	"os"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/watch"
)

// TestMain lets this test binary be the watch function apply deploys (apply
// deploys the binary it runs in): started by the sandbox's Lambda as a
// bootstrap, it serves the Runtime API as trailkeeper's own binary does.
func TestMain(m *testing.M) {
	if watch.IsFunction() {
		watch.RunFunction()
		return
	}
	os.Exit(m.Run())
}
