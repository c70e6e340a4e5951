package setup

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// ArchiveState is what the archive account has now.
type ArchiveState struct {
	Exists     bool
	Versioning string
	ObjectLock bool
	Retention  *config.ObjectLock
	PAB        *s3types.PublicAccessBlockConfiguration
	Ownership  string
	Policy     *policy.Document
	// Topics are the alert topics by region, when the config has alerts.
	Topics map[string]*Topic
	// Catalog is the Glue and Athena side, when the config has athena:.
	Catalog *Catalog
	// Inventory is the archive's S3 Inventory, read by Build only: status's
	// drift check (and the watch function's role) leave it to plan.
	Inventory *InventoryState
	// Watch is the archive side of watch (read whether or not the config has
	// watch:, to take away what a config without it no longer wants).
	Watch *WatchArchive
}

// Role is an IAM role as discovery finds it.
type Role struct {
	Name   string
	ARN    string
	ID     string // the unique id (AROA...) policies match a session against
	Trust  *policy.Document
	Policy *policy.Document // trailkeeper's inline policy, nil if absent
	Stack  string           // the CloudFormation stack that manages it, if any
}

// SourceState is what a source account has now.
type SourceState struct {
	Config      config.Source
	Trail       Trail
	Versioning  string
	Replication *s3types.ReplicationConfiguration
	Role        *Role // trailkeeper's role, nil if absent
	// CurrentRole is the role the bucket's replication configuration uses when
	// it is not trailkeeper's (the seed's S3ReplicationRole, or another tool's).
	CurrentRole *Role
	BatchRole   *Role // the role backfill's jobs run with, nil if absent
	// Notification is the bucket's event notification configuration, and
	// BucketRegion its region (read only when the config has alerts).
	Notification *s3types.NotificationConfiguration
	BucketRegion string
	// Lock is the trail bucket's default Object Lock retention, nil if none:
	// S3 replicates it onto the replicas. LockUnread says why it is unknown.
	Lock        *config.ObjectLock
	LockEnabled bool // the trail bucket has Object Lock (whatever its default)
	LockUnread  error
	// Watch is trailkeeper's watch rule in each of WatchRegions (nil where
	// there is none); Watch itself is nil when it could not be read.
	Watch map[string]*RuleState
	// Observer is the read-only role the watch function reads through.
	Observer *Role
}

// HasRule says whether the trail bucket replicates with trailkeeper's enabled rule.
func (st *SourceState) HasRule() bool {
	if st.Replication == nil {
		return false
	}
	for _, r := range st.Replication.Rules {
		if aws.ToString(r.ID) == RuleID && r.Status == s3types.ReplicationRuleStatusEnabled {
			return true
		}
	}
	return false
}

// ObserveArchive reads the archive bucket's settings. A bucket that exists but
// answers 403 belongs to another account.
func ObserveArchive(ctx context.Context, c *config.Config, cl *awsapi.Clients) (*ArchiveState, error) {
	b := c.Archive.Bucket
	st := &ArchiveState{}
	exists, err := ownedBucket(ctx, cl, c.Archive.AccountID, b, "archive bucket", "archive.bucket")
	if err != nil {
		return nil, err
	}
	if !exists {
		return st, nil
	}
	st.Exists = true
	v, err := cl.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &b})
	if err != nil {
		return nil, wrap(c.Archive.AccountID, "s3 GetBucketVersioning "+b, err)
	}
	st.Versioning = string(v.Status)
	lock, err := cl.S3.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &b})
	switch {
	case awsapi.Code(err) == "ObjectLockConfigurationNotFoundError":
	case err != nil:
		return nil, wrap(c.Archive.AccountID, "s3 GetObjectLockConfiguration "+b, err)
	default:
		st.ObjectLock = lock.ObjectLockConfiguration.ObjectLockEnabled == s3types.ObjectLockEnabledEnabled
		st.Retention = retentionOf(lock.ObjectLockConfiguration)
	}
	pab, err := cl.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: &b})
	switch {
	case awsapi.Code(err) == "NoSuchPublicAccessBlockConfiguration":
	case err != nil:
		return nil, wrap(c.Archive.AccountID, "s3 GetPublicAccessBlock "+b, err)
	default:
		st.PAB = pab.PublicAccessBlockConfiguration
	}
	own, err := cl.S3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: &b})
	switch {
	case awsapi.Code(err) == "OwnershipControlsNotFoundError":
	case err != nil:
		return nil, wrap(c.Archive.AccountID, "s3 GetBucketOwnershipControls "+b, err)
	default:
		if len(own.OwnershipControls.Rules) > 0 {
			st.Ownership = string(own.OwnershipControls.Rules[0].ObjectOwnership)
		}
	}
	st.Policy, err = getBucketPolicy(ctx, cl, c.Archive.AccountID, b)
	return st, err
}

