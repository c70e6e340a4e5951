package sandbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

type replicationConfig struct {
	Role  string
	Rules []replicationRule `xml:"Rule"`
}

type statusOnly struct{ Status string }

type minutes struct{ Minutes int }

type s3Tag struct{ Key, Value string }

type replicationRule struct {
	ID                        string `xml:",omitempty"`
	Priority                  *int   `xml:",omitempty"`
	Status                    string
	Prefix                    *string            `xml:",omitempty"` // the older schema
	Filter                    *replicationFilter `xml:",omitempty"`
	SourceSelectionCriteria   *selectionCriteria `xml:",omitempty"`
	ExistingObjectReplication *statusOnly        `xml:",omitempty"`
	Destination               replicationDest
	DeleteMarkerReplication   *statusOnly `xml:",omitempty"`
}

type replicationFilter struct {
	Prefix *string `xml:",omitempty"`
	Tag    *s3Tag  `xml:",omitempty"`
	And    *struct {
		Prefix *string `xml:",omitempty"`
		Tags   []s3Tag `xml:"Tag"`
	} `xml:",omitempty"`
}

type selectionCriteria struct {
	SseKmsEncryptedObjects *statusOnly `xml:",omitempty"`
	ReplicaModifications   *statusOnly `xml:",omitempty"`
}

type replicationDest struct {
	Bucket                   string
	Account                  string                            `xml:",omitempty"`
	StorageClass             string                            `xml:",omitempty"`
	AccessControlTranslation *struct{ Owner string }           `xml:",omitempty"`
	EncryptionConfiguration  *struct{ ReplicaKmsKeyID string } `xml:",omitempty"`
	ReplicationTime          *struct {
		Status string
		Time   *minutes `xml:",omitempty"`
	} `xml:",omitempty"`
	Metrics *struct {
		Status         string
		EventThreshold *minutes `xml:",omitempty"`
	} `xml:",omitempty"`
}

func (r *replicationRule) prefix() string {
	switch {
	case r.Filter != nil && r.Filter.Prefix != nil:
		return *r.Filter.Prefix
	case r.Filter != nil && r.Filter.And != nil && r.Filter.And.Prefix != nil:
		return *r.Filter.And.Prefix
	case r.Prefix != nil:
		return *r.Prefix
	}
	return ""
}

func (s *Sandbox) getReplication(c *call, b *bucket) error {
	if b.Replication == nil {
		return errorf(404, "ReplicationConfigurationNotFoundError", "The replication configuration was not found")
	}
	return writeXML(c, "ReplicationConfiguration", b.Replication)
}

func (s *Sandbox) deleteReplication(c *call, b *bucket) error {
	b.Replication = nil
	c.status = 204
	c.w.WriteHeader(204)
	return nil
}

var storageClasses = map[string]bool{"STANDARD": true, "REDUCED_REDUNDANCY": true, "STANDARD_IA": true, "ONEZONE_IA": true,
	"INTELLIGENT_TIERING": true, "GLACIER": true, "DEEP_ARCHIVE": true, "GLACIER_IR": true}

