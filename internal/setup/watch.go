package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Watch: without Organizations each source account keeps control of its
// trail, bucket and roles, so the calls that break the path to the archive
// are told as they happen. In each source account and in each region its
// calls are emitted (the trail's, the bucket's, and us-east-1 for IAM), a rule
// on the default bus sends them to the archive account's bus, which the
// sources may put events on by its policy; rules there turn each into one
// line on the alert topic of the archive's region. CloudTrail puts a call on
// the bus only while a trail logs it; docs/watch.md says what that leaves out.
const (
	WatchBusName        = "trailkeeper-watch"
	WatchRuleName       = "trailkeeper-watch"   // in each source account and region
	watchTargetID       = "trailkeeper-archive" // the sources' rules' target
	alertTargetID       = "alert-topic"         // the archive rules' target
	WatchTestSource     = "trailkeeper.watch"
	WatchTestDetailType = "trailkeeper watch test"
	SidWatchSources     = "TrailkeeperWatchSources" // the archive bus's policy
	SidWatchEvents      = "TrailkeeperWatchEvents"  // the alert topic's policy
	BusPolicyLimit      = 10240                     // EventBridge's default quota on a bus policy, in characters
	apiCall             = "AWS API Call via CloudTrail"
)

// The calls that break the path to the archive, by where they are made.
var (
	watchedTrailCalls  = []string{"DeleteTrail", "PutEventSelectors", "PutInsightSelectors", "StopLogging", "UpdateTrail"}
	watchedBucketCalls = []string{"DeleteBucket", "DeleteBucketPolicy", "DeleteBucketReplication", "PutBucketLifecycle",
		"PutBucketPolicy", "PutBucketReplication", "PutBucketVersioning"}
	watchedRoleCalls = []string{"AttachRolePolicy", "DeleteRole", "DeleteRolePolicy", "DetachRolePolicy", "PutRolePolicy", "UpdateAssumeRolePolicy"}
)

// WatchBusARN is the archive account's bus the sources send to.
func WatchBusARN(c *config.Config) string {
	return "arn:aws:events:" + c.Archive.Region + ":" + c.Archive.AccountID + ":event-bus/" + WatchBusName
}

// WatchRegions are where a source's watched calls are emitted: the trail's
// home region, its bucket's region, and us-east-1, where IAM's are.
func WatchRegions(st *SourceState) []string {
	regions := []string{st.Trail.HomeRegion, "us-east-1"}
	if st.BucketRegion != "" {
		regions = append(regions, st.BucketRegion)
	}
	slices.Sort(regions)
	return slices.Compact(regions)
}

// SourcePattern matches the watched calls on trailkeeper's own resources in
// one source (its trail by name or ARN, its bucket, its two roles), and the
// test event of 'trailkeeper watch test'.
func SourcePattern(c *config.Config, st *SourceState) string {
	call := func(source string, names []string, params map[string]any) map[string]any {
		return map[string]any{"source": []string{source}, "detail-type": []string{apiCall},
			"detail": map[string]any{"eventName": names, "requestParameters": params}}
	}
	p := map[string]any{"$or": []any{
		call("aws.cloudtrail", watchedTrailCalls, map[string]any{"name": []string{st.Trail.Name, st.Trail.ARN}}),
		call("aws.s3", watchedBucketCalls, map[string]any{"bucketName": []string{st.Trail.Bucket}}),
		call("aws.iam", watchedRoleCalls, map[string]any{"roleName": []string{c.Replication.RoleName, BatchRoleName}}),
		map[string]any{"source": []string{WatchTestSource}, "detail-type": []string{WatchTestDetailType}},
	}}
	data, _ := json.Marshal(p) // maps marshal in key order: the same text each time
	return string(data)
}

// archiveRule is one rule on the archive's bus: a kind of call, and the line
// a person reads for it.
type archiveRule struct {
	Name, Pattern, Template string
	Paths                   map[string]string
}

