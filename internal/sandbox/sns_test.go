package sandbox

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/trailkeeper/trailkeeper/internal/testenv"
)

func (e *env) sns(acct string) *sns.Client { return sns.NewFromConfig(e.cfg(acct)) }

// subscriber is an HTTP endpoint on loopback that confirms its subscription by
// visiting the SubscribeURL, checks each message's signature against the
// certificate at SigningCertURL, and hands notifications to the test.
type subscriber struct {
	t        *testing.T
	srv      *httptest.Server
	messages chan map[string]string
	confirms chan string
}

func newSubscriber(t *testing.T) *subscriber {
	s := &subscriber{t: t, messages: make(chan map[string]string, 100), confirms: make(chan string, 10)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]string
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("subscriber: body is not SNS's JSON: %v", err)
			return
		}
		if got := r.Header.Get("x-amz-sns-message-type"); got != m["Type"] {
			t.Errorf("header x-amz-sns-message-type %q, body Type %q", got, m["Type"])
		}
		if err := verifySNS(m); err != nil {
			t.Errorf("subscriber: %s message signature: %v", m["Type"], err)
		}
		switch m["Type"] {
		case "SubscriptionConfirmation":
			resp, err := http.Get(m["SubscribeURL"])
			if err != nil {
				t.Errorf("visit SubscribeURL: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("SubscribeURL answered %d: %s", resp.StatusCode, body)
			}
			s.confirms <- m["TopicArn"]
		case "Notification":
			s.messages <- m
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// next waits for the next notification: an event, not a sleep.
func (s *subscriber) next() map[string]string {
	s.t.Helper()
	ctx, cancel := testenv.Patience(s.t)
	defer cancel()
	select {
	case m := <-s.messages:
		return m
	case <-ctx.Done():
		s.t.Fatal("no notification before the test's deadline")
		return nil
	}
}

func (s *subscriber) confirmed() {
	s.t.Helper()
	ctx, cancel := testenv.Patience(s.t)
	defer cancel()
	select {
	case <-s.confirms:
	case <-ctx.Done():
		s.t.Fatal("no subscription confirmation before the test's deadline")
	}
}

// verifySNS checks a message as SNS's documentation tells subscribers to: the
// string to sign from the type's fields, SHA256withRSA for SignatureVersion 2.
func verifySNS(m map[string]string) error {
	resp, err := http.Get(m["SigningCertURL"])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	block, _ := pem.Decode(data)
	if block == nil {
		return io.ErrUnexpectedEOF
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	fields := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if m["Type"] != "Notification" {
		fields = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var buf bytes.Buffer
	for _, f := range fields {
		if v, ok := m[f]; ok {
			buf.WriteString(f + "\n" + v + "\n")
		}
	}
	sig, err := base64.StdEncoding.DecodeString(m["Signature"])
	if err != nil || m["SignatureVersion"] != "2" {
		return io.ErrUnexpectedEOF
	}
	sum := sha256.Sum256(buf.Bytes())
	return rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig)
}

// alertTopic creates a topic in the archive account that the source bucket's
// events may reach, limited as trailkeeper limits it.
func alertTopic(t *testing.T, e *env, bucket string) string {
	arn := *must(e.sns(archiveAcct).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts")})).OK(t).TopicArn
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"S3Events","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sns:Publish","Resource":"` + arn + `",
"Condition":{"StringEquals":{"aws:SourceAccount":"` + sourceAcct + `"},"ArnLike":{"aws:SourceArn":"arn:aws:s3:::` + bucket + `"}}}]}`
	must(e.sns(archiveAcct).SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &arn, AttributeName: aws.String("Policy"), AttributeValue: &policy})).OK(t)
	return arn
}

func failureConfig(topicARN string) *types.NotificationConfiguration {
	return &types.NotificationConfiguration{TopicConfigurations: []types.TopicConfiguration{{
		Id: aws.String("replication-failures"), TopicArn: &topicARN,
		Events: []types.Event{"s3:Replication:OperationFailedReplication"},
		Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: types.FilterRuleNamePrefix, Value: aws.String("AWSLogs/")}}}},
	}}}
}

func TestReplicationFailureReachesASubscriber(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	metrics := func(r *types.ReplicationRule) {
		r.Destination.Metrics = &types.Metrics{Status: types.MetricsStatusEnabled}
	}
	must(e.s3(sourceAcct).PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: p.rule(metrics)})).OK(t)
	p.grant(t, otherAcct) // the archive does not let the source in
	topicARN := alertTopic(t, e, p.source)

	sub := newSubscriber(t)
	out := must(e.sns(archiveAcct).Subscribe(ctx, &sns.SubscribeInput{TopicArn: &topicARN, Protocol: aws.String("http"), Endpoint: &sub.srv.URL})).OK(t)
	if *out.SubscriptionArn != "pending confirmation" {
		t.Errorf("Subscribe answered %q, want SNS's %q", *out.SubscriptionArn, "pending confirmation")
	}
	sub.confirmed()
	subs := must(e.sns(archiveAcct).ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &topicARN})).OK(t)
	if len(subs.Subscriptions) != 1 || !strings.HasPrefix(*subs.Subscriptions[0].SubscriptionArn, topicARN+":") {
		t.Fatalf("subscriptions after confirmation: %+v", subs.Subscriptions)
	}

	// S3 proves the destination with a test event when the configuration is put.
	must(e.s3(sourceAcct).PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &p.source, NotificationConfiguration: failureConfig(topicARN)})).OK(t)
	var test map[string]string
	if err := json.Unmarshal([]byte(sub.next()["Message"]), &test); err != nil || test["Event"] != "s3:TestEvent" || test["Bucket"] != p.source {
		t.Fatalf("first message %v (%v), want S3's s3:TestEvent for %s", test, err, p.source)
	}

	key := "AWSLogs/111111111111/CloudTrail/ap-northeast-1/2026/12/03/a.json.gz"
	if st, why := p.put(t, key); st != "FAILED" || why != "DstPutObjectNotPermitted" {
		t.Fatalf("replication %s %s, want FAILED DstPutObjectNotPermitted", st, why)
	}
	m := sub.next()
	if m["Subject"] != "Amazon S3 Notification" || m["TopicArn"] != topicARN {
		t.Errorf("notification subject %q topic %q", m["Subject"], m["TopicArn"])
	}
	var event struct {
		Records []struct {
			EventVersion, EventSource, AWSRegion, EventName string
			S3                                              struct {
				ConfigurationID string `json:"configurationId"`
				Bucket          struct{ Name, ARN string }
				Object          struct {
					Key       string
					Size      int64
					VersionID string `json:"versionId"`
				}
			}
			ReplicationEventData map[string]string
		}
	}
	if err := json.Unmarshal([]byte(m["Message"]), &event); err != nil || len(event.Records) != 1 {
		t.Fatalf("event %s: %v", m["Message"], err)
	}
	r := event.Records[0]
	if r.EventName != "Replication:OperationFailedReplication" || r.EventVersion != "2.2" || r.EventSource != "aws:s3" || r.AWSRegion != region ||
		r.S3.Bucket.Name != p.source || r.S3.Object.Key != key || r.S3.Object.VersionID == "" || r.S3.ConfigurationID != "replication-failures" {
		t.Errorf("event record %+v", r)
	}
	if d := r.ReplicationEventData; d["failureReason"] != "DstPutObjectNotPermitted" || d["replicationRuleId"] != "trailkeeper" ||
		d["destinationBucket"] != "arn:aws:s3:::"+p.archive || d["s3Operation"] != "OBJECT_PUT" {
		t.Errorf("replicationEventData %v", d)
	}

	// Without replication metrics S3 sends no failure event (User Guide). The
	// sandbox delivers in order, so a marker published after the failure
	// arriving first proves no event came before it.
	must(e.s3(sourceAcct).PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &p.source, ReplicationConfiguration: p.rule(nil)})).OK(t)
	if st, _ := p.put(t, "AWSLogs/111111111111/b.json.gz"); st != "FAILED" {
		t.Fatalf("second object %s, want FAILED", st)
	}
	must(e.sns(archiveAcct).Publish(ctx, &sns.PublishInput{TopicArn: &topicARN, Message: aws.String("marker")})).OK(t)
	if got := sub.next()["Message"]; got != "marker" {
		t.Errorf("without metrics a failure event was sent: %s", got)
	}

	// The UnsubscribeURL in a message works without credentials.
	resp := must(http.Get(m["UnsubscribeURL"])).OK(t)
	resp.Body.Close()
	if subs := must(e.sns(archiveAcct).ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &topicARN})).OK(t); resp.StatusCode != 200 || len(subs.Subscriptions) != 0 {
		t.Errorf("after the UnsubscribeURL (%d): %d subscriptions", resp.StatusCode, len(subs.Subscriptions))
	}
}

func TestNotificationConfigurationValidation(t *testing.T) {
	e := newEnv(t, Options{})
	p := newPair(t, e)
	topicARN := alertTopic(t, e, p.source)
	open := *must(e.sns(archiveAcct).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("no-s3-policy")})).OK(t).TopicArn
	put := func(cfg *types.NotificationConfiguration, skip bool) error {
		in := &s3.PutBucketNotificationConfigurationInput{Bucket: &p.source, NotificationConfiguration: cfg}
		if skip {
			in.SkipDestinationValidation = aws.Bool(true)
		}
		_, err := e.s3(sourceAcct).PutBucketNotificationConfiguration(ctx, in)
		return err
	}
	with := func(edit func(*types.TopicConfiguration)) *types.NotificationConfiguration {
		c := failureConfig(topicARN)
		edit(&c.TopicConfigurations[0])
		return c
	}
	other := types.TopicConfiguration{Id: aws.String("someone-else"), TopicArn: &topicARN, Events: []types.Event{"s3:Replication:*"}}
	tests := []struct {
		name string
		cfg  *types.NotificationConfiguration
		skip bool
		want string // substring of the error, "" for success
	}{
		{"the trailkeeper configuration", failureConfig(topicARN), false, ""},
		{"an unknown event", with(func(c *types.TopicConfiguration) { c.Events = []types.Event{"s3:Replication:Failed"} }), false, "not supported"},
		{"a topic in another region", with(func(c *types.TopicConfiguration) {
			c.TopicArn = aws.String("arn:aws:sns:us-east-1:" + archiveAcct + ":alerts")
		}), false, "region is not valid"},
		{"a topic that does not exist", with(func(c *types.TopicConfiguration) { c.TopicArn = aws.String(topicARN + "-gone") }), false, "Unable to validate"},
		{"a topic whose policy does not let S3 publish", with(func(c *types.TopicConfiguration) { c.TopicArn = &open }), false, "Unable to validate"},
		{"the same, without validation", with(func(c *types.TopicConfiguration) { c.TopicArn = &open }), true, ""},
		{"overlapping configurations", &types.NotificationConfiguration{TopicConfigurations: append(failureConfig(topicARN).TopicConfigurations, other)}, false, "overlap"},
		{"distinct prefixes do not overlap", &types.NotificationConfiguration{TopicConfigurations: append(failureConfig(topicARN).TopicConfigurations,
			types.TopicConfiguration{Id: other.Id, TopicArn: &topicARN, Events: other.Events, Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: types.FilterRuleNamePrefix, Value: aws.String("other/")}}}}})}, false, ""},
	}
	for _, tc := range tests {
		err := put(tc.cfg, tc.skip)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (errCode(err) != "InvalidArgument" || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want InvalidArgument with %q", tc.name, err, tc.want)
		}
	}
	got := must(e.s3(sourceAcct).GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &p.source})).OK(t)
	if len(got.TopicConfigurations) != 2 || *got.TopicConfigurations[1].Id != "someone-else" {
		t.Errorf("the stored configuration is not the last one accepted: %+v", got.TopicConfigurations)
	}
	// Another account's topic policy decides, not the caller's wishes.
	if _, err := e.sns(otherAcct).Publish(ctx, &sns.PublishInput{TopicArn: &topicARN, Message: aws.String("x")}); errCode(err) != "AuthorizationError" {
		t.Errorf("another account published to the topic: %v", err)
	}
	if _, err := e.sns(archiveAcct).SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &topicARN, AttributeName: aws.String("Policy"), AttributeValue: aws.String("{not json")}); errCode(err) != "InvalidParameter" {
		t.Errorf("a malformed topic policy: %v", err)
	}
	var nf *snstypes.NotFoundException
	if _, err := e.sns(archiveAcct).GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: aws.String(topicARN + "-gone")}); !errors.As(err, &nf) {
		t.Errorf("a missing topic: %v, want NotFoundException", err)
	}
}

func TestSNSWithTheCLI(t *testing.T) {
	e := newEnv(t, Options{})
	c := newCLI(t, e.url)
	arn := strings.TrimSpace(c.ok(archiveAcct, "sns", "create-topic", "--name", "alerts", "--query", "TopicArn", "--output", "text"))
	if arn != "arn:aws:sns:"+region+":"+archiveAcct+":alerts" {
		t.Fatalf("create-topic: %s", arn)
	}
	if again := c.ok(archiveAcct, "sns", "create-topic", "--name", "alerts", "--query", "TopicArn", "--output", "text"); again != arn {
		t.Errorf("create-topic is not idempotent: %s", again)
	}
	sub := newSubscriber(t)
	c.ok(archiveAcct, "sns", "subscribe", "--topic-arn", arn, "--protocol", "http", "--notification-endpoint", sub.srv.URL)
	sub.confirmed()
	c.ok(archiveAcct, "sns", "subscribe", "--topic-arn", arn, "--protocol", "email", "--notification-endpoint", "ops@example.com")
	list := c.ok(archiveAcct, "sns", "list-subscriptions-by-topic", "--topic-arn", arn, "--query", "Subscriptions[].[Protocol,SubscriptionArn]", "--output", "text")
	if !strings.Contains(list, "http\t"+arn+":") || !strings.Contains(list, "email\tPendingConfirmation") {
		t.Errorf("list-subscriptions-by-topic:\n%s", list)
	}
	attrs := c.ok(archiveAcct, "sns", "get-topic-attributes", "--topic-arn", arn, "--query", "Attributes.[SubscriptionsConfirmed,SubscriptionsPending]", "--output", "text")
	if attrs != "1\t1" {
		t.Errorf("confirmed and pending: %q, want 1 and 1", attrs)
	}
	c.ok(archiveAcct, "sns", "publish", "--topic-arn", arn, "--subject", "hello", "--message", "from the CLI")
	if m := sub.next(); m["Message"] != "from the CLI" || m["Subject"] != "hello" {
		t.Errorf("delivered %v", m)
	}
	if _, err := c.run(archiveAcct, "sns", "subscribe", "--topic-arn", arn, "--protocol", "sms", "--notification-endpoint", "+15555550100"); err == nil || !strings.Contains(err.Error(), "InvalidParameter") {
		t.Errorf("an SMS subscription: %v", err)
	}
	c.ok(archiveAcct, "sns", "delete-topic", "--topic-arn", arn)
	if _, err := c.run(archiveAcct, "sns", "get-topic-attributes", "--topic-arn", arn); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("after delete-topic: %v", err)
	}
}

// A subscriber that is not up yet (or answers 500) when SNS first tries gets
// its confirmation later: SNS retries on the topic's delivery policy, and
// waits between tries at least what the policy says. A policy SNS would
// refuse is refused.
func TestSNSRetriesOnTheDeliveryPolicy(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.sns(archiveAcct)
	topic := must(c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("retries")})).OK(t).TopicArn
	policy := `{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":1,"maxDelayTarget":2,"numRetries":4,"numNoDelayRetries":1,"numMinDelayRetries":1,"backoffFunction":"exponential"},"disableSubscriptionOverrides":false}}`
	must(c.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: topic, AttributeName: aws.String("DeliveryPolicy"), AttributeValue: &policy})).OK(t)
	for _, bad := range []string{`{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":0}}}`, `{"http":{"defaultHealthyRetryPolicy":{"numRetries":101}}}`,
		`{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":3000,"maxDelayTarget":3000,"numRetries":2}}}`, `not json`} {
		if _, err := c.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: topic, AttributeName: aws.String("DeliveryPolicy"), AttributeValue: aws.String(bad)}); err == nil || !strings.Contains(err.Error(), "InvalidParameter") {
			t.Errorf("delivery policy %s: %v", bad, err)
		}
	}
	sub := newSubscriber(t)
	var attempts []time.Time
	var mu sync.Mutex
	inner := sub.srv.Config.Handler
	sub.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		n := len(attempts)
		mu.Unlock()
		if n <= 3 { // down for the first attempt and two retries
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		inner.ServeHTTP(w, r)
	})
	must(c.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic, Protocol: aws.String("http"), Endpoint: aws.String(sub.srv.URL)})).OK(t)
	sub.confirmed()
	mu.Lock()
	defer mu.Unlock()
	// First retry at once, then 1 s (pre-backoff), then the backoff's 1 s.
	if len(attempts) != 4 || attempts[2].Sub(attempts[1]) < time.Second || attempts[3].Sub(attempts[2]) < time.Second {
		t.Fatalf("attempts at %v", attempts)
	}
}

