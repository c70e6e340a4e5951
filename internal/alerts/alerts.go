// Package alerts proves the path a replication failure takes to a person: it
// has S3 itself send a test event from each source bucket to its topic.
package alerts

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/trailkeeper/trailkeeper/internal/awsapi"
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
func Test(ctx context.Context, e *setup.Env, parallel int) ([]*Result, []*Topic, error) {
	c := e.Config
	if !c.Alerts.Enabled {
		return nil, nil, &setup.Conflict{Account: c.Archive.AccountID, Msg: "the config has no alerts section", Hint: "add alerts: with subscribe: [an email address or https URL], then trailkeeper apply"}
	}
	var sources []*setup.SourceState
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, parallel))
	for _, src := range c.Sources {
		cl := e.Sources[src.AccountID]
		if cl == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st, err := setup.ObserveSource(ctx, c, src, cl)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			sources = append(sources, st)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	results := make([]*Result, len(sources))
	wg = sync.WaitGroup{}
	for i, st := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = send(ctx, e.Sources[st.Config.AccountID], st, setup.TopicARN(c, st.BucketRegion))
		}()
	}
	wg.Wait()
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
	slices.SortFunc(results, func(a, b *Result) int { return strings.Compare(a.Account, b.Account) })
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
