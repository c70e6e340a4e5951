// Package timerange reads the --since and --until of the commands that look
// at a span of the archive: absolute times, dates, and durations back from now.
package timerange

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime reads 2025-09-10T15:00:00Z, 2025-09-10, 48h (ago) or 7d (ago);
// "" is the zero time (no bound).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2025-09-10T15:00:00Z, 2025-09-10, 48h or 7d", s)
}

// Error is a bound that cannot be read, or a range that holds no time.
type Error struct {
	Msg, Hint string
}

func (e *Error) Error() string { return e.Msg }

// Parse reads a --since and an --until; a range that holds no time is an error.
func Parse(sinceFlag, untilFlag string, now time.Time) (since, until time.Time, err error) {
	if since, err = ParseTime(sinceFlag, now); err != nil {
		return since, until, &Error{Msg: "--since: " + err.Error()}
	}
	if until, err = ParseTime(untilFlag, now); err != nil {
		return since, until, &Error{Msg: "--until: " + err.Error()}
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return since, until, &Error{Msg: fmt.Sprintf("empty time range %s to %s", since.Format(time.RFC3339), until.Format(time.RFC3339)),
			Hint: "--since must come before --until"}
	}
	return since, until, nil
}
