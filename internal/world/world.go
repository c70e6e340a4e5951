// Package world builds the starting point the seed document assumes, through the
// AWS SDK against any endpoint (the sandbox in tests and the demo): member
// accounts whose trails log to their own buckets, and API activity in them.
// Access keys are account ids, the sandbox's convention.
package world

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Member is a source account as the seed finds it: a trail writing to its own bucket.
type Member struct {
	Account string
	Region  string
	Trail   string // default Members
	Bucket  string // default cm-members-cloudtrail-ACCOUNT
	Prefix  string // the trail's S3 key prefix, if any
	KMSKey  string // the trail's KMS key, if any
	// Validation turns log file validation on at creation (the seed's trails have it off).
	Validation bool
	// MultiRegion makes the trail log in every region (and get a digest in each).
	MultiRegion bool
}

func (m *Member) defaults() {
	if m.Trail == "" {
		m.Trail = "Members"
	}
	if m.Bucket == "" {
		m.Bucket = "cm-members-cloudtrail-" + m.Account
	}
}

// TrailARN is the member trail's ARN.
func (m Member) TrailARN() string {
	m.defaults()
	return "arn:aws:cloudtrail:" + m.Region + ":" + m.Account + ":trail/" + m.Trail
}

// Config is an SDK configuration acting as the root of an account.
func Config(endpoint, account, region string) aws.Config {
	return aws.Config{Region: region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(account, "sandbox", "")}
}

// S3 is a path-style S3 client acting as an account.
func S3(endpoint, account, region string) *s3.Client {
	return s3.NewFromConfig(Config(endpoint, account, region), func(o *s3.Options) { o.UsePathStyle = true })
}

// TrailBucketPolicy is the policy CloudTrail needs on its bucket (AWS-FACTS.md section 6).
func TrailBucketPolicy(m Member) string {
	m.defaults()
	p := ""
	if m.Prefix != "" {
		p = m.Prefix + "/"
	}
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
{"Sid":"AWSCloudTrailAclCheck","Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:GetBucketAcl","Resource":"arn:aws:s3:::%[1]s","Condition":{"StringEquals":{"aws:SourceArn":"%[2]s"}}},
{"Sid":"AWSCloudTrailWrite","Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::%[1]s/%[3]sAWSLogs/%[4]s/*","Condition":{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control","aws:SourceArn":"%[2]s"}}}]}`,
		m.Bucket, m.TrailARN(), p, m.Account)
}

// CreateMember makes the member's bucket, its CloudTrail policy and a logging trail.
func CreateMember(ctx context.Context, endpoint string, m Member) error {
	m.defaults()
	cfg := Config(endpoint, m.Account, m.Region)
	c := S3(endpoint, m.Account, m.Region)
	in := &s3.CreateBucketInput{Bucket: &m.Bucket}
	if m.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(m.Region)}
	}
	if _, err := c.CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("account %s: create bucket %s: %w", m.Account, m.Bucket, err)
	}
	if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &m.Bucket, Policy: aws.String(TrailBucketPolicy(m))}); err != nil {
		return fmt.Errorf("account %s: trail bucket policy: %w", m.Account, err)
	}
	ct := cloudtrail.NewFromConfig(cfg)
	tin := &cloudtrail.CreateTrailInput{Name: &m.Trail, S3BucketName: &m.Bucket, EnableLogFileValidation: aws.Bool(m.Validation), IsMultiRegionTrail: aws.Bool(m.MultiRegion)}
	if m.Prefix != "" {
		tin.S3KeyPrefix = &m.Prefix
	}
	if m.KMSKey != "" {
		tin.KmsKeyId = &m.KMSKey
	}
	if _, err := ct.CreateTrail(ctx, tin); err != nil {
		return fmt.Errorf("account %s: create trail %s: %w", m.Account, m.Trail, err)
	}
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: &m.Trail}); err != nil {
		return fmt.Errorf("account %s: start logging: %w", m.Account, err)
	}
	return nil
}

// Activity makes n management API calls (ListBuckets) in an account, each of
// which the account's trail records.
func Activity(ctx context.Context, endpoint, account, region string, n int) error {
	c := S3(endpoint, account, region)
	for range n {
		if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
			return fmt.Errorf("account %s: %w", account, err)
		}
	}
	return nil
}

// WriteProfiles writes an AWS config and credentials file in dir with one
// profile per account (name -> account id), the way users hold credentials.
func WriteProfiles(dir string, profiles map[string]string) (configFile, credentialsFile string, err error) {
	var cfg, creds strings.Builder
	for name, acct := range profiles {
		fmt.Fprintf(&cfg, "[profile %s]\nregion = us-east-1\n\n", name)
		fmt.Fprintf(&creds, "[%s]\naws_access_key_id = %s\naws_secret_access_key = sandbox\n\n", name, acct)
	}
	configFile, credentialsFile = filepath.Join(dir, "aws-config"), filepath.Join(dir, "aws-credentials")
	if err := os.WriteFile(configFile, []byte(cfg.String()), 0o600); err != nil {
		return "", "", err
	}
	return configFile, credentialsFile, os.WriteFile(credentialsFile, []byte(creds.String()), 0o600)
}
