package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/cost"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Phase orders the steps so that replication never breaks while they run:
// the archive first, then grants for new roles, then the sources in parallel,
// and only then what is taken away (old grants, the seed's statements).
type Phase int

const (
	PhaseArchive Phase = iota
	PhaseGrant
	PhaseSources
	PhaseRevoke
	PhaseRetention // longer locks on replicas: never in the way of replication
	phases         // how many; Apply runs each in turn
)

func (p Phase) String() string {
	if p >= 0 && p < phases {
		return [...]string{"archive", "grant", "sources", "revoke", "retention"}[p]
	}
	return fmt.Sprintf("phase %d", int(p))
}

// Action is what a step does to its resource.
type Action string

const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

func (a Action) String() string { return string(a) }

// Step is one change: what it is for a person, and its write as data (Op).
type Step struct {
	Account  string `json:"account"`
	Phase    Phase  `json:"phase"`
	Resource string `json:"resource"`
	Action   Action `json:"action"`
	Summary  string `json:"summary"`
	Diff     string `json:"diff,omitempty"`
	// Observed is the whole document the step was planned against, where the
	// diff shows only the lines around the change: a saved plan's
	// fingerprint covers it, so that an edit anywhere in it makes the plan stale.
	Observed string `json:"-"`
	// Op is the write, as data; Apply runs it and reads it back.
	Op   Op   `json:"op"`
	Done bool `json:"done,omitempty"` // set by Apply once written and read back
}

// Plan is what apply would change, and what the user should know.
type Plan struct {
	Steps []*Step  `json:"steps"`
	Notes []string `json:"notes"`
	// Archive policy size after apply, and how many more accounts would fit.
	PolicyBytes int `json:"archivePolicyBytes"`
	AccountsFit int `json:"accountsThatStillFit"`
	// Accounts maps each account to what it is in this plan (archive, source).
	Accounts map[string]string `json:"accounts"`
	// Cost is the archive's monthly cost at the last 24 hours' volume; left
	// out when the plan changes nothing (it then lists no logs).
	Cost *cost.Estimate `json:"cost,omitempty"`
	// policyWrites are the archive policies the plan would write, for
	// IAM Access Analyzer to look at before anything is.
	policyWrites []*policy.Document
	// Waiting hears, once per wait, that a step waits for another apply
	// (its lease on the archive policy); the CLI prints it on stderr.
	Waiting func(msg string) `json:"-"`
	mu      sync.Mutex       // Notes grow while steps run in parallel
}

func (p *Plan) waiting(msg string) {
	if p.Waiting != nil {
		p.Waiting(msg)
	}
}

// Options change what a plan includes.
type Options struct {
	// Remove takes these source accounts out: their grant, replication rule and
	// role. Logs are never deleted.
	Remove []string
	// Prune takes away grants of accounts that are no longer in the config.
	Prune bool
	// NoListing leaves out what needs the trail buckets listed: the cost
	// estimate and the count of logs older than replication.
	NoListing bool
	// AllowCompliance permits COMPLIANCE retention, which nobody can shorten.
	AllowCompliance bool
	// Parallel bounds how many accounts are read or changed at once.
	Parallel int
	// Drift plans for status: the watch function's code differing from the
	// binary that runs status is a version of trailkeeper, not drift (and
	// status need not hash its binary each run).
	Drift bool
	// ExtendRetention reads the retention of every replica and extends those
	// shorter than the archive's default (a source with Object Lock, or a
	// default that was lowered for a while, leaves them short).
	ExtendRetention bool
	// BatchAbove is how many short replicas ExtendRetention extends one by
	// one; above it, S3 Batch Operations jobs do (the CLI's default is
	// DefaultBatchAbove).
	BatchAbove int
	// Poll is how often a job is asked about at most while apply waits for it
	// (0: 15 seconds).
	Poll time.Duration
}

func (o Options) poll() time.Duration {
	if o.Poll <= 0 {
		return 15 * time.Second
	}
	return o.Poll
}

// Errors is several independent failures, one per account.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

func (e Errors) Unwrap() []error { return e }

func joinErrors(errs []error) error {
	var out Errors
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	switch len(out) {
	case 0:
		return nil
	case 1:
		return out[0]
	}
	return out
}

