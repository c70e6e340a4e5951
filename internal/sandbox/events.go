package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// EventBridge: event buses (each account's "default" in every region, and
// the ones CreateEventBus makes), rules with event patterns on them, and
// targets: SNS topics of the rule's account and region, and event buses of
// other accounts, which accept an event only when their resource policy
// lets the sending account events:PutEvents. CloudTrail puts "AWS API Call
// via CloudTrail" events on the caller's default bus (cloudtrailEvents).
// Delivery is synchronous with the call that caused the event; a target that
// refuses is counted as a failed invocation and logged, as EventBridge's
// FailedInvocations metric would show it.

type eventBus struct {
	Name    string                `json:"name"`
	Account string                `json:"account"`
	Region  string                `json:"region"`
	Policy  string                `json:"policy,omitempty"`
	Rules   map[string]*eventRule `json:"rules"`
	// policyDoc is Policy parsed, rebuilt on first use.
	policyDoc *policy.Document
}

func (b *eventBus) arn() string {
	return "arn:aws:events:" + b.Region + ":" + b.Account + ":event-bus/" + b.Name
}

// ruleARN names a rule of the bus: a default bus's rules without the bus.
func (b *eventBus) ruleARN(rule string) string {
	if b.Name == "default" {
		return "arn:aws:events:" + b.Region + ":" + b.Account + ":rule/" + rule
	}
	return "arn:aws:events:" + b.Region + ":" + b.Account + ":rule/" + b.Name + "/" + rule
}

type eventRule struct {
	Name        string        `json:"name"`
	Pattern     string        `json:"pattern,omitempty"`
	Schedule    string        `json:"schedule,omitempty"` // rate(...) or cron(...), on default buses only
	LastRun     time.Time     `json:"lastRun,omitzero"`
	State       string        `json:"state"`
	Description string        `json:"description,omitempty"`
	Targets     []eventTarget `json:"targets"`
	Failed      int           `json:"failedInvocations,omitempty"`
	pattern     eventPattern
}

type eventTarget struct {
	ID               string            `json:"Id"`
	Arn              string            `json:"Arn"`
	RoleArn          string            `json:"RoleArn,omitempty"`
	Input            string            `json:"Input,omitempty"`
	InputPath        string            `json:"InputPath,omitempty"`
	InputTransformer *inputTransformer `json:"InputTransformer,omitempty"`
}

type inputTransformer struct {
	InputPathsMap map[string]string `json:"InputPathsMap,omitempty"`
	InputTemplate string            `json:"InputTemplate"`
}

func busKey(account, region, name string) string { return account + "/" + region + "/" + name }

