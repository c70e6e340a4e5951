package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

var ctx = context.Background()

const replicationTrust = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

func rolePolicy(source, archive string) string {
	return `{"Version":"2012-10-17","Statement":[
{"Effect":"Allow","Action":["s3:GetReplicationConfiguration","s3:ListBucket"],"Resource":"arn:aws:s3:::` + source + `"},
{"Effect":"Allow","Action":["s3:GetObjectVersionForReplication","s3:GetObjectVersionAcl","s3:GetObjectVersionTagging"],"Resource":"arn:aws:s3:::` + source + `/*"},
{"Effect":"Allow","Action":["s3:ReplicateObject","s3:ReplicateTags"],"Resource":"arn:aws:s3:::` + archive + `/*"}]}`
}

func archivePolicy(archive, grantee string) string {
	return `{"Version":"2012-10-17","Statement":[
{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::` + archive + `","arn:aws:s3:::` + archive + `/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}},
{"Sid":"Replication","Effect":"Allow","Principal":{"AWS":"` + grantee + `"},"Action":["s3:ReplicateObject","s3:ReplicateTags"],"Resource":"arn:aws:s3:::` + archive + `/AWSLogs/*"}]}`
}

// pair is a source bucket replicating into an Object-Lock archive, built through the SDK.
type pair struct {
	e               *env
	source, archive string
	role            string
}

func newPair(t testing.TB, e *env) *pair {
	p := &pair{e: e, source: "src-" + sourceAcct, archive: "archive-" + archiveAcct, role: "trailkeeper-replication"}
	a, s := e.s3(archiveAcct), e.s3(sourceAcct)
	loc := &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	must(a.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &p.archive, CreateBucketConfiguration: loc, ObjectLockEnabledForBucket: aws.Bool(true)})).OK(t)
	must(a.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: &p.archive, ObjectLockConfiguration: &types.ObjectLockConfiguration{
		ObjectLockEnabled: types.ObjectLockEnabledEnabled, Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeGovernance, Days: aws.Int32(1)}}}})).OK(t)
	must(s.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &p.source, CreateBucketConfiguration: loc})).OK(t)
	must(s.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &p.source, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})).OK(t)
	i := e.iam(sourceAcct)
	must(i.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &p.role, AssumeRolePolicyDocument: aws.String(replicationTrust)})).OK(t)
	must(i.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &p.role, PolicyName: aws.String("replication"), PolicyDocument: aws.String(rolePolicy(p.source, p.archive))})).OK(t)
	must(s.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: p.rule(nil)})).OK(t)
	return p
}

func (p *pair) rule(edit func(*types.ReplicationRule)) *types.ReplicationConfiguration {
	r := types.ReplicationRule{ID: aws.String("trailkeeper"), Priority: aws.Int32(1), Status: types.ReplicationRuleStatusEnabled,
		Filter:                  &types.ReplicationRuleFilter{Prefix: aws.String("AWSLogs/")},
		DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: types.DeleteMarkerReplicationStatusDisabled},
		Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::" + p.archive), Account: aws.String(archiveAcct),
			StorageClass: types.StorageClassStandardIa}}
	if edit != nil {
		edit(&r)
	}
	return &types.ReplicationConfiguration{Role: aws.String("arn:aws:iam::" + sourceAcct + ":role/" + p.role), Rules: []types.ReplicationRule{r}}
}

func (p *pair) grant(t testing.TB, grantee string) {
	must(p.e.s3(archiveAcct).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &p.archive, Policy: aws.String(archivePolicy(p.archive, grantee))})).OK(t)
}

// put writes a source object and waits until replication has settled.
func (p *pair) put(t *testing.T, key string) (status, reason string) {
	out := must(p.e.s3(sourceAcct).PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader([]byte("log " + key))})).OK(t)
	p.e.waitReplication()
	head := must(p.e.s3(sourceAcct).HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.source, Key: &key})).OK(t)
	_, reason, err := p.e.sb.ReplicationFailure(p.source, key, *out.VersionId)
	if err != nil {
		t.Fatal(err)
	}
	return string(head.ReplicationStatus), reason
}

