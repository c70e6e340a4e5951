// Package setup turns trailkeeper.yaml into the archive and replication AWS
// needs: it observes each account, computes the desired documents, plans the
// steps between them and applies those steps, reading each write back. Policy
// documents and rules are built by pure functions of the config and the trails.
package setup

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/store"
)

// Names trailkeeper writes; it recognises what it owns by them.
const (
	SidDenyInsecure = "TrailkeeperDenyInsecureTransport"
	SidReplication  = "TrailkeeperReplication"
	RuleID          = "trailkeeper-cloudtrail"
	RolePolicyName  = "trailkeeper-replication"
	// BatchRoleName is the role S3 Batch Replication (trailkeeper backfill)
	// runs with in each source account.
	BatchRoleName = "trailkeeper-batch-replication"
	// BackfillPrefix is where backfill jobs write their completion reports and
	// trailkeeper its record of them, in each trail bucket, outside AWSLogs/.
	BackfillPrefix = store.StatePrefix + "backfill/"
)

// The seed document's names, recognised for adoption.
var (
	seedSids     = map[string]bool{"AllowReplicationFromSourceAccount": true, "AllowReplicationFromSourceAccounts": true, "AllowReplicationPolicyCheck": true}
	seedRuleID   = "ReplicateCloudTrailLogs"
	seedRoleName = "S3ReplicationRole"
)

// Trail is what discovery learns of a source account's trail.
type Trail struct {
	Name        string `json:"name"`
	ARN         string `json:"arn"`
	HomeRegion  string `json:"homeRegion"`
	Bucket      string `json:"bucket"`
	Prefix      string `json:"prefix,omitempty"`
	KMSKey      string `json:"kmsKey,omitempty"`
	MultiRegion bool   `json:"multiRegion"`
	Validation  bool   `json:"logFileValidation"`
	Logging     bool   `json:"logging"`
	// From GetTrailStatus: CloudTrail's own word on delivery.
	LatestDelivery      time.Time `json:"latestDelivery,omitzero"`
	DeliveryError       string    `json:"latestDeliveryError,omitempty"`
	LatestDigest        time.Time `json:"latestDigestDelivery,omitzero"`
	DigestDeliveryError string    `json:"latestDigestDeliveryError,omitempty"`
}

// LogPrefix is where the trail writes: "[prefix/]AWSLogs/".
func (t Trail) LogPrefix() string {
	if t.Prefix == "" {
		return "AWSLogs/"
	}
	return strings.TrimSuffix(t.Prefix, "/") + "/AWSLogs/"
}

func bucketARN(b string) string { return "arn:aws:s3:::" + b }

// RoleARN is the ARN of a role in an account.
func RoleARN(account, name string) string { return "arn:aws:iam::" + account + ":role/" + name }

// ReplicationTrust lets S3 assume the replication role.
func ReplicationTrust() *policy.Document {
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{{
		Effect: policy.Allow, Principal: &policy.Principal{Service: policy.Strings{"s3.amazonaws.com"}},
		Action: policy.Strings{"sts:AssumeRole"}}}}
}

// RolePolicy is the least privilege replication needs (AWS-FACTS.md section 3):
// read the trail's objects for replication, write replicas under this account's
// own prefix in the archive, and use the KMS keys of a KMS trail.
func RolePolicy(c *config.Config, account string, t Trail) *policy.Document {
	p := t.LogPrefix()
	d := &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		{Sid: "SourceBucket", Effect: policy.Allow, Action: policy.Strings{"s3:GetReplicationConfiguration", "s3:ListBucket"},
			Resource: policy.Strings{bucketARN(t.Bucket)}},
		{Sid: "SourceObjects", Effect: policy.Allow, Action: policy.Strings{"s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
			"s3:GetObjectVersionTagging", "s3:GetObjectRetention", "s3:GetObjectLegalHold"},
			Resource: policy.Strings{bucketARN(t.Bucket) + "/" + p + "*"}},
		{Sid: "ArchiveReplicas", Effect: policy.Allow, Action: policy.Strings{"s3:ReplicateObject", "s3:ReplicateTags"},
			Resource: policy.Strings{bucketARN(c.Archive.Bucket) + "/" + p + account + "/*"}},
	}}
	if t.KMSKey != "" {
		d.Statements = append(d.Statements,
			policy.Statement{Sid: "DecryptSource", Effect: policy.Allow, Action: policy.Strings{"kms:Decrypt"}, Resource: policy.Strings{t.KMSKey}},
			policy.Statement{Sid: "EncryptReplicas", Effect: policy.Allow, Action: policy.Strings{"kms:Encrypt"}, Resource: policy.Strings{c.Replication.ReplicaKMSKey}})
	}
	return d
}

