// Package verify proves that a CloudTrail archive is complete and unaltered, on
// the replicated copy itself: it checks every digest's signature against its
// original location, every link of every chain, and the hash of every log file,
// and reports each missing hour, each missing, altered, shadowed or inserted
// log, and each broken chain.
package verify

import (
	"sort"
	"time"
)

// Severity of a finding: errors make verify exit 1.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding kinds; docs/verify.md explains each.
const (
	MissingDigest    = "missing-digest"
	MissingLog       = "missing-log"
	AlteredLog       = "altered-log"
	AlteredDigest    = "altered-digest"
	UnreferencedLog  = "unreferenced-log"
	BadSignature     = "bad-signature"
	UnknownKey       = "unknown-key"
	MovedDigest      = "moved-digest"
	WrongBucket      = "wrong-bucket"
	ShadowingVersion = "shadowing-version"
	DeleteMarker     = "delete-marker"
	ChainStart       = "chain-start"
	ChainBreak       = "chain-break"
	Unreadable       = "unreadable"
	NoSignature      = "signature-not-readable"
)

// Finding is one thing verify noticed.
type Finding struct {
	Severity  Severity   `json:"severity"`
	Kind      string     `json:"kind"`
	Account   string     `json:"account"`
	Region    string     `json:"region"`
	Trail     string     `json:"trail,omitempty"`
	Key       string     `json:"key,omitempty"`
	VersionID string     `json:"versionId,omitempty"`
	From      *time.Time `json:"from,omitempty"`
	To        *time.Time `json:"to,omitempty"`
	Message   string     `json:"message"`
}

// Chain summarises one chain (account, region, trail; backfill chains apart).
type Chain struct {
	Account      string    `json:"account"`
	Region       string    `json:"region"`
	Trail        string    `json:"trail"`
	HomeRegion   string    `json:"homeRegion"`
	Backfill     bool      `json:"backfill,omitempty"`
	Digests      int       `json:"digests"`
	DigestsValid int       `json:"digestsValid"`
	Logs         int       `json:"logs"`
	LogsValid    int       `json:"logsValid"`
	LogsSkipped  int       `json:"logsSkipped,omitempty"` // not hashed under --sample
	MissingHours int       `json:"missingDigests"`
	Problems     int       `json:"problems"`
	First        time.Time `json:"first"`
	Last         time.Time `json:"last"`
}

// Report is the outcome of a verification.
type Report struct {
	Location string     `json:"location"`
	Chains   []*Chain   `json:"chains"`
	Findings []*Finding `json:"findings"`
	Notes    []string   `json:"notes,omitempty"`
}

// Problems counts error findings.
func (r *Report) Problems() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

func (r *Report) sort() {
	sort.Slice(r.Chains, func(i, j int) bool {
		a, b := r.Chains[i], r.Chains[j]
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		if a.Trail != b.Trail {
			return a.Trail < b.Trail
		}
		return !a.Backfill && b.Backfill
	})
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.Region != b.Region {
			return a.Region < b.Region
		}
		return a.Key < b.Key
	})
}
