package sandbox

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

// seedFile returns one of the seed document's files with its placeholders filled
// in, exactly as the blog post does with sed.
func seedFile(t *testing.T, name string, replace ...string) string {
	data, err := os.ReadFile("testdata/seed/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(replace...).Replace(string(data))
}

func trailBucketPolicy(bucket, acct, trailARN, prefix string) string {
	p := ""
	if prefix != "" {
		p = prefix + "/"
	}
	return `{"Version":"2012-10-17","Statement":[
{"Sid":"AWSCloudTrailAclCheck","Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:GetBucketAcl","Resource":"arn:aws:s3:::` + bucket + `","Condition":{"StringEquals":{"aws:SourceArn":"` + trailARN + `"}}},
{"Sid":"AWSCloudTrailWrite","Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::` + bucket + `/` + p + `AWSLogs/` + acct + `/*","Condition":{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control","aws:SourceArn":"` + trailARN + `"}}}]}`
}

// seedSetup runs the seed document's procedure with the AWS CLI: the archive
// bucket, a source bucket with its trail, the CloudFormation role stack, the
// replication configuration and the archive bucket policy.
func seedSetup(t *testing.T, e *env, c *cli) (archive, source, trailARN string) {
	archive = "aggregation-cloudtrail-logs-" + archiveAcct
	source = "cm-members-cloudtrail-" + sourceAcct
	trailARN = "arn:aws:cloudtrail:" + region + ":" + sourceAcct + ":trail/Members"

	// 1. The log-archive account.
	c.ok(archiveAcct, "s3api", "create-bucket", "--bucket", archive, "--region", region,
		"--create-bucket-configuration", "LocationConstraint="+region, "--object-lock-enabled-for-bucket")
	c.ok(archiveAcct, "s3api", "put-bucket-versioning", "--bucket", archive, "--versioning-configuration", "Status=Enabled")

	// The seed assumes an existing trail "Members" writing to its own bucket.
	c.ok(sourceAcct, "s3api", "create-bucket", "--bucket", source, "--create-bucket-configuration", "LocationConstraint="+region)
	c.ok(sourceAcct, "s3api", "put-bucket-policy", "--bucket", source, "--policy", c.file("trail-policy.json", trailBucketPolicy(source, sourceAcct, trailARN, "")))
	c.ok(sourceAcct, "cloudtrail", "create-trail", "--name", "Members", "--s3-bucket-name", source, "--enable-log-file-validation")
	c.ok(sourceAcct, "cloudtrail", "start-logging", "--name", "Members")

	// 2. The source account.
	if got := c.ok(sourceAcct, "sts", "get-caller-identity", "--query", "Account", "--output", "text"); got != sourceAcct {
		t.Fatalf("get-caller-identity: %q", got)
	}
	c.ok(sourceAcct, "s3api", "head-bucket", "--bucket", source)
	c.ok(sourceAcct, "s3api", "put-bucket-versioning", "--bucket", source, "--versioning-configuration", "Status=Enabled")
	c.ok(sourceAcct, "cloudformation", "create-stack", "--stack-name", "cloudtrail-replication-role",
		"--template-body", c.file("s3-replication-role.yaml", seedFile(t, "s3-replication-role.yaml")),
		"--parameters", "ParameterKey=DestinationAccountId,ParameterValue="+archiveAcct, "--capabilities", "CAPABILITY_NAMED_IAM")
	c.ok(sourceAcct, "cloudformation", "wait", "stack-create-complete", "--stack-name", "cloudtrail-replication-role")
	rc := seedFile(t, "replication-config.json", "${ACCOUNT_ID}", sourceAcct, "${DESTINATION_ACCOUNT_ID}", archiveAcct)
	c.ok(sourceAcct, "s3api", "put-bucket-replication", "--bucket", source, "--replication-configuration", c.file("rc.json", rc))
	if got := c.ok(sourceAcct, "s3api", "get-bucket-replication", "--bucket", source, "--query", "ReplicationConfiguration.Rules[0].Status", "--output", "text"); got != "Enabled" {
		t.Fatalf("replication rule status %q", got)
	}

	// 3. The archive bucket policy.
	bp := seedFile(t, "bucket-policy.json", "<集約アカウントID>", archiveAcct, "<ソースアカウントID>", sourceAcct)
	c.ok(archiveAcct, "s3api", "put-bucket-policy", "--bucket", archive, "--policy", c.file("bp.json", bp))
	return archive, source, trailARN
}

func TestSeedProcedureWithAWSCLI(t *testing.T) {
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	c := newCLI(t, e.url)
	start := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	archive, source, trailARN := seedSetup(t, e, c)

	// Activity in the source account, then CloudTrail delivers three times so
	// that the digests form a chain. CloudTrail rotates its signing key after
	// the first: validate-logs asks ListPublicKeys for the whole range and
	// must find both keys.
	for i := range 3 {
		c.ok(sourceAcct, "s3api", "get-bucket-versioning", "--bucket", source)
		e.sb.Deliver()
		if i == 0 {
			if err := e.sb.RotateSigningKey(region); err != nil {
				t.Fatal(err)
			}
		}
	}
	if keys := c.ok(sourceAcct, "cloudtrail", "list-public-keys", "--start-time", start, "--query", "length(PublicKeyList)"); strings.TrimSpace(keys) != "2" {
		t.Fatalf("list-public-keys since the start: %s keys, want 2", keys)
	}
	if keys := c.ok(sourceAcct, "cloudtrail", "list-public-keys", "--query", "length(PublicKeyList)"); strings.TrimSpace(keys) != "1" {
		t.Fatalf("list-public-keys without a start time: %s keys, want only the current one", keys)
	}
	e.waitReplication()

	keys := strings.Fields(c.ok(sourceAcct, "s3api", "list-objects-v2", "--bucket", source, "--query", "Contents[].Key", "--output", "text"))
	var logs, digests int
	for _, k := range keys {
		switch {
		case strings.Contains(k, "/CloudTrail/"):
			logs++
		case strings.Contains(k, "/CloudTrail-Digest/"):
			digests++
		}
		src := headObject(t, c, sourceAcct, source, k)
		dst := headObject(t, c, archiveAcct, archive, k)
		if src["ReplicationStatus"] != "COMPLETED" || dst["ReplicationStatus"] != "REPLICA" {
			t.Errorf("%s: source %v, archive %v; want COMPLETED and REPLICA", k, src["ReplicationStatus"], dst["ReplicationStatus"])
		}
		if dst["StorageClass"] != "STANDARD_IA" {
			t.Errorf("%s: replica storage class %v, want the rule's STANDARD_IA", k, dst["StorageClass"])
		}
		for _, f := range []string{"ETag", "ContentLength", "ContentEncoding", "ContentType", "Metadata", "VersionId"} {
			if !equalJSON(src[f], dst[f]) {
				t.Errorf("%s: %s differs: source %v, replica %v", k, f, src[f], dst[f])
			}
		}
		if a, b := e.get(sourceAcct, source, k), e.get(archiveAcct, archive, k); !bytes.Equal(a, b) {
			t.Errorf("%s: replica bytes differ from the source", k)
		}
	}
	if logs < 3 || digests < 3 {
		t.Fatalf("got %d log files and %d digests in the source bucket, want at least 3 of each", logs, digests)
	}

	// The AWS CLI validates the source bucket's chain (it cannot validate the archive copy).
	out, err := c.run(sourceAcct, "cloudtrail", "validate-logs", "--trail-arn", trailARN, "--start-time", start)
	if err != nil || !strings.Contains(out, "digest files valid") || strings.Contains(out, "INVALID") {
		t.Fatalf("validate-logs on an untouched bucket: %v\n%s", err, out)
	}

	// Someone with write access alters one log file in the source bucket: a
	// well-formed gzip whose records say something else.
	var victim string
	for _, k := range keys {
		if strings.Contains(k, "/CloudTrail/") {
			victim = k
			break
		}
	}
	forged := testenv.Gunzip(t, e.get(sourceAcct, source, victim))
	forged = bytes.Replace(forged, []byte(`"readOnly":true`), []byte(`"readOnly":false`), 1)
	c.ok(sourceAcct, "s3api", "put-object", "--bucket", source, "--key", victim, "--content-encoding", "gzip",
		"--body", strings.TrimPrefix(c.file("forged.json.gz", string(gzipBytes(forged))), "file://"), "--content-type", "application/json")
	out, err = c.run(sourceAcct, "cloudtrail", "validate-logs", "--trail-arn", trailARN, "--start-time", start)
	if err == nil || !strings.Contains(err.Error(), "INVALID: hash value doesn't match") || !strings.Contains(err.Error(), victim) ||
		!strings.Contains(out, "1/3 log files INVALID") {
		t.Fatalf("validate-logs did not report the altered log %s (err %v):\n%s", victim, err, out)
	}
}

func headObject(t *testing.T, c *cli, acct, bucket, key string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(c.ok(acct, "s3api", "head-object", "--bucket", bucket, "--key", key)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
