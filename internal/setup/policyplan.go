package setup

import (
	"fmt"
	"regexp"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The archive policy's arithmetic, apart from reading and writing it: from
// the policy as it is, the config and the sources observed in this run, the
// policy to write before the sources change (grant: everything new added,
// nothing taken away, so that no source loses its grant mid-run) and the
// one after (final: removed accounts, and with --prune unlisted ones, taken
// away; the seed's statements dropped once every account they name uses
// trailkeeper's role).

// observedSource is a source account read in this run.
type observedSource struct {
	Account string
	Prefix  string // the trail's [prefix/]AWSLogs/
	OnRole  bool   // its replication rule already runs as trailkeeper's role
}

// policyInput is all the archive policy depends on.
type policyInput struct {
	Bucket   string
	Current  *policy.Document // nil when the bucket has none
	RoleName string
	Config   []string         // the accounts of the config
	Observed []observedSource // the accounts read in this run (remove-source reads only those it removes)
	// AllObserved: every account of the config was read, so the prefixes
	// of the grant may be narrowed to theirs.
	AllObserved bool
	ExtraRoles  []string        // role ARNs other than the shared pattern (borrowed roles)
	Adopted     []string        // accounts moving off the seed's role in this run
	Removing    map[string]bool // accounts being taken out
	Prune       bool
}

// policyPlan is the two policies and what the user should know.
type policyPlan struct {
	Grant, Final  *policy.Document
	GrantAccounts int // accounts the grant names
	Notes         []string
}

var (
	seedPrincipalRE = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/` + seedRoleName + `$`)
	roleAccountRE   = regexp.MustCompile(`^arn:aws:iam::(\d{12}):role/`)
)

// archivePolicies computes the grant and the final policy; it reads and
// writes nothing.
func archivePolicies(in policyInput) policyPlan {
	var out policyPlan
	note := func(format string, a ...any) { out.Notes = append(out.Notes, fmt.Sprintf(format, a...)) }
	cur := in.Current
	if cur == nil {
		cur = &policy.Document{Version: "2012-10-17"}
	}
	// What the current grant holds.
	var oldAccounts, oldRoles, oldPrefixes []string
	if s := cur.Statement(SidReplication); s != nil {
		oldAccounts = GrantedAccounts(s)
		oldRoles, oldPrefixes = grantRoles(s), grantPrefixes(s)
	}
	inConfig := map[string]bool{}
	for _, a := range in.Config {
		if !in.Removing[a] {
			inConfig[a] = true
		}
	}
	// Only accounts observed in this run are granted anew: their role and
	// rule are planned beside the grant.
	var accounts, prefixes []string
	for _, s := range in.Observed {
		if !in.Removing[s.Account] {
			accounts = append(accounts, s.Account)
			prefixes = append(prefixes, s.Prefix)
		}
	}
	roles := append([]string{SharedRolePattern(in.RoleName)}, in.ExtraRoles...)
	// Grant phase: add what is new, keep everything else.
	grantAccounts := append(append([]string{}, oldAccounts...), accounts...)
	grantRoleARNs := append(append([]string{}, oldRoles...), roles...)
	grantPrefixList := append(append([]string{}, oldPrefixes...), prefixes...)
	out.Grant = withGrant(withStatements(cur, DenyInsecure(in.Bucket)), in.Bucket, grantAccounts, grantRoleARNs, grantPrefixList)
	out.GrantAccounts = len(sortedUnique(grantAccounts))

	// Revoke phase.
	keep := func(acct string) bool { return !in.Removing[acct] && (inConfig[acct] || !in.Prune) }
	var finalAccounts []string
	for _, acct := range sortedUnique(grantAccounts) {
		if keep(acct) {
			finalAccounts = append(finalAccounts, acct)
		} else if !inConfig[acct] && !in.Removing[acct] {
			note("account %s: grant removed (--prune); its replication rule and role remain in that account: run 'trailkeeper remove-source %s' with its credentials", acct, acct)
		}
	}
	for _, acct := range sortedUnique(oldAccounts) {
		if !inConfig[acct] && !in.Prune && !in.Removing[acct] {
			note("account %s is granted in the archive policy but not in the config: 'apply --prune' removes the grant", acct)
		}
	}
	var finalRoles []string
	for _, r := range sortedUnique(grantRoleARNs) {
		if m := roleAccountRE.FindStringSubmatch(r); m == nil || keep(m[1]) {
			finalRoles = append(finalRoles, r)
		}
	}
	finalPrefixes := grantPrefixList
	if in.Prune && in.AllObserved {
		finalPrefixes = prefixes
	}
	out.Final = out.Grant
	if len(finalAccounts) > 0 {
		out.Final = withGrant(out.Grant, in.Bucket, finalAccounts, finalRoles, finalPrefixes)
	} else {
		out.Final = withoutStatements(out.Grant, func(s policy.Statement) bool { return s.Sid == SidReplication })
	}
	adopted := map[string]bool{}
	for _, acct := range in.Adopted {
		adopted[acct] = true
	}
	for _, s := range in.Observed {
		if s.OnRole {
			adopted[s.Account] = true // moved in an earlier run
		}
	}
	out.Final = withoutStatements(out.Final, func(s policy.Statement) bool {
		if !seedSids[s.Sid] || s.Principal == nil {
			return false
		}
		for _, pr := range s.Principal.AWS {
			m := seedPrincipalRE.FindStringSubmatch(pr)
			if m == nil || !adopted[m[1]] {
				return false
			}
		}
		return true
	})
	for _, s := range out.Final.Statements {
		if seedSids[s.Sid] {
			note("archive: the seed's statement %s stays: it names accounts that do not use trailkeeper's role yet", s.Sid)
		}
	}
	return out
}
