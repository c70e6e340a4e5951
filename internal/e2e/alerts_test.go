package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/sandbox"
	"github.com/trailkeeper/trailkeeper/internal/setup"
	"github.com/trailkeeper/trailkeeper/internal/testenv"
	"github.com/trailkeeper/trailkeeper/internal/world"
)

// inbox is world.Inbox with waits that fail the test.
type inbox struct {
	*world.Inbox
	t   *testing.T
	url string
}

func newInbox(t *testing.T) *inbox {
	in, err := world.NewInbox()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return &inbox{Inbox: in, t: t, url: in.URL}
}

// await waits for the next message that matches; others are passed over.
func (in *inbox) await(what string, match func(string) bool) string {
	in.t.Helper()
	patience, cancel := testenv.Patience(in.t)
	defer cancel()
	for {
		select {
		case msg := <-in.Messages:
			if match(msg) {
				return msg
			}
		case <-patience.Done():
			in.t.Fatalf("no matching %s before the test's deadline", what)
			return ""
		}
	}
}

// next waits for the next S3 event that matches.
func (in *inbox) next(match func(world.S3Event) bool) world.S3Event {
	in.t.Helper()
	msg := in.await("alert", func(msg string) bool {
		ev, ok := world.ParseS3Event(msg)
		if !ok {
			in.t.Errorf("a notification whose message is not S3's JSON: %s", msg)
		}
		return match(ev)
	})
	ev, _ := world.ParseS3Event(msg)
	return ev
}

func (in *inbox) waitConfirmed(n int) {
	in.t.Helper()
	patience, cancel := testenv.Patience(in.t)
	defer cancel()
	for range n {
		select {
		case <-in.Confirmed:
		case <-patience.Done():
			in.t.Fatal("the subscription was not confirmed before the test's deadline")
		}
	}
}

func testEventFrom(bucket string) func(world.S3Event) bool {
	return func(ev world.S3Event) bool { return ev.TestBucket == bucket }
}

const foreignTopicPolicySid = "SecurityTeamPublishes"

