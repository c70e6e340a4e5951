package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestExampleParses(t *testing.T) {
	c, err := Parse("trailkeeper.yaml", []byte(Example))
	if err != nil {
		t.Fatal(err)
	}
	if c.Archive.ObjectLock.String() != "GOVERNANCE 400 days" || c.Sources[0].Region != "ap-northeast-1" ||
		c.Replication.RoleName != "trailkeeper-replication" || !c.Replication.TimeControl || c.Archive.StorageClass != "STANDARD" {
		t.Fatalf("example read as %+v", c)
	}
}

func TestAlerts(t *testing.T) {
	base := "archive: {account_id: '999999999999', region: us-east-1}\nsources: [{account_id: '011111111111'}]\n"
	c, err := Parse("t.yaml", []byte(base))
	if err != nil || c.Alerts.Enabled {
		t.Fatalf("alerts are off unless asked for: %+v, %v", c.Alerts, err)
	}
	c, err = Parse("t.yaml", []byte(base+"alerts:\n  subscribe: [ops@example.com, 'https://hooks.example.com/x?a=1']\n  topics: [arn:aws:sns:eu-west-1:999999999999:ops]\n"))
	if err != nil || !c.Alerts.Enabled || len(c.Alerts.Subscribe) != 2 || TopicRegion(c.Alerts.Topics[0]) != "eu-west-1" {
		t.Fatalf("alerts read as %+v, %v", c.Alerts, err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte("archive: {account_id: '999999999999', region: us-east-1}\nsources: [{account_id: '011111111111'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Archive.Bucket != "aggregation-cloudtrail-logs-999999999999" || c.Sources[0].AccountID != "011111111111" || c.Sources[0].Region != "us-east-1" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	base := "archive:\n  account_id: \"999999999999\"\n  region: ap-northeast-1\nsources:\n  - account_id: \"111111111111\"\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"bad account id", strings.Replace(base, `"111111111111"`, `"1234"`, 1), `t.yaml:5: sources[0].account_id: "1234" is not a 12-digit AWS account id`},
		{"unquoted id with letters", strings.Replace(base, `"999999999999"`, `99999999999x`, 1), `t.yaml:2: archive.account_id: "99999999999x"`},
		{"unknown key", base + "    trial: Members\n", `t.yaml:6: sources[0].trial: unknown key (known here: account_id, bucket, external_id, profile, region, role_arn, trail)`},
		{"unknown region", strings.Replace(base, "ap-northeast-1", "ap-northeast-9", 1), `t.yaml:3: archive.region: "ap-northeast-9" is not an AWS region`},
		{"missing region", strings.Replace(base, "  region: ap-northeast-1\n", "", 1), `t.yaml:2: archive.region: missing`},
		{"duplicate account", base + "  - account_id: \"111111111111\"\n", `t.yaml:6: sources[1].account_id: account 111111111111 is listed twice (first on line 5)`},
		{"archive as source", base + "  - account_id: \"999999999999\"\n", `sources[1].account_id: the archive account cannot also be a source`},
		{"empty sources", strings.SplitAfter(base, "sources:\n")[0], `t.yaml:4: sources: must be a list`},
		{"no sources", strings.SplitAfter(base, "sources:\n")[0][:len(strings.SplitAfter(base, "sources:\n")[0])-len("sources:\n")], `sources: missing`},
		{"no archive", "sources:\n  - account_id: \"111111111111\"\n", `archive: missing`},
		{"both days and years", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  object_lock: {mode: GOVERNANCE, days: 1, years: 1}\n", 1), `t.yaml:4: archive.object_lock: give either days or years`},
		{"lock mode", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  object_lock: {mode: FOREVER, days: 1}\n", 1), `archive.object_lock.mode: "FOREVER": use GOVERNANCE or COMPLIANCE`},
		{"days not a number", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  object_lock: {mode: GOVERNANCE, days: many}\n", 1), `archive.object_lock.days: "many" is not a whole number`},
		{"bad bucket", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  bucket: My_Bucket\n", 1), `t.yaml:4: archive.bucket: "My_Bucket" is not a valid S3 bucket name`},
		{"inventory into the archive", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  inventory_bucket: aggregation-cloudtrail-logs-999999999999\n", 1), `archive.inventory_bucket: "aggregation-cloudtrail-logs-999999999999" is the archive bucket`},
		{"bad inventory bucket", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  inventory_bucket: Inv\n", 1), `t.yaml:4: archive.inventory_bucket: "Inv" is not a valid S3 bucket name`},
		{"role of another account", base + "    role_arn: arn:aws:iam::222222222222:role/x\n", `sources[0].role_arn: the role belongs to another account`},
		{"not yaml", "archive: [\n", `t.yaml:1: not valid YAML`},
		{"sources not a list", strings.Replace(base, "  - account_id: \"111111111111\"\n", "  account_id: 1\n", 1), `t.yaml:5: sources: must be a list`},
		{"key given twice", strings.Replace(base, "  region: ap-northeast-1\n", "  region: ap-northeast-1\n  region: us-east-1\n", 1), `archive.region: given twice`},
		{"replica key not an ARN", base + "replication:\n  replica_kms_key: alias/archive\n", `t.yaml:7: replication.replica_kms_key: "alias/archive": give the full key ARN`},
		{"alerts going nowhere", base + "alerts: {}\n", `t.yaml:6: alerts: say where failures go`},
		{"alerts to a phone", base + "alerts:\n  subscribe: [\"+15555550100\"]\n", `t.yaml:7: alerts.subscribe[0]: "+15555550100" is neither an email address nor an http(s) URL`},
		{"alerts to a topic that is not one", base + "alerts:\n  topics: [arn:aws:sqs:ap-northeast-1:999999999999:q]\n", `alerts.topics[0]: "arn:aws:sqs:ap-northeast-1:999999999999:q" is not an SNS topic ARN`},
		{"two topics in a region", base + "alerts:\n  topics: [arn:aws:sns:ap-northeast-1:999999999999:a, arn:aws:sns:ap-northeast-1:999999999999:b]\n", `alerts.topics[1]: a second topic in ap-northeast-1`},
		{"a topic of another account", base + "alerts:\n  topics: [arn:aws:sns:ap-northeast-1:111111111111:a]\n", `alerts.topics[0]: arn:aws:sns:ap-northeast-1:111111111111:a belongs to account 111111111111`},
		{"replica key of another account", base + "replication:\n  replica_kms_key: arn:aws:kms:ap-northeast-1:111111111111:key/k\n", `replication.replica_kms_key: must be a key of the archive account`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}

// A missing file is told apart from a broken one: the CLI hints at init for
// the first and at fixing the file for the second.
func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/trailkeeper.yaml")
	var ce *Error
	if !errors.As(err, &ce) || !ce.Missing || !strings.Contains(err.Error(), "/nonexistent/trailkeeper.yaml: no such file") {
		t.Fatalf("got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Example))
	f.Add([]byte("archive: {account_id: '999999999999', region: us-east-1, object_lock: {mode: COMPLIANCE, years: 7}}\nsources: [{account_id: '111111111111', role_arn: 'arn:aws:iam::111111111111:role/a'}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is not a *config.Error: %v", err)
			}
			return
		}
		if c.Archive.AccountID == "" || len(c.Sources) == 0 || c.Archive.Bucket == "" {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
	})
}

// remove-source takes an entry out of the file and leaves the rest as it was,
// comments included; it refuses what it cannot do cleanly.
func TestWithoutSource(t *testing.T) {
	file := `archive:
  account_id: "999999999999"   # the archive
  region: ap-northeast-1
  bucket: b-999999999999
sources:
  - account_id: "111111111111"
    profile: member-a
    # a note about a
    trail: Members
  # - account_id: "444444444444"   (a commented example stays)
  - account_id: "222222222222"

    profile: member-b           # after a blank line
  -
    account_id: "333333333333"
    profile: member-c
endpoint_url: http://127.0.0.1:4566
`
	for acct, want := range map[string]string{
		"111111111111": strings.Replace(file, "  - account_id: \"111111111111\"\n    profile: member-a\n    # a note about a\n    trail: Members\n", "", 1),
		"222222222222": strings.Replace(file, "  - account_id: \"222222222222\"\n\n    profile: member-b           # after a blank line\n", "", 1),
		"333333333333": strings.Replace(file, "  -\n    account_id: \"333333333333\"\n    profile: member-c\n", "", 1),
	} {
		got, err := WithoutSource([]byte(file), acct)
		if err != nil || string(got) != want {
			t.Errorf("without %s: %v\n%s", acct, err, got)
			continue
		}
		c, err := Parse("t.yaml", got)
		if err != nil || len(c.Sources) != 2 || c.Source(acct) != nil {
			t.Errorf("without %s: %v %+v", acct, err, c)
		}
	}
	for _, bad := range []struct{ file, acct string }{
		{"archive: {account_id: \"999999999999\"}\nsources: [{account_id: \"111111111111\"}, {account_id: \"222222222222\"}]\n", "111111111111"},
		{"archive: {account_id: \"999999999999\"}\nsources:\n  - account_id: \"111111111111\"\n", "111111111111"},
		{file, "555555555555"},
	} {
		if _, err := WithoutSource([]byte(bad.file), bad.acct); err == nil {
			t.Errorf("took %s out of\n%s", bad.acct, bad.file)
		}
	}
}

func TestWatchSection(t *testing.T) {
	base := "archive: {account_id: \"999999999999\", region: ap-northeast-1, bucket: archive-bucket}\nsources:\n  - account_id: \"111111111111\"\n"
	alerts := "alerts: {subscribe: [security@example.com]}\n"
	for text, want := range map[string]string{
		base + alerts + "watch: {}\n":                    "",
		base + alerts + "watch:\n":                       "",
		base + "watch: {}\n":                             "add an alerts: section",
		base + alerts + "watch: {every: 5m}\n":           "unknown key",
		base + alerts + "watch: {digests_within: 3h}\n":  "",
		base + alerts + "watch: {digests_within: 10m}\n": "a duration from 90m",
		base + alerts + "watch: [stop-logging]\n":        "must be a mapping",
	} {
		c, err := Parse("trailkeeper.yaml", []byte(text))
		switch {
		case want == "" && (err != nil || !c.Watch.Enabled):
			t.Errorf("%q: %v, watch on: %v", text, err, c != nil && c.Watch.Enabled)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want an error saying %q", text, err, want)
		}
	}
	if c, _ := Parse("trailkeeper.yaml", []byte(base+alerts+"watch: {}\n")); c.Watch.DigestsWithin != 2*time.Hour {
		t.Errorf("watch's default window: %v", c.Watch.DigestsWithin)
	}
	if c, err := Parse("trailkeeper.yaml", []byte(base)); err != nil || c.Watch.Enabled {
		t.Errorf("without watch: %v, on: %v", err, c.Watch.Enabled)
	}
}