// target is the rule's alert topic target, with the line it writes.
func (r archiveRule) target(topicARN string) ebtypes.Target {
	return ebtypes.Target{Id: aws.String(alertTargetID), Arn: aws.String(topicARN),
		InputTransformer: &ebtypes.InputTransformer{InputPathsMap: r.Paths, InputTemplate: aws.String(r.Template)}}
}

// sourceTarget is the archive's bus, as the sources' rules send to it.
func sourceTarget(c *config.Config) ebtypes.Target {
	return ebtypes.Target{Id: aws.String(watchTargetID), Arn: aws.String(WatchBusARN(c))}
}

func archiveRules() []archiveRule {
	paths := func(target string) map[string]string {
		return map[string]string{"account": "$.account", "region": "$.region", "event": "$.detail.eventName", "who": "$.detail.userIdentity.arn",
			"time": "$.time", "target": target}
	}
	line := "trailkeeper watch: account <account> (<region>): <event> on %s <target> by <who> at <time>. %s"
	return []archiveRule{
		{Name: "trailkeeper-watch-trail", Pattern: `{"source":["aws.cloudtrail"]}`, Paths: paths("$.detail.requestParameters.name"),
			Template: fmt.Sprintf(line, "trail", "Fix: a stopped trail writes nothing and no later backfill brings those hours back: aws cloudtrail start-logging --name <target> with the account's credentials; for any other change, trailkeeper status says what differs and trailkeeper apply puts back what it set.")},
		{Name: "trailkeeper-watch-bucket", Pattern: `{"source":["aws.s3"]}`, Paths: paths("$.detail.requestParameters.bucketName"),
			Template: fmt.Sprintf(line, "bucket", "Fix: trailkeeper status says what differs; trailkeeper apply puts back versioning, the replication rule and its grant, then trailkeeper backfill brings in what did not replicate.")},
		{Name: "trailkeeper-watch-role", Pattern: `{"source":["aws.iam"]}`, Paths: paths("$.detail.requestParameters.roleName"),
			Template: fmt.Sprintf(line, "role", "Fix: trailkeeper apply puts back the role, its trust and its policy; replication FAILED meanwhile, and trailkeeper backfill brings those logs in.")},
		{Name: "trailkeeper-watch-test", Pattern: `{"source":["` + WatchTestSource + `"]}`, Paths: paths("$.detail.requestParameters.name"),
			Template: "trailkeeper watch test: account <account> (<region>) reaches this topic through its rule and the archive's bus (sent by <who> at <time>). Nothing is wrong."},
	}
}

func ruleARNOnBus(c *config.Config, rule string) string {
	return "arn:aws:events:" + c.Archive.Region + ":" + c.Archive.AccountID + ":rule/" + WatchBusName + "/" + rule
}

// RuleState is an EventBridge rule as it is, nil where there is none.
type RuleState struct {
	Pattern  string
	Schedule string
	Enabled  bool
	Targets  []ebtypes.Target
}

// WatchArchive is the archive side of watch as it is.
type WatchArchive struct {
	Bus    bool
	Policy *policy.Document
	Rules  map[string]*RuleState
	// Unreadable is set when the credentials may not read EventBridge and
	// the config has no watch: there is then nothing of ours to take away.
	Unreadable bool
	// The scheduled verdict: the function, its role and schedule, and the
	// config it runs with (watchfn.go).
	FunctionRole *Role
	Function     *FunctionState
	Schedule     *RuleState
	ConfigText   []byte
}

func getRule(ctx context.Context, cl *eventbridge.Client, bus, name string) (*RuleState, error) {
	in := &eventbridge.DescribeRuleInput{Name: &name}
	if bus != "" {
		in.EventBusName = &bus
	}
	r, err := cl.DescribeRule(ctx, in)
	if awsapi.Code(err) == "ResourceNotFoundException" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &RuleState{Pattern: aws.ToString(r.EventPattern), Schedule: aws.ToString(r.ScheduleExpression), Enabled: r.State != ebtypes.RuleStateDisabled}
	list := &eventbridge.ListTargetsByRuleInput{Rule: &name, EventBusName: in.EventBusName}
	for {
		page, err := cl.ListTargetsByRule(ctx, list)
		if err != nil {
			return nil, err
		}
		st.Targets = append(st.Targets, page.Targets...)
		if page.NextToken == nil {
			return st, nil
		}
		list.NextToken = page.NextToken
	}
}