func getBucketPolicy(ctx context.Context, cl *awsapi.Clients, account, b string) (*policy.Document, error) {
	pol, err := cl.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &b})
	if awsapi.Code(err) == "NoSuchBucketPolicy" {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(account, "s3 GetBucketPolicy "+b, err)
	}
	doc, err := policy.Parse([]byte(aws.ToString(pol.Policy)), policy.Resource)
	if err != nil {
		return nil, &Conflict{Account: account, Msg: fmt.Sprintf("the policy of bucket %s cannot be read: %v", b, err),
			Hint: "fix or remove the bucket policy by hand; trailkeeper will not rewrite a policy it cannot parse"}
	}
	return doc, nil
}

// ObserveSource finds the account's trail and reads its bucket and role.
func ObserveSource(ctx context.Context, c *config.Config, src config.Source, cl *awsapi.Clients) (*SourceState, error) {
	st := &SourceState{Config: src}
	t, err := FindTrail(ctx, src, cl)
	if err != nil {
		return nil, err
	}
	st.Trail = *t
	b := t.Bucket
	v, err := cl.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &b, ExpectedBucketOwner: &src.AccountID})
	if err != nil {
		if code := awsapi.Code(err); code == "AccessDenied" || code == "NoSuchBucket" {
			return nil, &Conflict{Account: src.AccountID, Msg: fmt.Sprintf("trail %s writes to bucket %s, which is not a bucket of this account (%s)", t.Name, b, code),
				Hint: "trailkeeper replicates from each account's own trail bucket; point the trail at a bucket of account " + src.AccountID}
		}
		return nil, wrap(src.AccountID, "s3 GetBucketVersioning "+b, err)
	}
	st.Versioning = string(v.Status)
	st.Lock, st.LockEnabled, st.LockUnread = DefaultRetention(ctx, cl, b)
	if st.LockUnread != nil && !awsapi.IsAccess(st.LockUnread) {
		return nil, wrap(src.AccountID, "s3 GetObjectLockConfiguration "+b, st.LockUnread)
	}
	rep, err := cl.S3.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &b})
	switch {
	case awsapi.Code(err) == "ReplicationConfigurationNotFoundError":
	case err != nil:
		return nil, wrap(src.AccountID, "s3 GetBucketReplication "+b, err)
	default:
		st.Replication = rep.ReplicationConfiguration
	}
	if err := observeWiring(ctx, c, st, cl); err != nil {
		return nil, err
	}
	if err := observeWatchSource(ctx, c, st, cl); err != nil {
		return nil, err
	}
	if st.Role, err = getRole(ctx, cl, src.AccountID, c.Replication.RoleName); err != nil {
		return nil, err
	}
	if st.BatchRole, err = getRole(ctx, cl, src.AccountID, BatchRoleName); err != nil {
		return nil, err
	}
	if st.Replication != nil {
		name := roleName(aws.ToString(st.Replication.Role))
		if name != "" && name != c.Replication.RoleName {
			if st.CurrentRole, err = getRole(ctx, cl, src.AccountID, name); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// ownedBucket says whether bucket exists in account; one that exists in
// another account (or that the credentials may not read) is a Conflict
// naming the setting that chose its name.
func ownedBucket(ctx context.Context, cl *awsapi.Clients, account, bucket, what, setting string) (bool, error) {
	_, err := cl.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket, ExpectedBucketOwner: &account})
	switch code := awsapi.Code(err); {
	case err == nil:
		return true, nil
	case code == "NotFound" || code == "NoSuchBucket":
		return false, nil
	case code == "Forbidden" || code == "AccessDenied" || code == "403":
		return false, &Conflict{Account: account, Msg: fmt.Sprintf("%s %s exists but does not belong to account %s (or the credentials may not read it)", what, bucket, account),
			Hint: "bucket names are global: choose another " + setting + ", or use the credentials of the account that owns it"}
	default:
		return false, wrap(account, "s3 HeadBucket "+bucket, err)
	}
}

