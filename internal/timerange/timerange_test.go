package timerange

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		since, until string
		want         [2]time.Time
		bad          bool
	}{
		{"", "", [2]time.Time{}, false},
		{"7d", "", [2]time.Time{now.AddDate(0, 0, -7), {}}, false},
		{"48h", "24h", [2]time.Time{now.Add(-48 * time.Hour), now.Add(-24 * time.Hour)}, false},
		{"2026-12-01", "2026-12-02T00:00:00Z", [2]time.Time{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}, false},
		{"1d", "2d", [2]time.Time{}, true}, // empty: since after until
		{"yesterday", "", [2]time.Time{}, true},
		{"-3d", "", [2]time.Time{}, true},
		{"0d", "", [2]time.Time{}, true},
	} {
		since, until, err := Parse(tc.since, tc.until, now)
		var te *Error
		switch {
		case tc.bad && !errors.As(err, &te):
			t.Errorf("%q..%q: %v, want a range error", tc.since, tc.until, err)
		case !tc.bad && (err != nil || !since.Equal(tc.want[0]) || !until.Equal(tc.want[1])):
			t.Errorf("%q..%q: %s..%s, %v", tc.since, tc.until, since, until, err)
		}
	}
}