// putReplication validates the configuration the way S3 does (AWS-FACTS.md section 2).
func (s *Sandbox) putReplication(c *call, b *bucket) error {
	var cfg replicationConfig
	if err := readXML(c, &cfg); err != nil {
		return err
	}
	invalid := func(code, format string, a ...any) error { return errorf(400, code, format, a...) }
	if b.Versioning != "Enabled" {
		return invalid("InvalidRequest", "Versioning must be 'Enabled' on the bucket to apply a replication configuration")
	}
	m := roleARNRE().FindStringSubmatch(cfg.Role)
	if m == nil {
		return invalid("InvalidArgument", "Invalid Role specified in replication configuration")
	}
	if len(cfg.Rules) == 0 || len(cfg.Rules) > 1000 {
		return invalid("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	}
	// PutBucketReplication needs iam:PassRole on the role (API reference), and
	// a role can be passed only within its own account, by its root user too.
	if m[1] != c.caller.Account {
		return accessDenied("User: %s is not authorized to perform: iam:PassRole on resource: %s", c.caller.display(), cfg.Role)
	}
	if !c.caller.root() {
		req := policy.Request{Caller: c.caller.policyCaller(), Action: "iam:PassRole", Resource: cfg.Role, Context: c.requestContext(nil)}
		if s.identityDecision(c.caller, req) != policy.Allowed {
			return accessDenied("User: %s is not authorized to perform: iam:PassRole on resource: %s", c.caller.display(), cfg.Role)
		}
	}
	ids, priorities := map[string]bool{}, map[int]bool{}
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if r.ID == "" {
			r.ID = randomID("", 20)
		}
		if len(r.ID) > 255 {
			return invalid("InvalidArgument", "ID length should not exceed allowed limit of 255")
		}
		if ids[r.ID] {
			return invalid("InvalidArgument", "Rule Id must be unique. Found same ID for more than one rule")
		}
		ids[r.ID] = true
		if r.Status != "Enabled" && r.Status != "Disabled" {
			return invalid("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if r.Filter != nil && r.Prefix != nil {
			return invalid("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if r.Filter != nil {
			if r.DeleteMarkerReplication == nil {
				return invalid("InvalidRequest", "DeleteMarkerReplication must be specified for this version of Cross Region Replication configuration schema.")
			}
			if r.Priority == nil {
				return invalid("InvalidRequest", "Priority must be specified for this version of Cross Region Replication configuration schema.")
			}
			if priorities[*r.Priority] {
				return invalid("InvalidRequest", "Found overlapping priority %d in replication configuration", *r.Priority)
			}
			priorities[*r.Priority] = true
		} else if r.DeleteMarkerReplication != nil || r.Priority != nil {
			return invalid("InvalidRequest", "Filter must be specified for this version of Cross Region Replication configuration schema.")
		}
		if err := s.validateDestination(r, invalid); err != nil {
			return err
		}
	}
	b.Replication = &cfg
	return nil
}

func (s *Sandbox) validateDestination(r *replicationRule, invalid func(string, string, ...any) error) error {
	d := r.Destination
	name, ok := strings.CutPrefix(d.Bucket, "arn:aws:s3:::")
	if !ok || name == "" || strings.Contains(name, "/") {
		return invalid("InvalidArgument", "Invalid bucket ARN: %s", d.Bucket)
	}
	dst := s.st.Buckets[name]
	if dst == nil {
		return invalid("InvalidRequest", "Destination bucket must exist.")
	}
	if dst.Versioning != "Enabled" {
		return invalid("InvalidRequest", "Destination bucket must have versioning enabled.")
	}
	if d.StorageClass != "" && !storageClasses[d.StorageClass] {
		return invalid("InvalidStorageClass", "The storage class you specified is not valid")
	}
	if d.Account != "" && !isAccountID(d.Account) {
		return invalid("InvalidArgument", "Invalid account id in destination: %s", d.Account)
	}
	if d.AccessControlTranslation != nil {
		if d.AccessControlTranslation.Owner != "Destination" {
			return invalid("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
		}
		if d.Account == "" {
			return invalid("InvalidRequest", "Destination Account must be specified when AccessControlTranslation is specified")
		}
	}
	rtc := d.ReplicationTime != nil && d.ReplicationTime.Status == "Enabled"
	if rtc {
		if d.ReplicationTime.Time == nil || d.ReplicationTime.Time.Minutes != 15 {
			return invalid("InvalidArgument", "Replication Time Control time must be 15 minutes")
		}
		if d.Metrics == nil || d.Metrics.Status != "Enabled" {
			return invalid("InvalidRequest", "Replication Time Control must be used in conjunction with metrics")
		}
	}
	if d.Metrics != nil && d.Metrics.Status == "Enabled" {
		switch {
		case rtc && (d.Metrics.EventThreshold == nil || d.Metrics.EventThreshold.Minutes != 15):
			return invalid("InvalidArgument", "Metrics EventThreshold must be 15 minutes when Replication Time Control is enabled")
		case !rtc && d.Metrics.EventThreshold != nil:
			return invalid("InvalidArgument", "EventThreshold can only be specified when Replication Time Control is enabled")
		}
	}
	kms := r.SourceSelectionCriteria != nil && r.SourceSelectionCriteria.SseKmsEncryptedObjects != nil &&
		r.SourceSelectionCriteria.SseKmsEncryptedObjects.Status == "Enabled"
	hasKey := d.EncryptionConfiguration != nil && d.EncryptionConfiguration.ReplicaKmsKeyID != ""
	if kms && !hasKey {
		return invalid("InvalidRequest", "ReplicaKmsKeyID must be specified if SseKmsEncryptedObjects tag is present.")
	}
	if hasKey && !kms {
		return invalid("InvalidRequest", "SseKmsEncryptedObjects must be specified if EncryptionConfiguration is present.")
	}
	return nil
}

// replicationJob is one version waiting for replication.
type replicationJob struct{ bucket, key, versionID string }

// matchRule returns the enabled rule of highest priority that applies to the
// version, or nil: such versions get no replication status at all.
func matchRule(cfg *replicationConfig, v *version) *replicationRule {
	if cfg == nil {
		return nil
	}
	var best *replicationRule
	for i := range cfg.Rules {
		r := &cfg.Rules[i]
		if r.Status != "Enabled" || !strings.HasPrefix(v.Key, r.prefix()) {
			continue
		}
		if v.SSE == "aws:kms" && !(r.SourceSelectionCriteria != nil && r.SourceSelectionCriteria.SseKmsEncryptedObjects != nil &&
			r.SourceSelectionCriteria.SseKmsEncryptedObjects.Status == "Enabled") {
			continue
		}
		if v.DeleteMarker && (r.DeleteMarkerReplication == nil || r.DeleteMarkerReplication.Status != "Enabled") && r.Filter != nil {
			continue
		}
		if best == nil || (r.Priority != nil && best.Priority != nil && *r.Priority > *best.Priority) {
			best = r
		}
	}
	return best
}

// enqueueReplication marks a new version PENDING when a rule applies. Callers hold s.mu.
func (s *Sandbox) enqueueReplication(b *bucket, v *version) {
	if v.Replication == "REPLICA" || matchRule(b.Replication, v) == nil {
		return
	}
	if v.DeleteMarker {
		// Delete markers carry no status; they are replicated all the same.
	} else {
		v.Replication = "PENDING"
	}
	s.replPending.Add(1)
	select {
	case s.replQueue <- replicationJob{b.Name, v.Key, v.ID}:
	default:
		s.replPending.Add(-1)
		v.Replication, v.ReplicationWhy = "FAILED", "InternalError"
	}
}

// resumeReplications queues again what a stopped (or killed) sandbox left
// PENDING: S3 finishes those, it does not forget them. Callers hold s.mu.
func (s *Sandbox) resumeReplications() {
	for _, b := range s.st.Buckets {
		for _, vs := range b.Objects {
			for _, v := range vs {
				if v.Replication == "PENDING" {
					s.enqueueReplication(b, v)
				}
			}
		}
	}
}

func (s *Sandbox) replicator() {
	defer s.done.Done()
	for {
		select {
		case <-s.stop:
			return
		case j := <-s.replQueue:
			s.replicate(j)
			s.replPending.Add(-1)
		}
	}
}

// WaitReplication blocks until no replication is pending, so tests wait for an
// event instead of sleeping.
func (s *Sandbox) WaitReplication(ctx context.Context) error {
	for s.replPending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

func (s *Sandbox) replicate(j replicationJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.st.Buckets[j.bucket]
	if src == nil {
		return
	}
	v := findVersion(src, j.key, j.versionID)
	if v == nil {
		return
	}
	rule := matchRule(src.Replication, v)
	if rule == nil {
		if !v.DeleteMarker {
			v.Replication, v.ReplicationWhy = "FAILED", "RuleRemoved"
		}
		return
	}
	reason := s.replicateVersion(src, rule, v)
	s.changed()
	if v.DeleteMarker {
		return
	}
	if reason != "" {
		v.Replication, v.ReplicationWhy = "FAILED", reason
		s.opts.Logger.Info("replication failed", "bucket", src.Name, "key", v.Key, "reason", reason)
		s.notifyReplicationFailure(src, rule, v, reason)
		return
	}
	v.Replication, v.ReplicationWhy = "COMPLETED", ""
}

// replicateVersion acts as S3 does with the rule's role and returns the failure
// reason AWS would report, or "".
func (s *Sandbox) replicateVersion(src *bucket, rule *replicationRule, v *version) string {
	roleARN := src.Replication.Role
	m := roleARNRE().FindStringSubmatch(roleARN)
	acct := s.st.Accounts[m[1]]
	if acct == nil || m[1] != src.Owner || acct.Roles[m[2]] == nil {
		return "AssumeRoleNotPermitted"
	}
	r := acct.Roles[m[2]]
	trust, err := s.parse(r.Trust, policy.Trust)
	if err != nil || trust.Evaluate(policy.Request{Caller: policy.Caller{Service: "s3.amazonaws.com"}, Action: "sts:AssumeRole", Resource: roleARN}).Decision != policy.Allowed {
		return "AssumeRoleNotPermitted"
	}
	as := &call{secure: true, caller: caller{Account: src.Owner, ARN: "arn:aws:iam::" + src.Owner + ":role/" + r.Name,
		Session: "arn:aws:sts::" + src.Owner + ":assumed-role/" + r.Name + "/s3-replication", UniqueID: r.ID, SessionName: "s3-replication"}}
	srcAction := "s3:GetObjectVersionForReplication"
	if err := s.authorize(as, src, srcAction, bucketARN(src.Name)+"/"+v.Key, nil); err != nil {
		return "SrcGetObjectNotPermitted"
	}
	name := strings.TrimPrefix(rule.Destination.Bucket, "arn:aws:s3:::")
	dst := s.st.Buckets[name]
	if dst == nil {
		return "DstBucketNotFound"
	}
	if dst.Versioning != "Enabled" {
		return "DstBucketUnversioned"
	}
	dstARN := bucketARN(dst.Name) + "/" + v.Key
	if v.SSE == "aws:kms" {
		key := rule.Destination.EncryptionConfiguration.ReplicaKmsKeyID
		if !kmsKeyInAccount(key, dst.Owner) {
			return "DstKmsKeyNotFound"
		}
		if s.identityDecision(as.caller, policy.Request{Caller: as.caller.policyCaller(), Action: "kms:Decrypt", Resource: v.KMSKey, Context: as.requestContext(nil)}) != policy.Allowed {
			return "SrcKmsKeyDecryptNotPermitted"
		}
		if s.identityDecision(as.caller, policy.Request{Caller: as.caller.policyCaller(), Action: "kms:Encrypt", Resource: key, Context: as.requestContext(nil)}) != policy.Allowed {
			return "DstKmsKeyEncryptNotPermitted"
		}
	}
	actions := []string{"s3:ReplicateObject"}
	if v.DeleteMarker {
		actions = []string{"s3:ReplicateDelete"}
	}
	if rule.Destination.AccessControlTranslation != nil {
		actions = append(actions, "s3:ObjectOwnerOverrideToBucketOwner")
	}
	for _, a := range actions {
		if err := s.authorize(as, dst, a, dstARN, nil); err != nil {
			return "DstPutObjectNotPermitted"
		}
	}
	replica := *v
	replica.Replication, replica.ReplicationWhy = "REPLICA", ""
	replica.Owner = dst.Owner
	// "Creation time of the replica remains the same as the corresponding
	// object in the source bucket" (User Guide, replication and lifecycle): the
	// replica keeps the source's Last-Modified. The destination's default
	// retention counts from when the replica is written, the stricter reading
	// (the guide says only that the default applies).
	written := time.Now().UTC()
	if rule.Destination.StorageClass != "" {
		replica.StorageClass = rule.Destination.StorageClass
	}
	if v.SSE == "aws:kms" {
		replica.KMSKey = rule.Destination.EncryptionConfiguration.ReplicaKmsKeyID
	}
	if replica.LockMode == "" && dst.LockRule != nil {
		replica.LockMode, replica.RetainUntil = dst.LockRule.Mode, retainUntil(written, dst.LockRule)
	}
	if !v.DeleteMarker {
		if err := s.blobs.link(blobID(dst.Name, replica.ID, replica.Key), blobID(src.Name, v.ID, v.Key)); err != nil {
			return "SrcGetObjectNotPermitted"
		}
	}
	if len(dst.Objects[v.Key]) == 0 {
		dst.sorted = nil
	}
	dst.Objects[v.Key] = append(dst.Objects[v.Key], &replica)
	return ""
}

func kmsKeyInAccount(key, account string) bool {
	return strings.HasPrefix(key, "arn:aws:kms:") && strings.Contains(key, ":"+account+":key/")
}

func retainUntil(from time.Time, r *lockRule) time.Time {
	if r.Years > 0 {
		return from.AddDate(r.Years, 0, 0).UTC()
	}
	return from.AddDate(0, 0, r.Days).UTC()
}

// ReplicationFailure says why a version failed to replicate, as S3 would report in
// a replication event; on AWS the reason is not on the object. Sandbox-only.
func (s *Sandbox) ReplicationFailure(bucketName, key, versionID string) (status, reason string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.st.Buckets[bucketName]
	if b == nil {
		return "", "", fmt.Errorf("no bucket %s", bucketName)
	}
	v := findVersion(b, key, versionID)
	if v == nil {
		return "", "", fmt.Errorf("no version %s of %s", versionID, key)
	}
	return v.Replication, v.ReplicationWhy, nil
}