// Build observes every account and plans the steps from what is to what the
// config says should be.
func Build(ctx context.Context, e *Env, opts Options) (*Plan, error) {
	c := e.Config
	var archive *ArchiveState
	var sources = make([]*SourceState, len(c.Sources))
	err := forEach(ctx, opts.Parallel, len(c.Sources)+1, func(ctx context.Context, i int) error {
		var err error
		if i == 0 {
			archive, err = ObserveArchive(ctx, c, e.Archive)
			return err
		}
		src := c.Sources[i-1]
		cl := e.Sources[src.AccountID]
		if cl == nil {
			return nil // not connected: not part of this run
		}
		sources[i-1], err = ObserveSource(ctx, c, src, cl)
		return err
	})
	if err != nil {
		return nil, err
	}
	if archive.Topics, err = ObserveTopics(ctx, c, e.Archive, sources); err != nil {
		return nil, err
	}
	if archive.Catalog, err = observeCatalog(ctx, c, e.Archive, sources); err != nil {
		return nil, err
	}
	if archive.Watch, err = ObserveWatch(ctx, c, e.Archive); err != nil {
		return nil, err
	}
	archive.Inventory = &InventoryState{}
	if archive.Exists {
		if archive.Inventory, err = observeInventory(ctx, c, e.Archive); err != nil {
			return nil, err
		}
	}
	p, err := PlanFrom(ctx, e, archive, sources, opts)
	if err != nil {
		return nil, err
	}
	return p, p.askAccessAnalyzer(ctx, e)
}

// PlanFrom plans from states already observed: status reports as drift what
// plan would change without reading every account twice. sources follows
// e.Config.Sources, nil where an account was not observed.
func PlanFrom(ctx context.Context, e *Env, archive *ArchiveState, sources []*SourceState, opts Options) (*Plan, error) {
	c := e.Config
	p := &Plan{Accounts: map[string]string{c.Archive.AccountID: "archive"}, Steps: []*Step{}, Notes: []string{}} // JSON arrays are never null
	removing := map[string]bool{}
	for _, a := range opts.Remove {
		removing[a] = true
	}
	if err := p.planArchive(e, archive, opts); err != nil {
		return nil, err
	}
	if c.Athena.Enabled && archive.Catalog == nil {
		var err error
		if archive.Catalog, err = observeCatalog(ctx, c, e.Archive, sources); err != nil {
			return nil, err
		}
	}
	p.planCatalog(e, archive.Catalog, sources)
	g := grantChange{}
	for _, st := range sources {
		if st == nil {
			continue
		}
		acct := st.Config.AccountID
		p.Accounts[acct] = "source"
		cl := e.Sources[acct]
		if removing[acct] {
			p.planRemoval(c, cl, st, &g)
			continue
		}
		if err := p.planSource(c, cl, st, &g); err != nil {
			return nil, err
		}
	}
	if err := p.planPolicy(e, archive, sources, removing, opts, g); err != nil {
		return nil, err
	}
	if err := p.planAlerts(e, archive.Topics, sources, removing); err != nil {
		return nil, err
	}
	if archive.Watch == nil {
		var err error
		if archive.Watch, err = ObserveWatch(ctx, c, e.Archive); err != nil {
			return nil, err
		}
	}
	if err := p.planWatch(e, archive.Watch, archive.Topics, sources, removing, opts); err != nil {
		return nil, err
	}
	if err := p.planRetention(ctx, e, sources, removing, opts); err != nil {
		return nil, err
	}
	if !opts.NoListing {
		p.estimate(ctx, e, sources, removing, opts)
		p.olderThanReplication(ctx, e, sources, removing, opts)
	}
	sort.SliceStable(p.Steps, func(i, j int) bool { return p.Steps[i].Phase < p.Steps[j].Phase })
	return p, nil
}

