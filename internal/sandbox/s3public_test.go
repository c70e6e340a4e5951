package sandbox

import (
	"strings"
	"testing"

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
