package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// notConverged is a write that AWS accepted but that did not read back as written.
func notConverged(account, what string) error {
	return fmt.Errorf("account %s: %s did not read back as written; run apply again", account, what)
}

type archiveOps struct {
	cl      *awsapi.Clients
	c       *config.Config
	note    func(format string, a ...any) // tells the user what did not stop the step
	waiting func(msg string)              // tells the user, at once, that the step waits for another apply
}

func (o archiveOps) acct() string   { return o.c.Archive.AccountID }
func (o archiveOps) bucket() string { return o.c.Archive.Bucket }

func (o archiveOps) createBucket(ctx context.Context) error {
	if err := o.create(ctx, o.bucket(), true, "archive.bucket"); err != nil {
		return err
	}
	if _, err := o.cl.S3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(o.bucket()), ExpectedBucketOwner: aws.String(o.acct())}); err != nil {
		return wrap(o.acct(), "s3 HeadBucket "+o.bucket(), err)
	}
	return nil
}

// create makes a bucket of the archive account in the archive's region,
// owner enforced (with Object Lock when lock); one an interrupted run made is
// taken as made, one of another account is a Conflict naming setting.
func (o archiveOps) create(ctx context.Context, bucket string, lock bool, setting string) error {
	in := &s3.CreateBucketInput{Bucket: &bucket, ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if r := o.c.Archive.Region; r != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(r)}
	}
	_, err := o.cl.S3.CreateBucket(ctx, in)
	switch awsapi.Code(err) {
	case "BucketAlreadyOwnedByYou":
		return nil // a previous, interrupted run created it
	case "BucketAlreadyExists":
		return &Conflict{Account: o.acct(), Msg: "bucket name " + bucket + " is taken by another account", Hint: "choose another " + setting}
	}
	return wrap(o.acct(), "s3 CreateBucket "+bucket, err)
}

func (o archiveOps) enableVersioning(ctx context.Context) error {
	return enableVersioning(ctx, o.cl, o.acct(), o.bucket())
}

func enableVersioning(ctx context.Context, cl *awsapi.Clients, acct, b string) error {
	if _, err := cl.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &b,
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled}}); err != nil {
		return wrap(acct, "s3 PutBucketVersioning "+b, err)
	}
	v, err := cl.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &b})
	if err != nil {
		return wrap(acct, "s3 GetBucketVersioning "+b, err)
	}
	if v.Status != s3types.BucketVersioningStatusEnabled {
		return notConverged(acct, "versioning of "+b)
	}
	return nil
}

func (o archiveOps) setRetention(ctx context.Context) error {
	want := o.c.Archive.ObjectLock
	r := &s3types.DefaultRetention{Mode: s3types.ObjectLockRetentionMode(want.Mode)}
	if want.Years > 0 {
		r.Years = aws.Int32(int32(want.Years))
	} else {
		r.Days = aws.Int32(int32(want.Days))
	}
	b := o.bucket()
	if _, err := o.cl.S3.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: &b, ObjectLockConfiguration: &s3types.ObjectLockConfiguration{
		ObjectLockEnabled: s3types.ObjectLockEnabledEnabled, Rule: &s3types.ObjectLockRule{DefaultRetention: r}}}); err != nil {
		return wrap(o.acct(), "s3 PutObjectLockConfiguration "+b, err)
	}
	st, err := ObserveArchive(ctx, o.c, o.cl)
	if err != nil {
		return err
	}
	if st.Retention == nil || *st.Retention != want {
		return notConverged(o.acct(), "default retention of "+b)
	}
	return nil
}

func (o archiveOps) blockPublic(ctx context.Context) error {
	b := o.bucket()
	if err := o.putBlockPublic(ctx, b); err != nil {
		return err
	}
	got, err := o.cl.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: &b})
	if err != nil {
		return wrap(o.acct(), "s3 GetPublicAccessBlock "+b, err)
	}
	if p := got.PublicAccessBlockConfiguration; !aws.ToBool(p.BlockPublicPolicy) || !aws.ToBool(p.RestrictPublicBuckets) {
		return notConverged(o.acct(), "public access block of "+b)
	}
	return nil
}