// olderThanReplication counts, for each source that gets trailkeeper's rule
// now, the log files and digests of the last 7 days that replication will
// never copy, because they were written before the rule: backfill does.
func (p *Plan) olderThanReplication(ctx context.Context, e *Env, sources []*SourceState, removing map[string]bool, opts Options) {
	now := time.Now().UTC()
	forEach(ctx, opts.Parallel, len(sources), func(ctx context.Context, i int) error {
		st := sources[i]
		if st == nil || removing[st.Config.AccountID] || st.HasRule() {
			return nil
		}
		acct := st.Config.AccountID
		c, err := Compare(ctx, e.Sources[acct], e.Archive, e.Config.Archive.Bucket, st.Trail, acct, now.AddDate(0, 0, -7), now, nil)
		if err != nil || len(c.All()) == 0 {
			return nil // a new archive, or nothing delivered yet: nothing to say
		}
		p.note("account %s: %d log files and digests of the last 7 days (and any older) were written before replication and will not reach the archive: run trailkeeper backfill --account %s after apply",
			acct, len(c.All()), acct)
		return nil
	})
}

// estimate prices the archive from the log files of the last 24 hours, when
// the plan changes something or the config's storage class bills small files
// up (so that the warning has figures); a plan without changes lists nothing.
func (p *Plan) estimate(ctx context.Context, e *Env, sources []*SourceState, removing map[string]bool, opts Options) {
	c, prices := e.Config, cost.Load()
	billsUp := prices.MinimumBytes[c.Archive.StorageClass] > 0
	if len(p.Steps) == 0 && !billsUp {
		return
	}
	now := time.Now().UTC()
	days := make([]*cost.Source, len(sources))
	forEach(ctx, opts.Parallel, len(sources), func(ctx context.Context, i int) error {
		st := sources[i]
		if st == nil || removing[st.Config.AccountID] {
			return nil
		}
		acct := st.Config.AccountID
		src, err := LastDay(ctx, e.Sources[acct], st.Trail, acct, now)
		if err != nil {
			p.note("account %s: the cost estimate leaves it out: %v", acct, err)
			return nil
		}
		days[i] = &src
		return nil
	})
	var observed []cost.Source
	for _, d := range days {
		if d != nil {
			observed = append(observed, *d)
		}
	}
	est := prices.Make(cost.Input{ArchiveRegion: c.Archive.Region, Class: c.Archive.StorageClass, RTC: c.Replication.TimeControl, Sources: observed, Watch: c.Watch.Enabled})
	p.Cost = &est
	if !billsUp {
		return
	}
	if r := est.Costlier(); r > 0 {
		p.note("archive.storage_class %s bills every log file as at least 128 KB: for the %s log files of the last 24 hours, storage costs %.0fx STANDARD's (%s against %s a month for each month of logs kept). storage_class: STANDARD (the default) is cheaper",
			c.Archive.StorageClass, cost.Thousands(est.ObjectsPerMonth/30), r, cost.Dollars(est.Storage), cost.Dollars(est.StorageByClass["STANDARD"]))
	} else {
		p.note("archive.storage_class %s bills every log file as at least 128 KB, and CloudTrail's are mostly a few KB: storage_class: STANDARD (the default) is cheaper", c.Archive.StorageClass)
	}
}

// grantChange collects what sources need from the archive policy.
type grantChange struct {
	roles   []string // role ARNs other than the shared pattern (borrowed roles)
	adopted []string // accounts moving off the seed's S3ReplicationRole
}

func (p *Plan) add(s *Step) { p.Steps = append(p.Steps, s) }

func (p *Plan) note(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Notes = append(p.Notes, fmt.Sprintf(format, a...))
}

func lockDays(o config.ObjectLock) int { return o.Days + 365*o.Years }

