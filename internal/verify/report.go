// Package verify proves that a CloudTrail archive is complete and unaltered, on
// the replicated copy itself. Every digest and every log file in range ends in
// one of three states: proven (a CloudTrail signature and the chain vouch for
// it), unproven (nothing could vouch for it; the finding says why) or bad. Every
// other object under AWSLogs/ACCOUNT/ is reported, and each problem is reported
// once, on the object that has it, with a fix.
package verify

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/finding"
)

// Severity and Finding are the findings' own (internal/finding). Errors and
// unproven findings make verify exit 1; a finding's kind is its Code.
type (
	Severity = finding.Severity
	Finding  = finding.Finding
)

const (
	Error    = finding.Error    // something was altered, removed, added or forged
	Unproven = finding.Unproven // nothing could vouch for it; not evidence of tampering
	Warning  = finding.Warning  // worth knowing; does not change the verdict
	Info     = finding.Info
)

// Finding kinds; docs/verify.md explains each, and fixes gives each a fix.
const (
	MissingDigest = "missing-digest"
	MissingLog    = "missing-log"
	// MissingBeforeReplication is a missing log file older than every log
	// file of its folder in the archive: lost to a late start, not deleted.
	MissingBeforeReplication = "missing-before-replication"
	AlteredLog               = "altered-log"
	AlteredDigest            = "altered-digest"
	UnreferencedLog          = "unreferenced-log"
	BadSignature             = "bad-signature"
	MissingSignature         = "missing-signature"
	UnknownKey               = "unknown-key"
	MovedDigest              = "moved-digest"
	WrongBucket              = "wrong-bucket"
	ShadowingVersion         = "shadowing-version"
	DeleteMarker             = "delete-marker"
	ChainBreak               = "chain-break"
	Unreadable               = "unreadable"
	UnexpectedObject         = "unexpected-object"
	RegionWithoutDigests     = "region-without-digests"
	ChainTailMissing         = "chain-tail-missing"
	NoDigests                = "no-digests"
	UnsignedTail             = "unsigned-tail"
	UnprovenDigest           = "unproven-digest"
	UncoveredLogs            = "uncovered-logs"
	PendingLogs              = "pending-logs"
	InsightsNotCovered       = "insights-not-covered"
	ChainStart               = "chain-start"
	// KeyNotValid is a digest that names a published key outside the key's
	// validity window.
	KeyNotValid = "key-outside-validity"
	// TailNotAccepted is an unsigned newest digest that does not fit its chain.
	TailNotAccepted = "tail-not-accepted"
	// ChangedSinceProven is a folder whose listing changed since an earlier
	// run proved it: it is verified in full again.
	ChangedSinceProven = "changed-since-proven"
	// RetentionShort is a version whose Object Lock ends before the
	// archive's retention says it should (the inventory report shows it).
	RetentionShort = "retention-short"
)

// fixes says, per kind, what a person should do about a finding.
var fixes = map[string]string{
	MissingDigest:            "find who deleted it (CloudTrail data events or S3 server access logs on the archive); if it never replicated, run trailkeeper backfill",
	MissingLog:               "find who deleted it; if it never replicated, run trailkeeper backfill; the source bucket may still hold it",
	MissingBeforeReplication: "run trailkeeper backfill --account ACCOUNT: replication never copies what was written before its rule, and the source bucket still holds it",
	AlteredLog:               "treat the archive as tampered: compare with the source bucket's copy and find who wrote this key",
	AlteredDigest:            "treat the archive as tampered: compare with the source bucket's copy and find who wrote this key",
	UnreferencedLog:          "a file nobody signed was added: find who wrote it and treat its events as untrusted",
	BadSignature:             "treat the digest as forged: compare with the source bucket's copy and find who wrote this key",
	MissingSignature:         "CloudTrail always writes x-amz-meta-signature and replication keeps it: this object was re-uploaded; compare with the source copy",
	UnknownKey:               "treat the digest as forged (re-signed with a key CloudTrail does not publish); if you verify offline, re-export keys with trailkeeper keys export",
	KeyNotValid:              "treat the digest as forged: CloudTrail signs with the key of the hour; if you verify offline, re-export keys for the whole range with trailkeeper keys export --since",
	TailNotAccepted:          "treat the digest as forged; verify the bucket itself, where the signature is in its metadata",
	RetentionShort:           "trailkeeper apply --extend-retention (the archive's owner may always extend a retention); then find who shortened it, or which source bucket's default retention replaced the archive's (trailkeeper status)",
	ChangedSinceProven:       "nothing, if the findings of the full verification are clean (a backfill adds files); otherwise they say what changed",
	MovedDigest:              "a digest was copied from another location: find who wrote it",
	WrongBucket:              "set sources[].bucket in trailkeeper.yaml to the account's trail bucket, or treat the digest as planted",
	ShadowingVersion:         "someone with write access to the archive wrote over a replica; the replica is intact: find who (Object Lock keeps the original)",
	DeleteMarker:             "someone deleted the object; its locked versions are intact: find who, and remove the delete marker",
	ChainBreak:               "a digest names a predecessor that is not in the chain: compare with the source bucket and find who wrote these keys",
	Unreadable:               "the object is truncated or corrupt: compare with the source bucket's copy",
	UnexpectedObject:         "CloudTrail never writes this name: find who wrote it (S3 server access logs or data events on the archive)",
	RegionWithoutDigests:     "turn on log file validation for the trail (trailkeeper apply does), or treat these files as unproven",
	ChainTailMissing:         "if the trail still logs, the newest digests are missing (deleted or not replicated: trailkeeper status, then trailkeeper backfill); if it was stopped on purpose, pass --until",
	NoDigests:                "point verify at the folder or bucket that contains AWSLogs/, and check that the trail has log file validation on",
	UnsignedTail:             "verify the bucket itself (s3://...), pass --state from an earlier run over S3, or pass --accept-unsigned-tail to accept it",
	UnprovenDigest:           "restore the digest that carries its signature (its successor), or verify the bucket itself, where the signature is in metadata",
	UncoveredLogs:            "these hours had no digest chain (validation off or logging stopped); narrow --since, or keep log file validation on",
	PendingLogs:              "nothing to do: CloudTrail lists them in the next hourly digest",
	InsightsNotCovered:       "nothing to do unless you rely on Insights files: no digest lists them, so they cannot be proven",
}