func (o archiveOps) putBlockPublic(ctx context.Context, bucket string) error {
	_, err := o.cl.S3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: &bucket, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
		BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(true), RestrictPublicBuckets: aws.Bool(true)}})
	return wrap(o.acct(), "s3 PutPublicAccessBlock "+bucket, err)
}

func (o archiveOps) enforceOwner(ctx context.Context) error {
	b := o.bucket()
	if _, err := o.cl.S3.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: &b, OwnershipControls: &s3types.OwnershipControls{
		Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerEnforced}}}}); err != nil {
		return wrap(o.acct(), "s3 PutBucketOwnershipControls "+b, err)
	}
	got, err := o.cl.S3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: &b})
	if err != nil {
		return wrap(o.acct(), "s3 GetBucketOwnershipControls "+b, err)
	}
	if len(got.OwnershipControls.Rules) != 1 || got.OwnershipControls.Rules[0].ObjectOwnership != s3types.ObjectOwnershipBucketOwnerEnforced {
		return notConverged(o.acct(), "ownership controls of "+b)
	}
	return nil
}

// putPolicy moves the archive policy from what the plan saw (planned) to
// want, under the policy lease. If someone changed the policy since it was
// planned, this plan's change is rebased onto theirs: their statements and
// grants stay, this plan's additions and removals apply on top.
func (o archiveOps) putPolicy(ctx context.Context, planned, want *policy.Document) (err error) {
	l, err := o.acquireLease(ctx)
	if err != nil {
		return err
	}
	var left *policy.Document
	defer func() {
		rerr := l.release(context.WithoutCancel(ctx), left)
		var conflict *Conflict
		switch {
		case errors.As(rerr, &conflict) && err == nil:
			err = rerr // another apply wrote under the same lease: say so
		case rerr != nil:
			// The policy is written either way; an unreleased lease only
			// makes the next apply wait until it expires.
			o.note("archive: the policy lease s3://%s/%s was not given back (%v): another apply waits until %s", o.bucket(), LeaseKey, rerr, l.until.Format(time.RFC3339))
		}
	}()
	cur, err := o.settledPolicy(ctx, l.previous)
	if err != nil {
		return err
	}
	left = cur
	next := rebase(o.bucket(), planned, want, cur)
	if samePolicy(cur, next) {
		return nil // another apply made the same change
	}
	if size := StoredSize(next); size > PolicyLimit {
		return &Conflict{Account: o.acct(), Msg: fmt.Sprintf("the policy would be %d bytes, over S3's %d", size, PolicyLimit),
			Hint: "remove statements trailkeeper did not write, or split the sources over two archives"}
	}
	if !l.valid() {
		return &Conflict{Account: o.acct(), Msg: "the archive policy lease ran short before the write", Hint: "run apply again"}
	}
	if err := l.stillHeld(ctx); err != nil {
		return err
	}
	b := o.bucket()
	if len(next.Statements) == 0 {
		_, err = o.cl.S3.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: &b})
	} else {
		data, _ := json.Marshal(next)
		_, err = o.cl.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &b, Policy: aws.String(string(data))})
	}
	if err != nil {
		return wrap(o.acct(), "s3 PutBucketPolicy "+b, err)
	}
	if time.Now().After(l.until) {
		// The write took longer than the lease: someone may have taken it
		// over and written meanwhile, and whichever write landed last won.
		return &Conflict{Account: o.acct(), Msg: "the archive policy write finished after its lease had run out: another apply may have written the policy meanwhile",
			Hint: "run apply again: it reads the policy as it is now and puts back whatever is missing"}
	}
	got, err := getBucketPolicy(ctx, o.cl, o.acct(), b)
	if err != nil {
		return err
	}
	if len(next.Statements) == 0 && got == nil {
		left = nil
		return nil
	}
	if !samePolicy(got, next) {
		return notConverged(o.acct(), "bucket policy of "+b)
	}
	left = got
	return nil
}

// settledPolicy reads the archive policy, reading again for a few seconds
// while it differs from what the last lease holder left: S3 propagates bucket
// configuration eventually, and a stale read would drop that holder's grants.
// A policy that stays different was edited by someone else and is kept.
func (o archiveOps) settledPolicy(ctx context.Context, previous string) (*policy.Document, error) {
	for i := 0; ; i++ {
		cur, err := getBucketPolicy(ctx, o.cl, o.acct(), o.bucket())
		if err != nil || previous == "" || policyHash(cur) == previous || i == 10 {
			return cur, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(leasePoll):
		}
	}
}