func (p *Plan) planArchive(e *Env, st *ArchiveState, opts Options) error {
	c := e.Config
	a := c.Archive.AccountID
	want := c.Archive.ObjectLock
	if want.Mode == "COMPLIANCE" && !opts.AllowCompliance && (st.Retention == nil || st.Retention.Mode != "COMPLIANCE") {
		return &Conflict{Account: a, Msg: "the config asks for COMPLIANCE retention: nobody, root included, can shorten or remove it for " + want.String(),
			Hint: "run apply with --allow-compliance if that is intended, or use mode: GOVERNANCE"}
	}
	if cur := st.Retention; cur != nil {
		weaker := (cur.Mode == "COMPLIANCE" && want.Mode != "COMPLIANCE") || (cur.Mode == want.Mode && lockDays(want) < lockDays(*cur))
		if weaker {
			return &Conflict{Account: a, Msg: fmt.Sprintf("the archive keeps logs for %s; the config asks for %s, which would weaken Object Lock", cur, want),
				Hint: "trailkeeper never weakens Object Lock; set archive.object_lock to at least " + cur.String()}
		}
	}
	if !st.Exists {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "bucket " + c.Archive.Bucket, Action: "create",
			Summary: fmt.Sprintf("create bucket %s in %s with Object Lock (versioning on)", c.Archive.Bucket, c.Archive.Region), Op: opOf("archive.createBucket", none{})})
	} else if st.Versioning != "Enabled" {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "bucket " + c.Archive.Bucket, Action: "update",
			Summary: "enable versioning (was " + orOff(st.Versioning) + ")", Op: opOf("archive.enableVersioning", none{})})
	}
	if st.Retention == nil || *st.Retention != want || !st.ObjectLock {
		from := "none"
		if st.Retention != nil {
			from = st.Retention.String()
		}
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "object lock", Action: "update",
			Summary: fmt.Sprintf("default retention %s (was %s)", want, from), Op: opOf("archive.setRetention", none{})})
	}
	if pab := st.PAB; pab == nil || !aws.ToBool(pab.BlockPublicAcls) || !aws.ToBool(pab.IgnorePublicAcls) || !aws.ToBool(pab.BlockPublicPolicy) || !aws.ToBool(pab.RestrictPublicBuckets) {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "public access block", Action: "update", Summary: "block all public access", Op: opOf("archive.blockPublic", none{})})
	}
	if st.Ownership != string(s3types.ObjectOwnershipBucketOwnerEnforced) {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "ownership controls", Action: "update",
			Summary: "bucket owner enforced: replicas belong to the archive account, ACLs off (was " + orOff(st.Ownership) + ")", Op: opOf("archive.enforceOwner", none{})})
	}
	return p.planInventory(c, st.Inventory)
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// planSource plans one source account: versioning, log file validation, the
// role and the replication rule. The role is trailkeeper's own, or, when rules
// of another tool share the bucket's single replication role, that role with
// trailkeeper's inline policy added.
func (p *Plan) planSource(c *config.Config, cl *awsapi.Clients, st *SourceState, g *grantChange) error {
	acct := st.Config.AccountID
	t := st.Trail
	if t.KMSKey != "" && c.Replication.ReplicaKMSKey == "" {
		return &Conflict{Account: acct, Msg: fmt.Sprintf("trail %s encrypts logs with KMS key %s; S3 replicates SSE-KMS objects only with a replica key", t.Name, t.KMSKey),
			Hint: "set replication.replica_kms_key to a KMS key ARN of account " + c.Archive.AccountID + " in " + c.Archive.Region + " whose policy lets the source roles encrypt"}
	}
	if st.LockEnabled {
		// Replication from an Object Lock bucket needs the destination locked
		// too and the role allowed s3:GetObjectRetention and
		// s3:GetObjectLegalHold (User Guide, "Using Object Lock with
		// replication"): trailkeeper's archive and role have both.
		p.note("account %s: bucket %s has Object Lock: its logs replicate with their own retention and legal hold (the role may read both; the archive is locked), so a default retention there shorter than the archive's shortens the replicas: status says so, apply --extend-retention lengthens them", acct, t.Bucket)
	}
	if !t.Logging {
		p.note("account %s: trail %s is not logging; nothing reaches the archive until it is started (aws cloudtrail start-logging --name %s)", acct, t.Name, t.ARN)
	}
	if st.Versioning != "Enabled" {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "bucket " + t.Bucket, Action: "update",
			Summary: "enable versioning (was " + orOff(st.Versioning) + "): replication needs it", Op: opOf("source.enableVersioning", bucketArgs{t.Bucket})})
	}
	if !t.Validation {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "trail " + t.Name, Action: "update",
			Summary: "turn on log file validation: CloudTrail then signs hourly digests that verify checks", Op: opOf("source.enableValidation", trailArgs{t})})
	}
	var foreign []s3types.ReplicationRule
	seedRule := false
	if st.Replication != nil {
		for _, r := range st.Replication.Rules {
			switch id := aws.ToString(r.ID); {
			case id == RuleID:
			case id == seedRuleID && st.CurrentRole != nil && st.CurrentRole.Name == seedRoleName:
				seedRule = true
			default:
				foreign = append(foreign, r)
			}
		}
	}
	roleName := c.Replication.RoleName
	wantPolicy := RolePolicy(c, acct, t)
	if st.CurrentRole != nil && len(foreign) > 0 {
		// The bucket's one replication role serves rules trailkeeper did not write.
		cur := st.CurrentRole
		if cur.Stack != "" {
			return &Conflict{Account: acct, Msg: fmt.Sprintf("bucket %s replicates with role %s (rules %s), which CloudFormation stack %s manages; S3 allows one role per bucket", t.Bucket, cur.Name, ruleIDs(foreign), cur.Stack),
				Hint: "add trailkeeper's permissions to that stack (trailkeeper render DIR writes them), or move those rules to role " + roleName}
		}
		roleName = cur.Name
		g.roles = append(g.roles, cur.ARN)
		p.note("account %s: bucket %s also replicates rules %s with role %s; trailkeeper adds its own inline policy %s to that role and leaves the rest alone", acct, t.Bucket, ruleIDs(foreign), cur.Name, RolePolicyName)
		if !samePolicy(cur.Policy, wantPolicy) {
			p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + cur.Name, Action: verb(cur.Policy == nil),
				Summary: "inline policy " + RolePolicyName + " (least privilege for replication)", Diff: diff(canonicalPolicy(cur.Policy), canonicalPolicy(wantPolicy)),
				Op: opOf("role.putPolicy", roleArgs{Name: cur.Name, Policy: docText(wantPolicy)})})
		}
	} else {
		if st.CurrentRole != nil && seedRule {
			g.adopted = append(g.adopted, acct)
			stack := ""
			if st.CurrentRole.Stack != "" {
				stack = fmt.Sprintf("; it belongs to stack %s, which trailkeeper leaves alone: delete it when you no longer need it (aws cloudformation delete-stack --stack-name %s)", st.CurrentRole.Stack, st.CurrentRole.Stack)
			}
			p.note("account %s: adopting the seed's setup: rule %s and role %s are replaced by rule %s with role %s (no s3:ReplicateDelete, no archive listing)%s",
				acct, seedRuleID, seedRoleName, RuleID, roleName, stack)
		}
		if err := p.planRole(acct, c.Archive.Bucket, st.Role, c.Replication.RoleName, ReplicationTrust(), wantPolicy, "replication role trusted by s3.amazonaws.com"); err != nil {
			return err
		}
	}
	if err := p.planRole(acct, c.Archive.Bucket, st.BatchRole, BatchRoleName, BatchTrust(), BatchRolePolicy(t),
		"role for trailkeeper backfill (S3 Batch Replication), trusted by batchoperations.s3.amazonaws.com"); err != nil {
		return err
	}
	want := desiredReplication(c, st, foreign, RoleARN(acct, roleName))
	if st.Replication == nil || canonical(normalizeReplication(st.Replication)) != canonical(normalizeReplication(want)) {
		cur := ""
		if st.Replication != nil {
			cur = canonical(normalizeReplication(st.Replication))
		}
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "replication of " + t.Bucket, Action: verb(st.Replication == nil),
			Summary: fmt.Sprintf("rule %s: %s -> %s, %s", RuleID, t.LogPrefix(), c.Archive.Bucket, c.Archive.StorageClass),
			Diff:    diff(cur, canonical(normalizeReplication(want))), Observed: cur,
			Op: opOf("source.putReplication", replicateArgs{t, want})})
	}
	return nil
}