func TestReplicationNeedsTheArchiveGrant(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)

	p.grant(t, otherAcct) // the archive policy names another account only
	if st, why := p.put(t, "AWSLogs/111111111111/a.json.gz"); st != "FAILED" || why != "DstPutObjectNotPermitted" {
		t.Fatalf("without a grant: %s %s, want FAILED DstPutObjectNotPermitted", st, why)
	}

	p.grant(t, sourceAcct)
	key := "AWSLogs/111111111111/b.json.gz"
	if st, why := p.put(t, key); st != "COMPLETED" {
		t.Fatalf("with a grant: %s %s, want COMPLETED", st, why)
	}
	replica := must(e.s3(archiveAcct).HeadObject(ctx, &s3.HeadObjectInput{Bucket: &p.archive, Key: &key})).OK(t)
	if replica.ReplicationStatus != types.ReplicationStatusReplica || replica.ObjectLockMode != types.ObjectLockModeGovernance ||
		replica.ObjectLockRetainUntilDate == nil || replica.StorageClass != types.StorageClassStandardIa {
		t.Fatalf("replica: status %s, lock %s until %v, class %s", replica.ReplicationStatus, replica.ObjectLockMode, replica.ObjectLockRetainUntilDate, replica.StorageClass)
	}
	if until := time.Until(*replica.ObjectLockRetainUntilDate); until < 23*time.Hour || until > 25*time.Hour {
		t.Errorf("replica retained %v, want the archive default of 1 day", until)
	}
	// The previously FAILED version is never retried by live replication.
	if st, _ := p.put(t, "outside/prefix.txt"); st != "" {
		t.Errorf("an object outside the rule's prefix got status %q, want none", st)
	}
}

func TestReplicationFailureReasons(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, p *pair)
		want   string
	}{
		{"role does not trust S3", func(t *testing.T, p *pair) {
			must(p.e.iam(sourceAcct).UpdateAssumeRolePolicy(ctx, &iam.UpdateAssumeRolePolicyInput{RoleName: &p.role,
				PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})).OK(t)
		}, "AssumeRoleNotPermitted"},
		{"role cannot read the source", func(t *testing.T, p *pair) {
			must(p.e.iam(sourceAcct).PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &p.role, PolicyName: aws.String("replication"),
				PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ReplicateObject","Resource":"*"}]}`)})).OK(t)
		}, "SrcGetObjectNotPermitted"},
		{"role lacks s3:ReplicateObject", func(t *testing.T, p *pair) {
			must(p.e.iam(sourceAcct).PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: &p.role, PolicyName: aws.String("replication"),
				PolicyDocument: aws.String(strings.Replace(rolePolicy(p.source, p.archive), `"s3:ReplicateObject",`, "", 1))})).OK(t)
		}, "DstPutObjectNotPermitted"},
		{"archive deleted", func(t *testing.T, p *pair) {
			p.e.sb.mu.Lock()
			delete(p.e.sb.st.Buckets, p.archive) // versions and lock would stop a real delete
			p.e.sb.mu.Unlock()
		}, "DstBucketNotFound"},
		{"insecure transport", func(t *testing.T, p *pair) {
			// Not a failure: S3 replicates over TLS, so the TLS deny never blocks it.
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{InsecureHTTP: true})
			p := newPair(t, e)
			p.grant(t, sourceAcct)
			tt.break_(t, p)
			st, why := p.put(t, "AWSLogs/111111111111/x.json.gz")
			if why != tt.want || (tt.want == "" && st != "COMPLETED") {
				t.Fatalf("got %s %q, want reason %q", st, why, tt.want)
			}
		})
	}
}