var (
	busNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[/.\-_A-Za-z0-9]{1,256}$`) })
	ruleNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[.\-_A-Za-z0-9]{1,64}$`) })
	busARNRE   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws:events:([a-z0-9-]+):(\d{12}):event-bus/(.+)$`)
	})
)

// bus finds a bus by name or ARN; the default bus always exists. Callers hold s.mu.
func (s *Sandbox) bus(account, region, nameOrARN string, create bool) *eventBus {
	name := nameOrARN
	if m := busARNRE().FindStringSubmatch(nameOrARN); m != nil {
		account, region, name = m[2], m[1], m[3]
	}
	if name == "" {
		name = "default"
	}
	k := busKey(account, region, name)
	b := s.st.Buses[k]
	if b == nil && (name == "default" || create) {
		b = &eventBus{Name: name, Account: account, Region: region, Rules: map[string]*eventRule{}}
		s.st.Buses[k] = b
	}
	return b
}

func (s *Sandbox) eventsActions() map[string]jsonHandler {
	notFound := func(format string, a ...any) error { return errorf(400, "ResourceNotFoundException", format, a...) }
	invalid := func(format string, a ...any) error { return errorf(400, "ValidationException", format, a...) }
	busOf := func(c *call, in map[string]any) (*eventBus, error) {
		name := str(in, "EventBusName")
		if m := busARNRE().FindStringSubmatch(name); m != nil && (m[2] != c.caller.Account || m[1] != c.region) {
			return nil, accessDenied("User: %s is not authorized to use event bus %s", c.caller.display(), name)
		}
		b := s.bus(c.caller.Account, c.region, name, false)
		if b == nil {
			return nil, notFound("Event bus %s does not exist.", name)
		}
		return b, nil
	}
	ruleOf := func(c *call, in map[string]any, key string) (*eventBus, *eventRule, error) {
		b, err := busOf(c, in)
		if err != nil {
			return nil, nil, err
		}
		r := b.Rules[str(in, key)]
		if r == nil {
			return nil, nil, notFound("Rule %s does not exist on EventBus %s.", str(in, key), b.Name)
		}
		return b, r, nil
	}
	describe := func(b *eventBus, r *eventRule) map[string]any {
		out := map[string]any{"Name": r.Name, "Arn": b.ruleARN(r.Name), "State": r.State, "EventBusName": b.Name}
		if r.Pattern != "" {
			out["EventPattern"] = r.Pattern
		}
		if r.Schedule != "" {
			out["ScheduleExpression"] = r.Schedule
		}
		if r.Description != "" {
			out["Description"] = r.Description
		}
		return out
	}
	return map[string]jsonHandler{
		"CreateEventBus": func(c *call, in map[string]any) (any, error) {
			name := str(in, "Name")
			if !busNameRE().MatchString(name) || name == "default" || strings.HasPrefix(name, "aws.") {
				return nil, invalid("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint", name)
			}
			if s.bus(c.caller.Account, c.region, name, false) != nil {
				return nil, errorf(400, "ResourceAlreadyExistsException", "Event bus %s already exists.", name)
			}
			return map[string]any{"EventBusArn": s.bus(c.caller.Account, c.region, name, true).arn()}, nil
		},
		"DescribeEventBus": func(c *call, in map[string]any) (any, error) {
			in = map[string]any{"EventBusName": str(in, "Name")}
			b, err := busOf(c, in)
			if err != nil {
				return nil, err
			}
			out := map[string]any{"Name": b.Name, "Arn": b.arn()}
			if b.Policy != "" {
				out["Policy"] = b.Policy
			}
			return out, nil
		},
		"DeleteEventBus": func(c *call, in map[string]any) (any, error) {
			name := str(in, "Name")
			if name == "default" {
				return nil, invalid("Cannot delete event bus default.")
			}
			delete(s.st.Buses, busKey(c.caller.Account, c.region, name))
			return map[string]any{}, nil
		},
		"ListEventBuses": func(c *call, in map[string]any) (any, error) {
			s.bus(c.caller.Account, c.region, "default", false)
			var out []any
			for _, b := range s.sortedBuses(c.caller.Account, c.region) {
				if strings.HasPrefix(b.Name, str(in, "NamePrefix")) {
					out = append(out, map[string]any{"Name": b.Name, "Arn": b.arn()})
				}
			}
			return map[string]any{"EventBuses": out}, nil
		},
		"PutPermission": func(c *call, in map[string]any) (any, error) {
			b, err := busOf(c, in)
			if err != nil {
				return nil, err
			}
			text := str(in, "Policy")
			if text == "" {
				return nil, invalid("the sandbox takes the bus policy as Policy (a whole document)")
			}
			if len(text) > 10240 {
				return nil, errorf(400, "PolicyLengthExceededException", "The policy exceeds the maximum allowed size of 10240.")
			}
			doc, err := policy.Parse([]byte(text), policy.Resource)
			if err != nil {
				return nil, errorf(400, "MalformedPolicyDocumentException", "%v", err)
			}
			b.Policy, b.policyDoc = text, doc
			return map[string]any{}, nil
		},
		"RemovePermission": func(c *call, in map[string]any) (any, error) {
			b, err := busOf(c, in)
			if err != nil {
				return nil, err
			}
			if in["RemoveAllPermissions"] != true {
				return nil, invalid("the sandbox removes only all permissions (RemoveAllPermissions)")
			}
			b.Policy, b.policyDoc = "", nil
			return map[string]any{}, nil
		},
		"PutRule": func(c *call, in map[string]any) (any, error) {
			b, err := busOf(c, in)
			if err != nil {
				return nil, err
			}
			name := str(in, "Name")
			if !ruleNameRE().MatchString(name) {
				return nil, invalid("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", name)
			}
			schedule, text := str(in, "ScheduleExpression"), str(in, "EventPattern")
			var p eventPattern
			switch {
			case schedule == "" && text == "":
				return nil, invalid("Parameter(s) EventPattern or ScheduleExpression must be specified.")
			case schedule != "" && b.Name != "default":
				return nil, invalid("ScheduleExpression is supported only on the default event bus.")
			case schedule != "":
				if _, err := scheduleEvery(schedule); err != nil {
					return nil, err
				}
			}
			if text != "" {
				if p, err = parseEventPattern(text); err != nil {
					return nil, err
				}
			}
			state := str(in, "State")
			if state == "" {
				state = "ENABLED"
			}
			if state != "ENABLED" && state != "DISABLED" && state != "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" {
				return nil, invalid("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint", state)
			}
			r := b.Rules[name]
			if r == nil {
				if len(b.Rules) >= 300 {
					return nil, errorf(400, "LimitExceededException", "The requested resource exceeds the maximum number allowed.")
				}
				r = &eventRule{Name: name}
				b.Rules[name] = r
			}
			if schedule != r.Schedule {
				r.LastRun = time.Now().UTC() // a rate counts from when it is set
			}
			r.Pattern, r.pattern, r.Schedule, r.State, r.Description = text, p, schedule, state, str(in, "Description")
			return map[string]any{"RuleArn": b.ruleARN(name)}, nil
		},
		"DescribeRule": func(c *call, in map[string]any) (any, error) {
			b, r, err := ruleOf(c, in, "Name")
			if err != nil {
				return nil, err
			}
			return describe(b, r), nil
		},
		"ListRules": func(c *call, in map[string]any) (any, error) {
			b, err := busOf(c, in)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for _, n := range slices.Sorted(maps.Keys(b.Rules)) {
				if strings.HasPrefix(n, str(in, "NamePrefix")) {
					out = append(out, describe(b, b.Rules[n]))
				}
			}
			return map[string]any{"Rules": out}, nil
		},
		"DeleteRule": func(c *call, in map[string]any) (any, error) {
			b, r, err := ruleOf(c, in, "Name")
			if err != nil {
				if strings.Contains(err.Error(), "does not exist") {
					return map[string]any{}, nil // deleting what is not there succeeds
				}
				return nil, err
			}
			if len(r.Targets) > 0 {
				return nil, invalid("Rule can't be deleted since it has targets.")
			}
			delete(b.Rules, r.Name)
			return map[string]any{}, nil
		},
		"PutTargets": func(c *call, in map[string]any) (any, error) {
			b, r, err := ruleOf(c, in, "Rule")
			if err != nil {
				return nil, err
			}
			var targets []eventTarget
			data, _ := json.Marshal(in["Targets"])
			if json.Unmarshal(data, &targets) != nil || len(targets) == 0 || len(targets) > 10 {
				return nil, invalid("Targets: between 1 and 10 targets")
			}
			failed := []any{}
			for _, t := range targets {
				if err := s.checkTarget(b, t); err != nil {
					failed = append(failed, map[string]any{"TargetId": t.ID, "ErrorCode": "ValidationException", "ErrorMessage": err.Error()})
					continue
				}
				i := -1
				for j, old := range r.Targets {
					if old.ID == t.ID {
						i = j
					}
				}
				if i >= 0 {
					r.Targets[i] = t
				} else if len(r.Targets) >= 5 {
					failed = append(failed, map[string]any{"TargetId": t.ID, "ErrorCode": "LimitExceededException", "ErrorMessage": "The requested resource exceeds the maximum number allowed."})
				} else {
					r.Targets = append(r.Targets, t)
				}
			}
			return map[string]any{"FailedEntryCount": len(failed), "FailedEntries": failed}, nil
		},
		"ListTargetsByRule": func(c *call, in map[string]any) (any, error) {
			_, r, err := ruleOf(c, in, "Rule")
			if err != nil {
				return nil, err
			}
			ids := make([]string, len(r.Targets))
			byID := map[string]eventTarget{}
			for i, t := range r.Targets {
				ids[i], byID[t.ID] = t.ID, t
			}
			slices.Sort(ids)
			limit := 100
			if n, ok := in["Limit"].(float64); ok && n > 0 {
				limit = min(int(n), 100)
			}
			ids, next := s.page(ids, str(in, "NextToken"), limit)
			targets := make([]eventTarget, len(ids))
			for i, id := range ids {
				targets[i] = byID[id]
			}
			out := map[string]any{"Targets": targets}
			if next != "" {
				out["NextToken"] = next
			}
			return out, nil
		},
		"RemoveTargets": func(c *call, in map[string]any) (any, error) {
			_, r, err := ruleOf(c, in, "Rule")
			if err != nil {
				return nil, err
			}
			ids, _ := in["Ids"].([]any)
			for _, id := range ids {
				for i, t := range r.Targets {
					if t.ID == id {
						r.Targets = append(r.Targets[:i], r.Targets[i+1:]...)
						break
					}
				}
			}
			return map[string]any{"FailedEntryCount": 0, "FailedEntries": []any{}}, nil
		},
		"PutEvents": func(c *call, in map[string]any) (any, error) {
			entries, _ := in["Entries"].([]any)
			if len(entries) == 0 || len(entries) > 10 {
				return nil, invalid("Entries: between 1 and 10 entries")
			}
			out, failed := []any{}, 0
			for _, e := range entries {
				m, _ := e.(map[string]any)
				event, err := s.customEvent(c, m)
				if err != nil {
					failed++
					out = append(out, map[string]any{"ErrorCode": err.(*awsError).Code, "ErrorMessage": err.(*awsError).Message})
					continue
				}
				b := s.bus(c.caller.Account, c.region, str(m, "EventBusName"), false)
				if b == nil {
					failed++
					out = append(out, map[string]any{"ErrorCode": "ResourceNotFoundException", "ErrorMessage": "Event bus " + str(m, "EventBusName") + " does not exist."})
					continue
				}
				s.routeEvent(b, event, 0)
				out = append(out, map[string]any{"EventId": event["id"]})
			}
			return map[string]any{"FailedEntryCount": failed, "Entries": out}, nil
		},
		"TestEventPattern": func(c *call, in map[string]any) (any, error) {
			p, err := parseEventPattern(str(in, "EventPattern"))
			if err != nil {
				return nil, err
			}
			var event map[string]any
			if json.Unmarshal([]byte(str(in, "Event")), &event) != nil {
				return nil, invalid("Parameter Event is not valid.")
			}
			return map[string]any{"Result": p.matches(event)}, nil
		},
	}
}

func (s *Sandbox) sortedBuses(account, region string) []*eventBus {
	var out []*eventBus
	for _, b := range s.st.Buses {
		if b.Account == account && b.Region == region {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// checkTarget accepts what the sandbox can deliver to: an SNS topic of the
// rule's account and region, or an event bus elsewhere.
func (s *Sandbox) checkTarget(b *eventBus, t eventTarget) error {
	switch {
	case t.ID == "" || len(t.ID) > 64:
		return fmt.Errorf("a target needs an Id of 1 to 64 characters")
	case strings.HasPrefix(t.Arn, "arn:aws:sns:"):
		parts := strings.SplitN(t.Arn, ":", 6)
		if len(parts) < 6 || parts[3] != b.Region {
			return fmt.Errorf("the topic %s is not in the rule's region %s", t.Arn, b.Region)
		}
	case busARNRE().MatchString(t.Arn):
	case strings.HasPrefix(t.Arn, "arn:aws:lambda:"):
		if parts := strings.SplitN(t.Arn, ":", 7); len(parts) < 7 || parts[3] != b.Region {
			return fmt.Errorf("the function %s is not in the rule's region %s", t.Arn, b.Region)
		}
	default:
		return fmt.Errorf("the sandbox delivers to SNS topics, Lambda functions and event buses, not %s", t.Arn)
	}
	if t.InputTransformer != nil && t.InputTransformer.InputTemplate == "" {
		return fmt.Errorf("InputTransformer needs an InputTemplate")
	}
	return nil
}

// customEvent builds the event PutEvents puts on a bus; the aws. sources
// belong to AWS.
func (s *Sandbox) customEvent(c *call, m map[string]any) (map[string]any, error) {
	source, kind, detail := str(m, "Source"), str(m, "DetailType"), str(m, "Detail")
	if source == "" || kind == "" || detail == "" {
		return nil, errorf(400, "InvalidArgument", "Parameter(s) Source, DetailType, Detail must be specified.")
	}
	if strings.HasPrefix(source, "aws.") {
		return nil, errorf(400, "NotAuthorizedForSourceException", "Not authorized for the source.")
	}
	var d map[string]any
	if json.Unmarshal([]byte(detail), &d) != nil {
		return nil, errorf(400, "MalformedDetail", "Detail is malformed.")
	}
	resources, _ := m["Resources"].([]any)
	if resources == nil {
		resources = []any{}
	}
	return newEvent(source, kind, c.caller.Account, c.region, resources, d), nil
}

func newEvent(source, kind, account, region string, resources []any, detail map[string]any) map[string]any {
	return map[string]any{"version": "0", "id": newUUID(), "detail-type": kind, "source": source, "account": account,
		"time": time.Now().UTC().Format("2006-01-02T15:04:05Z"), "region": region, "resources": resources, "detail": detail}
}

// routeEvent matches an event against a bus's rules and delivers it to their
// targets. Callers hold s.mu.
func (s *Sandbox) routeEvent(b *eventBus, event map[string]any, hops int) {
	if hops > 4 {
		return // EventBridge stops an event that goes round between buses
	}
	for _, n := range slices.Sorted(maps.Keys(b.Rules)) {
		r := b.Rules[n]
		if r.State == "DISABLED" {
			continue
		}
		if r.pattern == nil && r.Pattern != "" {
			r.pattern, _ = parseEventPattern(r.Pattern)
		}
		if r.pattern == nil || !r.pattern.matches(event) {
			continue
		}
		for _, t := range r.Targets {
			if err := s.deliverEvent(b, r, t, event, hops); err != nil {
				r.Failed++
				s.opts.Logger.Info("events: target not invoked", "rule", r.Name, "target", t.Arn, "error", err)
			}
		}
	}
}

func (s *Sandbox) deliverEvent(b *eventBus, r *eventRule, t eventTarget, event map[string]any, hops int) error {
	ruleARN := b.ruleARN(r.Name)
	if m := busARNRE().FindStringSubmatch(t.Arn); m != nil {
		dst := s.bus(m[2], m[1], m[3], false)
		if dst == nil {
			return fmt.Errorf("event bus %s does not exist", t.Arn)
		}
		if dst.Account != b.Account {
			if dst.policyDoc == nil && dst.Policy != "" {
				dst.policyDoc, _ = policy.Parse([]byte(dst.Policy), policy.Resource)
			}
			req := policy.Request{Caller: policy.Caller{Account: b.Account, ARN: "arn:aws:iam::" + b.Account + ":root"}, Action: "events:PutEvents", Resource: dst.arn(),
				Context: map[string][]string{"aws:PrincipalAccount": {b.Account}, "aws:SourceAccount": {b.Account}}}
			if dst.policyDoc == nil || dst.policyDoc.Evaluate(req).Decision != policy.Allowed {
				return fmt.Errorf("the policy of event bus %s does not let account %s put events", t.Arn, b.Account)
			}
		}
		s.routeEvent(dst, event, hops+1) // the event keeps its account and region
		return nil
	}
	if strings.HasPrefix(t.Arn, "arn:aws:lambda:") {
		f, err := s.targetFunction(ruleARN, t.Arn)
		if err != nil {
			return err
		}
		s.invokeAsync(*f, []byte(targetInput(t, event))) // EventBridge invokes asynchronously
		return nil
	}
	topic := s.st.Topics[t.Arn]
	if topic == nil {
		return fmt.Errorf("topic %s does not exist", t.Arn)
	}
	ctx := map[string][]string{"aws:SourceArn": {ruleARN}, "aws:SourceAccount": {b.Account}, "aws:SecureTransport": {"true"}}
	if err := s.authorizeTopic(caller{Service: "events.amazonaws.com"}, topic, "sns:Publish", ctx); err != nil {
		return err
	}
	s.publishToTopic(topic, "", targetInput(t, event))
	return nil
}

// targetInput is what a target receives: the event, the target's constant
// Input, a part of the event (InputPath), or the InputTransformer's template
// with each <name> replaced by the value its path points at (strings as
// they are, other values as JSON; a path to nothing gives nothing).
func targetInput(t eventTarget, event map[string]any) string {
	switch {
	case t.Input != "":
		return t.Input
	case t.InputPath != "":
		data, _ := json.Marshal(jsonPath(event, t.InputPath))
		return string(data)
	case t.InputTransformer != nil:
		out := t.InputTransformer.InputTemplate
		for name, path := range t.InputTransformer.InputPathsMap {
			v := jsonPath(event, path)
			text := ""
			switch v := v.(type) {
			case nil:
			case string:
				text = v
			default:
				data, _ := json.Marshal(v)
				text = string(data)
			}
			out = strings.ReplaceAll(out, "<"+name+">", text)
		}
		return out
	}
	data, _ := json.Marshal(event)
	return string(data)
}

// jsonPath follows a $.a.b.c path (the form InputPathsMap uses).
func jsonPath(v any, path string) any {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// cloudtrailEvent puts a management event CloudTrail recorded on the
// account's default bus in the event's region, as "AWS API Call via
// CloudTrail": only write events (rules see read-only ones only in the
// ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS state, which the sandbox does
// not route) and only while a trail records them. Callers hold s.mu.
func (s *Sandbox) cloudtrailEvent(account, region string, record json.RawMessage, readOnly bool) {
	if readOnly {
		return
	}
	var detail map[string]any
	if json.Unmarshal(record, &detail) != nil {
		return
	}
	source, _ := detail["eventSource"].(string)
	event := newEvent("aws."+strings.TrimSuffix(source, ".amazonaws.com"), "AWS API Call via CloudTrail", account, region, []any{}, detail)
	s.routeEvent(s.bus(account, region, "default", false), event, 0)
}

// targetFunction finds a rule's Lambda target and checks that its resource
// policy lets EventBridge invoke it for this rule. Callers hold s.mu.
func (s *Sandbox) targetFunction(ruleARN, fnARN string) (*lambdaFunction, error) {
	parts := strings.SplitN(fnARN, ":", 7)
	f := s.st.Functions[functionKey(parts[4], parts[3], functionNameFromARN(fnARN))]
	if f == nil {
		return nil, fmt.Errorf("function %s does not exist", fnARN)
	}
	req := policy.Request{Caller: policy.Caller{Service: "events.amazonaws.com"}, Action: "lambda:InvokeFunction", Resource: f.arn(),
		Context: map[string][]string{"aws:SourceArn": {ruleARN}, "aws:SourceAccount": {strings.SplitN(ruleARN, ":", 6)[4]}}}
	doc, err := s.parse(f.Policy, policy.Resource)
	if f.Policy == "" || err != nil || doc.Evaluate(req).Decision != policy.Allowed {
		return nil, fmt.Errorf("the policy of function %s does not let events.amazonaws.com invoke it for %s", fnARN, ruleARN)
	}
	return f, nil
}

var (
	rateRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)
	})
	cronRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^cron\((\S+ ){5}\S+\)$`) })
)