// BatchTrust lets S3 Batch Operations assume the batch role.
func BatchTrust() *policy.Document {
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{{
		Effect: policy.Allow, Principal: &policy.Principal{Service: policy.Strings{"batchoperations.s3.amazonaws.com"}},
		Action: policy.Strings{"sts:AssumeRole"}}}}
}

// BatchRolePolicy is what an S3 Batch Replication job needs (AWS-FACTS.md
// section 11): start replication of the trail's objects (the rule's own role
// copies them), read the replication configuration and generate the manifest
// from the bucket, and write the completion report under BackfillPrefix.
func BatchRolePolicy(t Trail) *policy.Document {
	return &policy.Document{Version: "2012-10-17", Statements: []policy.Statement{
		{Sid: "InitiateReplication", Effect: policy.Allow, Action: policy.Strings{"s3:InitiateReplication"},
			Resource: policy.Strings{bucketARN(t.Bucket) + "/" + t.LogPrefix() + "*"}},
		{Sid: "GenerateManifest", Effect: policy.Allow, Action: policy.Strings{"s3:GetReplicationConfiguration", "s3:PutInventoryConfiguration"},
			Resource: policy.Strings{bucketARN(t.Bucket)}},
		{Sid: "WriteReport", Effect: policy.Allow, Action: policy.Strings{"s3:PutObject"},
			Resource: policy.Strings{bucketARN(t.Bucket) + "/" + BackfillPrefix + "*"}},
	}}
}

// DenyInsecure is the archive's TLS deny.
func DenyInsecure(bucket string) policy.Statement {
	return policy.Statement{Sid: SidDenyInsecure, Effect: policy.Deny, Principal: &policy.Principal{All: true},
		Action: policy.Strings{"s3:*"}, Resource: policy.Strings{bucketARN(bucket), bucketARN(bucket) + "/*"},
		Condition: policy.Conditions{"Bool": {"aws:SecureTransport": {"false"}}}}
}

// ReplicationGrant is the archive statement of AWS-FACTS.md section 4 in its
// small form: the accounts as principals (not "public", and immune to role
// re-creation), narrowed to the replication role by name, object actions only.
// roles lists the role ARNs allowed (patterns with * for the shared name).
func ReplicationGrant(bucket string, accounts, roles, prefixes []string) policy.Statement {
	s := grantStatement(bucket, roles, prefixes)
	s.Principal = &policy.Principal{AWS: policy.Strings(sortedUnique(accounts))}
	return s
}

// LargeReplicationGrant is the same grant for more accounts than fit as
// principals: any principal whose aws:PrincipalAccount is one of the accounts.
// An account id costs 15 bytes here and 33 as a stored principal
// (docs/security.md says why this is not "public" either).
func LargeReplicationGrant(bucket string, accounts, roles, prefixes []string) policy.Statement {
	s := grantStatement(bucket, roles, prefixes)
	s.Principal = &policy.Principal{AWS: policy.Strings{"*"}}
	var ids []string
	for _, a := range accounts {
		if config.IsAccountID(a) {
			ids = append(ids, a)
		}
	}
	s.Condition["StringEquals"] = map[string]policy.Strings{principalAccountKey: sortedUnique(ids)}
	return s
}

const principalAccountKey = "aws:PrincipalAccount"

// OwnFolder is the grant's Resource for a log prefix: each source's own
// account folder only, named by the policy variable IAM fills with the
// caller's account (a global key, so S3 resolves it for every signed
// request). A source that widens its own role still cannot write under
// another account's folder. One resource for any number of accounts.
func OwnFolder(bucket, logPrefix string) string {
	return bucketARN(bucket) + "/" + logPrefix + "${" + principalAccountKey + "}/*"
}