// rebase applies the change from planned to want onto cur. Statements other
// than the grant move by Sid; the grant's accounts, roles and prefixes are
// cur's plus what the plan added, minus what it removed.
func rebase(bucket string, planned, want, cur *policy.Document) *policy.Document {
	if samePolicy(planned, cur) {
		return want
	}
	if planned == nil {
		planned = &policy.Document{}
	}
	out := cur
	if out == nil {
		out = &policy.Document{Version: "2012-10-17"}
	}
	for _, s := range want.Statements {
		if p := planned.Statement(s.Sid); s.Sid != "" && s.Sid != SidReplication && (p == nil || !sameStatement(*p, s)) {
			out = withStatements(out, s)
		}
	}
	for _, p := range planned.Statements {
		if p.Sid == "" || p.Sid == SidReplication || want.Statement(p.Sid) != nil {
			continue
		}
		if c := out.Statement(p.Sid); c != nil && sameStatement(*c, p) {
			out = withoutStatements(out, func(s policy.Statement) bool { return s.Sid == p.Sid })
		}
	}
	was, will, now := planned.Statement(SidReplication), want.Statement(SidReplication), out.Statement(SidReplication)
	accounts := moved(GrantedAccounts(now), GrantedAccounts(was), GrantedAccounts(will))
	if len(accounts) == 0 {
		return withoutStatements(out, func(s policy.Statement) bool { return s.Sid == SidReplication })
	}
	return withGrant(out, bucket, accounts, moved(grantRoles(now), grantRoles(was), grantRoles(will)),
		moved(grantPrefixes(now), grantPrefixes(was), grantPrefixes(will)))
}

// moved is cur with what went from planned to want: added items added,
// removed items removed.
func moved(cur, planned, want []string) []string {
	in := func(list []string, s string) bool { return slices.Contains(list, s) }
	var out []string
	for _, s := range append(append([]string{}, cur...), want...) {
		if in(want, s) && !in(planned, s) || in(cur, s) && !(in(planned, s) && !in(want, s)) {
			out = append(out, s)
		}
	}
	return sortedUnique(out)
}

func grantRoles(s *policy.Statement) []string {
	if s == nil {
		return nil
	}
	return s.Condition["ArnLike"]["aws:PrincipalArn"]
}

func grantPrefixes(s *policy.Statement) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, r := range s.Resource {
		if m := resourcePrefixRE.FindStringSubmatch(r); m != nil {
			// An earlier grant's AWSLogs/* and today's AWSLogs/${aws:PrincipalAccount}/*
			// name the same prefix: the next apply narrows the first.
			out = append(out, strings.TrimSuffix(m[1], "${"+principalAccountKey+"}/"))
		}
	}
	return out
}

func sameStatement(a, b policy.Statement) bool {
	return samePolicy(&policy.Document{Statements: []policy.Statement{a}}, &policy.Document{Statements: []policy.Statement{b}})
}

// sourceOps writes in one source account, about its trail.
type sourceOps struct {
	cl      *awsapi.Clients
	c       *config.Config
	account string
	trail   Trail
}

func (o sourceOps) acct() string { return o.account }

func (o sourceOps) enableValidation(ctx context.Context) error {
	ct := o.cl.InRegion(o.trail.HomeRegion).CloudTrail
	if _, err := ct.UpdateTrail(ctx, &cloudtrail.UpdateTrailInput{Name: aws.String(o.trail.ARN), EnableLogFileValidation: aws.Bool(true)}); err != nil {
		return wrap(o.acct(), "cloudtrail UpdateTrail "+o.trail.Name, err)
	}
	got, err := ct.GetTrail(ctx, &cloudtrail.GetTrailInput{Name: aws.String(o.trail.ARN)})
	if err != nil {
		return wrap(o.acct(), "cloudtrail GetTrail "+o.trail.Name, err)
	}
	if !aws.ToBool(got.Trail.LogFileValidationEnabled) {
		return notConverged(o.acct(), "log file validation of trail "+o.trail.Name)
	}
	return nil
}

