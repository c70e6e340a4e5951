package setup

import (
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/config"
)

// Retention jobs group replicas by month and mode: no replica is locked for
// less than the default, none for more than 31 days beyond it, and a
// COMPLIANCE replica stays COMPLIANCE.
func TestRetentionJobsByMonthAndMode(t *testing.T) {
	lock := config.ObjectLock{Mode: "GOVERNANCE", Days: 400}
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 13, 0, 0, 0, time.UTC) }
	short := []ShortReplica{
		{Key: "a", Created: day(1, 1)}, {Key: "b", Created: day(1, 31)}, {Key: "c", Created: day(2, 1)},
		{Key: "d", Created: day(1, 15), Mode: "COMPLIANCE"}, {Key: "e", Created: day(2, 28)},
	}
	jobs := retentionJobs(lock, short)
	if len(jobs) != 3 {
		t.Fatalf("%d jobs, want 3 (January GOVERNANCE, January COMPLIANCE, February GOVERNANCE): %+v", len(jobs), jobs)
	}
	seen := 0
	for _, j := range jobs {
		for _, r := range j.Replicas {
			seen++
			due := retainUntil(lock, r.Created)
			if j.Until.Before(due) || j.Until.After(due.AddDate(0, 0, 31)) {
				t.Errorf("%s (created %s) locked until %s, due %s", r.Key, r.Created, j.Until, due)
			}
			if (r.Mode == "COMPLIANCE") != (j.Mode == "COMPLIANCE") {
				t.Errorf("%s in mode %s goes to a %s job", r.Key, r.Mode, j.Mode)
			}
		}
	}
	if seen != len(short) {
		t.Fatalf("%d replicas in jobs, want %d", seen, len(short))
	}
	// The earliest date first: January's COMPLIANCE replica, due before January's newest GOVERNANCE one.
	if m := string(jobs[0].manifest("archive")); jobs[0].Mode != "COMPLIANCE" || m != "archive,d,\n" {
		t.Fatalf("manifest of the first job:\n%s", m)
	}
}