func grantStatement(bucket string, roles, prefixes []string) policy.Statement {
	var res policy.Strings
	for _, p := range sortedUnique(prefixes) {
		res = append(res, OwnFolder(bucket, p))
	}
	return policy.Statement{Sid: SidReplication, Effect: policy.Allow,
		Action: policy.Strings{"s3:ReplicateObject", "s3:ReplicateTags"}, Resource: res,
		Condition: policy.Conditions{"ArnLike": {"aws:PrincipalArn": policy.Strings(sortedUnique(roles))}}}
}

// withGrant puts the replication grant into d in the small form while the
// policy fits S3's limit that way, and in the large form beyond.
func withGrant(d *policy.Document, bucket string, accounts, roles, prefixes []string) *policy.Document {
	if out := withStatements(d, ReplicationGrant(bucket, accounts, roles, prefixes)); StoredSize(out) <= PolicyLimit {
		return out
	}
	return withStatements(d, LargeReplicationGrant(bucket, accounts, roles, prefixes))
}

// GrantedAccounts are the accounts a replication grant names, in either form
// and whichever way S3 returned the principals.
func GrantedAccounts(s *policy.Statement) []string {
	if s == nil {
		return nil
	}
	var out []string
	if s.Principal != nil {
		for _, p := range s.Principal.AWS {
			if id := AccountOfPrincipal(p); id != "" {
				out = append(out, id)
			} else if p != "*" {
				out = append(out, p) // a role or a deleted role's unique id: kept as it is
			}
		}
	}
	return append(out, s.Condition["StringEquals"][principalAccountKey]...)
}

// SharedRolePattern matches the trailkeeper role of any account.
func SharedRolePattern(name string) string { return "arn:aws:iam::*:role/" + name }