// DefaultRetention reads a bucket's default Object Lock retention, nil when
// it has none.
func DefaultRetention(ctx context.Context, cl *awsapi.Clients, bucket string) (lock *config.ObjectLock, enabled bool, err error) {
	out, err := cl.S3.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &bucket})
	if awsapi.Code(err) == "ObjectLockConfigurationNotFoundError" {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	enabled = out.ObjectLockConfiguration != nil && out.ObjectLockConfiguration.ObjectLockEnabled == s3types.ObjectLockEnabledEnabled
	return retentionOf(out.ObjectLockConfiguration), enabled, nil
}

func retentionOf(c *s3types.ObjectLockConfiguration) *config.ObjectLock {
	if c == nil || c.Rule == nil || c.Rule.DefaultRetention == nil {
		return nil
	}
	r := c.Rule.DefaultRetention
	return &config.ObjectLock{Mode: string(r.Mode), Days: int(aws.ToInt32(r.Days)), Years: int(aws.ToInt32(r.Years))}
}

// ObserveWiring reads only what a source's alerts need: its trail, and its
// bucket's notification configuration and region (alerts test).
func ObserveWiring(ctx context.Context, c *config.Config, src config.Source, cl *awsapi.Clients) (*SourceState, error) {
	t, err := FindTrail(ctx, src, cl)
	if err != nil {
		return nil, err
	}
	st := &SourceState{Config: src, Trail: *t}
	return st, observeWiring(ctx, c, st, cl)
}

func observeWiring(ctx context.Context, c *config.Config, st *SourceState, cl *awsapi.Clients) error {
	b, acct := st.Trail.Bucket, st.Config.AccountID
	var err error
	if st.Notification, err = getNotification(ctx, cl.S3, b); err != nil {
		return wrap(acct, "s3 GetBucketNotificationConfiguration "+b, err)
	}
	if c.Alerts.Enabled {
		if st.BucketRegion, err = BucketRegion(ctx, cl, b); err != nil {
			return wrap(acct, "s3 GetBucketLocation "+b, err)
		}
	}
	return nil
}

// BucketRegion asks S3 where a bucket is: a trail's bucket need not be in the
// trail's home region.
func BucketRegion(ctx context.Context, cl *awsapi.Clients, bucket string) (string, error) {
	out, err := cl.S3.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: &bucket})
	switch {
	case err != nil:
		return "", err
	case out.LocationConstraint == "":
		return "us-east-1", nil // S3 answers an empty constraint for us-east-1
	case out.LocationConstraint == "EU":
		return "eu-west-1", nil // and the legacy EU for eu-west-1
	}
	return string(out.LocationConstraint), nil
}

func roleName(arn string) string {
	if i := strings.LastIndex(arn, "/"); i >= 0 && strings.Contains(arn, ":role/") {
		return arn[i+1:]
	}
	return ""
}

