package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// Alerts: each source bucket sends S3's replication failure events to a topic
// of the archive account in the bucket's region (S3 publishes only there), and
// the topic's policy lets S3 publish for exactly those buckets.
const (
	AlertTopicName = "trailkeeper-replication-failures"
	NotificationID = "trailkeeper-replication-failures" // the bucket's notification configuration
	SidS3Events    = "TrailkeeperS3ReplicationEvents"   // the topic policy statement
	topicPolicyMax = 30 * 1024                          // SNS's limit on a topic policy
)

// alertEvents are the events a source sends: failures, and with Replication
// Time Control the objects that missed its 15 minutes.
func alertEvents(c *config.Config) []s3types.Event {
	events := []s3types.Event{s3types.EventS3ReplicationOperationFailedReplication}
	if c.Replication.TimeControl {
		events = append(events, s3types.EventS3ReplicationOperationMissedThreshold)
	}
	return events
}

// TopicARN is the topic that failures of buckets in region go to: the one the
// config names there, or trailkeeper's own.
func TopicARN(c *config.Config, region string) string {
	for _, t := range c.Alerts.Topics {
		if config.TopicRegion(t) == region {
			return t
		}
	}
	return "arn:aws:sns:" + region + ":" + c.Archive.AccountID + ":" + AlertTopicName
}

// Topic is an alert topic as it is.
type Topic struct {
	ARN           string
	Region        string
	Exists        bool
	Policy        *policy.Document
	Subscriptions []Subscription
}

// Subscription is one endpoint of a topic. Output shows Shown: a webhook's
// path often holds its secret.
type Subscription struct {
	Protocol  string `json:"protocol"`
	Endpoint  string `json:"-"`
	Shown     string `json:"endpoint"`
	Confirmed bool   `json:"confirmed"`
}

// redact shows an endpoint without what may be a secret: an http(s) URL as
// its scheme and host; an email address as it is.
func redact(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		if u.Path == "" && u.RawQuery == "" {
			return u.Scheme + "://" + u.Host
		}
		return u.Scheme + "://" + u.Host + "/…"
	}
	return endpoint
}

// ObserveTopics reads the alert topic of each region the sources' buckets are
// in (nil when the config has no alerts).
func ObserveTopics(ctx context.Context, c *config.Config, cl *awsapi.Clients, sources []*SourceState) (map[string]*Topic, error) {
	if !c.Alerts.Enabled {
		return nil, nil
	}
	var regions []string
	if c.Watch.Enabled {
		regions = append(regions, c.Archive.Region) // watch's lines go to the archive region's topic
	}
	for _, st := range sources {
		if st != nil && st.BucketRegion != "" && !slices.Contains(regions, st.BucketRegion) {
			regions = append(regions, st.BucketRegion)
		}
	}
	slices.Sort(regions)
	topics := make([]*Topic, len(regions))
	err := forEach(ctx, 4, len(regions), func(ctx context.Context, i int) error {
		var err error
		topics[i], err = observeTopic(ctx, cl.InRegion(regions[i]).SNS, c.Archive.AccountID, TopicARN(c, regions[i]), regions[i])
		return err
	})
	out := map[string]*Topic{}
	for _, t := range topics {
		if t != nil {
			out[t.Region] = t
		}
	}
	return out, err
}

func observeTopic(ctx context.Context, client *sns.Client, account, arn, region string) (*Topic, error) {
	t := &Topic{ARN: arn, Region: region}
	attrs, err := client.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: &arn})
	if awsapi.Code(err) == "NotFound" {
		return t, nil
	}
	if err != nil {
		return nil, wrap(account, "sns GetTopicAttributes "+arn, err)
	}
	t.Exists = true
	if doc := attrs.Attributes["Policy"]; doc != "" {
		if t.Policy, err = policy.Parse([]byte(doc), policy.Resource); err != nil {
			return nil, &Conflict{Account: account, Msg: fmt.Sprintf("topic %s has a policy trailkeeper cannot read: %v", arn, err),
				Hint: "fix the topic policy (aws sns get-topic-attributes --topic-arn " + arn + ")"}
		}
	}
	p := sns.NewListSubscriptionsByTopicPaginator(client, &sns.ListSubscriptionsByTopicInput{TopicArn: &arn})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap(account, "sns ListSubscriptionsByTopic "+arn, err)
		}
		for _, s := range page.Subscriptions {
			t.Subscriptions = append(t.Subscriptions, Subscription{Protocol: aws.ToString(s.Protocol), Endpoint: aws.ToString(s.Endpoint), Shown: redact(aws.ToString(s.Endpoint)),
				Confirmed: strings.HasPrefix(aws.ToString(s.SubscriptionArn), "arn:")})
		}
	}
	return t, nil
}