func TestReplicationConfigurationValidation(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	tests := []struct {
		name string
		edit func(*types.ReplicationRule)
		code string
		msg  string
	}{
		{"metrics threshold without RTC", func(r *types.ReplicationRule) {
			r.Destination.Metrics = &types.Metrics{Status: types.MetricsStatusEnabled, EventThreshold: &types.ReplicationTimeValue{Minutes: aws.Int32(15)}}
		}, "InvalidArgument", "EventThreshold"},
		{"RTC without metrics", func(r *types.ReplicationRule) {
			r.Destination.ReplicationTime = &types.ReplicationTime{Status: types.ReplicationTimeStatusEnabled, Time: &types.ReplicationTimeValue{Minutes: aws.Int32(15)}}
		}, "InvalidRequest", "metrics"},
		{"RTC of 10 minutes", func(r *types.ReplicationRule) {
			r.Destination.ReplicationTime = &types.ReplicationTime{Status: types.ReplicationTimeStatusEnabled, Time: &types.ReplicationTimeValue{Minutes: aws.Int32(10)}}
			r.Destination.Metrics = &types.Metrics{Status: types.MetricsStatusEnabled, EventThreshold: &types.ReplicationTimeValue{Minutes: aws.Int32(10)}}
		}, "InvalidArgument", "15"},
		{"filter without delete marker replication", func(r *types.ReplicationRule) { r.DeleteMarkerReplication = nil }, "InvalidRequest", "DeleteMarkerReplication"},
		{"KMS objects without a replica key", func(r *types.ReplicationRule) {
			r.SourceSelectionCriteria = &types.SourceSelectionCriteria{SseKmsEncryptedObjects: &types.SseKmsEncryptedObjects{Status: types.SseKmsEncryptedObjectsStatusEnabled}}
		}, "InvalidRequest", "ReplicaKmsKeyID"},
		{"owner override without account", func(r *types.ReplicationRule) {
			r.Destination.Account = nil
			r.Destination.AccessControlTranslation = &types.AccessControlTranslation{Owner: types.OwnerOverrideDestination}
		}, "InvalidRequest", "Account"},
		{"missing destination bucket", func(r *types.ReplicationRule) { r.Destination.Bucket = aws.String("arn:aws:s3:::nope-nope") }, "InvalidRequest", "must exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.s3(sourceAcct).PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: p.rule(tt.edit)})
			if errCode(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want %s mentioning %q", err, tt.code, tt.msg)
			}
		})
	}
	t.Run("duplicate priorities", func(t *testing.T) {
		cfg := p.rule(nil)
		second := cfg.Rules[0]
		second.ID = aws.String("other")
		cfg.Rules = append(cfg.Rules, second)
		_, err := e.s3(sourceAcct).PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: cfg})
		if errCode(err) != "InvalidRequest" || !strings.Contains(err.Error(), "priority") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unversioned source", func(t *testing.T) {
		b := "unversioned-" + sourceAcct
		must(e.s3(sourceAcct).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b, CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: region}})).OK(t)
		_, err := e.s3(sourceAcct).PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &b, ReplicationConfiguration: p.rule(nil)})
		if errCode(err) != "InvalidRequest" || !strings.Contains(err.Error(), "Versioning") {
			t.Fatalf("got %v", err)
		}
	})
	// The valid RTC form of the seed is accepted and reads back unchanged.
	cfg := p.rule(func(r *types.ReplicationRule) {
		r.Destination.ReplicationTime = &types.ReplicationTime{Status: types.ReplicationTimeStatusEnabled, Time: &types.ReplicationTimeValue{Minutes: aws.Int32(15)}}
		r.Destination.Metrics = &types.Metrics{Status: types.MetricsStatusEnabled, EventThreshold: &types.ReplicationTimeValue{Minutes: aws.Int32(15)}}
	})
	must(e.s3(sourceAcct).PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: cfg})).OK(t)
	got := must(e.s3(sourceAcct).GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &p.source})).OK(t)
	if r := got.ReplicationConfiguration.Rules[0]; *r.Filter.Prefix != "AWSLogs/" || *r.Destination.Metrics.EventThreshold.Minutes != 15 || *r.Priority != 1 {
		t.Fatalf("read back %+v", r)
	}
}