// observeWatchSource reads the source's watch rule in each region. Without
// watch in the config, a denied read means there is nothing to unwire, and
// apply writes the rules of every region and the observer role together:
// no rule in the trail's home region, nothing else of watch to look for.
func observeWatchSource(ctx context.Context, c *config.Config, st *SourceState, cl *awsapi.Clients) error {
	st.Watch = map[string]*RuleState{}
	regions := []string{st.Trail.HomeRegion} // first: it tells for the others
	for _, r := range WatchRegions(st) {
		if r != st.Trail.HomeRegion {
			regions = append(regions, r)
		}
	}
	for _, region := range regions {
		r, err := getRule(ctx, cl.InRegion(region).Events, "", WatchRuleName)
		if err != nil {
			if !c.Watch.Enabled && awsapi.IsAccess(err) {
				return nil
			}
			return wrap(st.Config.AccountID, "events DescribeRule "+WatchRuleName+" in "+region, err)
		}
		if r == nil && !c.Watch.Enabled && region == st.Trail.HomeRegion {
			return nil
		}
		st.Watch[region] = r
	}
	var err error
	st.Observer, err = getRole(ctx, cl, st.Config.AccountID, ObserverRoleName)
	return err
}

// ObserveWatch reads the archive's bus, its policy and trailkeeper's rules.
func ObserveWatch(ctx context.Context, c *config.Config, cl *awsapi.Clients) (*WatchArchive, error) {
	w := &WatchArchive{Rules: map[string]*RuleState{}}
	ev := cl.InRegion(c.Archive.Region).Events
	bus, err := ev.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(WatchBusName)})
	switch {
	case awsapi.Code(err) == "ResourceNotFoundException":
		if !c.Watch.Enabled {
			return w, nil // never wired: nothing to read, nothing to take away
		}
		return w, observeWatchFunction(ctx, c, cl, w)
	case err != nil && !c.Watch.Enabled && awsapi.IsAccess(err):
		w.Unreadable = true
		return w, nil
	case err != nil:
		return nil, wrap(c.Archive.AccountID, "events DescribeEventBus "+WatchBusName, err)
	}
	if err := observeWatchFunction(ctx, c, cl, w); err != nil {
		return nil, err
	}
	w.Bus = true
	if text := aws.ToString(bus.Policy); text != "" {
		if w.Policy, err = policy.Parse([]byte(text), policy.Resource); err != nil {
			return nil, &Conflict{Account: c.Archive.AccountID, Msg: fmt.Sprintf("event bus %s has a policy trailkeeper cannot read: %v", WatchBusName, err),
				Hint: "fix it (aws events describe-event-bus --name " + WatchBusName + ")"}
		}
	}
	for _, r := range archiveRules() {
		if w.Rules[r.Name], err = getRule(ctx, ev, WatchBusName, r.Name); err != nil {
			return nil, wrap(c.Archive.AccountID, "events DescribeRule "+r.Name, err)
		}
	}
	return w, nil
}

// busStatement lets the source accounts put events on the archive's bus: as
// principals while they fit the bus policy's quota, by aws:PrincipalAccount
// beyond (15 characters an account instead of 33).
func busStatement(c *config.Config, accounts []string) policy.Statement {
	s := policy.Statement{Sid: SidWatchSources, Effect: policy.Allow, Action: policy.Strings{"events:PutEvents"}, Resource: policy.Strings{WatchBusARN(c)}}
	var arns policy.Strings
	for _, a := range sortedUnique(accounts) {
		arns = append(arns, "arn:aws:iam::"+a+":root")
	}
	s.Principal = &policy.Principal{AWS: arns}
	if data, _ := json.Marshal(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{s}}); len(data) > BusPolicyLimit*9/10 {
		s.Principal = &policy.Principal{AWS: policy.Strings{"*"}}
		s.Condition = policy.Conditions{"StringEquals": {principalAccountKey: sortedUnique(accounts)}}
	}
	return s
}