// planRole plans one of trailkeeper's roles in a source account: r as it is
// (nil if absent), name, the trust and inline policy it must have, and what
// it is for; bucket is the archive it replicates to.
func (p *Plan) planRole(acct, bucket string, r *Role, name string, trust, want *policy.Document, what string) error {
	if r != nil && r.Stack != "" {
		if !samePolicy(r.Trust, trust) || !samePolicy(r.Policy, want) {
			return &Conflict{Account: acct, Msg: fmt.Sprintf("role %s is managed by CloudFormation stack %s and differs from what trailkeeper needs", name, r.Stack),
				Hint: "update the stack with the template 'trailkeeper render DIR' writes; trailkeeper does not edit stack resources behind CloudFormation's back"}
		}
		return nil
	}
	if r == nil {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + name, Action: "create",
			Summary: what + ", with inline policy " + RolePolicyName, Diff: diff("", canonicalPolicy(want)),
			Op: opOf("role.create", roleArgs{Name: name, Description: "trailkeeper: replicates CloudTrail logs to the archive " + bucket,
				Trust: docText(trust), Policy: docText(want)})})
		return nil
	}
	if !samePolicy(r.Trust, trust) {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + name, Action: "update", Summary: "trust policy: " + what,
			Diff: diff(canonicalPolicy(r.Trust), canonicalPolicy(trust)), Observed: canonicalPolicy(r.Trust), Op: opOf("role.updateTrust", roleArgs{Name: name, Trust: docText(trust)})})
	}
	if !samePolicy(r.Policy, want) {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + name, Action: verb(r.Policy == nil), Summary: "inline policy " + RolePolicyName,
			Diff: diff(canonicalPolicy(r.Policy), canonicalPolicy(want)), Observed: canonicalPolicy(r.Policy), Op: opOf("role.putPolicy", roleArgs{Name: name, Policy: docText(want)})})
	}
	return nil
}