// topicStatement lets S3 publish events of the given buckets, and only those:
// aws:SourceArn and aws:SourceAccount, as the S3 User Guide's walkthrough
// limits it. Beyond what fits SNS's 30 KB, the buckets give way to a pattern
// and the accounts alone narrow it.
func topicStatement(topicARN string, accounts, buckets []string) policy.Statement {
	arns := make([]string, 0, len(buckets))
	for _, b := range buckets {
		arns = append(arns, bucketARN(b))
	}
	return policy.Statement{Sid: SidS3Events, Effect: policy.Allow, Principal: &policy.Principal{Service: policy.Strings{"s3.amazonaws.com"}},
		Action: policy.Strings{"sns:Publish"}, Resource: policy.Strings{topicARN},
		Condition: policy.Conditions{"StringEquals": {"aws:SourceAccount": sortedUnique(accounts)}, "ArnLike": {"aws:SourceArn": sortedUnique(arns)}}}
}

func statementBuckets(s *policy.Statement) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, a := range s.Condition["ArnLike"]["aws:SourceArn"] {
		out = append(out, strings.TrimPrefix(a, "arn:aws:s3:::"))
	}
	return out
}

func statementAccounts(s *policy.Statement) []string {
	if s == nil {
		return nil
	}
	return s.Condition["StringEquals"]["aws:SourceAccount"]
}

// withTopicStatement is d with trailkeeper's statement for these buckets, or
// without it when there are none; the buckets give way to "arn:aws:s3:::*"
// when the policy would pass SNS's limit.
func withTopicStatement(d *policy.Document, topicARN string, accounts, buckets []string) *policy.Document {
	if d == nil {
		d = &policy.Document{Version: "2012-10-17"}
	}
	if len(buckets) == 0 {
		return withoutStatements(d, func(s policy.Statement) bool { return s.Sid == SidS3Events })
	}
	out := withStatements(d, topicStatement(topicARN, accounts, buckets))
	if data, _ := json.Marshal(out); len(data) > topicPolicyMax {
		out = withStatements(d, topicStatement(topicARN, accounts, []string{"*"}))
	}
	return out
}

// alertWiring is trailkeeper's notification configuration for a bucket.
func alertWiring(c *config.Config, st *SourceState) s3types.TopicConfiguration {
	return s3types.TopicConfiguration{Id: aws.String(NotificationID), TopicArn: aws.String(TopicARN(c, st.BucketRegion)), Events: alertEvents(c),
		Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(st.Trail.LogPrefix())}}}}}
}

// Wired returns trailkeeper's notification configuration of a bucket, or nil.
func Wired(n *s3types.NotificationConfiguration) *s3types.TopicConfiguration {
	if n == nil {
		return nil
	}
	for i := range n.TopicConfigurations {
		if aws.ToString(n.TopicConfigurations[i].Id) == NotificationID {
			return &n.TopicConfigurations[i]
		}
	}
	return nil
}

// withWiring is n with trailkeeper's configuration replaced by ours, or
// removed when ours is nil; every other configuration stays as it is.
func withWiring(n *s3types.NotificationConfiguration, ours *s3types.TopicConfiguration) *s3types.NotificationConfiguration {
	out := &s3types.NotificationConfiguration{}
	if n != nil {
		*out = *n
	}
	out.TopicConfigurations = nil
	if n != nil {
		for _, t := range n.TopicConfigurations {
			if aws.ToString(t.Id) != NotificationID {
				out.TopicConfigurations = append(out.TopicConfigurations, t)
			}
		}
	}
	if ours != nil {
		out.TopicConfigurations = append(out.TopicConfigurations, *ours)
	}
	return out
}

