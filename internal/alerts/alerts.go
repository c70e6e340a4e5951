// Package alerts proves the path a replication failure takes to a person: it
// has S3 itself send a test event from each source bucket to its topic.
package alerts

import (
	"context"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// Result is one source bucket's test.
type Result struct {
	Account string `json:"account"`
	Bucket  string `json:"bucket"`
	Topic   string `json:"topic"`
	Sent    bool   `json:"sent"`              // S3 accepted the configuration and sent s3:TestEvent
	Problem string `json:"problem,omitempty"` // why not
}

// Topic is a topic the tests went to, with who receives them.
type Topic struct {
	ARN           string               `json:"arn"`
	Subscriptions []setup.Subscription `json:"subscriptions"`
	Confirmed     int                  `json:"confirmed"`
}

// Test writes each wired bucket's notification configuration again, as it
// is: before accepting it, S3 publishes s3:TestEvent to every topic it names
// ("Amazon S3 Notification"), through the same topic policy and subscriptions
// a failure event takes. A bucket not wired is reported, not changed.
func Test(ctx context.Context, e *setup.Env, workers int) ([]*Result, []*Topic, error) {
	c := e.Config
	if !c.Alerts.Enabled {
		return nil, nil, &setup.Conflict{Account: c.Archive.AccountID, Msg: "the config has no alerts section", Hint: "add alerts: with subscribe: [an email address or https URL], then trailkeeper apply"}
	}
	var connected []config.Source
	for _, src := range c.Sources {
		if e.Sources[src.AccountID] != nil {
			connected = append(connected, src)
		}
	}
	sources := make([]*setup.SourceState, len(connected))
	results := make([]*Result, len(connected))
	err := parallel.For(ctx, max(1, workers), len(connected), func(ctx context.Context, i int) error {
		cl := e.Sources[connected[i].AccountID]
		st, err := setup.ObserveWiring(ctx, c, connected[i], cl)
		if err != nil {
			return err
		}
		sources[i], results[i] = st, send(ctx, cl, st, setup.TopicARN(c, st.BucketRegion))
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	observed, err := setup.ObserveTopics(ctx, c, e.Archive, sources)
	if err != nil {
		return nil, nil, err
	}
	var topics []*Topic
	for _, st := range sources {
		t := observed[st.BucketRegion]
		if t == nil || slices.ContainsFunc(topics, func(x *Topic) bool { return x.ARN == t.ARN }) {
			continue
		}
		out := &Topic{ARN: t.ARN, Subscriptions: t.Subscriptions}
		if out.Subscriptions == nil {
			out.Subscriptions = []setup.Subscription{}
		}
		for _, s := range t.Subscriptions {
			if s.Confirmed {
				out.Confirmed++
			}
		}
		topics = append(topics, out)
	}
	return results, topics, nil
}

func send(ctx context.Context, cl *awsapi.Clients, st *setup.SourceState, topic string) *Result {
	acct, b := st.Config.AccountID, st.Trail.Bucket
	r := &Result{Account: acct, Bucket: b, Topic: topic}
	w := setup.Wired(st.Notification)
	if w == nil || aws.ToString(w.TopicArn) != topic {
		r.Problem = "not wired to " + topic + ": run trailkeeper apply"
		return r
	}
	_, err := cl.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &b,
		NotificationConfiguration: st.Notification, ExpectedBucketOwner: &acct})
	if err != nil {
		r.Problem = "S3 refused to send: " + awsapi.Code(err) + ": " + awsapi.Message(err)
		if awsapi.Code(err) == "InvalidArgument" {
			r.Problem += " (the topic's policy must let S3 publish for this bucket: trailkeeper apply)"
		}
		return r
	}
	r.Sent = true
	return r
}