// TestAlertsReachAPerson: alerts configured, the archive grant broken, a log
// written: the person's endpoint gets S3's failure event naming the object and
// DstPutObjectNotPermitted; apply repairs the grant, backfill brings the
// object in. Someone else's notifications, topic statement and subscription
// survive apply and remove-source.
func TestAlertsReachAPerson(t *testing.T) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	e.member(world.Member{Account: acctB, Region: "us-east-1"}) // its topic lives in us-east-1
	bucketA, bucketB := "cm-members-cloudtrail-"+acctA, "cm-members-cloudtrail-"+acctB

	// acctA's bucket already notifies a topic of its own, and EventBridge.
	srcA := world.S3(e.url, acctA, region)
	snsA := sns.NewFromConfig(world.Config(e.url, acctA, region))
	own := *must(snsA.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("uploads")})).OK(t).TopicArn
	must(snsA.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &own, AttributeName: aws.String("Policy"), AttributeValue: aws.String(
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sns:Publish","Resource":"` + own + `","Condition":{"StringEquals":{"aws:SourceAccount":"` + acctA + `"}}}]}`)})).OK(t)
	foreign := s3types.TopicConfiguration{Id: aws.String("uploads"), TopicArn: &own, Events: []s3types.Event{"s3:ObjectCreated:*"},
		Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{{Name: "prefix", Value: aws.String("uploads/")}}}}}
	must(srcA.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &bucketA, NotificationConfiguration: &s3types.NotificationConfiguration{
		TopicConfigurations: []s3types.TopicConfiguration{foreign}, EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}}})).OK(t)

	person := newInbox(t)
	e.writeConfig([]string{acctA, acctB}, "alerts:\n  subscribe: ["+person.url+"]\n")
	cfg := strings.Replace(string(must(os.ReadFile(e.config)).OK(t)), "profile: member-"+acctB+"\n", "profile: member-"+acctB+"\n    region: us-east-1\n", 1)
	must(0, os.WriteFile(e.config, []byte(cfg), 0o600)).OK(t)

	plan, _, code := e.run("plan")
	for _, want := range []string{"topic arn:aws:sns:ap-northeast-1:" + archiveAcct + ":trailkeeper-replication-failures", "topic arn:aws:sns:us-east-1:" + archiveAcct + ":trailkeeper-replication-failures",
		"subscribe " + strings.TrimSuffix(person.url, "/alerts") + "/…", "notifications of " + bucketA, "OperationFailedReplication and OperationMissedThreshold"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan (exit %d) does not say %q:\n%s", code, want, plan)
		}
	}
	e.apply()
	person.waitConfirmed(2) // one topic per region

	// Someone adds a statement and a subscription of their own to the topic.
	topicA := setup.TopicARN(mustConfig(t, e), region)
	archSNS := sns.NewFromConfig(world.Config(e.url, archiveAcct, region))
	attrs := must(archSNS.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: &topicA})).OK(t)
	doc := must(policy.Parse([]byte(attrs.Attributes["Policy"]), policy.Resource)).OK(t)
	doc.Statements = append(doc.Statements, policy.Statement{Sid: foreignTopicPolicySid, Effect: policy.Allow, Principal: &policy.Principal{AWS: policy.Strings{"arn:aws:iam::" + archiveAcct + ":root"}},
		Action: policy.Strings{"sns:Publish"}, Resource: policy.Strings{topicA}})
	must(archSNS.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &topicA, AttributeName: aws.String("Policy"), AttributeValue: aws.String(string(mustJSON(doc)))})).OK(t)
	must(archSNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: &topicA, Protocol: aws.String("email"), Endpoint: aws.String("security@example.com")})).OK(t)

	e.sb.ResetCalls()
	if out := e.apply(); len(e.writes()) != 0 || !strings.Contains(out, "No changes") {
		t.Fatalf("a second apply wrote %v:\n%s", e.writes(), out)
	}
	e.deliveries(acctA, 1)
	r, code, out := e.status()
	if code != 0 || r.Alerts == nil || len(r.Alerts.Topics) != 2 || !r.Accounts[0].AlertsWired || !r.Accounts[1].AlertsWired {
		t.Fatalf("status with alerts wired: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "/alerts") {
		t.Errorf("status prints a webhook's path, which may hold its secret:\n%s", out)
	}

	// alerts test: S3 itself sends a test event from each bucket.
	e.sb.ResetCalls()
	out, errOut, code := e.run("alerts", "test")
	if code != 0 || strings.Count(out, "sent by S3") != 2 {
		t.Fatalf("alerts test: exit %d\n%s%s", code, out, errOut)
	}
	// Identity, trail and its status, the bucket's notifications and region, the test itself.
	if n := countAccount(e.sb.Calls(), acctA); n > 6 {
		t.Errorf("alerts test made %d calls in account %s, want at most 6: %v", n, acctA, e.sb.Calls())
	}
	person.next(testEventFrom(bucketA))
	person.next(testEventFrom(bucketB))

	// The archive stops letting the sources in; CloudTrail writes a log.
	arch := world.S3(e.url, archiveAcct, region)
	pol := must(arch.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(archive)})).OK(t)
	adoc := must(policy.Parse([]byte(aws.ToString(pol.Policy)), policy.Resource)).OK(t)
	adoc.Statements = slices.DeleteFunc(adoc.Statements, func(s policy.Statement) bool { return s.Sid == setup.SidReplication })
	must(arch.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(archive), Policy: aws.String(string(mustJSON(adoc)))})).OK(t)
	before := time.Now()
	e.deliveries(acctA, 1)
	// Account B's calls since its last delivery fail the same way: the alert
	// looked for is A's.
	ev := person.next(func(ev world.S3Event) bool { return ev.Name != "" && strings.HasPrefix(ev.Key, "AWSLogs/"+acctA+"/") })
	name, key, reason := ev.Name, ev.Key, ev.Reason
	// The delivery wrote a log file and may have written a digest: either may fail first.
	if name != "Replication:OperationFailedReplication" || reason != "DstPutObjectNotPermitted" || !strings.HasPrefix(key, "AWSLogs/"+acctA+"/CloudTrail") {
		t.Fatalf("the alert: %s %s %s", name, key, reason)
	}
	t.Logf("the failure reached the person %v after the delivery", time.Since(before).Round(time.Millisecond))
	head := must(srcA.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucketA, Key: &key})).OK(t)
	if head.ReplicationStatus != s3types.ReplicationStatusFailed {
		t.Fatalf("the object the alert names is %s, want FAILED", head.ReplicationStatus)
	}

	// apply repairs the grant; backfill brings the FAILED object in.
	e.apply()
	if out, errOut, code := e.run("backfill", "--wait", "--poll", "10ms"); code != 0 {
		t.Fatalf("backfill: exit %d\n%s%s", code, out, errOut)
	}
	must(arch.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(archive), Key: &key})).OK(t)
	if _, code, out := e.status(); code != 0 {
		t.Fatalf("status after apply and backfill: exit %d\n%s", code, out)
	}

	// remove-source takes out only what trailkeeper wrote.
	if out, errOut, code := e.run("remove-source", acctA, "--yes"); code != 0 {
		t.Fatalf("remove-source: exit %d\n%s%s", code, out, errOut)
	}
	n := must(srcA.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &bucketA})).OK(t)
	if len(n.TopicConfigurations) != 1 || aws.ToString(n.TopicConfigurations[0].Id) != "uploads" || n.EventBridgeConfiguration == nil {
		t.Errorf("after remove-source the bucket's notifications are %+v, want only the owner's own", n.TopicConfigurations)
	}
	attrs = must(archSNS.GetTopicAttributes(ctx, &sns.GetTopicAttributesInput{TopicArn: &topicA})).OK(t)
	after := must(policy.Parse([]byte(attrs.Attributes["Policy"]), policy.Resource)).OK(t)
	if after.Statement(foreignTopicPolicySid) == nil || after.Statement(setup.SidS3Events) != nil {
		t.Errorf("topic policy after the region's only source left:\n%s", attrs.Attributes["Policy"])
	}
	subs := must(archSNS.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &topicA})).OK(t)
	var endpoints []string
	for _, s := range subs.Subscriptions {
		endpoints = append(endpoints, aws.ToString(s.Endpoint))
	}
	if slices.Sort(endpoints); !slices.Equal(endpoints, []string{person.url, "security@example.com"}) {
		t.Errorf("subscriptions after remove-source: %v", endpoints)
	}
}

