package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/status"
)

// The verdict speaks when a problem is new and when all are gone, and a
// verify finding counts until the next day's verify clears it.
func TestJudge(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	healthy := &status.Report{CheckedAt: now, Healthy: true}
	stopped := &status.Report{CheckedAt: now, Findings: []*status.Finding{{Severity: status.Error, Code: "trail-not-logging", Account: "111111111111", Message: "stopped", Fix: "start it"}}}
	altered := &Verdict{VerifiedAt: now, VerifyVerdict: "invalid", VerifyFound: []Problem{{"verify altered-log", "222222222222", "a log differs", "find who"}}}
	valid := &Verdict{VerifiedAt: now, VerifyVerdict: "valid"}

	v := judge(&Verdict{}, healthy, valid)
	if !v.Healthy || v.Message != "" {
		t.Fatalf("first run, healthy: %+v", v)
	}
	v = judge(v, healthy, altered)
	if v.Healthy || !strings.Contains(v.Message, "account 222222222222: verify altered-log: a log differs") {
		t.Fatalf("a verify finding: %+v", v)
	}
	v = judge(v, stopped, v) // the hour after: verify's finding carried, a status problem new
	if v.Healthy || !strings.Contains(v.Message, "(2 problems, 1 new") || strings.Contains(v.Message, "altered-log") {
		t.Fatalf("a new problem beside a carried one: %+v", v)
	}
	v = judge(v, stopped, v)
	if v.Message != "" {
		t.Fatalf("nothing new, yet a message: %q", v.Message)
	}
	v = judge(v, healthy, valid)
	if !v.Healthy || !strings.HasPrefix(v.Message, "trailkeeper watch: healthy again") || v.Notified != 0 {
		t.Fatalf("all gone: %+v", v)
	}
}