func policyJSON(d *policy.Document) *string {
	data, _ := json.Marshal(d)
	return aws.String(string(data))
}

// roleOps writes trailkeeper's roles in one account: the sources' replication,
// backfill and observer roles, and the watch function's in the archive.
type roleOps struct {
	cl   *awsapi.Clients
	acct string
}

func (o roleOps) createRole(ctx context.Context, name, description string, trust, pol *policy.Document) error {
	_, err := o.cl.IAM.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &name, AssumeRolePolicyDocument: policyJSON(trust), Description: &description})
	if awsapi.Code(err) == "EntityAlreadyExists" {
		err = o.updateTrust(ctx, name, trust) // a previous, interrupted run created it
	}
	if err != nil {
		return wrap(o.acct, "iam CreateRole "+name, err)
	}
	return o.putRolePolicy(ctx, name, pol)
}

func (o roleOps) updateTrust(ctx context.Context, name string, trust *policy.Document) error {
	if _, err := o.cl.IAM.UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &name, PolicyDocument: policyJSON(trust)}); err != nil {
		return wrap(o.acct, "iam UpdateAssumeRolePolicy "+name, err)
	}
	r, err := getRole(ctx, o.cl, o.acct, name)
	if err != nil {
		return err
	}
	if r == nil || !samePolicy(r.Trust, trust) {
		return notConverged(o.acct, "trust policy of role "+name)
	}
	return nil
}

// putRole sets both documents of a role that exists.
func (o roleOps) putRole(ctx context.Context, name string, trust, pol *policy.Document) error {
	if err := o.updateTrust(ctx, name, trust); err != nil {
		return err
	}
	return o.putRolePolicy(ctx, name, pol)
}

func (o roleOps) putRolePolicy(ctx context.Context, name string, pol *policy.Document) error {
	if _, err := o.cl.IAM.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &name, PolicyName: aws.String(RolePolicyName), PolicyDocument: policyJSON(pol)}); err != nil {
		return wrap(o.acct, "iam PutRolePolicy "+name, err)
	}
	r, err := getRole(ctx, o.cl, o.acct, name)
	if err != nil {
		return err
	}
	if r == nil || !samePolicy(r.Policy, pol) {
		return notConverged(o.acct, "policy "+RolePolicyName+" of role "+name)
	}
	return nil
}

func (o roleOps) deleteRolePolicy(ctx context.Context, name string) error {
	_, err := o.cl.IAM.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &name, PolicyName: aws.String(RolePolicyName)})
	if err != nil && awsapi.Code(err) != "NoSuchEntity" {
		return wrap(o.acct, "iam DeleteRolePolicy "+name, err)
	}
	return nil
}

func (o roleOps) deleteRole(ctx context.Context, name string, hasPolicy bool) error {
	if hasPolicy {
		if err := o.deleteRolePolicy(ctx, name); err != nil {
			return err
		}
	}
	_, err := o.cl.IAM.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &name})
	if err != nil && awsapi.Code(err) != "NoSuchEntity" {
		return wrap(o.acct, "iam DeleteRole "+name, err)
	}
	return nil
}

func (o sourceOps) putReplication(ctx context.Context, want *s3types.ReplicationConfiguration) error {
	b := o.trail.Bucket
	if _, err := o.cl.S3.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &b, ReplicationConfiguration: want}); err != nil {
		return wrap(o.acct(), "s3 PutBucketReplication "+b, err)
	}
	got, err := o.cl.S3.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &b})
	if err != nil {
		return wrap(o.acct(), "s3 GetBucketReplication "+b, err)
	}
	if canonical(normalizeReplication(got.ReplicationConfiguration)) != canonical(normalizeReplication(want)) {
		return notConverged(o.acct(), "replication configuration of "+b)
	}
	return nil
}

func (o sourceOps) deleteReplication(ctx context.Context) error {
	b := o.trail.Bucket
	if _, err := o.cl.S3.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: &b}); err != nil {
		return wrap(o.acct(), "s3 DeleteBucketReplication "+b, err)
	}
	return nil
}
