package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// S3 Inventory of the archive (archive.inventory_bucket): a daily report of
// every version with its ETag and Object Lock fields, which verify
// --inventory reads instead of listing an archive too large to list nightly.

// InventoryID is the id of the configuration apply writes; internal/inventory
// reads any configuration that lists what it needs (TestReattestFromInventory
// reads reports of this one: this package stays free of the DuckDB that one
// loads reports with).
const InventoryID = "trailkeeper"

// inventoryFields are the optional fields verify --inventory reads.
var inventoryFields = []s3types.InventoryOptionalField{"Size", "LastModifiedDate", "ETag", "ObjectLockRetainUntilDate", "ObjectLockMode"}

// SidInventory is the statement of the inventory bucket's policy that lets
// S3 write the archive's reports.
const SidInventory = "TrailkeeperInventoryReports"

// InventoryState is the archive's inventory as discovery finds it.
type InventoryState struct {
	Config       *s3types.InventoryConfiguration // trailkeeper's, nil if absent
	BucketExists bool
	BucketRegion string
	Policy       *policy.Document // of the inventory bucket
}

// InventoryConfiguration is the configuration apply writes: daily, every
// version, Parquet, the fields verify --inventory reads, into dest.
func InventoryConfiguration(dest string) *s3types.InventoryConfiguration {
	return &s3types.InventoryConfiguration{Id: aws.String(InventoryID), IsEnabled: aws.Bool(true),
		IncludedObjectVersions: s3types.InventoryIncludedObjectVersionsAll, OptionalFields: slices.Clone(inventoryFields),
		Schedule: &s3types.InventorySchedule{Frequency: s3types.InventoryFrequencyDaily},
		Destination: &s3types.InventoryDestination{S3BucketDestination: &s3types.InventoryS3BucketDestination{
			Bucket: aws.String(bucketARN(dest)), Format: s3types.InventoryFormatParquet}}}
}

// InventoryStatement lets S3 write the archive's reports into dest, and
// nothing else: the User Guide's policy for inventory destinations.
func InventoryStatement(c *config.Config, dest string) policy.Statement {
	return policy.Statement{Sid: SidInventory, Effect: policy.Allow, Principal: &policy.Principal{Service: policy.Strings{"s3.amazonaws.com"}},
		Action: policy.Strings{"s3:PutObject"}, Resource: policy.Strings{bucketARN(dest) + "/*"},
		Condition: policy.Conditions{
			"ArnLike":      {"aws:SourceArn": {bucketARN(c.Archive.Bucket)}},
			"StringEquals": {"aws:SourceAccount": {c.Archive.AccountID}, "s3:x-amz-acl": {"bucket-owner-full-control"}}}}
}

// observeInventory reads trailkeeper's inventory configuration of the
// archive and, when the config names one, the inventory bucket.
func observeInventory(ctx context.Context, c *config.Config, cl *awsapi.Clients) (*InventoryState, error) {
	st := &InventoryState{}
	a, b := c.Archive.AccountID, c.Archive.Bucket
	out, err := cl.S3.GetBucketInventoryConfiguration(ctx, &s3.GetBucketInventoryConfigurationInput{Bucket: &b, Id: aws.String(InventoryID)})
	switch {
	case noInventory(err):
	case err != nil:
		return nil, wrap(a, "s3 GetBucketInventoryConfiguration "+b, err)
	default:
		st.Config = out.InventoryConfiguration
	}
	dest := c.Archive.InventoryBucket
	if dest == "" {
		return st, nil
	}
	if st.BucketExists, err = ownedBucket(ctx, cl, a, dest, "inventory bucket", "archive.inventory_bucket"); err != nil {
		return nil, err
	}
	if !st.BucketExists {
		return st, nil
	}
	loc, err := cl.S3.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: &dest})
	if err != nil {
		return nil, wrap(a, "s3 GetBucketLocation "+dest, err)
	}
	if st.BucketRegion = string(loc.LocationConstraint); st.BucketRegion == "" {
		st.BucketRegion = "us-east-1"
	}
	st.Policy, err = getBucketPolicy(ctx, cl, a, dest)
	return st, err
}

// sameInventory compares what S3 returns with what apply writes, the
// fields as a set.
func sameInventory(a, b *s3types.InventoryConfiguration) bool {
	if a == nil || b == nil {
		return a == b
	}
	norm := func(c s3types.InventoryConfiguration) string {
		c.OptionalFields = slices.Clone(c.OptionalFields)
		slices.Sort(c.OptionalFields)
		data, _ := json.Marshal(c)
		return string(data)
	}
	return norm(*a) == norm(*b)
}

