package sandbox

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestCloudFormationStackLifecycle(t *testing.T) {
	e := newEnv(t, Options{})
	cf := cloudformation.NewFromConfig(e.cfg(sourceAcct))
	body := seedFile(t, "s3-replication-role.yaml")
	create := func(param string, caps ...cftypes.Capability) error {
		_, err := cf.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("role"), TemplateBody: &body, Capabilities: caps,
			Parameters: []cftypes.Parameter{{ParameterKey: aws.String("DestinationAccountId"), ParameterValue: &param}}})
		return err
	}
	if err := create(archiveAcct); errCode(err) != "InsufficientCapabilitiesException" || !strings.Contains(err.Error(), "CAPABILITY_NAMED_IAM") {
		t.Fatalf("a named role without CAPABILITY_NAMED_IAM: %v", err)
	}
	if err := create("12345", cftypes.CapabilityCapabilityNamedIam); errCode(err) != "ValidationError" || !strings.Contains(err.Error(), "Must be a valid 12-digit AWS account ID") {
		t.Fatalf("a parameter breaking AllowedPattern: %v", err)
	}
	// A role of that name already exists: the stack fails and rolls back what it made.
	must(e.iam(sourceAcct).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("S3ReplicationRole"), AssumeRolePolicyDocument: aws.String(replicationTrust)})).OK(t)
	if err := create(archiveAcct, cftypes.CapabilityCapabilityNamedIam); err != nil {
		t.Fatal(err)
	}
	st := must(cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("role")})).OK(t).Stacks[0]
	if st.StackStatus != cftypes.StackStatusRollbackComplete || !strings.Contains(aws.ToString(st.StackStatusReason), "already exists") {
		t.Fatalf("status %s (%s), want ROLLBACK_COMPLETE", st.StackStatus, aws.ToString(st.StackStatusReason))
	}
	must(cf.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String("role")})).OK(t)
	must(e.iam(sourceAcct).DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("S3ReplicationRole")})).OK(t)

	if err := create(archiveAcct, cftypes.CapabilityCapabilityNamedIam); err != nil {
		t.Fatal(err)
	}
	st = must(cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("role")})).OK(t).Stacks[0]
	if st.StackStatus != cftypes.StackStatusCreateComplete || len(st.Outputs) != 2 {
		t.Fatalf("status %s with %d outputs", st.StackStatus, len(st.Outputs))
	}
	events := must(cf.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String("role")})).OK(t).StackEvents
	if events[0].ResourceStatus != cftypes.ResourceStatusCreateComplete || *events[0].LogicalResourceId != "role" {
		t.Fatalf("newest event %s %s", *events[0].LogicalResourceId, events[0].ResourceStatus)
	}
	exports := must(cf.ListExports(ctx, &cloudformation.ListExportsInput{})).OK(t).Exports
	if len(exports) != 2 || *exports[0].Name != "role-ReplicationRoleArn" || *exports[0].Value != "arn:aws:iam::"+sourceAcct+":role/S3ReplicationRole" {
		t.Fatalf("exports %+v", exports)
	}
	// An update that changes the policy edits the role in place.
	updated := strings.Replace(body, "- s3:ReplicateDelete\n", "", 1)
	must(cf.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String("role"), TemplateBody: &updated, Capabilities: []cftypes.Capability{cftypes.CapabilityCapabilityNamedIam},
		Parameters: []cftypes.Parameter{{ParameterKey: aws.String("DestinationAccountId"), UsePreviousValue: aws.Bool(true)}}})).OK(t)
	doc := must(e.iam(sourceAcct).GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("S3ReplicationRole"), PolicyName: aws.String("S3ReplicationPolicy")})).OK(t)
	if strings.Contains(*doc.PolicyDocument, "ReplicateDelete") || !strings.Contains(*doc.PolicyDocument, "ReplicateObject") {
		t.Fatalf("policy after update: %s", *doc.PolicyDocument)
	}
	if _, err := cf.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String("role"), TemplateBody: &updated, Capabilities: []cftypes.Capability{cftypes.CapabilityCapabilityNamedIam},
		Parameters: []cftypes.Parameter{{ParameterKey: aws.String("DestinationAccountId"), UsePreviousValue: aws.Bool(true)}}}); !strings.Contains(errString(err), "No updates are to be performed") {
		t.Fatalf("an update without changes: %v", err)
	}
	must(cf.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String("role")})).OK(t)
	if _, err := e.iam(sourceAcct).GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("S3ReplicationRole")}); errCode(err) != "NoSuchEntity" {
		t.Fatalf("role after stack deletion: %v", err)
	}
	if _, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("role")}); errCode(err) != "ValidationError" {
		t.Fatalf("describing a deleted stack by name: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestPresignedURLAndVirtualHost(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.s3(sourceAcct)
	b, k := "presign-"+sourceAcct, "AWSLogs/x.json"
	must(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
	must(c.PutObject(ctx, &s3.PutObjectInput{Bucket: &b, Key: &k, Body: bytes.NewReader([]byte("hello"))})).OK(t)
	req := must(s3.NewPresignClient(c).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &k}, s3.WithPresignExpires(time.Minute))).OK(t)
	resp := must(http.Get(req.URL)).OK(t)
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(data) != "hello" {
		t.Fatalf("presigned GET as the owner: %d %s", resp.StatusCode, data)
	}
	// The same URL signed by another account is refused: the presigned key decides who asks.
	other := must(s3.NewPresignClient(e.s3(otherAcct)).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b, Key: &k})).OK(t)
	if resp := must(http.Get(other.URL)).OK(t); resp.StatusCode != 403 {
		t.Fatalf("presigned GET by another account: %d", resp.StatusCode)
	}
	// Virtual-host style on loopback.
	vh := strings.Replace(e.url, "127.0.0.1", b+".localhost", 1) + "/" + k
	r, _ := http.NewRequest("GET", vh, nil)
	r.Host = b + ".localhost"
	r.URL.Host = strings.TrimPrefix(e.url, "http://")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+sourceAcct+"/20250101/"+region+"/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp = must(http.DefaultClient.Do(r)).OK(t)
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(data) != "hello" {
		t.Fatalf("virtual-host GET: %d %s", resp.StatusCode, data)
	}
}