// scheduleEvery validates a schedule expression and says how often a rate
// fires; a cron expression (six fields) is accepted and fires only through
// RunSchedules (0).
func scheduleEvery(expr string) (time.Duration, error) {
	if cronRE().MatchString(expr) {
		return 0, nil
	}
	m := rateRE().FindStringSubmatch(expr)
	if m == nil {
		return 0, errorf(400, "ValidationException", "Parameter ScheduleExpression is not valid.")
	}
	n, _ := strconv.Atoi(m[1])
	unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
	if n < 1 || (n == 1) != !strings.HasSuffix(m[2], "s") {
		return 0, errorf(400, "ValidationException", "Parameter ScheduleExpression is not valid.")
	}
	return time.Duration(n) * unit, nil
}

// RunSchedules fires every enabled scheduled rule now, as its time had come,
// and returns once the Lambda functions it invoked have answered: tests wait
// for the run instead of for the clock. Due rates also fire by themselves.
func (s *Sandbox) RunSchedules(ctx context.Context) error {
	return s.fireSchedules(ctx, time.Time{})
}

// fireSchedules fires the scheduled rules due at now (all of them when now
// is zero), invoking their functions synchronously.
func (s *Sandbox) fireSchedules(ctx context.Context, now time.Time) error {
	type call struct {
		f       lambdaFunction
		payload []byte
	}
	var calls []call
	s.mu.Lock()
	for _, b := range s.st.Buses {
		for _, r := range b.Rules {
			if r.Schedule == "" || r.State == "DISABLED" {
				continue
			}
			if !now.IsZero() {
				every, _ := scheduleEvery(r.Schedule)
				if every == 0 || now.Sub(r.LastRun) < every {
					continue
				}
			}
			r.LastRun = time.Now().UTC()
			arn := b.ruleARN(r.Name)
			event := newEvent("aws.events", "Scheduled Event", b.Account, b.Region, []any{arn}, map[string]any{})
			for _, t := range r.Targets {
				if !strings.HasPrefix(t.Arn, "arn:aws:lambda:") {
					if err := s.deliverEvent(b, r, t, event, 0); err != nil {
						r.Failed++
					}
					continue
				}
				f, err := s.targetFunction(arn, t.Arn)
				if err != nil {
					r.Failed++
					s.opts.Logger.Info("events: target not invoked", "rule", r.Name, "target", t.Arn, "error", err)
					continue
				}
				calls = append(calls, call{*f, []byte(targetInput(t, event))})
			}
		}
	}
	s.changed()
	s.mu.Unlock()
	var errs []string
	for _, c := range calls {
		res := s.invoke(ctx, c.f, c.payload)
		switch {
		case res.err != nil:
			errs = append(errs, c.f.Name+": "+res.err.Error())
		case res.functionError != "":
			errs = append(errs, c.f.Name+": "+string(res.payload))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("scheduled invocations failed: %s", strings.Join(errs, "; "))
	}
	return nil
}

// scheduler fires due rates every 10 seconds.
func (s *Sandbox) scheduler() {
	defer s.done.Done()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	ctx := s.stopContext()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			if err := s.fireSchedules(ctx, now); err != nil {
				s.opts.Logger.Info("events: scheduled run", "error", err)
			}
		}
	}
}
