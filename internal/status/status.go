// Package status answers "is every account's trail reaching the archive right
// now, and if not, why and what do I run to fix it": it reads each account's
// trail, replication configuration, role and recent objects, checks offline with
// the policy evaluator that a replication would be allowed end to end, and turns
// each problem into a finding with a one-line fix.
package status

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/cost"
	"github.com/trailkeeper/trailkeeper/internal/finding"
	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// SchemaVersion of the JSON report, shared with verify's (docs/findings.md).
const SchemaVersion = finding.SchemaVersion

// Severity and Finding are the findings' own (internal/finding): status
// gives errors and warnings.
type (
	Severity = finding.Severity
	Finding  = finding.Finding
)

const (
	Error   = finding.Error
	Warning = finding.Warning
)

// Report is the status of the archive and every source account.
type Report struct {
	SchemaVersion int        `json:"schemaVersion"`
	Healthy       bool       `json:"healthy"`
	CheckedAt     time.Time  `json:"checkedAt"`
	Since         time.Time  `json:"since"` // the archive must hold every log file and digest from here on
	Archive       Archive    `json:"archive"`
	Accounts      []*Account `json:"accounts"`
	Findings      []*Finding `json:"findings"`
	// Cost is the archive's monthly cost at the last 24 hours' volume.
	Cost cost.Estimate `json:"cost"`
	// Alerts is where failures go; left out when the config has no alerts.
	Alerts *Alerts `json:"alerts,omitempty"`
	// Watch is the path of tampering calls; left out when the config has no watch.
	Watch *Watch `json:"watch,omitempty"`
}

// Archive is the state of the archive bucket.
type Archive struct {
	Account             string `json:"account"`
	Bucket              string `json:"bucket"`
	Region              string `json:"region"`
	ObjectLock          bool   `json:"objectLock"`
	Retention           string `json:"retention"` // "GOVERNANCE 400 days", or "" for none
	Versioning          string `json:"versioning"`
	PublicAccessBlocked bool   `json:"publicAccessBlocked"`
	TLSDeny             bool   `json:"tlsDeny"`
	PolicyBytes         int    `json:"policyBytes"`
	AccountsThatFit     int    `json:"accountsThatStillFit"`
}

// Account is the state of one source account.
type Account struct {
	Account           string         `json:"account"`
	Region            string         `json:"region"`
	Trail             string         `json:"trail"`
	Bucket            string         `json:"bucket"`
	KeyPrefix         string         `json:"keyPrefix"`
	Logging           bool           `json:"logging"`
	LatestDelivery    *time.Time     `json:"latestDelivery"`
	DeliveryError     string         `json:"latestDeliveryError"`
	LogFileValidation bool           `json:"logFileValidation"`
	LatestDigest      *time.Time     `json:"latestDigestDelivery"`
	ReplicationRule   bool           `json:"replicationRule"`
	ReplicationAllows bool           `json:"replicationAllowed"`
	NewestSourceLog   *time.Time     `json:"newestSourceLog"`
	NewestArchiveLog  *time.Time     `json:"newestArchiveLog"`
	LagSeconds        *int64         `json:"lagSeconds"`
	Recent            map[string]int `json:"recentReplicationStatus"` // COMPLETED, PENDING, FAILED, NONE
	LastDay           cost.Day       `json:"lastDay"`                 // log files delivered in the 24 hours before checkedAt
	SourceObjects     int            `json:"sourceObjects"`           // log files and digests in the trail bucket since the window's start
	Missing           int            `json:"missingFromArchive"`      // of those, not in the archive (older than 15 minutes)
	InFlight          int            `json:"inFlight"`                // not in the archive yet, younger than 15 minutes
	Foreign           int            `json:"foreignInArchive"`        // in the archive under its folders, not in its bucket
	ShortRetention    int            `json:"shortRetention"`          // of the replicas looked at, locked for less than the archive's default
	AlertsWired       bool           `json:"alertsWired"`             // its failures reach a topic (false when alerts are off)
	WatchWired        bool           `json:"watchWired"`              // its tampering calls reach the archive's bus (false when watch is off)
	Problems          int            `json:"problems"`
	digestRegions     int            // regions whose hourly digests replicate
}

