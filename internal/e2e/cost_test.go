package e2e

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// logFiles counts the account's log files in its trail bucket (no digests).
func logFiles(t *testing.T, e *env, account string) int64 {
	t.Helper()
	bucket := "cm-members-cloudtrail-" + account
	n := int64(0)
	p := s3.NewListObjectsV2Paginator(world.S3(e.url, account, region), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: aws.String("AWSLogs/" + account + "/CloudTrail/")})
	for p.HasMorePages() {
		n += int64(len(must(p.NextPage(ctx)).OK(t).Contents))
	}
	return n
}

// TestCostEstimate: plan prices the archive from the log files of the last
// 24 hours and warns, with the figure, about a storage class that bills each
// file as 128 KB; status gives the same estimate; a plan without changes lists
// no logs.
func TestCostEstimate(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.deliveries(acctA, 3)
	n := logFiles(t, e, acctA)
	if n == 0 {
		t.Fatal("no log files delivered")
	}
	e.writeConfig([]string{acctA}, "")
	cfg, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(cfg), "  object_lock:", "  storage_class: STANDARD_IA\n  object_lock:", 1)), 0o600)

	out, _, _ := e.run("plan")
	for _, want := range []string{"archive.storage_class STANDARD_IA bills every log file as at least 128 KB", "x STANDARD's",
		"Cost at the last 24 hours' volume (" + thousands(int(n)) + " log files"} {
		if !strings.Contains(out, want) {
			t.Fatalf("plan does not say %q:\n%s", want, out)
		}
	}
	js, _, _ := e.run("plan", "--output", "json")
	var plan struct {
		Cost struct {
			Objects int64              `json:"objectsPerMonth"`
			Class   string             `json:"storageClass"`
			Storage float64            `json:"storagePerMonthOfLogs"`
			ByClass map[string]float64 `json:"storagePerMonthOfLogsByClass"`
		} `json:"cost"`
	}
	if err := json.Unmarshal([]byte(js), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Cost.Objects != 30*n || plan.Cost.Class != "STANDARD_IA" || plan.Cost.Storage <= plan.Cost.ByClass["STANDARD"] {
		t.Fatalf("plan's estimate: %+v, want %d objects a month, STANDARD_IA dearer than STANDARD", plan.Cost, 30*n)
	}

	e.writeConfig([]string{acctA}, "") // the default class
	e.apply()
	e.deliveries(acctA, 1)
	n = logFiles(t, e, acctA)
	// With validation on, each region's 24 hourly digests a day replicate too.
	bucket := "cm-members-cloudtrail-" + acctA
	regions := int64(len(must(world.S3(e.url, acctA, region).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket,
		Prefix: aws.String("AWSLogs/" + acctA + "/CloudTrail/"), Delimiter: aws.String("/")})).OK(t).CommonPrefixes))
	r, _, _ := e.status()
	if r.Cost.ObjectsPerMonth != 30*(n+24*regions) || r.Accounts[0].LastDay.Objects != n || r.Cost.Class != "STANDARD" || r.Cost.Replication <= 0 {
		t.Fatalf("status's estimate: %+v, last day %+v; want %d log files and the digests of %d regions", r.Cost, r.Accounts[0].LastDay, n, regions)
	}
	e.sb.ResetCalls()
	out, _, code := e.run("plan")
	if code != 0 || strings.Contains(out, "Cost at") {
		t.Fatalf("a plan without changes priced the archive (exit %d):\n%s", code, out)
	}
	for call := range e.sb.Calls() {
		if strings.Contains(call, "ListObjects") {
			t.Fatalf("a plan without changes listed logs: %v", e.sb.Calls())
		}
	}
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
