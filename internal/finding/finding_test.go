package finding

import "testing"

// One rule for every command: errors and unaccepted unproven findings
// withhold the verdict, warnings and information do not.
func TestVerdictFromSeverities(t *testing.T) {
	for _, tc := range []struct {
		fs   []*Finding
		exit int
	}{
		{nil, 0},
		{[]*Finding{{Severity: Warning}, {Severity: Info}}, 0},
		{[]*Finding{{Severity: Unproven, Accepted: true}}, 0},
		{[]*Finding{{Severity: Unproven}}, 1},
		{[]*Finding{{Severity: Warning}, {Severity: Error}}, 1},
	} {
		if got := Exit(tc.fs); got != tc.exit {
			t.Errorf("%v: exit %d, want %d", tc.fs, got, tc.exit)
		}
	}
	if !(Error.Rank() > Unproven.Rank() && Unproven.Rank() > Warning.Rank() && Warning.Rank() > Info.Rank()) {
		t.Error("severities out of order")
	}
}