func busAccounts(d *policy.Document) []string {
	if d == nil {
		return nil
	}
	return GrantedAccounts(d.Statement(SidWatchSources))
}

// watchTopicStatement lets trailkeeper's archive rules publish to the topic.
func watchTopicStatement(c *config.Config, topicARN string) policy.Statement {
	var rules []string
	for _, r := range archiveRules() {
		rules = append(rules, ruleARNOnBus(c, r.Name))
	}
	return policy.Statement{Sid: SidWatchEvents, Effect: policy.Allow, Principal: &policy.Principal{Service: policy.Strings{"events.amazonaws.com"}},
		Action: policy.Strings{"sns:Publish"}, Resource: policy.Strings{topicARN},
		Condition: policy.Conditions{"ArnEquals": {"aws:SourceArn": rules}}}
}

func sameRule(have *RuleState, pattern string, target ebtypes.Target) bool {
	if have == nil || !have.Enabled || !samePattern(have.Pattern, pattern) || len(have.Targets) != 1 {
		return false
	}
	a, _ := json.Marshal(have.Targets[0])
	b, _ := json.Marshal(target)
	return string(a) == string(b)
}

// samePattern compares two patterns by meaning: EventBridge may return one
// spaced or ordered otherwise.
func samePattern(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	p, _ := json.Marshal(x)
	q, _ := json.Marshal(y)
	return string(p) == string(q)
}

