// Package finding is the one vocabulary of what trailkeeper's checks find:
// status, verify, report and watch say each problem as a Finding, on one
// severity scale, in one JSON shape (docs/findings.md, with its JSON
// Schema), and derive their verdict and exit code from the severities here.
package finding

import "time"

// SchemaVersion of the JSON that carries findings (status's and verify's
// reports); docs/findings.md says what changed in each.
const SchemaVersion = 2

// Severity is how much a finding weighs, on one scale for every command.
type Severity string

const (
	// Error: something is wrong (altered, missing, forged, broken): the
	// verdict ("healthy", "valid") cannot be given.
	Error Severity = "error"
	// Unproven: nothing could vouch for it; not evidence of tampering, but
	// no verdict either, unless a flag accepted it (Finding.Accepted).
	Unproven Severity = "unproven"
	// Warning: worth a person's attention; the verdict stands.
	Warning Severity = "warning"
	// Info: context.
	Info Severity = "info"
)

// Rank orders severities, the most serious highest.
func (s Severity) Rank() int {
	switch s {
	case Error:
		return 3
	case Unproven:
		return 2
	case Warning:
		return 1
	}
	return 0
}

// Finding is one thing a check noticed, on the resource or object that has
// it, with the one line that fixes it.
type Finding struct {
	Severity Severity `json:"severity"`
	// Code names the kind of finding (status's codes, verify's kinds):
	// docs/status.md and docs/verify.md list them.
	Code string `json:"code"`
	// Kind repeats Code under the name verify's JSON used until schema 2;
	// it goes in the next release.
	Kind      string     `json:"kind,omitempty"`
	Account   string     `json:"account"`
	Region    string     `json:"region,omitempty"`
	Trail     string     `json:"trail,omitempty"`
	Key       string     `json:"key,omitempty"`
	VersionID string     `json:"versionId,omitempty"`
	From      *time.Time `json:"from,omitempty"`
	To        *time.Time `json:"to,omitempty"`
	Count     int        `json:"count,omitempty"` // how many objects the finding stands for, when several
	Message   string     `json:"message"`
	Fix       string     `json:"fix"`
	// Accepted: unproven, and let pass by a flag that says so.
	Accepted bool `json:"accepted,omitempty"`
}

// Failing says whether a finding withholds the verdict: an error, or an
// unproven finding no flag accepted.
func (f *Finding) Failing() bool {
	return f.Severity == Error || f.Severity == Unproven && !f.Accepted
}

// Failures counts the findings that withhold the verdict.
func Failures(fs []*Finding) int {
	n := 0
	for _, f := range fs {
		if f.Failing() {
			n++
		}
	}
	return n
}

// Exit is the exit code findings give a command that ran to its end: 0
// with no failing finding, 1 (problems) with one (status exits with it;
// verify's verdict adds "sampled", exit 5, on top).
func Exit(fs []*Finding) int {
	if Failures(fs) > 0 {
		return 1
	}
	return 0
}
