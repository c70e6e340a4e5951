package setup

import (
	"fmt"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The grant names accounts as principals while they fit and by
// aws:PrincipalAccount beyond; either way the same accounts are read back.
func TestGrantFormFollowsTheRoomInThePolicy(t *testing.T) {
	const bucket = "aggregation-cloudtrail-logs-999999999999" // as bench/policysize
	roles := []string{SharedRolePattern("trailkeeper-replication")}
	base := &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{DenyInsecure(bucket)}}
	for _, n := range []int{1, 600, 1000, 1320} {
		var accounts []string
		for i := range n {
			accounts = append(accounts, fmt.Sprintf("%012d", 100000000000+i))
		}
		d := withGrant(base, bucket, accounts, roles, []string{"AWSLogs/"})
		g := d.Statement(SidReplication)
		large := g.Principal.AWS[0] == "*"
		if large != (n > 602) {
			t.Errorf("%d accounts: large form = %v", n, large)
		}
		if size := StoredSize(d); size > PolicyLimit {
			t.Errorf("%d accounts: %d bytes stored", n, size)
		}
		if got := GrantedAccounts(g); len(got) != n {
			t.Errorf("%d accounts: %d read back", n, len(got))
		}
		// What fits is counted in the large form: 15 bytes per account.
		if room, want := AccountsThatFit(d), 1320-n; room != want {
			t.Errorf("%d accounts: room for %d more, want %d", n, room, want)
		}
	}
}

// rebase keeps what others changed since the plan and applies the plan's own
// additions and removals on top.
func TestRebaseOntoAConcurrentChange(t *testing.T) {
	const bucket = "archive"
	roles := []string{SharedRolePattern("trailkeeper-replication")}
	doc := func(accounts []string, extra ...policy.Statement) *policy.Document {
		d := &policy.Document{Version: "2012-10-17", Statements: append([]policy.Statement{DenyInsecure(bucket)}, extra...)}
		return withGrant(d, bucket, accounts, roles, []string{"AWSLogs/"})
	}
	auditor := policy.Statement{Sid: "Auditor", Effect: policy.Allow, Principal: &policy.Principal{AWS: policy.Strings{"555555555555"}},
		Action: policy.Strings{"s3:GetObject"}, Resource: policy.Strings{"arn:aws:s3:::archive/*"}}
	for _, c := range []struct {
		name               string
		planned, want, cur *policy.Document
		accounts           string
		keepsAuditor       bool
	}{
		{"nothing changed meanwhile", doc([]string{"A"}), doc([]string{"A", "B"}), doc([]string{"A"}), "A,B", false},
		{"another apply added C", doc([]string{"A"}), doc([]string{"A", "B"}), doc([]string{"A", "C"}, auditor), "A,B,C", true},
		{"this plan removes B, another added C", doc([]string{"A", "B"}), doc([]string{"A"}), doc([]string{"A", "B", "C"}), "A,C", false},
		{"another apply removed A", doc([]string{"A"}), doc([]string{"A", "B"}), doc(nil), "B", false},
	} {
		got := rebase(bucket, c.planned, c.want, c.cur)
		if accounts := GrantedAccounts(got.Statement(SidReplication)); strings.Join(accounts, ",") != c.accounts {
			t.Errorf("%s: accounts %v, want %s", c.name, accounts, c.accounts)
		}
		if (got.Statement("Auditor") != nil) != c.keepsAuditor {
			t.Errorf("%s: auditor statement kept = %v", c.name, got.Statement("Auditor") != nil)
		}
		if got.Statement(SidDenyInsecure) == nil {
			t.Errorf("%s: the TLS deny was lost", c.name)
		}
	}
}