func TestBucketPolicyValidation(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	put := func(doc string) error {
		_, err := e.s3(archiveAcct).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &p.archive, Policy: &doc})
		return err
	}
	stmt := func(principal, action, resource string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":` + principal + `,"Action":"` + action + `","Resource":"` + resource + `"}]}`
	}
	obj := "arn:aws:s3:::" + p.archive + "/*"
	for _, tt := range []struct{ name, doc, msg string }{
		{"role that does not exist", stmt(`{"AWS":"arn:aws:iam::`+sourceAcct+`:role/nobody"}`, "s3:ReplicateObject", obj), "Invalid principal in policy"},
		{"another bucket", stmt(`{"AWS":"`+sourceAcct+`"}`, "s3:GetObject", "arn:aws:s3:::elsewhere/*"), "Policy has invalid resource"},
		{"non-S3 action", stmt(`{"AWS":"`+sourceAcct+`"}`, "iam:PassRole", obj), "Policy has invalid action"},
		{"not JSON", `Version: 2012-10-17`, "must be valid JSON"},
		{"unknown condition operator", `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"` + obj + `","Condition":{"StringEqualz":{"aws:SourceAccount":"1"}}}]}`, "Invalid Condition type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := put(tt.doc)
			if errCode(err) != "MalformedPolicy" || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want MalformedPolicy %q", err, tt.msg)
			}
		})
	}
	// S3 limits a bucket policy to 20 KB and says PolicyTooLarge, however the
	// excess comes: a long valid policy, or one padded to megabytes.
	for name, doc := range map[string]string{
		"30 KB of statements":    `{"Version":"2012-10-17","Statement":[` + strings.Repeat(`{"Effect":"Allow","Principal":{"AWS":"`+sourceAcct+`"},"Action":"s3:GetObject","Resource":"`+obj+`"},`, 250) + `{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"` + obj + `"}]}`,
		"4 MB of spaces in JSON": `{"Version":"2012-10-17",` + strings.Repeat(" ", 4<<20) + `"Statement":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := put(doc); errCode(err) != "PolicyTooLarge" {
				t.Fatalf("got %v, want PolicyTooLarge", err)
			}
		})
	}
	t.Run("public policy under Block Public Access", func(t *testing.T) {
		if err := put(stmt(`"*"`, "s3:GetObject", obj)); errCode(err) != "AccessDenied" {
			t.Fatalf("got %v, want AccessDenied", err)
		}
	})
	t.Run("a recreated role loses its grant", func(t *testing.T) {
		roleARN := "arn:aws:iam::" + sourceAcct + ":role/" + p.role
		if err := put(stmt(`{"AWS":"`+roleARN+`"}`, "s3:ReplicateObject", obj)); err != nil {
			t.Fatal(err)
		}
		i := e.iam(sourceAcct)
		must(i.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: &p.role, PolicyName: aws.String("replication")})).OK(t)
		must(i.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: &p.role})).OK(t)
		must(i.CreateRole(ctx, &iam.CreateRoleInput{RoleName: &p.role, AssumeRolePolicyDocument: aws.String(replicationTrust)})).OK(t)
		got := must(e.s3(archiveAcct).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &p.archive})).OK(t)
		if strings.Contains(*got.Policy, roleARN) || !strings.Contains(*got.Policy, `"AROA`) {
			t.Fatalf("policy still names the new role, or lost the old unique ID: %s", *got.Policy)
		}
	})
}