// SNS lists subscriptions a page at a time: with pages of two, three
// subscriptions come in two pages, and only a client that follows NextToken
// (the AWS CLI does) sees all three.
func TestSubscriptionListsArePaged(t *testing.T) {
	e := newEnv(t, Options{PageSize: 2})
	c := newCLI(t, e.url)
	arn := c.ok(archiveAcct, "sns", "create-topic", "--name", "alerts", "--query", "TopicArn", "--output", "text")
	for _, who := range []string{"a", "b", "c"} {
		c.ok(archiveAcct, "sns", "subscribe", "--topic-arn", arn, "--protocol", "email", "--notification-endpoint", who+"@example.com")
	}
	for _, list := range [][]string{{"list-subscriptions-by-topic", "--topic-arn", arn}, {"list-subscriptions"}} {
		first := c.ok(archiveAcct, append(append([]string{"sns"}, list...), "--no-paginate", "--query", "[length(Subscriptions), NextToken != null]", "--output", "text")...)
		all := strings.Fields(c.ok(archiveAcct, append(append([]string{"sns"}, list...), "--query", "Subscriptions[].Endpoint", "--output", "text")...))
		slices.Sort(all)
		if first != "2\tTrue" || strings.Join(all, " ") != "a@example.com b@example.com c@example.com" {
			t.Errorf("%s: first page %q, all %q", list[0], first, all)
		}
	}
}