// planOwnRole plans a role only trailkeeper writes, in one phase: created
// when absent, both documents put when either differs (args names it, says
// in which account's part it lives, and describes it).
func (p *Plan) planOwnRole(acct string, phase Phase, r *Role, trust, pol *policy.Document, args roleArgs, what string) {
	args.Trust, args.Policy = docText(trust), docText(pol)
	switch {
	case r == nil:
		p.add(&Step{Account: acct, Phase: phase, Resource: "role " + args.Name, Action: ActionCreate, Summary: what,
			Diff: diff("", canonicalPolicy(pol)), Op: opOf("role.create", args)})
	case !samePolicy(r.Trust, trust) || !samePolicy(r.Policy, pol):
		p.add(&Step{Account: acct, Phase: phase, Resource: "role " + args.Name, Action: ActionUpdate, Summary: "trust and policy as trailkeeper writes them",
			Diff: diff(canonicalPolicy(r.Policy), canonicalPolicy(pol)), Observed: canonicalPolicy(r.Trust) + canonicalPolicy(r.Policy), Op: opOf("role.put", args)})
	}
}

func verb(create bool) Action {
	if create {
		return ActionCreate
	}
	return ActionUpdate
}

func ruleIDs(rules []s3types.ReplicationRule) string {
	var ids []string
	for _, r := range rules {
		ids = append(ids, aws.ToString(r.ID))
	}
	return strings.Join(ids, ", ")
}

// desiredReplication keeps every rule trailkeeper did not write (except the
// seed's, which it replaces) and upserts its own rule by ID, with a priority no
// other rule uses.
func desiredReplication(c *config.Config, st *SourceState, foreign []s3types.ReplicationRule, role string) *s3types.ReplicationConfiguration {
	used := map[int32]bool{}
	for _, r := range foreign {
		used[aws.ToInt32(r.Priority)] = true
	}
	prio := int32(1)
	if st.Replication != nil {
		for _, r := range st.Replication.Rules {
			if aws.ToString(r.ID) == RuleID && !used[aws.ToInt32(r.Priority)] {
				prio = aws.ToInt32(r.Priority)
			}
		}
	}
	for used[prio] {
		prio++
	}
	rules := append([]s3types.ReplicationRule{}, foreign...)
	rules = append(rules, Rule(c, st.Trail, prio))
	return &s3types.ReplicationConfiguration{Role: aws.String(role), Rules: rules}
}

// replicationView is the part of a replication configuration that matters,
// in a form that compares and diffs well.
type replicationView struct {
	Role  string
	Rules []s3types.ReplicationRule
}

func normalizeReplication(r *s3types.ReplicationConfiguration) replicationView {
	rules := append([]s3types.ReplicationRule{}, r.Rules...)
	sort.Slice(rules, func(i, j int) bool { return aws.ToString(rules[i].ID) < aws.ToString(rules[j].ID) })
	return replicationView{Role: aws.ToString(r.Role), Rules: rules}
}

