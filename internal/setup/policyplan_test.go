package setup

import (
	"slices"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The archive policy's arithmetic, case by case: what the grant (written
// before the sources change) and the final policy (after) hold.
func TestArchivePolicies(t *testing.T) {
	const bucket = "archive-999999999999"
	const a, b, c, x = "111111111111", "222222222222", "333333333333", "444444444444"
	role := SharedRolePattern("trailkeeper-replication")
	granted := func(accounts ...string) *policy.Document {
		return withGrant(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{DenyInsecure(bucket)}},
			bucket, accounts, []string{role}, []string{"AWSLogs/"})
	}
	foreign := policy.Statement{Sid: "AuditorsRead", Effect: policy.Allow, Principal: &policy.Principal{AWS: policy.Strings{"arn:aws:iam::555555555555:root"}},
		Action: policy.Strings{"s3:GetObject"}, Resource: policy.Strings{"arn:aws:s3:::" + bucket + "/*"}}
	withForeign := withStatements(granted(a), foreign)
	seed := policy.Statement{Sid: "AllowReplicationFromSourceAccounts", Effect: policy.Allow,
		Principal: &policy.Principal{AWS: policy.Strings{"arn:aws:iam::" + a + ":role/" + seedRoleName}},
		Action:    policy.Strings{"s3:ReplicateObject"}, Resource: policy.Strings{"arn:aws:s3:::" + bucket + "/*"}}
	withSeed := &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{seed}}
	seen := func(accounts ...string) []observedSource {
		var out []observedSource
		for _, acct := range accounts {
			out = append(out, observedSource{Account: acct, Prefix: "AWSLogs/"})
		}
		return out
	}
	for _, tc := range []struct {
		name         string
		in           policyInput
		grant, final []string // accounts granted
		keepSids     []string // statements the final policy keeps besides trailkeeper's
		dropSids     []string // statements the final policy no longer has
		note         string
		revokes      bool // a second write takes something away after the sources changed
	}{
		{name: "a new archive", in: policyInput{Config: []string{a, b}, Observed: seen(a, b), AllObserved: true},
			grant: []string{a, b}, final: []string{a, b}},
		{name: "someone else's statement stays", in: policyInput{Current: withForeign, Config: []string{a, b}, Observed: seen(a, b), AllObserved: true},
			grant: []string{a, b}, final: []string{a, b}, keepSids: []string{"AuditorsRead"}},
		{name: "removing an account: granted until the sources changed, then taken away",
			in:    policyInput{Current: granted(a, b), Config: []string{a, b}, Observed: seen(a), Removing: map[string]bool{a: true}},
			grant: []string{a, b}, final: []string{b}, revokes: true},
		{name: "remove-source observes only the account it removes and grants nobody anew",
			in:    policyInput{Current: granted(a), Config: []string{a, b, c}, Observed: seen(a), Removing: map[string]bool{a: true}},
			grant: []string{a}, dropSids: []string{SidReplication}, revokes: true},
		{name: "an account granted but not in the config stays without --prune, with a note",
			in:    policyInput{Current: granted(a, x), Config: []string{a}, Observed: seen(a), AllObserved: true},
			grant: []string{a, x}, final: []string{a, x}, note: "account " + x + " is granted in the archive policy but not in the config"},
		{name: "--prune takes it away, with a note",
			in:    policyInput{Current: granted(a, x), Config: []string{a}, Observed: seen(a), AllObserved: true, Prune: true},
			grant: []string{a, x}, final: []string{a}, note: "account " + x + ": grant removed (--prune)", revokes: true},
		{name: "the seed's statement goes once its account uses trailkeeper's role",
			in:    policyInput{Current: withSeed, Config: []string{a}, Observed: []observedSource{{Account: a, Prefix: "AWSLogs/", OnRole: true}}, AllObserved: true},
			grant: []string{a}, final: []string{a}, dropSids: []string{"AllowReplicationFromSourceAccounts"}, revokes: true},
		{name: "and stays while it does not",
			in:    policyInput{Current: withSeed, Config: []string{a}, Observed: seen(a), AllObserved: true},
			grant: []string{a}, final: []string{a}, keepSids: []string{"AllowReplicationFromSourceAccounts"}, note: "the seed's statement AllowReplicationFromSourceAccounts stays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Bucket, in.RoleName = bucket, "trailkeeper-replication"
			before := ""
			if in.Current != nil {
				before = canonicalPolicy(in.Current)
			}
			out := archivePolicies(in)
			if in.Current != nil && canonicalPolicy(in.Current) != before {
				t.Fatal("archivePolicies changed the policy it was given")
			}
			accounts := func(d *policy.Document) []string {
				s := d.Statement(SidReplication)
				if s == nil {
					return nil
				}
				got := GrantedAccounts(s)
				slices.Sort(got)
				return got
			}
			if got := accounts(out.Grant); !slices.Equal(got, tc.grant) {
				t.Errorf("grant names %v, want %v", got, tc.grant)
			}
			if got := accounts(out.Final); !slices.Equal(got, tc.final) {
				t.Errorf("final names %v, want %v", got, tc.final)
			}
			if out.Grant.Statement(SidDenyInsecure) == nil || out.Final.Statement(SidDenyInsecure) == nil {
				t.Error("the TLS deny is missing")
			}
			for _, sid := range tc.keepSids {
				if out.Final.Statement(sid) == nil || out.Grant.Statement(sid) == nil {
					t.Errorf("statement %s was taken away", sid)
				}
			}
			for _, sid := range tc.dropSids {
				if out.Final.Statement(sid) != nil {
					t.Errorf("statement %s is still there", sid)
				}
			}
			if tc.note != "" && !strings.Contains(strings.Join(out.Notes, "\n"), tc.note) {
				t.Errorf("notes %q lack %q", out.Notes, tc.note)
			}
			if revokes := !samePolicy(out.Grant, out.Final); revokes != tc.revokes {
				t.Errorf("a second write that takes away: %v, want %v", revokes, tc.revokes)
			}
		})
	}
}