// sameWiring compares what matters of two notification configurations.
func sameWiring(a, b *s3types.TopicConfiguration) bool {
	if a == nil || b == nil {
		return a == b
	}
	ea, eb := slices.Clone(a.Events), slices.Clone(b.Events)
	slices.Sort(ea)
	slices.Sort(eb)
	pa, sa := KeyFilter(a.Filter)
	pb, sb := KeyFilter(b.Filter)
	return aws.ToString(a.TopicArn) == aws.ToString(b.TopicArn) && slices.Equal(ea, eb) && pa == pb && sa == sb
}

// KeyFilter is the key prefix and suffix a notification configuration is
// limited to.
func KeyFilter(f *s3types.NotificationConfigurationFilter) (prefix, suffix string) {
	if f == nil || f.Key == nil {
		return "", ""
	}
	for _, r := range f.Key.FilterRules {
		if strings.EqualFold(string(r.Name), "prefix") {
			prefix = aws.ToString(r.Value)
		} else {
			suffix = aws.ToString(r.Value)
		}
	}
	return prefix, suffix
}

// overlapping finds a configuration of someone else's that S3 would refuse
// beside ours: one sharing an event type with overlapping key filters.
func overlapping(n *s3types.NotificationConfiguration, ours s3types.TopicConfiguration) (id, dest string) {
	type cfg struct {
		id, dest string
		events   []s3types.Event
		filter   *s3types.NotificationConfigurationFilter
	}
	var others []cfg
	if n != nil {
		for _, t := range n.TopicConfigurations {
			others = append(others, cfg{aws.ToString(t.Id), aws.ToString(t.TopicArn), t.Events, t.Filter})
		}
		for _, q := range n.QueueConfigurations {
			others = append(others, cfg{aws.ToString(q.Id), aws.ToString(q.QueueArn), q.Events, q.Filter})
		}
		for _, l := range n.LambdaFunctionConfigurations {
			others = append(others, cfg{aws.ToString(l.Id), aws.ToString(l.LambdaFunctionArn), l.Events, l.Filter})
		}
	}
	op, os := KeyFilter(ours.Filter)
	for _, o := range others {
		if o.id == NotificationID {
			continue
		}
		p, s := KeyFilter(o.filter)
		keys := (strings.HasPrefix(op, p) || strings.HasPrefix(p, op)) && (strings.HasSuffix(os, s) || strings.HasSuffix(s, os))
		for _, e := range o.events {
			for _, w := range ours.Events {
				if keys && eventsOverlap(string(e), string(w)) {
					return o.id, o.dest
				}
			}
		}
	}
	return "", ""
}

func eventsOverlap(a, b string) bool {
	family := func(e string) string { return e[:strings.LastIndex(e, ":")+1] }
	return a == b || (strings.HasSuffix(a, ":*") || strings.HasSuffix(b, ":*")) && family(a) == family(b)
}

// subscriptionProtocol is the SNS protocol of a configured endpoint.
func subscriptionProtocol(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		return u.Scheme
	}
	return "email"
}