// alerted is an env with one source applied with alerts to a confirmed inbox
// (and the config's further sections, such as watch: {}), and one delivery.
func alerted(t *testing.T, more string) (*env, *inbox) {
	e := newEnv(t, sandbox.Options{})
	e.member(world.Member{Account: acctA})
	person := newInbox(t)
	e.writeConfig([]string{acctA}, "alerts:\n  subscribe: ["+person.url+"]\n"+more)
	e.apply()
	person.waitConfirmed(1)
	e.deliveries(acctA, 1)
	return e, person
}

// TestStatusFollowsTheAlertPath: each link a failure's alert needs, broken by
// hand, is a finding that names it.
func TestStatusFollowsTheAlertPath(t *testing.T) {
	e, person := alerted(t, "")
	if _, code, out := e.status(); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	topic := setup.TopicARN(mustConfig(t, e), region)
	archSNS := sns.NewFromConfig(world.Config(e.url, archiveAcct, region))
	bucket := "cm-members-cloudtrail-" + acctA
	src := world.S3(e.url, acctA, region)
	tests := []struct {
		name, code, says string
		breakIt          func()
	}{
		{"the topic policy loses its statement", "alerts-unwired", "does not let S3 publish events of this bucket", func() {
			must(archSNS.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &topic, AttributeName: aws.String("Policy"), AttributeValue: aws.String(
				`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + archiveAcct + `"},"Action":"sns:Publish","Resource":"` + topic + `"}]}`)})).OK(t)
		}},
		{"the bucket's notification is gone", "alerts-unwired", "sends no event notification", func() {
			must(src.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &bucket, NotificationConfiguration: &s3types.NotificationConfiguration{}})).OK(t)
		}},
		{"the rule loses its metrics", "alerts-unwired", "no replication metrics", func() {
			rep := must(src.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &bucket})).OK(t).ReplicationConfiguration
			rep.Rules[0].Destination.Metrics, rep.Rules[0].Destination.ReplicationTime = nil, nil
			must(src.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: &bucket, ReplicationConfiguration: rep})).OK(t)
		}},
		{"the person unsubscribes", "alerts-unconfirmed", "reaches nobody", func() {
			subs := must(archSNS.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: &topic})).OK(t)
			must(archSNS.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: subs.Subscriptions[0].SubscriptionArn})).OK(t)
		}},
	}
	for _, tc := range tests {
		tc.breakIt()
		r, code, out := e.status()
		if f := finding(r, tc.code); code != 1 || f == nil || !strings.Contains(f.Message, tc.says) {
			t.Errorf("%s: exit %d, want finding %s saying %q:\n%s", tc.name, code, tc.code, tc.says, out)
		}
		e.apply()
		if tc.code == "alerts-unconfirmed" {
			person.waitConfirmed(1) // apply subscribed the endpoint again
		}
		if _, code, out := e.status(); code != 0 {
			t.Fatalf("%s: apply did not repair it: exit %d\n%s", tc.name, code, out)
		}
	}
}

