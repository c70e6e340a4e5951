package sandbox

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

func (e *env) events(acct string) *eventbridge.Client { return eventbridge.NewFromConfig(e.cfg(acct)) }

// The User Guide's own examples of event patterns and content filters,
// through TestEventPattern.
func TestEventPatterns(t *testing.T) {
	e := newEnv(t, Options{})
	eb := e.events(sourceAcct)
	event := `{"version":"0","id":"1","detail-type":"AWS API Call via CloudTrail","source":"aws.cloudtrail","account":"111111111111",
		"time":"2026-12-07T00:00:00Z","region":"ap-northeast-1","resources":["arn:aws:s3:::a","arn:aws:s3:::b"],
		"detail":{"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging","requestParameters":{"name":"Members"},
		"userIdentity":{"type":"Root"},"count":5,"errorCode":null}}`
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{`{"source":["aws.cloudtrail"]}`, true},
		{`{"source":["aws.s3"]}`, false},
		{`{"detail":{"eventName":["DeleteTrail","StopLogging"]}}`, true},
		{`{"detail":{"requestParameters":{"name":["Members"]}}}`, true},
		{`{"detail":{"requestParameters":{"name":["Other"]}}}`, false},
		{`{"resources":["arn:aws:s3:::b"]}`, true}, // an array matches when any element does
		{`{"detail":{"eventName":[{"prefix":"Stop"}]}}`, true},
		{`{"detail":{"eventName":[{"suffix":"Logging"}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":"StopLogging"}]}}`, false},
		{`{"detail":{"eventName":[{"anything-but":["StartLogging","DeleteTrail"]}]}}`, true},
		{`{"detail":{"eventName":[{"anything-but":{"prefix":"Start"}}]}}`, true},
		{`{"detail":{"missing":[{"anything-but":"x"}]}}`, false}, // anything-but needs the field
		{`{"detail":{"errorCode":[{"exists":false}]}}`, true},    // null is no value
		{`{"detail":{"eventName":[{"exists":true}]}}`, true},
		{`{"detail":{"nothing":{"deeper":[{"exists":false}]}}}`, true},
		{`{"detail":{"count":[{"numeric":[">",0,"<=",5]}]}}`, true},
		{`{"detail":{"count":[{"numeric":["<",5]}]}}`, false},
		{`{"detail":{"count":[5]}}`, true},
		{`{"detail":{"eventName":[{"equals-ignore-case":"stoplogging"}]}}`, true},
		{`{"detail":{"eventName":[{"wildcard":"Stop*ing"}]}}`, true},
		{`{"detail":{"eventName":[{"wildcard":"Start*"}]}}`, false},
		{`{"source":["aws.cloudtrail"],"detail":{"eventName":["DeleteTrail"]}}`, false}, // every field must match
		{`{"$or":[{"source":["aws.s3"]},{"detail":{"eventName":["StopLogging"]}}]}`, true},
		{`{"$or":[{"source":["aws.s3"]},{"detail":{"eventName":["DeleteTrail"]}}]}`, false},
	} {
		got := must(eb.TestEventPattern(ctx, &eventbridge.TestEventPatternInput{EventPattern: &tc.pattern, Event: &event})).OK(t)
		if got.Result != tc.want {
			t.Errorf("%s: %v, want %v", tc.pattern, got.Result, tc.want)
		}
	}
	for _, bad := range []string{`[]`, `{}`, `{"source":"aws.s3"}`, `{"source":[]}`, `{"detail":{"n":[{"numeric":["~",1]}]}}`, `{"a":[{"wildcard":"a**b"}]}`, `{"$or":[{"a":["b"]}]}`, `{"a":[{"nope":1}]}`} {
		_, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("bad"), EventPattern: aws.String(bad)})
		if errCode(err) != "InvalidEventPatternException" {
			t.Errorf("PutRule with %s: %v, want InvalidEventPatternException", bad, err)
		}
	}
}