// planAlerts wires every source bucket to its region's topic and keeps the
// topics: created, subscribed, and their policy naming the buckets. Sources
// being removed, or all of them when alerts are off, are unwired.
func (p *Plan) planAlerts(e *Env, topics map[string]*Topic, sources []*SourceState, removing map[string]bool) error {
	c := e.Config
	type member struct{ accounts, buckets []string }
	members := map[string]*member{}
	for _, st := range sources {
		if st == nil {
			continue
		}
		acct := st.Config.AccountID
		cur := Wired(st.Notification)
		if removing[acct] || !c.Alerts.Enabled {
			if cur != nil {
				p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "notifications of " + st.Trail.Bucket, Action: "update",
					Summary: "stop sending replication failures to " + aws.ToString(cur.TopicArn) + "; other notifications stay",
					Op:      opOf("source.putWiring", wiringArgs{Trail: st.Trail})})
				if !c.Alerts.Enabled {
					p.note("account %s: alerts are off in the config; topic %s stays (delete it with aws sns delete-topic when nobody needs it)", acct, aws.ToString(cur.TopicArn))
				}
			}
			continue
		}
		m := members[st.BucketRegion]
		if m == nil {
			m = &member{}
			members[st.BucketRegion] = m
		}
		m.accounts, m.buckets = append(m.accounts, acct), append(m.buckets, st.Trail.Bucket)
		want := alertWiring(c, st)
		if id, dest := overlapping(st.Notification, want); id != "" {
			return &Conflict{Account: acct, Msg: fmt.Sprintf("bucket %s already sends replication events under %s to %s (configuration %q); S3 refuses a second configuration for the same events and keys", st.Trail.Bucket, st.Trail.LogPrefix(), dest, id),
				Hint: fmt.Sprintf("remove configuration %q from the bucket's event notifications, or name its topic in alerts.topics if it is one of the archive account's", id)}
		}
		if !sameWiring(cur, &want) {
			p.add(&Step{Account: acct, Phase: PhaseSources, Resource: "notifications of " + st.Trail.Bucket, Action: verb(cur == nil),
				Summary: fmt.Sprintf("send %s under %s to %s; other notifications stay", eventList(want.Events), st.Trail.LogPrefix(), aws.ToString(want.TopicArn)),
				Op:      opOf("source.putWiring", wiringArgs{st.Trail, &want})})
		}
	}
	if !c.Alerts.Enabled {
		return nil
	}
	a := c.Archive.AccountID
	for _, region := range slices.Sorted(maps.Keys(topics)) {
		t := topics[region]
		own := !slices.Contains(c.Alerts.Topics, t.ARN) // given topics' subscriptions are their owner's
		m := members[region]
		if m == nil {
			m = &member{}
		}
		if !t.Exists {
			if !own {
				return &Conflict{Account: a, Msg: "alerts.topics names " + t.ARN + ", which does not exist",
					Hint: "create it (aws sns create-topic --name " + t.ARN[strings.LastIndex(t.ARN, ":")+1:] + " --region " + region + "), or leave it out of alerts.topics and trailkeeper creates " + AlertTopicName}
			}
			p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "topic " + t.ARN, Action: "create",
				Summary: "SNS topic for replication failures of the buckets in " + region, Op: opOf("topic.create", topicArgs{ARN: t.ARN, Region: t.Region})})
		}
		if own {
			for _, endpoint := range c.Alerts.Subscribe {
				i := slices.IndexFunc(t.Subscriptions, func(s Subscription) bool { return s.Endpoint == endpoint })
				switch {
				case i < 0:
					p.add(&Step{Account: a, Phase: PhaseArchive, Resource: "topic " + t.ARN, Action: "update",
						Summary: "subscribe " + redact(endpoint) + " (SNS sends it a confirmation first)", Op: opOf("topic.subscribe", topicArgs{ARN: t.ARN, Region: t.Region, Endpoint: endpoint})})
				case !t.Subscriptions[i].Confirmed:
					p.note("alerts: %s has not confirmed its subscription to %s yet: it gets nothing until it follows the link SNS sent", redact(endpoint), t.ARN)
				}
			}
		}
		var planned *policy.Statement
		if t.Policy != nil {
			planned = t.Policy.Statement(SidS3Events)
		}
		grant := withTopicStatement(t.Policy, t.ARN, append(statementAccounts(planned), m.accounts...), append(statementBuckets(planned), m.buckets...))
		final := withTopicStatement(t.Policy, t.ARN, m.accounts, m.buckets)
		if (t.Policy == nil || !samePolicy(t.Policy, grant)) && (planned != nil || len(m.buckets) > 0) { // a topic of watch alone needs no S3 statement
			p.add(&Step{Account: a, Phase: PhaseGrant, Resource: "policy of topic " + t.ARN, Action: "update",
				Summary: fmt.Sprintf("statement %s: S3 may publish events of %s", SidS3Events, plural(len(sortedUnique(append(statementBuckets(planned), m.buckets...))), "bucket")),
				Diff:    diff(canonicalPolicy(t.Policy), canonicalPolicy(grant)),
				Op:      opOf("topic.putS3Statement", topicArgs{ARN: t.ARN, Region: t.Region, Planned: statementText(planned), Want: statementText(grant.Statement(SidS3Events))})})
		}
		if !samePolicy(grant, final) {
			p.add(&Step{Account: a, Phase: PhaseRevoke, Resource: "policy of topic " + t.ARN, Action: "update",
				Summary: "take away buckets that no longer send alerts", Diff: diff(canonicalPolicy(grant), canonicalPolicy(final)),
				Op: opOf("topic.putS3Statement", topicArgs{ARN: t.ARN, Region: t.Region, Planned: statementText(grant.Statement(SidS3Events)), Want: statementText(final.Statement(SidS3Events))})})
		}
	}
	return nil
}