// planRemoval takes a source out: its rule, its role (or its inline policy on
// a borrowed role); the archive grant goes in the revoke phase. Logs stay.
func (p *Plan) planRemoval(c *config.Config, cl *awsapi.Clients, st *SourceState, g *grantChange) {
	acct := st.Config.AccountID
	var rest []s3types.ReplicationRule
	ours := false
	if st.Replication != nil {
		for _, r := range st.Replication.Rules {
			if aws.ToString(r.ID) == RuleID {
				ours = true
			} else {
				rest = append(rest, r)
			}
		}
	}
	bucket := st.Trail.Bucket
	if ours && len(rest) == 0 {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "replication of " + bucket, Action: "delete",
			Summary: "delete the replication configuration (only trailkeeper's rule was left)", Op: opOf("source.deleteReplication", trailArgs{st.Trail})})
	} else if ours {
		cfg := &s3types.ReplicationConfiguration{Role: st.Replication.Role, Rules: rest}
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "replication of " + bucket, Action: "update",
			Summary: "remove rule " + RuleID + ", keep rules " + ruleIDs(rest), Observed: canonical(normalizeReplication(st.Replication)),
			Op: opOf("source.putReplication", replicateArgs{st.Trail, cfg})})
	}
	if r := st.Role; r != nil && r.Stack == "" {
		if len(rest) > 0 && roleName(aws.ToString(st.Replication.Role)) == r.Name {
			p.note("account %s: role %s stays: rules %s still use it", acct, r.Name, ruleIDs(rest))
		} else {
			p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + r.Name, Action: "delete",
				Summary: "delete trailkeeper's replication role", Op: opOf("role.delete", roleArgs{Name: r.Name, HasPolicy: r.Policy != nil})})
		}
	}
	if r := st.BatchRole; r != nil && r.Stack == "" {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + r.Name, Action: "delete",
			Summary: "delete trailkeeper's backfill role", Op: opOf("role.delete", roleArgs{Name: r.Name, HasPolicy: r.Policy != nil})})
	}
	if cur := st.CurrentRole; cur != nil && cur.Policy != nil && cur.Stack == "" {
		p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "role " + cur.Name, Action: "update",
			Summary: "remove inline policy " + RolePolicyName + " from the shared role", Op: opOf("role.deletePolicy", roleArgs{Name: cur.Name})})
	}
	p.note("account %s: its logs stay where they are, in its bucket and in the archive; remove its entry from the config", acct)
}

var resourcePrefixRE = regexp.MustCompile(`^arn:aws:s3:::[^/]+/(.*)\*$`)

// planPolicy plans the archive policy's two writes: the grant before the
// sources change, and what is taken away after (archivePolicies).
func (p *Plan) planPolicy(e *Env, st *ArchiveState, sources []*SourceState, removing map[string]bool, opts Options, g grantChange) error {
	c := e.Config
	a := c.Archive.AccountID
	in := policyInput{Bucket: c.Archive.Bucket, Current: st.Policy, RoleName: c.Replication.RoleName, Removing: removing, Prune: opts.Prune,
		ExtraRoles: g.roles, Adopted: g.adopted, AllObserved: observedAll(sources)}
	for _, s := range c.Sources {
		in.Config = append(in.Config, s.AccountID)
	}
	for _, s := range sources {
		if s == nil {
			continue
		}
		in.Observed = append(in.Observed, observedSource{Account: s.Config.AccountID, Prefix: s.Trail.LogPrefix(),
			OnRole: s.Replication != nil && roleName(aws.ToString(s.Replication.Role)) == c.Replication.RoleName})
	}
	out := archivePolicies(in)
	for _, n := range out.Notes {
		p.note("%s", n)
	}
	grant, final := out.Grant, out.Final
	p.PolicyBytes = StoredSize(final)
	if size := StoredSize(grant); size > PolicyLimit {
		return &Conflict{Account: a, Msg: fmt.Sprintf("the archive policy would be %d bytes, over S3's limit of %d", size, PolicyLimit),
			Hint: fmt.Sprintf("each account adds %d bytes; remove statements trailkeeper did not write, or split the sources over two archives", bytesPerAccount)}
	}
	p.AccountsFit = min(AccountsThatFit(final), AccountsThatFit(grant))
	cur := st.Policy
	if cur == nil {
		cur = &policy.Document{Version: "2012-10-17"}
	}
	if !samePolicy(cur, grant) {
		p.policyWrites = append(p.policyWrites, grant)
		p.add(&Step{Account: a, Phase: PhaseGrant, Resource: "bucket policy", Action: verb(st.Policy == nil),
			Summary: fmt.Sprintf("statements %s and %s (%d source accounts)", SidDenyInsecure, SidReplication, out.GrantAccounts),
			Diff:    diff(canonicalPolicy(st.Policy), canonicalPolicy(grant)), Observed: canonicalPolicy(st.Policy),
			Op: opOf("archive.putPolicy", policyArgs{docText(st.Policy), docText(grant)})})
	}
	if !samePolicy(grant, final) {
		p.policyWrites = append(p.policyWrites, final)
		p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "bucket policy", Action: "update",
			Summary: "take away grants that are no longer needed", Diff: diff(canonicalPolicy(grant), canonicalPolicy(final)), Observed: canonicalPolicy(st.Policy),
			Op: opOf("archive.putPolicy", policyArgs{docText(grant), docText(final)})})
	}
	return nil
}

