package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// writeJSON is the one way commands print machine-readable results.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether a stream is a character device (a person is there).
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	// A character device is not enough: /dev/null is one too.
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress reports long work on stderr: a line that rewrites itself on a
// terminal, with the rate and what remains, and that keeps ticking while a
// slow object holds the work up (so that it never looks like a hang);
// elsewhere a line every few seconds and one at the end, and no ticking.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	off      bool
	total    int
	done     int
	msg      string
	updated  bool // a first update came: there is something to show
	last     time.Time
	start    time.Time
	label    string
	interval time.Duration
	stop     chan struct{} // ends the ticker
	once     sync.Once
}

func newProgress(w io.Writer, g *Globals, label string, total int) *progress {
	p := &progress{w: w, tty: isTerminal(w), off: g.NoProgress, total: total, label: label, start: time.Now(), interval: 5 * time.Second}
	if p.tty && !p.off {
		p.stop = make(chan struct{})
		go p.tick(time.Second)
	}
	return p
}

// tick redraws the terminal line when no update came for a while: the
// elapsed time and the ETA move even while one object takes long.
func (p *progress) tick(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.mu.Lock()
			if p.updated && now.Sub(p.last) >= every {
				p.draw(now)
			}
			p.mu.Unlock()
		}
	}
}

// step counts one more unit of work done.
func (p *progress) step(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.show(p.done+1, p.total, msg)
}

// update reports absolute progress (done of total, total still growing).
func (p *progress) update(done, total int, msg ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.show(done, total, strings.Join(msg, " "))
}

// show prints on a terminal at once, elsewhere every few seconds and at the end.
func (p *progress) show(done, total int, msg string) {
	again := p.done == done && p.total == total // the end, said once is enough
	p.done, p.total, p.msg, p.updated = done, total, msg, true
	if p.off {
		return
	}
	now := time.Now()
	switch {
	case p.tty && now.Sub(p.last) >= 100*time.Millisecond || p.tty && done == total && !again:
		p.draw(now)
	case !p.tty && (done == total && !again || now.Sub(p.last) >= p.interval):
		fmt.Fprintf(p.w, "%s %d/%d (%s) %s\n", p.label, done, total, now.Sub(p.start).Round(100*time.Millisecond), msg)
		p.last = now
	}
}

// draw rewrites the terminal line: done of total, the rate, the time left
// at that rate, and the time so far.
func (p *progress) draw(now time.Time) {
	elapsed := now.Sub(p.start)
	line := fmt.Sprintf("%s %d/%d", p.label, p.done, p.total)
	if secs := elapsed.Seconds(); secs >= 1 && p.done > 0 {
		rate := float64(p.done) / secs
		if rate >= 10 {
			line += fmt.Sprintf("  %.0f/s", rate)
		} else {
			line += fmt.Sprintf("  %.1f/s", rate)
		}
		if p.total > p.done {
			line += "  ETA " + (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
		}
	}
	line += "  " + elapsed.Round(time.Second).String()
	fmt.Fprintf(p.w, "\r\033[K%s %s", line, truncate(p.msg, 50))
	p.last = now
}

// finish ends the ticker and clears the line; it may be called twice.
func (p *progress) finish() {
	p.once.Do(func() {
		if p.stop != nil {
			close(p.stop)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.tty && !p.off {
			fmt.Fprint(p.w, "\r\033[K")
		}
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// thousands writes 20480 as 20,480.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// plural writes "1 account" and "2 accounts".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// colours paints words on a terminal only, and never when NO_COLOR is set
// (https://no-color.org): pipes, files and CI logs get plain text.
type colours struct{ on bool }

func coloursFor(w io.Writer) colours {
	return colours{on: isTerminal(w) && os.Getenv("NO_COLOR") == ""}
}

func (c colours) paint(code, s string) string {
	if !c.on {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

func (c colours) good(s string) string { return c.paint("32", s) }
func (c colours) bad(s string) string  { return c.paint("1;31", s) }
func (c colours) warn(s string) string { return c.paint("33", s) }

// severity paints a severity word by how bad it is.
func (c colours) severity(s string) string {
	switch s {
	case "error":
		return c.bad(s)
	case "unproven", "warning":
		return c.warn(s)
	}
	return s
}