// planInventory plans the inventory bucket, its policy statement and the
// configuration; without archive.inventory_bucket, it takes trailkeeper's
// configuration away (the reports delivered stay where they are).
func (p *Plan) planInventory(c *config.Config, st *InventoryState) error {
	if st == nil {
		return nil // not observed: status's drift check leaves the inventory to plan
	}
	a, dest := c.Archive.AccountID, c.Archive.InventoryBucket
	if dest == "" {
		if st.Config != nil {
			p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "inventory " + InventoryID, Action: "delete",
				Summary: "archive.inventory_bucket is gone: stop the daily S3 Inventory report (the reports delivered stay)", Op: opOf("archive.deleteInventory", none{})})
		}
		return nil
	}
	if st.BucketExists && st.BucketRegion != c.Archive.Region {
		return &Conflict{Account: a, Msg: fmt.Sprintf("inventory bucket %s is in %s; S3 Inventory writes only into a bucket of the archive's region %s", dest, st.BucketRegion, c.Archive.Region),
			Hint: "name a bucket of " + c.Archive.Region + " in archive.inventory_bucket (apply creates it)"}
	}
	if !st.BucketExists {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "bucket " + dest, Action: "create",
			Summary: fmt.Sprintf("create bucket %s in %s for the archive's S3 Inventory reports (public access blocked, owner enforced)", dest, c.Archive.Region),
			Op:      opOf("archive.createInventoryBucket", none{})})
	}
	cur := st.Policy
	if cur == nil {
		cur = &policy.Document{Version: "2012-10-17"}
	}
	if want := withStatements(cur, InventoryStatement(c, dest)); st.Policy == nil || !samePolicy(st.Policy, want) {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "policy of bucket " + dest, Action: "update",
			Summary: "statement " + SidInventory + ": S3 may write the archive's inventory reports", Diff: diff(canonicalPolicy(st.Policy), canonicalPolicy(want)),
			Op: opOf("archive.putInventoryStatement", none{})})
	}
	if want := InventoryConfiguration(dest); !sameInventory(st.Config, want) {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "inventory " + InventoryID, Action: verb(st.Config == nil),
			Summary: "daily S3 Inventory of every version (Parquet, ETag and Object Lock fields) into " + dest + ", for verify --inventory",
			Op:      opOf("archive.putInventory", none{})})
	}
	return nil
}

func (o archiveOps) createInventoryBucket(ctx context.Context) error {
	dest := o.c.Archive.InventoryBucket
	if err := o.create(ctx, dest, false, "archive.inventory_bucket"); err != nil {
		return err
	}
	return o.putBlockPublic(ctx, dest)
}

// putInventoryStatement adds or replaces trailkeeper's statement in the
// inventory bucket's policy as it stands now; every other statement stays.
func (o archiveOps) putInventoryStatement(ctx context.Context) error {
	dest := o.c.Archive.InventoryBucket
	cur, err := getBucketPolicy(ctx, o.cl, o.acct(), dest)
	if err != nil {
		return err
	}
	if cur == nil {
		cur = &policy.Document{Version: "2012-10-17"}
	}
	data, err := json.Marshal(withStatements(cur, InventoryStatement(o.c, dest)))
	if err != nil {
		return err
	}
	_, err = o.cl.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &dest, Policy: aws.String(string(data))})
	return wrap(o.acct(), "s3 PutBucketPolicy "+dest, err)
}

func (o archiveOps) putInventory(ctx context.Context) error {
	b := o.bucket()
	_, err := o.cl.S3.PutBucketInventoryConfiguration(ctx, &s3.PutBucketInventoryConfigurationInput{Bucket: &b, Id: aws.String(InventoryID),
		InventoryConfiguration: InventoryConfiguration(o.c.Archive.InventoryBucket)})
	return wrap(o.acct(), "s3 PutBucketInventoryConfiguration "+b, err)
}

func (o archiveOps) deleteInventory(ctx context.Context) error {
	b := o.bucket()
	_, err := o.cl.S3.DeleteBucketInventoryConfiguration(ctx, &s3.DeleteBucketInventoryConfigurationInput{Bucket: &b, Id: aws.String(InventoryID)})
	if noInventory(err) {
		return nil
	}
	return wrap(o.acct(), "s3 DeleteBucketInventoryConfiguration "+b, err)
}

// noInventory is S3's answer for a configuration id the bucket does not have
// (moto says NoSuchInventoryConfig).
func noInventory(err error) bool {
	code := awsapi.Code(err)
	return code == "NoSuchConfiguration" || code == "NoSuchInventoryConfig"
}
