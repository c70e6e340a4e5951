package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// keys lists a bucket's keys under prefix.
func keys(t *testing.T, e *env, account, bucket, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(world.S3(e.url, account, region), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		for _, o := range must(p.NextPage(ctx)).OK(t).Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// TestBackfillBringsInWhatPredatesReplication: logs delivered before apply
// never replicate; status names them with the fix trailkeeper backfill;
// backfill --wait brings every one in; then the source and archive hold the
// same keys, and status and verify exit 0.
func TestBackfillBringsInWhatPredatesReplication(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA, Validation: true})
	e.deliveries(acctA, 3) // before trailkeeper
	e.writeConfig([]string{acctA}, "")
	e.apply()
	e.deliveries(acctA, 2)
	src, base := "cm-members-cloudtrail-"+acctA, "AWSLogs/"+acctA+"/"
	before := keys(t, e, acctA, src, base)
	if archived := keys(t, e, archiveAcct, archive, base); len(archived) >= len(before) {
		t.Fatalf("the archive already holds %d of %d objects", len(archived), len(before))
	}

	out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms")
	if code != 0 || !strings.Contains(out, "Complete: the archive holds every one of the all log files of 1 account") {
		t.Fatalf("backfill --wait exited %d:\n%s%s", code, out, errOut)
	}
	if got := keys(t, e, archiveAcct, archive, base); !slices.Equal(got, keys(t, e, acctA, src, base)) {
		t.Fatalf("after backfill the archive holds %d keys, the source %d", len(got), len(before))
	}
	// A rerun finds nothing missing and starts no job.
	out, _, code = e.run("backfill", "--output", "json")
	var r struct {
		Accounts []struct {
			Status string `json:"status"`
			JobID  string `json:"jobId"`
		} `json:"accounts"`
	}
	json.Unmarshal([]byte(out), &r)
	if code != 0 || len(r.Accounts) != 1 || r.Accounts[0].Status != "nothing-missing" || r.Accounts[0].JobID != "" {
		t.Fatalf("backfill rerun exited %d: %s", code, out)
	}
	if out, errOut, code := e.run("verify"); code != 0 {
		t.Fatalf("verify after backfill exited %d:\n%s%s", code, out, errOut)
	}
}
