package setup

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

func prefixFilter(p string) *s3types.NotificationConfigurationFilter {
	return &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(p)}}}}
}

// TestOverlappingConfigurations: S3 refuses two configurations that share an
// event type and whose key filters overlap; plan must see the same.
func TestOverlappingConfigurations(t *testing.T) {
	ours := s3types.TopicConfiguration{Id: aws.String(NotificationID), Events: []s3types.Event{"s3:Replication:OperationFailedReplication"}, Filter: prefixFilter("AWSLogs/")}
	tests := []struct {
		name   string
		events []s3types.Event
		filter *s3types.NotificationConfigurationFilter
		want   bool
	}{
		{"the same event, no filter", []s3types.Event{"s3:Replication:OperationFailedReplication"}, nil, true},
		{"the family's wildcard", []s3types.Event{"s3:Replication:*"}, prefixFilter("AWSLogs/111"), true},
		{"a wider prefix", []s3types.Event{"s3:Replication:*"}, prefixFilter("AWS"), true},
		{"another prefix", []s3types.Event{"s3:Replication:*"}, prefixFilter("exports/"), false},
		{"other events", []s3types.Event{"s3:ObjectCreated:*"}, nil, false},
		{"another replication event", []s3types.Event{"s3:Replication:OperationNotTracked"}, nil, false},
	}
	for _, tc := range tests {
		n := &s3types.NotificationConfiguration{QueueConfigurations: []s3types.QueueConfiguration{{Id: aws.String("theirs"), QueueArn: aws.String("arn:aws:sqs:ap-northeast-1:111111111111:q"), Events: tc.events, Filter: tc.filter}}}
		if id, _ := overlapping(n, ours); (id != "") != tc.want {
			t.Errorf("%s: overlap %q, want %v", tc.name, id, tc.want)
		}
	}
}

// TestWiringKeepsOthers: setting or removing trailkeeper's configuration leaves
// every other configuration of the bucket as it was.
func TestWiringKeepsOthers(t *testing.T) {
	theirs := s3types.TopicConfiguration{Id: aws.String("theirs"), TopicArn: aws.String("arn:aws:sns:ap-northeast-1:111111111111:t"), Events: []s3types.Event{"s3:ObjectCreated:*"}}
	cur := &s3types.NotificationConfiguration{TopicConfigurations: []s3types.TopicConfiguration{theirs},
		LambdaFunctionConfigurations: []s3types.LambdaFunctionConfiguration{{Id: aws.String("fn")}}, EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}}
	ours := s3types.TopicConfiguration{Id: aws.String(NotificationID), TopicArn: aws.String("arn:aws:sns:ap-northeast-1:999999999999:" + AlertTopicName)}
	wired := withWiring(cur, &ours)
	if len(wired.TopicConfigurations) != 2 || len(wired.LambdaFunctionConfigurations) != 1 || wired.EventBridgeConfiguration == nil || !sameWiring(Wired(wired), &ours) {
		t.Fatalf("wired: %+v", wired)
	}
	again := withWiring(wired, &ours)
	if len(again.TopicConfigurations) != 2 {
		t.Errorf("wiring twice gives %d topic configurations", len(again.TopicConfigurations))
	}
	unwired := withWiring(again, nil)
	if len(unwired.TopicConfigurations) != 1 || aws.ToString(unwired.TopicConfigurations[0].Id) != "theirs" || unwired.EventBridgeConfiguration == nil {
		t.Errorf("unwired: %+v", unwired)
	}
	if len(cur.TopicConfigurations) != 1 {
		t.Error("withWiring changed its input")
	}
}

// TestTopicStatementFitsSNS: the statement names every bucket while the policy
// fits SNS's 30 KB, and beyond that only the accounts, which still fit.
func TestTopicStatementFitsSNS(t *testing.T) {
	topic := "arn:aws:sns:ap-northeast-1:999999999999:" + AlertTopicName
	other := policy.Statement{Sid: "Theirs", Effect: policy.Allow, Principal: &policy.Principal{AWS: policy.Strings{"999999999999"}}, Action: policy.Strings{"sns:Publish"}, Resource: policy.Strings{topic}}
	for _, n := range []int{1, 100, 1000} {
		var accounts, buckets []string
		for i := range n {
			accounts = append(accounts, fmt.Sprintf("%012d", 100000000000+i))
			buckets = append(buckets, fmt.Sprintf("cm-members-cloudtrail-%012d", 100000000000+i))
		}
		doc := withTopicStatement(&policy.Document{Version: "2012-10-17", Statements: []policy.Statement{other}}, topic, accounts, buckets)
		data, _ := json.Marshal(doc)
		s := doc.Statement(SidS3Events)
		if len(data) > topicPolicyMax || doc.Statement("Theirs") == nil || len(statementAccounts(s)) != n {
			t.Fatalf("%d buckets: %d bytes, statements %v", n, len(data), doc.Statements)
		}
		named := len(statementBuckets(s)) == n
		if (n <= 100) != named {
			t.Errorf("%d buckets: named each: %v", n, named)
		}
		// The statement lets exactly these buckets' events through.
		ctx := func(acct, bucket string) map[string][]string {
			return map[string][]string{"aws:SourceAccount": {acct}, "aws:SourceArn": {"arn:aws:s3:::" + bucket}}
		}
		allowed := func(c map[string][]string) bool {
			return doc.Evaluate(policy.Request{Caller: policy.Caller{Service: "s3.amazonaws.com"}, Action: "sns:Publish", Resource: topic, Context: c}).Decision == policy.Allowed
		}
		if !allowed(ctx(accounts[n-1], buckets[n-1])) || allowed(ctx("123456789012", buckets[0])) {
			t.Errorf("%d buckets: the statement lets the wrong events through", n)
		}
	}
	if doc := withTopicStatement(&policy.Document{Statements: []policy.Statement{other}}, topic, nil, nil); len(doc.Statements) != 1 {
		t.Errorf("without buckets the statement should go: %v", doc.Statements)
	}
}