func eventList(events []s3types.Event) string {
	var names []string
	for _, e := range events {
		names = append(names, strings.TrimPrefix(string(e), "s3:Replication:"))
	}
	return strings.Join(names, " and ")
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// putWiring sets trailkeeper's configuration on the bucket (nil removes it),
// merged at the moment of writing into whatever the bucket has then, and reads
// it back. S3 first sends the topic a test event, which proves the policy.
func (o sourceOps) putWiring(ctx context.Context, ours *s3types.TopicConfiguration) error {
	b, acct := o.trail.Bucket, o.acct()
	cur, err := getNotification(ctx, o.cl.S3, b)
	if err != nil {
		return wrap(acct, "s3 GetBucketNotificationConfiguration "+b, err)
	}
	if _, err := o.cl.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &b,
		NotificationConfiguration: withWiring(cur, ours), ExpectedBucketOwner: &acct}); err != nil {
		return wrap(acct, "s3 PutBucketNotificationConfiguration "+b, err)
	}
	got, err := getNotification(ctx, o.cl.S3, b)
	if err != nil {
		return wrap(acct, "s3 GetBucketNotificationConfiguration "+b, err)
	}
	if !sameWiring(Wired(got), ours) {
		return notConverged(acct, "the notification configuration of "+b)
	}
	return nil
}

// getNotification reads a bucket's event notification configuration.
func getNotification(ctx context.Context, client *s3.Client, bucket string) (*s3types.NotificationConfiguration, error) {
	out, err := client.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &bucket})
	if err != nil {
		return nil, err
	}
	return &s3types.NotificationConfiguration{TopicConfigurations: out.TopicConfigurations, QueueConfigurations: out.QueueConfigurations,
		LambdaFunctionConfigurations: out.LambdaFunctionConfigurations, EventBridgeConfiguration: out.EventBridgeConfiguration}, nil
}

func (o archiveOps) createTopic(ctx context.Context, t *Topic) error {
	name := t.ARN[strings.LastIndex(t.ARN, ":")+1:]
	out, err := o.cl.InRegion(t.Region).SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: &name})
	if err != nil {
		return wrap(o.acct(), "sns CreateTopic "+name+" in "+t.Region, err)
	}
	if aws.ToString(out.TopicArn) != t.ARN {
		return notConverged(o.acct(), "topic "+t.ARN)
	}
	return nil
}

func (o archiveOps) subscribe(ctx context.Context, t *Topic, endpoint string) error {
	if _, err := o.cl.InRegion(t.Region).SNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &t.ARN, Protocol: aws.String(subscriptionProtocol(endpoint)), Endpoint: &endpoint}); err != nil {
		return wrap(o.acct(), "sns Subscribe "+redact(endpoint)+" to "+t.ARN, err)
	}
	o.note("alerts: SNS sent %s a confirmation for %s: nothing reaches it until it is confirmed (status says when)", redact(endpoint), t.ARN)
	return nil
}

// putTopicPolicy moves trailkeeper's statement from planned to want in the
// policy the topic has at the moment of writing: buckets another run added in
// between stay, and every other statement stays as it is.
func (o archiveOps) putTopicPolicy(ctx context.Context, t *Topic, planned, want *policy.Statement) error {
	client := o.cl.InRegion(t.Region).SNS
	cur, err := observeTopic(ctx, client, o.acct(), t.ARN, t.Region)
	if err != nil {
		return err
	}
	now := (*policy.Statement)(nil)
	if cur.Policy != nil {
		now = cur.Policy.Statement(SidS3Events)
	}
	doc := withTopicStatement(cur.Policy, t.ARN, moved(statementAccounts(now), statementAccounts(planned), statementAccounts(want)),
		moved(statementBuckets(now), statementBuckets(planned), statementBuckets(want)))
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if _, err := client.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &t.ARN, AttributeName: aws.String("Policy"), AttributeValue: aws.String(string(data))}); err != nil {
		return wrap(o.acct(), "sns SetTopicAttributes Policy "+t.ARN, err)
	}
	return nil
}
