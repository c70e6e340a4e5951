package cli

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

func TestColoursOnlyOnATerminal(t *testing.T) {
	if c := coloursFor(&bytes.Buffer{}); c.on || c.bad("error") != "error" {
		t.Fatal("a buffer got colour")
	}
	null, _ := os.Open(os.DevNull) // a character device, no terminal
	defer null.Close()
	if coloursFor(null).on {
		t.Fatal("/dev/null got colour")
	}
	if got := (colours{on: true}).severity("error"); got != "\033[1;31merror\033[0m" {
		t.Fatalf("%q", got)
	}
	if got := (colours{on: true}).severity("info"); got != "info" {
		t.Fatalf("%q", got)
	}
}

// On a terminal, a slow object does not look like a hang: with no update
// for a while the line is drawn again, its elapsed time moving, with the
// rate and the time left; finish clears it, and may be called twice.
func TestProgressTicksOnATerminal(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, tty: true, label: "verify", start: time.Now().Add(-10 * time.Second), stop: make(chan struct{})}
	p.update(20, 100, "objects")
	go p.tick(10 * time.Millisecond)
	testenv.Await(t, "the ticker to draw again", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return strings.Count(out.String(), "\r\033[K") >= 3
	})
	p.finish()
	p.finish()
	got := out.String()
	line := regexp.MustCompile(`^verify 20/100  [0-9.]+/s  ETA [0-9hms]+  [0-9hms]+ objects$`)
	draws := strings.Split(strings.TrimPrefix(got, "\r\033[K"), "\r\033[K")
	if len(draws) < 3 || draws[len(draws)-1] != "" || !line.MatchString(draws[0]) || !line.MatchString(draws[len(draws)-2]) {
		t.Fatalf("the terminal line: %q", got)
	}
	// Not a terminal: no ticking, only the periodic lines of updates.
	var plain bytes.Buffer
	q := newProgress(&plain, &Globals{}, "verify", 100)
	q.update(1, 100)
	q.finish()
	if strings.Contains(plain.String(), "\r") || q.stop != nil {
		t.Fatalf("progress off a terminal: %q", plain.String())
	}
}