func TestObjectLock(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	a := e.s3(archiveAcct)
	key := "AWSLogs/" + sourceAcct + "/locked.json.gz"
	v := must(a.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.archive, Key: &key, Body: bytes.NewReader([]byte("x")), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})).OK(t)

	_, err := a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &p.archive, Key: &key, VersionId: v.VersionId})
	if errCode(err) != "AccessDenied" {
		t.Fatalf("deleting a locked version: %v, want AccessDenied", err)
	}
	// A delete without a version id only adds a delete marker, which is allowed.
	dm := must(a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &p.archive, Key: &key})).OK(t)
	if !aws.ToBool(dm.DeleteMarker) {
		t.Fatal("no delete marker")
	}
	if _, err := a.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.archive, Key: &key, VersionId: v.VersionId}); err != nil {
		t.Fatalf("the locked version is gone: %v", err)
	}
	_, err = a.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &p.archive, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	if errCode(err) != "InvalidBucketState" {
		t.Fatalf("suspending versioning on a locked bucket: %v", err)
	}
	// GOVERNANCE yields to the bypass header for a principal allowed s3:BypassGovernanceRetention.
	must(a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &p.archive, Key: &key, VersionId: v.VersionId, BypassGovernanceRetention: aws.Bool(true)})).OK(t)

	// COMPLIANCE yields to nobody.
	until := time.Now().Add(time.Hour)
	c := must(a.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.archive, Key: &key, Body: bytes.NewReader([]byte("y")),
		ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: &until, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})).OK(t)
	_, err = a.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &p.archive, Key: &key, VersionId: c.VersionId, BypassGovernanceRetention: aws.Bool(true)})
	if errCode(err) != "AccessDenied" {
		t.Fatalf("deleting a COMPLIANCE version with bypass: %v, want AccessDenied", err)
	}
	shorter := time.Now().Add(time.Minute)
	_, err = a.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &p.archive, Key: &key, VersionId: c.VersionId,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: &shorter}})
	if errCode(err) != "AccessDenied" {
		t.Fatalf("shortening COMPLIANCE retention: %v, want AccessDenied", err)
	}
}

func TestCrossAccountAccess(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	key := "AWSLogs/" + sourceAcct + "/secret.json.gz"
	must(e.s3(sourceAcct).PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader([]byte("s"))})).OK(t)
	other := e.s3(otherAcct)
	if _, err := other.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key}); errCode(err) != "AccessDenied" {
		t.Fatalf("another account reading: %v, want AccessDenied", err)
	}
	if _, err := other.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &p.source}); errCode(err) != "AccessDenied" {
		t.Fatalf("another account listing: %v, want AccessDenied", err)
	}
	// A bucket policy granting the other account lets its root in...
	grant := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + otherAcct + `"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::` + p.source + `/*"}]}`
	must(e.s3(sourceAcct).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &p.source, Policy: &grant})).OK(t)
	if _, err := other.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key}); err != nil {
		t.Fatalf("granted account reading: %v", err)
	}
	// ...but a role of that account also needs its own identity policy: both sides must allow.
	i := e.iam(otherAcct)
	must(i.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("reader"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + otherAcct + `"},"Action":"sts:AssumeRole"}]}`)})).OK(t)
	roleS3 := e.assumed(t, otherAcct, "arn:aws:iam::"+otherAcct+":role/reader")
	if _, err := roleS3.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key}); errCode(err) != "AccessDenied" {
		t.Fatalf("role without identity policy: %v, want AccessDenied", err)
	}
	must(i.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("reader"), PolicyName: aws.String("read"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)})).OK(t)
	if _, err := roleS3.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key}); err != nil {
		t.Fatalf("role with both sides allowing: %v", err)
	}
}