// planWatch wires (or, with watch off or the account removed, unwires) what
// watch needs, writing only trailkeeper's own rules, targets and statements.
func (p *Plan) planWatch(e *Env, w *WatchArchive, topics map[string]*Topic, sources []*SourceState, removing map[string]bool, opts Options) error {
	c := e.Config
	on := c.Watch.Enabled
	var accounts []string
	for _, st := range sources {
		if st == nil || st.Watch == nil {
			continue
		}
		acct := st.Config.AccountID
		for _, region := range WatchRegions(st) {
			have := st.Watch[region]
			if !on || removing[acct] {
				if have != nil {
					p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "EventBridge rule " + WatchRuleName + " in " + region, Action: "delete",
						Summary: "stop sending this account's changes to the archive's watch", Op: opOf("events.deleteRule", ruleArgs{Region: region, Name: WatchRuleName})})
				}
				continue
			}
			pattern := SourcePattern(c, st)
			target := sourceTarget(c)
			if !sameRule(have, pattern, target) {
				p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "EventBridge rule " + WatchRuleName + " in " + region, Action: verb(have == nil),
					Summary: "send the calls that break the path of its logs (its trail, bucket and roles) to " + WatchBusARN(c),
					Op:      opOf("events.putRule", ruleArgs{Region: region, Name: WatchRuleName, Pattern: pattern, Target: &target})})
			}
		}
		if on && !removing[acct] {
			accounts = append(accounts, acct)
		}
	}
	if err := p.planWatchFunction(e, w, sources, removing, opts); err != nil {
		return err
	}
	if w == nil || w.Unreadable {
		return nil
	}
	a := c.Archive.AccountID
	if !on {
		for _, r := range archiveRules() {
			if w.Rules[r.Name] != nil {
				p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "EventBridge rule " + r.Name, Action: "delete", Summary: "watch is off in the config",
					Op: opOf("events.deleteRule", ruleArgs{Region: c.Archive.Region, Bus: WatchBusName, Name: r.Name, Archive: true})})
			}
		}
		if w.Bus {
			p.note("watch is off in the config: event bus %s stays with its policy (aws events delete-event-bus --name %s when nobody needs it)", WatchBusName, WatchBusName)
		}
		return nil
	}
	if !w.Bus {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "event bus " + WatchBusName, Action: "create",
			Summary: "where the source accounts send the changes they make", Op: opOf("events.createBus", regionalArgs{c.Archive.Region, WatchBusName})})
	}
	// The bus policy: the accounts granted before stay unless removed (as the
	// bucket policy's grants do), the accounts of this run are added.
	var want []string
	for _, acct := range append(busAccounts(w.Policy), accounts...) {
		if !removing[acct] {
			want = append(want, acct)
		}
	}
	cur := w.Policy
	if cur == nil {
		cur = &policy.Document{Version: "2012-10-17"}
	}
	next := withStatements(cur, busStatement(c, want))
	if len(want) == 0 {
		next = withoutStatements(cur, func(s policy.Statement) bool { return s.Sid == SidWatchSources })
	}
	if data, _ := json.Marshal(next); len(data) > BusPolicyLimit {
		return &Conflict{Account: a, Msg: fmt.Sprintf("the policy of event bus %s would be %d characters for %d source accounts, over EventBridge's quota of %d", WatchBusName, len(data), len(sortedUnique(want)), BusPolicyLimit),
			Hint: "ask for more in Service Quotas (Amazon EventBridge, 'Event bus policy size': adjustable), then apply again; nothing was written"}
	}
	if !samePolicy(w.Policy, next) && (w.Policy != nil || len(want) > 0) {
		p.add(&Step{Account: a, Phase: PhaseGrant, Resource: "policy of event bus " + WatchBusName, Action: "update",
			Summary: fmt.Sprintf("statement %s: %s may put events on it", SidWatchSources, plural(len(sortedUnique(want)), "source account")),
			Diff:    diff(canonicalPolicy(w.Policy), canonicalPolicy(next)),
			Op:      opOf("events.putBusPolicy", busPolicyArgs{c.Archive.Region, docText(next)})})
	}
	topic := topics[c.Archive.Region]
	if topic == nil {
		return fmt.Errorf("watch: no alert topic observed in %s", c.Archive.Region)
	}
	for _, r := range archiveRules() {
		target := r.target(topic.ARN)
		if !sameRule(w.Rules[r.Name], r.Pattern, target) {
			p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "EventBridge rule " + r.Name + " on " + WatchBusName, Action: verb(w.Rules[r.Name] == nil),
				Summary: "tell " + topic.ARN + " in one line what happened, where, by whom, and the fix",
				Op:      opOf("events.putRule", ruleArgs{Region: c.Archive.Region, Bus: WatchBusName, Name: r.Name, Pattern: r.Pattern, Target: &target, Archive: true})})
		}
	}
	var have *policy.Statement
	if topic.Policy != nil {
		have = topic.Policy.Statement(SidWatchEvents)
	}
	if stmt := watchTopicStatement(c, topic.ARN); have == nil || !sameStatement(*have, stmt) {
		p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "policy of topic " + topic.ARN, Action: "update",
			Summary: "statement " + SidWatchEvents + ": trailkeeper's watch rules may publish",
			Op:      opOf("topic.addStatement", topicStmtArgs{topic.ARN, topic.Region, statementText(&stmt)})})
	}
	return nil
}

func putRule(ctx context.Context, ev *eventbridge.Client, acct, bus, name, pattern string, target ebtypes.Target) error {
	in := &eventbridge.PutRuleInput{Name: &name, EventPattern: &pattern, State: ebtypes.RuleStateEnabled,
		Description: aws.String("trailkeeper watch: written by trailkeeper apply")}
	var busName *string
	if bus != "" {
		in.EventBusName, busName = &bus, &bus
	}
	if _, err := ev.PutRule(ctx, in); err != nil {
		return wrap(acct, "events PutRule "+name, err)
	}
	out, err := ev.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: &name, EventBusName: busName, Targets: []ebtypes.Target{target}})
	if err == nil && out.FailedEntryCount > 0 {
		err = fmt.Errorf("%s: %s", aws.ToString(out.FailedEntries[0].ErrorCode), aws.ToString(out.FailedEntries[0].ErrorMessage))
	}
	if err != nil {
		return wrap(acct, "events PutTargets "+name, err)
	}
	got, err := getRule(ctx, ev, bus, name)
	if err != nil {
		return wrap(acct, "events DescribeRule "+name, err)
	}
	if !sameRule(got, pattern, target) {
		return notConverged(acct, "EventBridge rule "+name)
	}
	return nil
}

