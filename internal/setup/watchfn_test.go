package setup

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The observer role reads what status reads and writes nothing; the
// function's role assumes only observer roles and writes only under
// trailkeeper/watch/ of the archive. Evaluated as the sandbox and IAM do.
func TestWatchRolesAreLeastPrivilege(t *testing.T) {
	c := &config.Config{Archive: config.Archive{AccountID: "999999999999", Region: "ap-northeast-1", Bucket: "archive"}}
	st := &SourceState{Config: config.Source{AccountID: "111111111111"}, Trail: Trail{Name: "Members", Bucket: "trail-bucket"}}
	observer, function := ObserverPolicy(st), FunctionPolicy(c)
	for _, tc := range []struct {
		name             string
		doc              *policy.Document
		action, resource string
		allowed          bool
	}{
		{"observer reads the trail bucket's versioning", observer, "s3:GetBucketVersioning", "arn:aws:s3:::trail-bucket", true},
		{"observer reads a log", observer, "s3:GetObject", "arn:aws:s3:::trail-bucket/AWSLogs/111111111111/CloudTrail/x.json.gz", true},
		{"observer reads the trail", observer, "cloudtrail:GetTrailStatus", "arn:aws:cloudtrail:ap-northeast-1:111111111111:trail/Members", true},
		{"observer may not suspend versioning", observer, "s3:PutBucketVersioning", "arn:aws:s3:::trail-bucket", false},
		{"observer may not delete a log", observer, "s3:DeleteObject", "arn:aws:s3:::trail-bucket/AWSLogs/x", false},
		{"observer may not stop the trail", observer, "cloudtrail:StopLogging", "arn:aws:cloudtrail:ap-northeast-1:111111111111:trail/Members", false},
		{"observer may not change a role", observer, "iam:PutRolePolicy", "arn:aws:iam::111111111111:role/trailkeeper-replication", false},
		{"observer reads no other bucket", observer, "s3:GetObject", "arn:aws:s3:::payroll/x", false},
		{"function assumes an observer role", function, "sts:AssumeRole", "arn:aws:iam::111111111111:role/trailkeeper-observer", true},
		{"function assumes no other role", function, "sts:AssumeRole", "arn:aws:iam::111111111111:role/OrganizationAccountAccessRole", false},
		{"function keeps its verdict", function, "s3:PutObject", "arn:aws:s3:::archive/trailkeeper/watch/verdict.json", true},
		{"function writes no log", function, "s3:PutObject", "arn:aws:s3:::archive/AWSLogs/111111111111/CloudTrail/x.json.gz", false},
		{"function writes no lease", function, "s3:PutObject", "arn:aws:s3:::archive/trailkeeper/policy-lease.json", false},
		{"function changes no archive policy", function, "s3:PutBucketPolicy", "arn:aws:s3:::archive", false},
		{"function shortens no retention", function, "s3:PutObjectRetention", "arn:aws:s3:::archive/AWSLogs/x", false},
		{"function publishes alerts", function, "sns:Publish", "arn:aws:sns:ap-northeast-1:999999999999:trailkeeper-replication-failures", true},
	} {
		got := tc.doc.Evaluate(policy.Request{Action: tc.action, Resource: tc.resource}).Decision == policy.Allowed
		if got != tc.allowed {
			t.Errorf("%s: allowed %v, want %v", tc.name, got, tc.allowed)
		}
	}
}

// Beyond what the bus policy's default quota holds, plan stops before
// writing anything and names the quota to raise.
func TestWatchBeyondTheBusPolicyQuota(t *testing.T) {
	c := &config.Config{Archive: config.Archive{AccountID: "999999999999", Region: "ap-northeast-1", Bucket: "archive"}, Watch: config.Watch{Enabled: true}}
	e := &Env{Config: c, Archive: &awsapi.Clients{Region: c.Archive.Region}}
	w := &WatchArchive{Bus: true, Rules: map[string]*RuleState{}}
	for _, n := range []int{663, 664} {
		var sources []*SourceState
		for i := range n {
			sources = append(sources, &SourceState{Config: config.Source{AccountID: fmt.Sprintf("%012d", 100000000000+i)},
				Trail: Trail{Name: "Members", HomeRegion: c.Archive.Region, Bucket: "b"}, Watch: map[string]*RuleState{}})
		}
		p := &Plan{}
		err := p.planWatch(e, w, map[string]*Topic{c.Archive.Region: {ARN: "arn:aws:sns:ap-northeast-1:999999999999:t", Region: c.Archive.Region, Exists: true}}, sources, nil, Options{})
		var conflict *Conflict
		switch {
		case n == 663 && err != nil:
			t.Fatalf("663 accounts: %v", err)
		case n == 664 && (!errors.As(err, &conflict) || !strings.Contains(conflict.Hint, "Event bus policy size")):
			t.Fatalf("664 accounts: %v, want a conflict naming the quota", err)
		}
	}
}