// TestIAMUsers: a user's access key acts as the user, whose inline policies
// decide; across accounts the bucket policy must name the user (stored by id).
func TestIAMUsers(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	key := "AWSLogs/" + sourceAcct + "/u.json.gz"
	must(e.s3(sourceAcct).PutObject(ctx, &s3.PutObjectInput{Bucket: &p.source, Key: &key, Body: bytes.NewReader([]byte("u"))})).OK(t)
	i := e.iam(otherAcct)
	must(i.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("auditor")})).OK(t)
	k := must(i.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("auditor")})).OK(t).AccessKey
	cfg := e.cfg(otherAcct)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(*k.AccessKeyId, *k.SecretAccessKey, "")
	auditor := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	who := must(sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})).OK(t)
	if *who.Arn != "arn:aws:iam::"+otherAcct+":user/auditor" || !strings.HasPrefix(*who.UserId, "AIDA") {
		t.Fatalf("caller identity %s %s", *who.Arn, *who.UserId)
	}
	grant := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + otherAcct + `:user/auditor"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::` + p.source + `/*"}]}`
	must(e.s3(sourceAcct).PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &p.source, Policy: &grant})).OK(t)
	if _, err := auditor.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key}); errCode(err) != "AccessDenied" {
		t.Fatalf("user without identity policy: %v", err)
	}
	must(i.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("auditor"), PolicyName: aws.String("read"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}`)})).OK(t)
	if _, err := auditor.GetObject(ctx, &s3.GetObjectInput{Bucket: &p.source, Key: &key}); err != nil {
		t.Fatalf("user with both sides allowing: %v", err)
	}
	if _, err := i.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("auditor")}); errCode(err) != "DeleteConflict" {
		t.Fatalf("deleting a user with a policy and a key: %v", err)
	}
	pol := must(e.s3(sourceAcct).GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &p.source})).OK(t)
	if !strings.Contains(*pol.Policy, "user/auditor") {
		t.Fatalf("policy shows %s", *pol.Policy)
	}
}

// PutObject API reference: an upload that gets a retention period from Object
// Lock needs Content-MD5 or a checksum; the SDKs send one by default over TLS.
func TestObjectLockNeedsAnIntegrityCheck(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	a := e.s3(archiveAcct)
	key := "AWSLogs/" + sourceAcct + "/unchecked.json.gz"
	_, err := a.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.archive, Key: &key, Body: bytes.NewReader([]byte("x"))})
	if errCode(err) != "InvalidRequest" || !strings.Contains(err.Error(), "Content-MD5 OR x-amz-checksum-") {
		t.Fatalf("a put without an integrity check into a locked bucket: %v", err)
	}
	must(a.PutObject(ctx, &s3.PutObjectInput{Bucket: &p.archive, Key: &key, Body: bytes.NewReader([]byte("x")), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})).OK(t)
	c := newCLI(t, e.url)
	body := c.dir + "/log.json.gz"
	os.WriteFile(body, []byte("x"), 0o600)
	c.ok(archiveAcct, "s3api", "put-object", "--bucket", p.archive, "--key", key, "--body", body)
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

// The archive's default retention applies to a replica and counts from when it
// arrives (its creation time, which it keeps from the source, is checked by
// TestBatchReplicationWithTheCLI, where the copy comes later).
func TestReplicaRetention(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	p.grant(t, sourceAcct)
	key := "AWSLogs/" + sourceAcct + "/CloudTrail/" + region + "/2026/12/03/kept.json.gz"
	c := newCLI(t, e.url)
	body := c.file("log.json.gz", "x")
	c.ok(sourceAcct, "s3api", "put-object", "--bucket", p.source, "--key", key, "--body", strings.TrimPrefix(body, "file://"))
	e.waitReplication()
	src := headObject(t, c, sourceAcct, p.source, key)
	dst := headObject(t, c, archiveAcct, p.archive, key)
	if dst["ReplicationStatus"] != "REPLICA" || src["LastModified"] != dst["LastModified"] { // same second here
		t.Fatalf("replica %v %v, source %v", dst["ReplicationStatus"], dst["LastModified"], src["LastModified"])
	}
	until, err := time.Parse(time.RFC3339, fmt.Sprint(dst["ObjectLockRetainUntilDate"]))
	if err != nil || dst["ObjectLockMode"] != "GOVERNANCE" || until.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("replica retention %v until %v, want the archive's default of 1 day from its arrival", dst["ObjectLockMode"], dst["ObjectLockRetainUntilDate"])
	}
}
