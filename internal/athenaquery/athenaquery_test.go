package athenaquery

import (
	"strings"
	"testing"
)

func TestWithViewsDefinesOnlyTheViewsNamed(t *testing.T) {
	errorsView := "errors AS (SELECT * FROM events WHERE errorcode IS NOT NULL)"
	for _, tt := range []struct{ in, want string }{
		{"SELECT count(*) FROM events", "SELECT count(*) FROM events"},
		{"SELECT eventname FROM errors", "WITH " + errorsView + "\nSELECT eventname FROM errors"},
		{"-- mine\nWITH x AS (SELECT 1) SELECT * FROM ERRORS, x", "-- mine\nWITH " + errorsView + ", x AS (SELECT 1) SELECT * FROM ERRORS, x"},
		{"with recursive r AS (SELECT 1) SELECT * FROM errors", "with recursive " + errorsView + ", r AS (SELECT 1) SELECT * FROM errors"},
		{"WITH errors AS (SELECT 1) SELECT * FROM errors", "WITH errors AS (SELECT 1) SELECT * FROM errors"}, // the user's own
		{"SELECT count(*) AS error_count FROM events", "SELECT count(*) AS error_count FROM events"},
	} {
		if got := WithViews(tt.in); got != tt.want {
			t.Errorf("WithViews(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
	both := WithViews("SELECT * FROM console_logins UNION ALL SELECT * FROM errors")
	if !strings.HasPrefix(both, "WITH errors AS (") || !strings.Contains(both, ", console_logins AS (SELECT * FROM events WHERE eventname = 'ConsoleLogin')") {
		t.Errorf("two views: %q", both)
	}
}

// Athena bills at least 10 MB a query, rounded up to the megabyte, $5 a TB.
func TestCost(t *testing.T) {
	for _, tt := range []struct {
		bytes int64
		want  float64
	}{{0, 10 * 5.0 / (1 << 20)}, {10 << 20, 10 * 5.0 / (1 << 20)}, {10<<20 + 1, 11 * 5.0 / (1 << 20)}, {1 << 40, 5}} {
		if got := Cost(tt.bytes); got != tt.want {
			t.Errorf("Cost(%d) = %v, want %v", tt.bytes, got, tt.want)
		}
	}
}
