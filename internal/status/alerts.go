package status

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// Alerts is where replication failures go, as the accounts have it.
type Alerts struct {
	Topics []AlertTopic `json:"topics"`
}

// AlertTopic is one region's topic.
type AlertTopic struct {
	Region        string               `json:"region"`
	ARN           string               `json:"arn"`
	Exists        bool                 `json:"exists"`
	Subscriptions []setup.Subscription `json:"subscriptions"`
	Confirmed     int                  `json:"confirmed"`
	Wired         int                  `json:"wiredBuckets"` // source buckets whose failures reach it
}

// checkAlerts follows a failure's path for every source: the rule has the
// metrics S3 needs to send failure events, the bucket sends them to its
// region's topic, the topic's policy lets S3 publish for the bucket, and
// somebody has confirmed a subscription.
func (ck *checker) checkAlerts(ctx context.Context) error {
	c := ck.c
	if !c.Alerts.Enabled {
		return nil
	}
	var states []*setup.SourceState
	for _, s := range c.Sources {
		if st := ck.states[s.AccountID]; st != nil {
			states = append(states, st)
		}
	}
	topics, err := setup.ObserveTopics(ctx, c, ck.e.Archive, states)
	if err != nil {
		return accessOr(c.Archive.AccountID, "read the alert topics (sns:GetTopicAttributes, sns:ListSubscriptionsByTopic)", err)
	}
	ck.archive.Topics = topics
	report := &Alerts{Topics: []AlertTopic{}}
	byRegion := map[string]*AlertTopic{}
	for _, region := range slices.Sorted(maps.Keys(topics)) {
		t := topics[region]
		at := AlertTopic{Region: region, ARN: t.ARN, Exists: t.Exists, Subscriptions: t.Subscriptions}
		if at.Subscriptions == nil {
			at.Subscriptions = []setup.Subscription{}
		}
		var pending []string
		for _, s := range t.Subscriptions {
			if s.Confirmed {
				at.Confirmed++
			} else {
				pending = append(pending, s.Shown)
			}
		}
		acct := c.Archive.AccountID
		switch {
		case !t.Exists:
			ck.add(nil, Error, "alerts-topic-missing", acct, applyFix, "alert topic %s does not exist: failures in %s reach nobody", t.ARN, region)
		case at.Confirmed == 0 && len(pending) > 0:
			ck.add(nil, Error, "alerts-unconfirmed", acct, "follow the link in the message SNS sent to "+strings.Join(pending, ", "),
				"topic %s has no confirmed subscription: a failed replication reaches nobody", t.ARN)
		case at.Confirmed == 0:
			ck.add(nil, Error, "alerts-unconfirmed", acct, "list an email address or https URL under alerts.subscribe, then: "+applyFix,
				"topic %s has no subscription: a failed replication reaches nobody", t.ARN)
		case len(pending) > 0:
			ck.add(nil, Warning, "alerts-pending", acct, "follow the link in the message SNS sent to "+strings.Join(pending, ", "),
				"%s of topic %s not confirmed yet", plural(len(pending), "subscription"), t.ARN)
		}
		report.Topics = append(report.Topics, at)
		byRegion[region] = &report.Topics[len(report.Topics)-1]
	}
	for _, a := range ck.report.Accounts {
		st := ck.states[a.Account]
		if st == nil {
			continue
		}
		t := byRegion[st.BucketRegion]
		if why := wiringProblem(st, topics[st.BucketRegion]); why != "" {
			ck.add(a, Error, "alerts-unwired", a.Account, applyFix, "a failed replication of bucket %s raises no alert: %s", st.Trail.Bucket, why)
			continue
		}
		a.AlertsWired = true
		if t != nil {
			t.Wired++
		}
	}
	ck.report.Alerts = report
	return nil
}

// wiringProblem says what stops S3's failure events of a source from
// reaching its topic, or "".
func wiringProblem(st *setup.SourceState, t *setup.Topic) string {
	if t == nil || !t.Exists {
		return "its topic does not exist"
	}
	metrics := false
	if st.Replication != nil {
		for _, r := range st.Replication.Rules {
			if aws.ToString(r.ID) == setup.RuleID && r.Destination != nil && r.Destination.Metrics != nil {
				metrics = r.Destination.Metrics.Status == s3types.MetricsStatusEnabled
			}
		}
	}
	if !metrics {
		return "replication rule " + setup.RuleID + " has no replication metrics, without which S3 sends no failure events"
	}
	w := setup.Wired(st.Notification)
	if w == nil {
		return "the bucket sends no event notification for it"
	}
	if aws.ToString(w.TopicArn) != t.ARN {
		return "the bucket sends failures to " + aws.ToString(w.TopicArn) + ", not " + t.ARN
	}
	if !slices.Contains(w.Events, s3types.EventS3ReplicationOperationFailedReplication) {
		return "the bucket's notification leaves out " + string(s3types.EventS3ReplicationOperationFailedReplication)
	}
	prefix, suffix := setup.KeyFilter(w.Filter)
	if suffix != "" {
		return "the bucket's notification is limited to keys ending in " + suffix
	}
	if !strings.HasPrefix(st.Trail.LogPrefix(), prefix) {
		return "the bucket's notification covers keys under " + prefix + ", the trail writes under " + st.Trail.LogPrefix()
	}
	req := policy.Request{Caller: policy.Caller{Service: "s3.amazonaws.com"}, Action: "sns:Publish", Resource: t.ARN,
		Context: map[string][]string{"aws:SourceArn": {"arn:aws:s3:::" + st.Trail.Bucket}, "aws:SourceAccount": {st.Config.AccountID}}}
	if t.Policy == nil || t.Policy.Evaluate(req).Decision != policy.Allowed {
		return "the policy of topic " + t.ARN + " does not let S3 publish events of this bucket"
	}
	return ""
}