// FindTrail picks the trail by name, or the single one writing to the
// configured bucket, or the account's only trail.
func FindTrail(ctx context.Context, src config.Source, cl *awsapi.Clients) (*Trail, error) {
	out, err := cl.CloudTrail.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{IncludeShadowTrails: aws.Bool(true)})
	if err != nil {
		return nil, wrap(src.AccountID, "cloudtrail DescribeTrails in "+src.Region, err)
	}
	var names []string
	var match []int
	for i, t := range out.TrailList {
		names = append(names, aws.ToString(t.Name))
		switch {
		case src.Trail != "":
			if aws.ToString(t.Name) == src.Trail || aws.ToString(t.TrailARN) == src.Trail {
				match = append(match, i)
			}
		case src.Bucket != "":
			if aws.ToString(t.S3BucketName) == src.Bucket {
				match = append(match, i)
			}
		default:
			match = append(match, i)
		}
	}
	sort.Strings(names)
	if len(match) != 1 {
		what := "a trail"
		switch {
		case src.Trail != "":
			what = "trail " + src.Trail
		case src.Bucket != "":
			what = "one trail writing to bucket " + src.Bucket
		}
		msg := fmt.Sprintf("found no %s in region %s", what, src.Region)
		if len(match) > 1 {
			msg = fmt.Sprintf("found %d trails in region %s (%s); say which", len(match), src.Region, strings.Join(names, ", "))
		}
		return nil, &Conflict{Account: src.AccountID, Msg: msg,
			Hint: fmt.Sprintf("set trail: NAME for account %s in the config (trails there: %s), or region: where its trail lives", src.AccountID, orNone(names))}
	}
	t := out.TrailList[match[0]]
	tr := &Trail{Name: aws.ToString(t.Name), ARN: aws.ToString(t.TrailARN), HomeRegion: aws.ToString(t.HomeRegion),
		Bucket: aws.ToString(t.S3BucketName), Prefix: aws.ToString(t.S3KeyPrefix), KMSKey: aws.ToString(t.KmsKeyId),
		MultiRegion: aws.ToBool(t.IsMultiRegionTrail), Validation: aws.ToBool(t.LogFileValidationEnabled)}
	status, err := cl.InRegion(tr.HomeRegion).CloudTrail.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: &tr.ARN})
	if err != nil {
		return nil, wrap(src.AccountID, "cloudtrail GetTrailStatus "+tr.Name, err)
	}
	tr.Logging = aws.ToBool(status.IsLogging)
	tr.LatestDelivery, tr.DeliveryError = aws.ToTime(status.LatestDeliveryTime), aws.ToString(status.LatestDeliveryError)
	tr.LatestDigest, tr.DigestDeliveryError = aws.ToTime(status.LatestDigestDeliveryTime), aws.ToString(status.LatestDigestDeliveryError)
	return tr, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func getRole(ctx context.Context, cl *awsapi.Clients, account, name string) (*Role, error) {
	out, err := cl.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: &name})
	if awsapi.Code(err) == "NoSuchEntity" {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(account, "iam GetRole "+name, err)
	}
	r := &Role{Name: name, ARN: aws.ToString(out.Role.Arn), ID: aws.ToString(out.Role.RoleId)}
	if r.Trust, err = decodePolicy(aws.ToString(out.Role.AssumeRolePolicyDocument), policy.Trust); err != nil {
		return nil, &Conflict{Account: account, Msg: "role " + name + ": trust policy cannot be read: " + err.Error()}
	}
	pol, err := cl.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &name, PolicyName: aws.String(RolePolicyName)})
	switch {
	case awsapi.Code(err) == "NoSuchEntity":
	case err != nil:
		return nil, wrap(account, "iam GetRolePolicy "+name, err)
	default:
		if r.Policy, err = decodePolicy(aws.ToString(pol.PolicyDocument), policy.Identity); err != nil {
			return nil, &Conflict{Account: account, Msg: "role " + name + ": policy " + RolePolicyName + " cannot be read: " + err.Error()}
		}
	}
	// DescribeStackResources finds the stack of a physical resource id: a role
	// managed by CloudFormation is never edited behind its back.
	stacks, err := cl.CFN.DescribeStackResources(ctx, &cftypes.DescribeStackResourcesInput{PhysicalResourceId: &name})
	if err == nil && len(stacks.StackResources) > 0 {
		r.Stack = aws.ToString(stacks.StackResources[0].StackName)
	}
	return r, nil
}

// decodePolicy reads a policy as IAM returns it: URL-encoded JSON.
func decodePolicy(s string, kind policy.Kind) (*policy.Document, error) {
	if dec, err := url.QueryUnescape(s); err == nil {
		s = dec
	}
	return policy.Parse([]byte(s), kind)
}

// Conflict is a state trailkeeper will not change on its own; Hint says what to do.
type Conflict struct {
	Account string
	Msg     string
	Hint    string
}

func (e *Conflict) Error() string { return "account " + e.Account + ": " + e.Msg }

func wrap(account, what string, err error) error {
	if err == nil {
		return nil
	}
	var conflict *Conflict
	if errors.As(err, &conflict) {
		return err
	}
	if awsapi.IsAccess(err) {
		return &awsapi.AccessError{Account: account, Err: fmt.Errorf("%s: %w", what, err), Hint: accessHint(what)}
	}
	return fmt.Errorf("account %s: %s: %w", account, what, err)
}

func accessHint(what string) string {
	service, op, _ := strings.Cut(what, " ")
	op, _, _ = strings.Cut(op, " ")
	return fmt.Sprintf("the credentials need %s:%s (see docs/security.md for the permissions trailkeeper uses)", service, op)
}
