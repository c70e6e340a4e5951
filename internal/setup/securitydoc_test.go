package setup

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// TestSecurityDocShowsTheRealPolicies keeps docs/security.md true: its
// policies are those trailkeeper writes for the example config, and its last
// block is the large form of the grant.
func TestSecurityDocShowsTheRealPolicies(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 4 {
		t.Fatalf("docs/security.md has %d json blocks, want 4", len(blocks))
	}
	c, err := config.Parse("example", []byte(config.Example))
	if err != nil {
		t.Fatal(err)
	}
	tr := Trail{Name: "Members", Bucket: "cm-members-cloudtrail-111111111111", HomeRegion: "ap-northeast-1"}
	accounts, roles := []string{"111111111111", "222222222222"}, []string{SharedRolePattern(c.Replication.RoleName)}
	want := []any{ReplicationTrust(), RolePolicy(c, "111111111111", tr), &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		DenyInsecure(c.Archive.Bucket), ReplicationGrant(c.Archive.Bucket, accounts, roles, []string{"AWSLogs/"})}},
		LargeReplicationGrant(c.Archive.Bucket, accounts, roles, []string{"AWSLogs/"})}
	for i, w := range want {
		data, _ := json.MarshalIndent(w, "", "  ")
		if !bytes.Equal(bytes.TrimSpace(blocks[i][1]), data) {
			t.Errorf("policy %d in docs/security.md differs from the code:\n%s\nwant\n%s", i+1, blocks[i][1], data)
		}
	}
}
