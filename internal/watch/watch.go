// Package watch proves the path a tampering call takes to a person: it puts
// a test event on each source's default bus, where trailkeeper's rule sends
// it to the archive's bus like any watched call, and from there to the alert
// topic.
package watch

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/trailkeeper/trailkeeper/internal/config"
	"github.com/trailkeeper/trailkeeper/internal/parallel"
	"github.com/trailkeeper/trailkeeper/internal/setup"
)

// Result is one source's test.
type Result struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	EventID string `json:"eventId,omitempty"`
	Sent    bool   `json:"sent"`              // EventBridge took the event on a bus whose rule sends it on
	Problem string `json:"problem,omitempty"` // why not
}

// Test sends the test event from every connected source, in its trail's home
// region, after checking that the rule there would send it on: a bus takes
// any event, so an accepted PutEvents alone proves nothing.
func Test(ctx context.Context, e *setup.Env, workers int) ([]*Result, error) {
	c := e.Config
	if !c.Watch.Enabled {
		return nil, &setup.Conflict{Account: c.Archive.AccountID, Msg: "the config has no watch section", Hint: "add watch: {} (and alerts:), then trailkeeper apply"}
	}
	var connected []config.Source
	for _, src := range c.Sources {
		if e.Sources[src.AccountID] != nil {
			connected = append(connected, src)
		}
	}
	results := make([]*Result, len(connected))
	err := parallel.For(ctx, max(1, workers), len(connected), func(ctx context.Context, i int) error {
		src := connected[i]
		cl := e.Sources[src.AccountID]
		trail, err := setup.FindTrail(ctx, src, cl)
		if err != nil {
			return err
		}
		r := &Result{Account: src.AccountID, Region: trail.HomeRegion}
		results[i] = r
		ev := cl.InRegion(r.Region).Events
		rule, err := ev.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(setup.WatchRuleName)})
		if err != nil {
			r.Problem = fmt.Sprintf("no watch rule in %s (%v): trailkeeper apply", r.Region, err)
			return nil
		}
		if rule.State == ebtypes.RuleStateDisabled {
			r.Problem = "the watch rule in " + r.Region + " is disabled: trailkeeper apply"
			return nil
		}
		detail, _ := json.Marshal(map[string]any{"eventName": "WatchTest", "requestParameters": map[string]string{"name": trail.Name},
			"userIdentity": map[string]string{"arn": cl.CallerARN}})
		out, err := ev.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			Source: aws.String(setup.WatchTestSource), DetailType: aws.String(setup.WatchTestDetailType), Detail: aws.String(string(detail))}}})
		switch {
		case err != nil:
			r.Problem = err.Error()
		case out.FailedEntryCount > 0:
			r.Problem = aws.ToString(out.Entries[0].ErrorCode) + ": " + aws.ToString(out.Entries[0].ErrorMessage)
		default:
			r.Sent, r.EventID = true, aws.ToString(out.Entries[0].EventId)
		}
		return nil
	})
	return results, err
}

// Invoke runs the watch function once, as its schedule would, and returns
// what it concluded.
func Invoke(ctx context.Context, e *setup.Env) (*Verdict, error) {
	c := e.Config
	out, err := e.Archive.InRegion(c.Archive.Region).Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(setup.WatchFunctionName),
		Payload: []byte(`{"source":"trailkeeper watch test"}`)})
	if err != nil {
		return nil, fmt.Errorf("lambda Invoke %s: %w", setup.WatchFunctionName, err)
	}
	if out.FunctionError != nil {
		return nil, fmt.Errorf("the watch function failed: %s", out.Payload)
	}
	var v Verdict
	if err := json.Unmarshal(out.Payload, &v); err != nil {
		return nil, fmt.Errorf("the watch function answered %.200s: %v", out.Payload, err)
	}
	return &v, nil
}
