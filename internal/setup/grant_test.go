package setup

import (
	"fmt"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The grant names accounts as principals while they fit and by
// aws:PrincipalAccount beyond; either way the same accounts are read back.
func TestGrantFormFollowsTheRoomInThePolicy(t *testing.T) {
	const bucket = "aggregation-cloudtrail-logs-999999999999" // as bench/policysize
	roles := []string{SharedRolePattern("trailkeeper-replication")}
	base := &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{DenyInsecure(bucket)}}
	for _, n := range []int{1, 600, 1000, 1322} {
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
		if room, want := AccountsThatFit(d), 1322-n; room != want {
			t.Errorf("%d accounts: room for %d more, want %d", n, room, want)
		}
	}
}