// Options narrow a status check.
type Options struct {
	Accounts []string
	Parallel int
	// Recent is how many of the newest log files per account get a HeadObject.
	Recent int
	Now    time.Time
	// Since starts the window in which the archive must hold every log file
	// and digest of the sources (default: 7 days before Now).
	Since time.Time
}

// Check reads the archive and the sources and reports their status.
func Check(ctx context.Context, e *setup.Env, opts Options) (*Report, error) {
	c := e.Config
	if opts.Now.IsZero() {
		opts.Now = time.Now().UTC()
	}
	if opts.Recent <= 0 {
		opts.Recent = 10
	}
	if opts.Since.IsZero() {
		opts.Since = opts.Now.AddDate(0, 0, -7)
	}
	r := &Report{SchemaVersion: SchemaVersion, CheckedAt: opts.Now, Since: opts.Since, Findings: []*Finding{}, Accounts: []*Account{}}
	st, err := setup.ObserveArchive(ctx, c, e.Archive)
	if err != nil {
		return nil, err
	}
	ck := &checker{c: c, e: e, opts: opts, report: r, archive: st, states: map[string]*setup.SourceState{}}
	ck.checkArchive()
	var sources []config.Source
	for _, s := range c.Sources {
		if len(opts.Accounts) == 0 || contains(opts.Accounts, s.AccountID) {
			sources = append(sources, s)
		}
	}
	r.Accounts = make([]*Account, len(sources))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, opts.Parallel))
	errs := make([]error, len(sources))
	for i, s := range sources {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.Accounts[i], errs[i] = ck.checkSource(ctx, s)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if err := ck.checkAlerts(ctx); err != nil {
		return nil, err
	}
	if err := ck.checkWatch(ctx); err != nil {
		return nil, err
	}
	ck.checkDrift(ctx)
	ck.checkAthena()
	var volumes []cost.Source
	for _, a := range r.Accounts {
		volumes = append(volumes, cost.Source{Account: a.Account, Region: a.Region, Day: a.LastDay, DigestRegions: a.digestRegions})
	}
	r.Cost = cost.Load().Make(cost.Input{ArchiveRegion: c.Archive.Region, Class: c.Archive.StorageClass, RTC: c.Replication.TimeControl, Sources: volumes, Watch: c.Watch.Enabled})
	sort.SliceStable(r.Findings, func(i, j int) bool {
		if a, b := r.Findings[i].Severity.Rank(), r.Findings[j].Severity.Rank(); a != b {
			return a > b
		}
		return r.Findings[i].Account < r.Findings[j].Account
	})
	r.Healthy = finding.Failures(r.Findings) == 0
	return r, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type checker struct {
	c       *config.Config
	e       *setup.Env
	opts    Options
	report  *Report
	archive *setup.ArchiveState
	mu      sync.Mutex
	states  map[string]*setup.SourceState // observed sources, for drift
}

func (ck *checker) add(a *Account, sev Severity, code, account, fix, format string, args ...any) {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	ck.report.Findings = append(ck.report.Findings, &Finding{Severity: sev, Code: code, Account: account, Message: fmt.Sprintf(format, args...), Fix: fix})
	if a != nil {
		a.Problems++
	}
}

const applyFix = "trailkeeper apply"

// checkDrift reports, per account, every change plan would make: what status
// checks one by one (a weakened retention, a widened role policy, an edited
// rule, a missing grant) and anything else that differs from the config.
func (ck *checker) checkDrift(ctx context.Context) {
	sources := make([]*setup.SourceState, len(ck.c.Sources))
	for i, s := range ck.c.Sources {
		sources[i] = ck.states[s.AccountID]
	}
	p, err := setup.PlanFrom(ctx, ck.e, ck.archive, sources, setup.Options{NoListing: true, Drift: true})
	if err != nil {
		var conflict *setup.Conflict
		if errors.As(err, &conflict) {
			ck.add(nil, Error, "drift", conflict.Account, conflict.Hint, "plan cannot reach the config: %s", conflict.Msg)
		}
		return
	}
	changes := map[string][]string{}
	var order []string
	for _, step := range p.Steps {
		if changes[step.Account] == nil {
			order = append(order, step.Account)
		}
		changes[step.Account] = append(changes[step.Account], step.Resource+": "+step.Summary)
	}
	for _, acct := range order {
		ck.add(ck.account(acct), Error, "drift", acct, applyFix+" (trailkeeper plan shows the difference)",
			"apply would change %s: %s", plural(len(changes[acct]), "thing"), strings.Join(changes[acct], "; "))
	}
}

// account is the report's entry of a source account, nil for the archive.
func (ck *checker) account(id string) *Account {
	for _, a := range ck.report.Accounts {
		if a != nil && a.Account == id {
			return a
		}
	}
	return nil
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func (ck *checker) checkArchive() {
	c, st := ck.c, ck.archive
	a := &ck.report.Archive
	*a = Archive{Account: c.Archive.AccountID, Bucket: c.Archive.Bucket, Region: c.Archive.Region, Versioning: st.Versioning, ObjectLock: st.ObjectLock}
	acct := c.Archive.AccountID
	if !st.Exists {
		ck.add(nil, Error, "archive-missing", acct, applyFix, "archive bucket %s does not exist", c.Archive.Bucket)
		return
	}
	if st.Retention != nil {
		a.Retention = st.Retention.String()
	}
	if pab := st.PAB; pab != nil {
		a.PublicAccessBlocked = aws.ToBool(pab.BlockPublicAcls) && aws.ToBool(pab.IgnorePublicAcls) && aws.ToBool(pab.BlockPublicPolicy) && aws.ToBool(pab.RestrictPublicBuckets)
	}
	if st.Policy != nil {
		a.TLSDeny = st.Policy.Statement(setup.SidDenyInsecure) != nil
		a.PolicyBytes = setup.StoredSize(st.Policy)
	}
	a.AccountsThatFit = setup.AccountsThatFit(st.Policy) // no policy yet: all the room
	switch {
	case !st.ObjectLock:
		ck.add(nil, Error, "archive-not-locked", acct, "create the archive with Object Lock, or enable it: "+applyFix, "archive bucket %s has no Object Lock: logs in it can be deleted", c.Archive.Bucket)
	case st.Retention == nil:
		ck.add(nil, Error, "archive-no-retention", acct, applyFix, "archive bucket %s has Object Lock but no default retention: nothing is locked", c.Archive.Bucket)
	}
	if st.Versioning != "Enabled" {
		ck.add(nil, Error, "archive-unversioned", acct, applyFix, "archive bucket %s is not versioned: replication into it fails", c.Archive.Bucket)
	}
	if !a.PublicAccessBlocked {
		ck.add(nil, Warning, "archive-public-access", acct, applyFix, "archive bucket %s does not block all public access", c.Archive.Bucket)
	}
	if !a.TLSDeny {
		ck.add(nil, Warning, "archive-no-tls-deny", acct, applyFix, "the archive policy does not deny requests without TLS")
	}
	if st.Policy != nil {
		for _, s := range st.Policy.Statements {
			if s.Principal == nil {
				continue
			}
			for _, p := range s.Principal.AWS {
				if strings.HasPrefix(p, "AROA") {
					ck.add(nil, Warning, "archive-grant-deleted-role", acct, "grant the account instead of the role ARN: "+applyFix,
						"archive policy statement %q names %s, the unique id of a role that was deleted: a role re-created with the same name does not get this grant back", s.Sid, p)
				}
			}
		}
	}
	if a.AccountsThatFit < 50 {
		ck.add(nil, Warning, "archive-policy-full", acct, "remove statements you no longer need, or split the sources over two archives",
			"the archive policy uses %d of %d bytes: about %d more accounts fit", a.PolicyBytes, setup.PolicyLimit, a.AccountsThatFit)
	}
}

func (ck *checker) checkSource(ctx context.Context, src config.Source) (*Account, error) {
	cl := ck.e.Sources[src.AccountID]
	st, err := setup.ObserveSource(ctx, ck.c, src, cl)
	if err != nil {
		if conflict, ok := err.(*setup.Conflict); ok {
			a := &Account{Account: src.AccountID, Region: src.Region, Recent: map[string]int{}}
			ck.add(a, Error, "trail-not-found", src.AccountID, conflict.Hint, "%s", conflict.Msg)
			return a, nil
		}
		return nil, err
	}
	ck.mu.Lock()
	ck.states[src.AccountID] = st
	ck.mu.Unlock()
	t := st.Trail
	a := &Account{Account: src.AccountID, Region: t.HomeRegion, Trail: t.Name, Bucket: t.Bucket, KeyPrefix: t.Prefix, Logging: t.Logging,
		DeliveryError: t.DeliveryError, LogFileValidation: t.Validation, Recent: map[string]int{}}
	a.LatestDelivery, a.LatestDigest = timePtr(t.LatestDelivery), timePtr(t.LatestDigest)
	acct := src.AccountID
	if !t.Logging {
		ck.add(a, Error, "trail-not-logging", acct, "aws cloudtrail start-logging --name "+t.ARN, "trail %s is not logging: nothing is written, nothing reaches the archive", t.Name)
	}
	if t.DeliveryError != "" {
		ck.add(a, Error, "trail-delivery-error", acct, fmt.Sprintf("restore the statements that let cloudtrail.amazonaws.com write to bucket %s (s3:GetBucketAcl, s3:PutObject on %s%s/*)", t.Bucket, t.LogPrefix(), acct),
			"CloudTrail cannot deliver to bucket %s: %s", t.Bucket, t.DeliveryError)
	}
	if !t.Validation {
		ck.add(a, Error, "log-file-validation-off", acct, applyFix, "trail %s has log file validation off: no digests, so verify cannot prove the archive complete", t.Name)
	} else if t.DigestDeliveryError != "" {
		ck.add(a, Error, "digest-delivery-error", acct, "the same bucket policy fix as for log files", "CloudTrail cannot deliver digest files: %s", t.DigestDeliveryError)
	}
	// A trail may say it logs and still deliver nothing: CloudTrail writes a
	// digest every hour, activity or not, so a silence longer than the watch
	// window is a stop nobody announced.
	if w := ck.c.Watch; w.Enabled && t.Logging && t.Validation && !t.LatestDigest.IsZero() && ck.opts.Now.Sub(t.LatestDigest) > w.DigestsWithin {
		ck.add(a, Error, "digests-overdue", acct, "aws cloudtrail get-trail-status --name "+t.ARN+" says why; trailkeeper status names the rest",
			"trail %s has delivered no digest since %s, more than %s (watch.digests_within): it logs nothing that reaches its bucket", t.Name,
			t.LatestDigest.UTC().Format(time.RFC3339), w.DigestsWithin)
	}
	if st.Versioning != "Enabled" {
		ck.add(a, Error, "source-unversioned", acct, applyFix, "bucket %s is not versioned: S3 does not replicate from it", t.Bucket)
	}
	rule := ck.checkRule(a, st)
	if rule != nil {
		ck.checkPermissions(ctx, a, st, cl)
	}
	c, logs, err := ck.readTrail(ctx, a, st, cl)
	if err != nil {
		return nil, err
	}
	if err := ck.checkData(ctx, a, st, cl, logs); err != nil {
		return nil, err
	}
	if err := ck.checkComplete(ctx, a, st, cl, c); err != nil {
		return nil, err
	}
	if err := ck.checkRetention(ctx, a, st, c.Sample); err != nil {
		return nil, err
	}
	return a, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// checkRule finds the rule replicating the trail's logs into the archive and
// checks it as S3 would apply it.
func (ck *checker) checkRule(a *Account, st *setup.SourceState) *s3types.ReplicationRule {
	c, t, acct := ck.c, st.Trail, st.Config.AccountID
	if st.Replication == nil {
		ck.add(a, Error, "no-replication", acct, applyFix, "bucket %s has no replication configuration: no log reaches the archive", t.Bucket)
		return nil
	}
	var rule *s3types.ReplicationRule
	for i := range st.Replication.Rules {
		r := &st.Replication.Rules[i]
		if r.Destination != nil && aws.ToString(r.Destination.Bucket) == "arn:aws:s3:::"+c.Archive.Bucket {
			if rule == nil || aws.ToString(r.ID) == setup.RuleID {
				rule = r
			}
		}
	}
	if rule == nil {
		ck.add(a, Error, "no-replication-rule", acct, applyFix, "no replication rule of bucket %s writes to the archive %s", t.Bucket, c.Archive.Bucket)
		return nil
	}
	a.ReplicationRule = true
	prefix := ""
	switch {
	case rule.Filter != nil && rule.Filter.Prefix != nil:
		prefix = *rule.Filter.Prefix
	case rule.Filter != nil && rule.Filter.And != nil && rule.Filter.And.Prefix != nil:
		prefix = *rule.Filter.And.Prefix
	case rule.Prefix != nil: // a rule of the older schema, still in use
		prefix = *rule.Prefix
	}
	if rule.Status != s3types.ReplicationRuleStatusEnabled {
		ck.add(a, Error, "replication-rule-disabled", acct, applyFix, "replication rule %s is disabled", aws.ToString(rule.ID))
	}
	if !strings.HasPrefix(t.LogPrefix(), prefix) {
		ck.add(a, Error, "rule-prefix-mismatch", acct, applyFix, "rule %s replicates keys under %q, but trail %s writes under %q: nothing is replicated",
			aws.ToString(rule.ID), prefix, t.Name, t.LogPrefix())
	}
	if t.KMSKey != "" {
		kms := rule.SourceSelectionCriteria != nil && rule.SourceSelectionCriteria.SseKmsEncryptedObjects != nil &&
			rule.SourceSelectionCriteria.SseKmsEncryptedObjects.Status == s3types.SseKmsEncryptedObjectsStatusEnabled
		if !kms || rule.Destination.EncryptionConfiguration == nil || aws.ToString(rule.Destination.EncryptionConfiguration.ReplicaKmsKeyID) == "" {
			ck.add(a, Error, "kms-not-replicated", acct, "set replication.replica_kms_key in the config, then: "+applyFix,
				"trail %s encrypts logs with KMS, but rule %s does not replicate SSE-KMS objects (SseKmsEncryptedObjects and ReplicaKmsKeyID): S3 skips every log", t.Name, aws.ToString(rule.ID))
		}
	}
	rtc := rule.Destination.ReplicationTime != nil && rule.Destination.ReplicationTime.Status == s3types.ReplicationTimeStatusEnabled
	if rtc != c.Replication.TimeControl {
		ck.add(a, Warning, "rtc-differs", acct, applyFix, "Replication Time Control is %v on rule %s, the config says %v", rtc, aws.ToString(rule.ID), c.Replication.TimeControl)
	}
	return rule
}

// checkPermissions replays, offline with the policy evaluator, what S3 does to
// replicate an object of this trail: assume the role, read the source version,
// write the replica into the archive under the archive's policy.
func (ck *checker) checkPermissions(ctx context.Context, a *Account, st *setup.SourceState, cl *awsapi.Clients) {
	c, t, acct := ck.c, st.Trail, st.Config.AccountID
	roleARN := aws.ToString(st.Replication.Role)
	name := roleARN[strings.LastIndex(roleARN, "/")+1:]
	// Discovery has read the rule's role already: trailkeeper's, or the one the
	// bucket's configuration names.
	role := st.Role
	if name != ck.c.Replication.RoleName {
		role = st.CurrentRole
	}
	if role == nil {
		ck.add(a, Error, "role-missing", acct, applyFix, "replication role %s does not exist", name)
		return
	}
	if role.Trust.Evaluate(policy.Request{Caller: policy.Caller{Service: "s3.amazonaws.com"}, Action: "sts:AssumeRole", Resource: roleARN}).Decision != policy.Allowed {
		ck.add(a, Error, "role-trust", acct, applyFix, "role %s does not let s3.amazonaws.com assume it", name)
		return
	}
	docs, err := inlinePolicies(ctx, cl, role)
	if err != nil {
		ck.add(a, Warning, "role-unreadable", acct, "grant iam:ListRolePolicies and iam:GetRolePolicy to the status credentials", "cannot read the policies of role %s: %v", name, err)
		return
	}
	sample := t.LogPrefix() + acct + "/CloudTrail/" + t.HomeRegion + "/sample.json.gz"
	caller := policy.Caller{Account: acct, ARN: "arn:aws:iam::" + acct + ":role/" + name, UniqueID: role.ID}
	ctxKeys := map[string][]string{"aws:SecureTransport": {"true"}, "aws:PrincipalArn": {caller.ARN}, "aws:PrincipalAccount": {acct}}
	need := []struct{ action, resource string }{
		{"s3:GetObjectVersionForReplication", "arn:aws:s3:::" + t.Bucket + "/" + sample},
		{"s3:ReplicateObject", "arn:aws:s3:::" + c.Archive.Bucket + "/" + sample},
	}
	if t.KMSKey != "" && c.Replication.ReplicaKMSKey != "" {
		need = append(need, struct{ action, resource string }{"kms:Decrypt", t.KMSKey}, struct{ action, resource string }{"kms:Encrypt", c.Replication.ReplicaKMSKey})
	}
	ok := true
	for _, n := range need {
		d := policy.ImplicitDeny
		for _, doc := range docs {
			switch doc.Evaluate(policy.Request{Caller: caller, Action: n.action, Resource: n.resource, Context: ctxKeys}).Decision {
			case policy.ExplicitDeny:
				d = policy.ExplicitDeny
			case policy.Allowed:
				if d != policy.ExplicitDeny {
					d = policy.Allowed
				}
			}
		}
		if d != policy.Allowed {
			ok = false
			ck.add(a, Error, "role-permission", acct, applyFix, "role %s is not allowed %s on %s (%s): replication fails with %s",
				name, n.action, n.resource, d, reasonFor(n.action))
		}
	}
	// The archive policy must allow the role: cross-account, both sides must.
	req := policy.Request{Caller: caller, Action: "s3:ReplicateObject", Resource: "arn:aws:s3:::" + c.Archive.Bucket + "/" + sample, Context: ctxKeys}
	res := policy.Result{Decision: policy.ImplicitDeny}
	if ck.archive.Policy != nil {
		res = ck.archive.Policy.Evaluate(req)
	}
	switch res.Decision {
	case policy.ExplicitDeny:
		ok = false
		ck.add(a, Error, "archive-policy-denies", acct, "remove or narrow that statement of the archive policy",
			"archive policy statement %q denies s3:ReplicateObject to role %s: replication fails with DstPutObjectNotPermitted", res.Sid, name)
	case policy.ImplicitDeny:
		ok = false
		ck.add(a, Error, "archive-policy-missing-grant", acct, applyFix,
			"the archive policy grants account %s (role %s) no s3:ReplicateObject: replication fails with DstPutObjectNotPermitted", acct, name)
	}
	a.ReplicationAllows = ok
}

func reasonFor(action string) string {
	switch action {
	case "s3:GetObjectVersionForReplication":
		return "SrcGetObjectNotPermitted"
	case "kms:Decrypt", "kms:Encrypt":
		return "a KMS failure"
	}
	return "DstPutObjectNotPermitted"
}

func decode(doc string, kind policy.Kind) (*policy.Document, error) {
	if d, err := url.QueryUnescape(doc); err == nil {
		doc = d
	}
	return policy.Parse([]byte(doc), kind)
}

// inlinePolicies reads every inline policy of the role, reusing trailkeeper's
// own, which discovery has read already.
func inlinePolicies(ctx context.Context, cl *awsapi.Clients, role *setup.Role) ([]*policy.Document, error) {
	var names []string
	pages := iam.NewListRolePoliciesPaginator(cl.IAM, &iam.ListRolePoliciesInput{RoleName: &role.Name})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		names = append(names, page.PolicyNames...)
	}
	var out []*policy.Document
	for _, name := range names {
		if name == setup.RolePolicyName && role.Policy != nil {
			out = append(out, role.Policy)
			continue
		}
		p, err := cl.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: &role.Name, PolicyName: &name})
		if err != nil {
			return nil, err
		}
		d, err := decode(aws.ToString(p.PolicyDocument), policy.Identity)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", name, err)
		}
		out = append(out, d)
	}
	return out, nil
}