func observedAll(sources []*SourceState) bool {
	for _, s := range sources {
		if s == nil {
			return false
		}
	}
	return true
}

// withStatements replaces statements by Sid, appending new ones; others stay in place.
func withStatements(d *policy.Document, stmts ...policy.Statement) *policy.Document {
	out := &policy.Document{Version: d.Version, ID: d.ID, Statements: append([]policy.Statement{}, d.Statements...)}
	if out.Version == "" {
		out.Version = "2012-10-17"
	}
	for _, s := range stmts {
		found := false
		for i := range out.Statements {
			if out.Statements[i].Sid == s.Sid {
				out.Statements[i], found = s, true
			}
		}
		if !found {
			out.Statements = append(out.Statements, s)
		}
	}
	return out
}

func withoutStatements(d *policy.Document, drop func(policy.Statement) bool) *policy.Document {
	out := &policy.Document{Version: d.Version, ID: d.ID}
	for _, s := range d.Statements {
		if !drop(s) {
			out.Statements = append(out.Statements, s)
		}
	}
	return out
}

// askAccessAnalyzer has IAM Access Analyzer check every archive policy the
// plan would write before anything is written: trailkeeper's reading of S3's
// "public" is a reading of the documentation, AWS's answer is the fact. A
// FAIL stops the plan; a denied call names the permission; an endpoint
// without the API (moto) leaves our reading alone, and says so.
func (p *Plan) askAccessAnalyzer(ctx context.Context, e *Env) error {
	a := e.Config.Archive.AccountID
	for _, doc := range p.policyWrites {
		text, _ := json.Marshal(doc)
		res, err := e.Archive.CheckNoPublicAccess(ctx, string(text), "AWS::S3::Bucket")
		switch {
		case err != nil && awsapi.IsAccess(err):
			return &awsapi.AccessError{Account: a, Err: fmt.Errorf("access-analyzer CheckNoPublicAccess: %w", err),
				Hint: "grant access-analyzer:CheckNoPublicAccess to the archive credentials: plan asks IAM Access Analyzer before it writes the archive policy (docs/security.md)"}
		case err != nil:
			p.note("archive: IAM Access Analyzer could not be asked whether the archive policy is public (%v): only trailkeeper's own reading of S3's rules checked it", err)
			return nil
		case res.Result == "FAIL":
			var why []string
			for _, r := range res.Reasons {
				w := r.Description
				if r.StatementID != "" {
					w += " (statement " + r.StatementID + ")"
				}
				why = append(why, w)
			}
			return &Conflict{Account: a, Msg: "IAM Access Analyzer says the archive policy apply would write grants public access: " + strings.Join(why, "; "),
				Hint: "remove or narrow the statement it names (trailkeeper keeps statements it did not write as they are), then plan again; nothing was written"}
		}
	}
	return nil
}