func sortedUnique(in []string) []string {
	set := map[string]bool{}
	for _, s := range in {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Rule is the replication rule for a source whose trail is t.
func Rule(c *config.Config, t Trail, priority int32) s3types.ReplicationRule {
	r := s3types.ReplicationRule{
		ID: aws.String(RuleID), Priority: aws.Int32(priority), Status: s3types.ReplicationRuleStatusEnabled,
		Filter:                  &s3types.ReplicationRuleFilter{Prefix: aws.String(t.LogPrefix())},
		DeleteMarkerReplication: &s3types.DeleteMarkerReplication{Status: s3types.DeleteMarkerReplicationStatusDisabled},
		Destination: &s3types.Destination{Bucket: aws.String(bucketARN(c.Archive.Bucket)), Account: aws.String(c.Archive.AccountID),
			StorageClass: s3types.StorageClass(c.Archive.StorageClass)},
	}
	if c.Replication.TimeControl {
		r.Destination.ReplicationTime = &s3types.ReplicationTime{Status: s3types.ReplicationTimeStatusEnabled, Time: &s3types.ReplicationTimeValue{Minutes: aws.Int32(15)}}
		r.Destination.Metrics = &s3types.Metrics{Status: s3types.MetricsStatusEnabled, EventThreshold: &s3types.ReplicationTimeValue{Minutes: aws.Int32(15)}}
	} else if c.Alerts.Enabled {
		// S3 sends failure events only for rules with replication metrics.
		r.Destination.Metrics = &s3types.Metrics{Status: s3types.MetricsStatusEnabled}
	}
	if t.KMSKey != "" {
		r.SourceSelectionCriteria = &s3types.SourceSelectionCriteria{SseKmsEncryptedObjects: &s3types.SseKmsEncryptedObjects{Status: s3types.SseKmsEncryptedObjectsStatusEnabled}}
		r.Destination.EncryptionConfiguration = &s3types.EncryptionConfiguration{ReplicaKmsKeyID: aws.String(c.Replication.ReplicaKMSKey)}
	}
	return r
}

// canonical renders a rule or configuration for comparison and diffs: indented
// JSON without the null fields the SDK types carry.
func canonical(v any) string {
	data, _ := json.Marshal(v)
	var tree any
	json.Unmarshal(data, &tree)
	out, _ := json.MarshalIndent(dropNulls(tree), "", "  ")
	return string(out)
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
			} else {
				x[k] = dropNulls(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = dropNulls(e)
		}
	}
	return v
}

// canonicalPolicy normalises a policy document: element order, one-element
// lists, sorted principals and values, so that equal policies compare equal.
func canonicalPolicy(d *policy.Document) string {
	if d == nil {
		return ""
	}
	cp := *d
	cp.Statements = make([]policy.Statement, len(d.Statements))
	for i, s := range d.Statements {
		s.Action, s.NotAction = sortStrings(s.Action), sortStrings(s.NotAction)
		s.Resource, s.NotResource = sortStrings(s.Resource), sortStrings(s.NotResource)
		for _, p := range []**policy.Principal{&s.Principal, &s.NotPrincipal} {
			if *p != nil {
				q := **p
				q.AWS, q.Service = sortStrings(storedPrincipals(q.AWS)), sortStrings(q.Service)
				*p = &q
			}
		}
		if s.Condition != nil {
			c := policy.Conditions{}
			for op, keys := range s.Condition {
				c[op] = map[string]policy.Strings{}
				for k, v := range keys {
					c[op][k] = sortStrings(v)
				}
			}
			s.Condition = c
		}
		cp.Statements[i] = s
	}
	// The document marshals in AWS's element order (Sid, Effect, Principal, ...).
	data, _ := json.Marshal(&cp)
	var out bytes.Buffer
	json.Indent(&out, data, "", "  ")
	return out.String()
}

func sortStrings(s policy.Strings) policy.Strings {
	if s == nil {
		return nil
	}
	out := append(policy.Strings{}, s...)
	sort.Strings(out)
	return out
}

// samePolicy compares two documents by meaning rather than by bytes.
// storedPrincipals writes AWS principals the way S3 stores them: a bare
// account id becomes arn:aws:iam::ID:root, so that a policy as written and as
// read back compare equal, and sizes are those S3 counts.
func storedPrincipals(ps policy.Strings) policy.Strings {
	out := make(policy.Strings, len(ps))
	for i, p := range ps {
		if config.IsAccountID(p) {
			p = "arn:aws:iam::" + p + ":root"
		}
		out[i] = p
	}
	return out
}

// AccountOfPrincipal is the account a principal names as a whole, a bare id
// or arn:aws:iam::ID:root, or "" for anything else (roles, users, services).
func AccountOfPrincipal(p string) string {
	if id, ok := strings.CutPrefix(p, "arn:aws:iam::"); ok {
		if id, ok = strings.CutSuffix(id, ":root"); ok && config.IsAccountID(id) {
			return id
		}
		return ""
	}
	if config.IsAccountID(p) {
		return p
	}
	return ""
}

func samePolicy(a, b *policy.Document) bool { return canonicalPolicy(a) == canonicalPolicy(b) }

// StoredSize is the size S3 limits (20,480 bytes for bucket policies), of
// the policy as S3 stores it: account ids as arn:aws:iam::ID:root.
func StoredSize(d *policy.Document) int {
	if d == nil {
		return 0
	}
	cp := *d
	cp.Statements = make([]policy.Statement, len(d.Statements))
	for i, s := range d.Statements {
		for _, p := range []**policy.Principal{&s.Principal, &s.NotPrincipal} {
			if *p != nil {
				q := **p
				q.AWS = storedPrincipals(q.AWS)
				*p = &q
			}
		}
		cp.Statements[i] = s
	}
	data, _ := json.Marshal(&cp)
	return len(data)
}

// AccountsThatFit is how many more source accounts the archive policy d has
// room for, in the large form of the grant that withGrant turns to when the
// small one no longer fits. plan, apply and status all count with this one
// function.
func AccountsThatFit(d *policy.Document) int {
	if d != nil {
		if s := d.Statement(SidReplication); s != nil {
			large := LargeReplicationGrant("", GrantedAccounts(s), nil, nil)
			large.Resource, large.Condition["ArnLike"] = s.Resource, s.Condition["ArnLike"]
			d = withStatements(d, large)
		}
	}
	return max(0, PolicyLimit-StoredSize(d)) / bytesPerAccount
}

// bytesPerAccount is what one more account adds to the large grant.
const bytesPerAccount = len(`"123456789012",`)

// PolicyLimit is S3's bucket policy size limit.
const PolicyLimit = 20480
