package sandbox

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/testenv"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// The User Guide's "meaning of public" examples and the layouts trailkeeper
// writes, as S3 classifies them.
func TestMeaningOfPublic(t *testing.T) {
	cases := []struct {
		name, statement string
		public          bool
	}{
		{"guide: federated principal", `{"Principal":{"Federated":"graph.facebook.com"},"Resource":"*","Action":"s3:PutObject","Effect":"Allow"}`, true},
		{"guide: everyone", `{"Principal":"*","Resource":"*","Action":"s3:PutObject","Effect":"Allow"}`, true},
		{"guide: vpc wildcard", `{"Principal":"*","Resource":"*","Action":"s3:PutObject","Effect":"Allow","Condition":{"StringLike":{"aws:SourceVpc":"vpc-*"}}}`, true},
		{"guide: fixed vpc", `{"Principal":"*","Resource":"*","Action":"s3:PutObject","Effect":"Allow","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-91237329"}}}`, false},
		{"guide: source ip wider than /8", `{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"IpAddress":{"aws:SourceIp":"0.0.0.0/1"}}}`, true},
		{"source ip /24", `{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}`, false},
		{"fixed accounts", `{"Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root"]},"Resource":"*","Action":"s3:ReplicateObject","Effect":"Allow"}`, false},
		{"wildcard role ARN only", `{"Principal":"*","Resource":"*","Action":"s3:ReplicateObject","Effect":"Allow","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/trailkeeper-replication"}}}`, true},
		{"trailkeeper's large grant", `{"Principal":{"AWS":"*"},"Resource":"*","Action":"s3:ReplicateObject","Effect":"Allow","Condition":{"StringEquals":{"aws:PrincipalAccount":["111111111111"]},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/trailkeeper-replication"}}}`, false},
		{"account as a policy variable", `{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringEquals":{"aws:PrincipalAccount":"${aws:username}"}}}`, true},
		{"negated condition", `{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringNotEquals":{"aws:SourceAccount":"111111111111"}}}`, true},
		{"if-exists narrows nothing", `{"Principal":"*","Resource":"*","Action":"s3:GetObject","Effect":"Allow","Condition":{"StringEqualsIfExists":{"aws:SourceAccount":"111111111111"}}}`, true},
		{"a deny to everyone", `{"Principal":"*","Resource":"*","Action":"s3:*","Effect":"Deny","Condition":{"Bool":{"aws:SecureTransport":"false"}}}`, false},
		{"service principal", `{"Principal":{"Service":"cloudtrail.amazonaws.com"},"Resource":"*","Action":"s3:PutObject","Effect":"Allow"}`, false},
	}
	for _, c := range cases {
		doc, err := policy.Parse([]byte(`{"Version":"2012-10-17","Statement":[`+c.statement+`]}`), policy.Resource)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := isPublic(doc); got != c.public {
			t.Errorf("%s: public = %v, want %v", c.name, got, c.public)
		}
	}
}

// BlockPublicPolicy rejects a public policy with S3's message and keeps the
// old one, through the AWS CLI.
func TestBlockPublicPolicyRejectsAPublicPolicy(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	bucket := "bpa-test-" + archiveAcct
	c.ok(archiveAcct, "s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", "LocationConstraint="+region)
	c.ok(archiveAcct, "s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
		"BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true")
	private := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + sourceAcct + `"},"Action":"s3:ReplicateObject","Resource":"arn:aws:s3:::` + bucket + `/*"}]}`
	c.ok(archiveAcct, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", private)
	public := strings.Replace(private, `{"AWS":"`+sourceAcct+`"}`, `"*"`, 1)
	_, err := c.run(archiveAcct, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", public)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), "BlockPublicPolicy") {
		t.Fatalf("a public policy under BlockPublicPolicy: %v, want AccessDenied naming BlockPublicPolicy", err)
	}
	if got := c.ok(archiveAcct, "s3api", "get-bucket-policy", "--bucket", bucket, "--query", "Policy", "--output", "text"); !strings.Contains(got, "arn:aws:iam::"+sourceAcct+":root") {
		t.Errorf("the rejected write changed the policy: %s", got)
	}
	c.ok(archiveAcct, "s3api", "put-public-access-block", "--bucket", bucket, "--public-access-block-configuration",
		"BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=false,RestrictPublicBuckets=true")
	c.ok(archiveAcct, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", public)
}

// An account cannot make its bucket replicate with another account's role:
// PutBucketReplication needs iam:PassRole, which works within an account only.
func TestReplicationWithAnotherAccountsRole(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	c := newCLI(t, e.url)
	cfg := `{"Role":"arn:aws:iam::` + archiveAcct + `:role/admin","Rules":[{"ID":"x","Priority":1,"Status":"Enabled","Filter":{"Prefix":"AWSLogs/"},
"DeleteMarkerReplication":{"Status":"Disabled"},"Destination":{"Bucket":"arn:aws:s3:::` + p.archive + `"}}]}`
	_, err := c.run(sourceAcct, "s3api", "put-bucket-replication", "--bucket", p.source, "--replication-configuration", cfg)
	if err == nil || !strings.Contains(err.Error(), "AccessDenied") || !strings.Contains(err.Error(), "iam:PassRole") {
		t.Fatalf("a replication rule with another account's role: %v", err)
	}
}

// A multi-region trail with validation gets a digest every hour in every
// region it logs, with an empty logFiles list where nothing happened
// (CloudTrail User Guide, digest files), seen through the AWS CLI.
func TestDigestsInEveryRegionOfAMultiRegionTrail(t *testing.T) {
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	c := newCLI(t, e.url)
	bucket := "trail-" + sourceAcct
	arn := "arn:aws:cloudtrail:" + region + ":" + sourceAcct + ":trail/All"
	c.ok(sourceAcct, "s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", "LocationConstraint="+region)
	c.ok(sourceAcct, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", trailBucketPolicy(bucket, sourceAcct, arn, ""))
	c.ok(sourceAcct, "cloudtrail", "create-trail", "--name", "All", "--s3-bucket-name", bucket, "--is-multi-region-trail", "--enable-log-file-validation")
	c.ok(sourceAcct, "cloudtrail", "start-logging", "--name", "All")
	c.ok(sourceAcct, "s3api", "list-buckets") // activity in the home region only
	e.sb.Deliver()
	prefix := "AWSLogs/" + sourceAcct + "/CloudTrail-Digest/"
	out := c.ok(sourceAcct, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix, "--delimiter", "/", "--query", "CommonPrefixes[].Prefix", "--output", "text")
	if got := strings.Fields(out); len(got) != 17 {
		t.Fatalf("digest regions: %d (%v), want the 17 enabled by default", len(got), got)
	}
	key := c.ok(sourceAcct, "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", prefix+"sa-east-1/", "--query", "Contents[0].Key", "--output", "text")
	obj := must(e.s3(sourceAcct).GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})).OK(t)
	data, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if digest := string(testenv.Gunzip(t, data)); !strings.Contains(digest, `"logFiles":[]`) || !strings.Contains(key, "_CloudTrail-Digest_sa-east-1_All_"+region+"_") {
		t.Fatalf("digest %s of a region without logs: %s", key, digest)
	}
}