// A source account's CloudTrail event goes from its default bus to a bus of
// another account, which accepts it only under its policy, and from a rule
// there to an SNS topic, transformed to one line. Read-only calls and calls
// no trail records send nothing; PutEvents cannot pose as AWS.
func TestCloudTrailEventsCrossAccounts(t *testing.T) {
	e := newEnv(t, Options{DeliveryInterval: time.Hour, DigestInterval: time.Hour})
	person := newSubscriber(t)
	// The archive account: a bus, a rule to a topic that lets EventBridge publish.
	arch := e.events(archiveAcct)
	bus := must(arch.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("watch")})).OK(t)
	topic := must(e.sns(archiveAcct).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("alerts")})).OK(t)
	ruleARN := must(arch.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("to-people"), EventBusName: aws.String("watch"),
		EventPattern: aws.String(`{"detail-type":["AWS API Call via CloudTrail"]}`)})).OK(t).RuleArn
	if want := "arn:aws:events:" + region + ":" + archiveAcct + ":rule/watch/to-people"; aws.ToString(ruleARN) != want {
		t.Fatalf("rule ARN %s, want %s", aws.ToString(ruleARN), want)
	}
	topicPolicy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sns:Publish","Resource":"` + *topic.TopicArn + `","Condition":{"ArnEquals":{"aws:SourceArn":"` + aws.ToString(ruleARN) + `"}}}]}`
	must(e.sns(archiveAcct).SetTopicAttributes(ctx, &sns.SetTopicAttributesInput{TopicArn: topic.TopicArn, AttributeName: aws.String("Policy"), AttributeValue: &topicPolicy})).OK(t)
	must(e.sns(archiveAcct).Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("http"), Endpoint: aws.String(person.srv.URL)})).OK(t)
	person.confirmed()
	must(arch.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("to-people"), EventBusName: aws.String("watch"), Targets: []ebtypes.Target{{
		Id: aws.String("people"), Arn: topic.TopicArn, InputTransformer: &ebtypes.InputTransformer{
			InputPathsMap: map[string]string{"account": "$.account", "name": "$.detail.eventName", "who": "$.detail.userIdentity.arn"},
			InputTemplate: aws.String(`account <account>: <name> by <who>`)}}}})).OK(t)

	// The source account: a logging trail, and a rule on its default bus to the archive's bus.
	s, ct := e.s3(sourceAcct), e.cloudtrail(sourceAcct)
	b := "trail-" + sourceAcct
	trailARN := "arn:aws:cloudtrail:" + region + ":" + sourceAcct + ":trail/Members"
	loggingTrail(t, e, sourceAcct, "Members", b)
	src := e.events(sourceAcct)
	must(src.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("tamper"),
		EventPattern: aws.String(`{"source":["aws.cloudtrail","aws.s3"],"detail":{"eventName":["StopLogging","PutBucketVersioning","PutBucketPolicy"]}}`)})).OK(t)
	must(src.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("tamper"), Targets: []ebtypes.Target{{Id: aws.String("archive"), Arn: bus.EventBusArn}}})).OK(t)

	versioning := func() {
		must(s.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})).OK(t)
	}
	// Each change that must not arrive is a PutBucketPolicy, published (if it
	// were) during its call, before the change awaited next: the next message
	// the person gets tells.
	policyAgain := func() {
		must(s.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &b, Policy: aws.String(trailBucketPolicy(b, sourceAcct, trailARN, ""))})).OK(t)
	}
	// Without a policy on the archive's bus, nothing crosses.
	policyAgain()
	// The archive lets the source account put events on its bus.
	busPolicy := `{"Version":"2012-10-17","Statement":[{"Sid":"sources","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + sourceAcct + `:root"},"Action":"events:PutEvents","Resource":"` + aws.ToString(bus.EventBusArn) + `"}]}`
	must(arch.PutPermission(ctx, &eventbridge.PutPermissionInput{EventBusName: aws.String("watch"), Policy: &busPolicy})).OK(t)
	must(s.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &b})).OK(t) // read-only: not routed
	must(s.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: &b, Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}})).OK(t)
	versioning()
	if m := person.next(); m["Message"] != "account "+sourceAcct+": PutBucketVersioning by arn:aws:iam::"+sourceAcct+":root" {
		t.Fatalf("the first message: %q (the one sent before the bus policy, or a read-only call, must not arrive)", m["Message"])
	}
	must(ct.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("Members")})).OK(t)
	if m := person.next(); !strings.HasPrefix(m["Message"], "account "+sourceAcct+": StopLogging") {
		t.Fatalf("the StopLogging message: %q", m["Message"])
	}
	// No trail logs now: EventBridge hears nothing of the next change.
	policyAgain()
	must(ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("Members")})).OK(t)
	versioning()
	if m := person.next(); !strings.HasPrefix(m["Message"], "account "+sourceAcct+": PutBucketVersioning") {
		t.Fatalf("after StartLogging: %q (a change made while no trail logged must not arrive)", m["Message"])
	}

	// PutEvents may not pose as an AWS service; a custom source goes through.
	out := must(src.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		{Source: aws.String("aws.cloudtrail"), DetailType: aws.String("AWS API Call via CloudTrail"), Detail: aws.String(`{"eventName":"StopLogging"}`)},
		{Source: aws.String("trailkeeper.test"), DetailType: aws.String("test"), Detail: aws.String(`{"eventName":"StopLogging"}`)}}})).OK(t)
	if out.FailedEntryCount != 1 || aws.ToString(out.Entries[0].ErrorCode) != "NotAuthorizedForSourceException" || out.Entries[1].EventId == nil {
		data, _ := json.Marshal(out.Entries)
		t.Fatalf("PutEvents: %d failed, %s", out.FailedEntryCount, data)
	}
	// A rule with targets cannot be deleted, as EventBridge says.
	if _, err := src.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("tamper")}); errCode(err) != "ValidationException" {
		t.Fatalf("DeleteRule with targets: %v", err)
	}
}