// Chain summarises one chain (account, region, trail; backfill chains apart).
type Chain struct {
	Account         string    `json:"account"`
	Region          string    `json:"region"`
	Trail           string    `json:"trail"`
	HomeRegion      string    `json:"homeRegion"`
	Backfill        bool      `json:"backfill,omitempty"`
	Digests         int       `json:"digests"`
	DigestsProven   int       `json:"digestsProven"`
	DigestsUnproven int       `json:"digestsUnproven"`
	Logs            int       `json:"logs"`
	LogsProven      int       `json:"logsProven"`
	LogsUnproven    int       `json:"logsUnproven"`
	LogsSkipped     int       `json:"logsSkipped,omitempty"` // not hashed under --sample
	MissingDigests  int       `json:"missingDigests"`
	Problems        int       `json:"problems"`
	First           time.Time `json:"first"`
	Last            time.Time `json:"last"`
	// Incremental: the chain was checked from this proven digest on.
	ProvenBefore string `json:"provenBefore,omitempty"`
}

// Report is the outcome of a verification.
type Report struct {
	SchemaVersion int        `json:"schemaVersion"` // docs/findings.md
	Location      string     `json:"location"`
	Chains        []*Chain   `json:"chains"`
	Findings      []*Finding `json:"findings"`
	Notes         []string   `json:"notes"`
	// Objects listed and read (GETs), to see what an incremental run saved.
	ObjectsListed int64 `json:"objectsListed"`
	ObjectsRead   int64 `json:"objectsRead"`
	// Verdict is "valid" (everything in range proven, or accepted by a flag
	// the findings name), "sampled" (--sample: nothing wrong in what was read,
	// but log files were left unread) or "invalid".
	Verdict string `json:"verdict"`
	// AcceptedUnsignedTail: --accept-unsigned-tail was given; the findings it
	// let pass are marked "accepted".
	AcceptedUnsignedTail bool `json:"acceptedUnsignedTail,omitempty"`
	// State is what the next incremental run starts from.
	State *State `json:"-"`
}

// Problems counts the findings that make verify exit 1.
func (r *Report) Problems() int { return finding.Failures(r.Findings) }

// Valid is the verdict: every digest and log file in range is proven (or
// accepted by an explicit flag), and something was there to prove. A run
// that hashed only a sample is never valid: see Sampled.
func (r *Report) Valid() bool {
	return r.Problems() == 0 && len(r.Chains) > 0 && r.Totals().LogsSkipped == 0
}

func (r *Report) verdict() string {
	switch {
	case r.Valid():
		return "valid"
	case r.Sampled():
		return "sampled"
	}
	return "invalid"
}

// Sampled is the verdict of a --sample run that found nothing wrong in what
// it read, and left log files unread.
func (r *Report) Sampled() bool {
	return r.Problems() == 0 && len(r.Chains) > 0 && r.Totals().LogsSkipped > 0
}

// Accepted lists the keys let pass unproven by a flag (--accept-unsigned-tail).
func (r *Report) Accepted() []string {
	out := []string{}
	for _, f := range r.Findings {
		if f.Accepted {
			out = append(out, f.Key)
		}
	}
	return out
}

// Totals adds the chain summaries up.
func (r *Report) Totals() Chain {
	var t Chain
	for _, c := range r.Chains {
		t.Digests += c.Digests
		t.DigestsProven += c.DigestsProven
		t.DigestsUnproven += c.DigestsUnproven
		t.Logs += c.Logs
		t.LogsProven += c.LogsProven
		t.LogsUnproven += c.LogsUnproven
		t.LogsSkipped += c.LogsSkipped
		t.MissingDigests += c.MissingDigests
		t.Problems += c.Problems
	}
	return t
}

// finish orders the report, names each finding's code under its old name
// too, and gives the verdict.
func (r *Report) finish() {
	slices.SortFunc(r.Chains, func(a, b *Chain) int {
		// a chain before its backfill chain
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Trail, b.Trail), compareBool(a.Backfill, b.Backfill))
	})
	slices.SortStableFunc(r.Findings, func(a, b *Finding) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Code, b.Code))
	})
	sort.Strings(r.Notes)
	for _, f := range r.Findings {
		f.Kind = f.Code // the name verify's JSON used until schema 2, for one release
	}
	r.Verdict = r.verdict()
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