// TestAlertsBesideSomeoneElses: a bucket that already sends its replication
// failures elsewhere is a conflict plan names; turning alerts off unwires
// trailkeeper's configuration only.
func TestAlertsBesideSomeoneElses(t *testing.T) {
	e, _ := alerted(t, "")
	bucket := "cm-members-cloudtrail-" + acctA
	src := world.S3(e.url, acctA, region)
	snsA := sns.NewFromConfig(world.Config(e.url, acctA, region))
	theirs := *must(snsA.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("ops")})).OK(t).TopicArn
	must(snsA.SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: &theirs, AttributeName: aws.String("Policy"), AttributeValue: aws.String(
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sns:Publish","Resource":"` + theirs + `"}]}`)})).OK(t)
	other := s3types.TopicConfiguration{Id: aws.String("ops-replication"), TopicArn: &theirs, Events: []s3types.Event{"s3:Replication:*"}}
	must(src.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{TopicConfigurations: []s3types.TopicConfiguration{other}}})).OK(t)
	out, errOut, code := e.run("plan")
	if code != 1 || !strings.Contains(errOut, `"ops-replication"`) || !strings.Contains(errOut, "S3 refuses a second configuration") {
		t.Fatalf("plan beside an overlapping configuration: exit %d\n%s%s", code, out, errOut)
	}

	// The other configuration moves to other keys; then alerts are turned off.
	other.Filter = &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{{Name: "prefix", Value: aws.String("exports/")}}}}
	must(src.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: &bucket,
		NotificationConfiguration: &s3types.NotificationConfiguration{TopicConfigurations: []s3types.TopicConfiguration{other}}})).OK(t)
	e.apply() // wires trailkeeper's beside it
	n := must(src.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &bucket})).OK(t)
	if len(n.TopicConfigurations) != 2 {
		t.Fatalf("after apply: %d configurations, want theirs and trailkeeper's", len(n.TopicConfigurations))
	}
	e.writeConfig([]string{acctA}, "")
	if out := e.apply(); !strings.Contains(out, "alerts are off in the config") {
		t.Errorf("apply with alerts off says nothing of the topic left behind:\n%s", out)
	}
	n = must(src.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: &bucket})).OK(t)
	if len(n.TopicConfigurations) != 1 || aws.ToString(n.TopicConfigurations[0].Id) != "ops-replication" {
		t.Errorf("with alerts off the bucket keeps %+v, want only theirs", n.TopicConfigurations)
	}
}