// deleteRule takes away trailkeeper's target, and the rule once no other
// target is left on it (a rule with targets cannot be deleted, and another's
// target is not trailkeeper's to take).
func deleteRule(ctx context.Context, ev *eventbridge.Client, acct, bus, name string) error {
	var busName *string
	if bus != "" {
		busName = &bus
	}
	r, err := getRule(ctx, ev, bus, name)
	if err != nil || r == nil {
		return wrap(acct, "events DescribeRule "+name, err)
	}
	var ids, others []string
	for _, t := range r.Targets {
		if id := aws.ToString(t.Id); id == watchTargetID || id == alertTargetID {
			ids = append(ids, id)
		} else {
			others = append(others, id)
		}
	}
	if len(ids) > 0 {
		if _, err := ev.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: &name, EventBusName: busName, Ids: ids}); err != nil {
			return wrap(acct, "events RemoveTargets "+name, err)
		}
	}
	if len(others) > 0 {
		return nil
	}
	_, err = ev.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: &name, EventBusName: busName})
	return wrap(acct, "events DeleteRule "+name, err)
}

// WatchProblem says what stops a source's watched calls from reaching the
// archive's bus, or "" when nothing does.
func WatchProblem(c *config.Config, st *SourceState, w *WatchArchive) string {
	if st.Watch == nil {
		return "its EventBridge rules could not be read"
	}
	target := sourceTarget(c)
	for _, region := range WatchRegions(st) {
		r := st.Watch[region]
		switch {
		case r == nil:
			return "no rule " + WatchRuleName + " in " + region
		case !r.Enabled:
			return "rule " + WatchRuleName + " in " + region + " is disabled"
		case !sameRule(r, SourcePattern(c, st), target):
			return "rule " + WatchRuleName + " in " + region + " matches or sends otherwise than trailkeeper wrote it"
		}
	}
	if w == nil || !w.Bus {
		return "the archive's bus " + WatchBusName + " does not exist"
	}
	if !slices.Contains(busAccounts(w.Policy), st.Config.AccountID) {
		return "the policy of the archive's bus does not let it put events"
	}
	return ""
}

// ArchiveWatchProblem says what stops the archive's bus from telling a
// person, or "".
func ArchiveWatchProblem(c *config.Config, w *WatchArchive, topic *Topic) string {
	switch {
	case w == nil || !w.Bus:
		return "event bus " + WatchBusName + " does not exist"
	case topic == nil || !topic.Exists:
		return "the alert topic of " + c.Archive.Region + " does not exist"
	}
	for _, r := range archiveRules() {
		target := r.target(topic.ARN)
		if !sameRule(w.Rules[r.Name], r.Pattern, target) {
			return "rule " + r.Name + " on " + WatchBusName + " is missing or not as trailkeeper wrote it"
		}
	}
	if topic.Policy == nil || topic.Policy.Statement(SidWatchEvents) == nil || !sameStatement(*topic.Policy.Statement(SidWatchEvents), watchTopicStatement(c, topic.ARN)) {
		return "the policy of topic " + topic.ARN + " does not let the watch rules publish"
	}
	return ""
}

// BusPolicySize is the size of the archive bus's policy granting n accounts,
// in the form planWatch writes: for bench/policysize.
func BusPolicySize(c *config.Config, n int) int {
	var accounts []string
	for i := range n {
		accounts = append(accounts, fmt.Sprintf("%012d", 100000000000+i))
	}
	data, _ := json.Marshal(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{busStatement(c, accounts)}})
	return len(data)
}
