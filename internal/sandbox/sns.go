package sandbox

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
	"github.com/trailkeeper/trailkeeper/internal/regions"
)

// topic is an SNS standard topic.
type topic struct {
	ARN           string            `json:"arn"`
	Owner         string            `json:"owner"`
	Region        string            `json:"region"`
	Policy        string            `json:"policy"`
	Attributes    map[string]string `json:"attributes,omitempty"` // DisplayName, DeliveryPolicy
	Subscriptions []*subscription   `json:"subscriptions,omitempty"`

	policyDoc *policy.Document // parsed Policy, rebuilt on load
}

// subscription is an endpoint of a topic; http, https and email ones wait for
// their confirmation, as on SNS.
type subscription struct {
	ARN       string    `json:"arn"`
	Owner     string    `json:"owner"`
	Protocol  string    `json:"protocol"`
	Endpoint  string    `json:"endpoint"`
	Token     string    `json:"token"`
	Confirmed bool      `json:"confirmed"`
	AuthOnly  bool      `json:"authOnly,omitempty"` // AuthenticateOnUnsubscribe
	Created   time.Time `json:"created"`
	// Base is the sandbox URL the subscriber reached it by, for the
	// SubscribeURL and UnsubscribeURL in messages.
	Base string `json:"base"`
	// Attributes set with SetSubscriptionAttributes (DeliveryPolicy).
	Attributes map[string]string `json:"attributes,omitempty"`
}

const snsNamespace = "http://sns.amazonaws.com/doc/2010-03-31/"

var (
	topicNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`) })
	topicARNRE  = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^arn:aws:sns:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,256})$`)
	})
)

func (s *Sandbox) snsActions() map[string]queryHandler {
	return map[string]queryHandler{
		"CreateTopic":               s.createTopic,
		"DeleteTopic":               s.deleteTopic,
		"GetTopicAttributes":        s.getTopicAttributes,
		"SetTopicAttributes":        s.setTopicAttributes,
		"ListTopics":                s.listTopics,
		"Subscribe":                 s.subscribe,
		"ConfirmSubscription":       s.confirmSubscription,
		"Unsubscribe":               s.unsubscribe,
		"ListSubscriptionsByTopic":  s.listSubscriptionsByTopic,
		"ListSubscriptions":         s.listSubscriptions,
		"GetSubscriptionAttributes": s.getSubscriptionAttributes,
		"SetSubscriptionAttributes": s.setSubscriptionAttributes,
		"Publish":                   s.publish,
	}
}

func snsInvalid(format string, a ...any) *awsError {
	return errorf(400, "InvalidParameter", "Invalid parameter: "+format, a...)
}

// defaultTopicPolicy is the policy SNS gives a new topic: the owner's
// principals may manage and publish.
func defaultTopicPolicy(arn, owner string) string {
	doc := map[string]any{
		"Version": "2008-10-17", "Id": "__default_policy_ID",
		"Statement": []any{map[string]any{
			"Sid": "__default_statement_ID", "Effect": "Allow", "Principal": map[string]string{"AWS": "*"},
			"Action": []string{"SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
				"SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"},
			"Resource":  arn,
			"Condition": map[string]any{"StringEquals": map[string]string{"AWS:SourceOwner": owner}},
		}},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// attributes reads a Query-protocol map: Attributes.entry.N.key / .value.
func attributes(p url.Values, name string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		k, ok := p[fmt.Sprintf("%s.entry.%d.key", name, i)]
		if !ok {
			return out
		}
		out[k[0]] = p.Get(fmt.Sprintf("%s.entry.%d.value", name, i))
	}
}

// topicFor finds a topic and checks that the caller may act on it. Callers hold s.mu.
func (s *Sandbox) topicFor(c *call, arn, action string) (*topic, error) {
	m := topicARNRE().FindStringSubmatch(arn)
	if m == nil {
		return nil, snsInvalid("TopicArn")
	}
	t := s.st.Topics[arn]
	if t == nil || m[1] != c.region {
		return nil, errorf(404, "NotFound", "Topic does not exist")
	}
	c.resourceAccount = t.Owner
	if err := s.authorizeTopic(c.caller, t, action, c.requestContext(nil)); err != nil {
		return nil, err
	}
	return t, nil
}

// authorizeTopic applies AWS's rules to a topic: within the owner's account the
// identity or the topic policy may allow, across accounts both must, and a
// service needs the topic policy. Callers hold s.mu.
func (s *Sandbox) authorizeTopic(c caller, t *topic, action string, ctx map[string][]string) error {
	req := policy.Request{Caller: c.policyCaller(), Action: action, Resource: t.ARN, Context: ctx}
	identity := s.identityDecision(c, req)
	res := policy.ImplicitDeny
	if t.policyDoc != nil {
		res = t.policyDoc.Evaluate(req).Decision
	}
	switch {
	case identity == policy.ExplicitDeny || res == policy.ExplicitDeny:
	case c.Account == t.Owner && (identity == policy.Allowed || res == policy.Allowed):
		return nil
	case c.Account == "" && res == policy.Allowed:
		return nil
	case identity == policy.Allowed && res == policy.Allowed:
		return nil
	}
	return errorf(403, "AuthorizationError", "User: %s is not authorized to perform: %s on resource: %s", c.display(), strings.Replace(action, "sns:", "SNS:", 1), t.ARN)
}

func (s *Sandbox) createTopic(c *call, p url.Values) (any, error) {
	if err := required(p, "Name"); err != nil {
		return nil, err
	}
	name := p.Get("Name")
	if !topicNameRE().MatchString(name) {
		return nil, snsInvalid("Topic Name")
	}
	if !regions.Known(c.region) {
		return nil, snsInvalid("the region %s is not one SNS serves", c.region)
	}
	arn := "arn:aws:sns:" + c.region + ":" + c.caller.Account + ":" + name
	attrs := attributes(p, "Attributes")
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.authorizeIdentity(c, "sns:CreateTopic", arn); err != nil {
		return nil, err
	}
	if t := s.st.Topics[arn]; t != nil {
		// Idempotent, unless the attributes differ (SNS's words).
		for k, v := range attrs {
			current := t.Attributes[k]
			if k == "Policy" {
				current = t.Policy
			}
			if current != v {
				return nil, snsInvalid("Attributes Reason: Topic already exists with different attributes")
			}
		}
		return struct{ TopicArn string }{arn}, nil
	}
	t := &topic{ARN: arn, Owner: c.caller.Account, Region: c.region, Policy: defaultTopicPolicy(arn, c.caller.Account), Attributes: map[string]string{}}
	for k, v := range attrs {
		if err := s.setTopicAttribute(t, k, v); err != nil {
			return nil, err
		}
	}
	if t.policyDoc == nil {
		t.policyDoc, _ = s.parse(t.Policy, policy.Resource)
	}
	s.st.Topics[arn] = t
	s.changed()
	return struct{ TopicArn string }{arn}, nil
}

// authorizeIdentity checks the caller's own permissions for an action on a
// resource that does not exist yet. Callers hold s.mu.
func (s *Sandbox) authorizeIdentity(c *call, action, resource string) error {
	req := policy.Request{Caller: c.caller.policyCaller(), Action: action, Resource: resource, Context: c.requestContext(nil)}
	if s.identityDecision(c.caller, req) != policy.Allowed {
		return errorf(403, "AuthorizationError", "User: %s is not authorized to perform: %s on resource: %s", c.caller.display(), strings.Replace(action, "sns:", "SNS:", 1), resource)
	}
	return nil
}

// setTopicAttribute validates and sets one attribute. Callers hold s.mu.
func (s *Sandbox) setTopicAttribute(t *topic, name, value string) error {
	switch name {
	case "Policy":
		if len(value) > 30720 {
			return snsInvalid("Policy Error: Policy size exceeds 30 KB")
		}
		doc, err := s.parse(value, policy.Resource)
		if err != nil {
			return snsInvalid("Policy Error: %v", err)
		}
		t.Policy, t.policyDoc = value, doc
	case "DeliveryPolicy":
		if err := checkDeliveryPolicy(value, true); err != nil {
			return err
		}
		t.Attributes[name] = value
	case "DisplayName":
		t.Attributes[name] = value
	default:
		return snsInvalid("AttributeName")
	}
	return nil
}

func (s *Sandbox) deleteTopic(c *call, p url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicFor(c, p.Get("TopicArn"), "sns:DeleteTopic")
	if err != nil {
		if e, ok := err.(*awsError); ok && e.Code == "NotFound" {
			return nil, nil // deleting a topic that is not there succeeds, as on SNS
		}
		return nil, err
	}
	delete(s.st.Topics, t.ARN)
	s.changed()
	return nil, nil
}

func (s *Sandbox) getTopicAttributes(c *call, p url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicFor(c, p.Get("TopicArn"), "sns:GetTopicAttributes")
	if err != nil {
		return nil, err
	}
	confirmed, pending := 0, 0
	for _, sub := range t.Subscriptions {
		if sub.Confirmed {
			confirmed++
		} else {
			pending++
		}
	}
	attrs := map[string]string{"TopicArn": t.ARN, "Owner": t.Owner, "Policy": t.Policy,
		"SubscriptionsConfirmed": itoa(int64(confirmed)), "SubscriptionsPending": itoa(int64(pending)), "SubscriptionsDeleted": "0",
		"EffectiveDeliveryPolicy": `{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false}}`}
	for k, v := range t.Attributes {
		attrs[k] = v
	}
	if dp, ok := t.Attributes["DeliveryPolicy"]; ok {
		attrs["EffectiveDeliveryPolicy"] = dp
	}
	return struct{ Attributes entries }{toEntries(attrs)}, nil
}

// entries is a Query-protocol map in a response.
type entries struct {
	Entry []entry `xml:"entry"`
}

type entry struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func toEntries(m map[string]string) entries {
	var out entries
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out.Entry = append(out.Entry, entry{k, m[k]})
	}
	return out
}

func (s *Sandbox) setTopicAttributes(c *call, p url.Values) (any, error) {
	if err := required(p, "AttributeName"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicFor(c, p.Get("TopicArn"), "sns:SetTopicAttributes")
	if err != nil {
		return nil, err
	}
	if err := s.setTopicAttribute(t, p.Get("AttributeName"), p.Get("AttributeValue")); err != nil {
		return nil, err
	}
	s.changed()
	return nil, nil
}

func (s *Sandbox) listTopics(c *call, p url.Values) (any, error) {
	type member struct{ TopicArn string }
	var out struct {
		Topics struct {
			Member []member `xml:"member"`
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, arn := range slices.Sorted(maps.Keys(s.st.Topics)) {
		if t := s.st.Topics[arn]; t.Owner == c.caller.Account && t.Region == c.region {
			out.Topics.Member = append(out.Topics.Member, member{arn})
		}
	}
	return out, nil
}

func (s *Sandbox) subscribe(c *call, p url.Values) (any, error) {
	if err := required(p, "Protocol"); err != nil {
		return nil, err
	}
	proto, endpoint := p.Get("Protocol"), p.Get("Endpoint")
	switch proto {
	case "http", "https":
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != proto || u.Host == "" {
			return nil, snsInvalid("Invalid parameter: Endpoint must match the specified protocol")
		}
	case "email", "email-json":
		if !strings.Contains(endpoint, "@") {
			return nil, snsInvalid("Invalid parameter: Email address")
		}
	default:
		return nil, snsInvalid("Amazon SNS does not support this protocol string: %s (the sandbox delivers to http, https and email)", proto)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicFor(c, p.Get("TopicArn"), "sns:Subscribe")
	if err != nil {
		return nil, err
	}
	for _, sub := range t.Subscriptions {
		if sub.Protocol == proto && sub.Endpoint == endpoint {
			if sub.Confirmed || p.Get("ReturnSubscriptionArn") == "true" {
				return struct{ SubscriptionArn string }{sub.ARN}, nil
			}
			s.sendConfirmation(t, sub) // SNS sends the request again
			return struct{ SubscriptionArn string }{"pending confirmation"}, nil
		}
	}
	sub := &subscription{ARN: t.ARN + ":" + uuid(), Owner: c.caller.Account, Protocol: proto, Endpoint: endpoint,
		Token: randomHex(64), Created: time.Now().UTC(), Base: requestBase(c)}
	t.Subscriptions = append(t.Subscriptions, sub)
	s.changed()
	s.sendConfirmation(t, sub)
	if p.Get("ReturnSubscriptionArn") == "true" {
		return struct{ SubscriptionArn string }{sub.ARN}, nil
	}
	return struct{ SubscriptionArn string }{"pending confirmation"}, nil
}

// requestBase is the sandbox's URL as the caller reached it.
func requestBase(c *call) string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.r.Host
}

func uuid() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// confirmSubscription needs no credentials: the token is the proof, as on SNS.
func (s *Sandbox) confirmSubscription(c *call, p url.Values) (any, error) {
	if err := required(p, "TopicArn", "Token"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.Topics[p.Get("TopicArn")]
	if t == nil {
		return nil, errorf(404, "NotFound", "Topic does not exist")
	}
	for _, sub := range t.Subscriptions {
		if sub.Token == p.Get("Token") {
			if !sub.Confirmed {
				sub.Confirmed, sub.AuthOnly = true, p.Get("AuthenticateOnUnsubscribe") == "true"
				s.changed()
			}
			return struct{ SubscriptionArn string }{sub.ARN}, nil
		}
	}
	return nil, snsInvalid("Token")
}

// subscriptionFor finds a confirmed subscription the caller may manage: its
// owner's or its topic owner's. Callers hold s.mu.
func (s *Sandbox) subscriptionFor(c *call, arn string) (*topic, *subscription, error) {
	for _, t := range s.st.Topics {
		for _, sub := range t.Subscriptions {
			if sub.ARN != arn {
				continue
			}
			if c.caller.Account != sub.Owner && c.caller.Account != t.Owner {
				return nil, nil, errorf(403, "AuthorizationError", "User: %s is not authorized to access subscription %s", c.caller.display(), arn)
			}
			return t, sub, nil
		}
	}
	return nil, nil, errorf(404, "NotFound", "Subscription does not exist")
}

func (s *Sandbox) getSubscriptionAttributes(c *call, p url.Values) (any, error) {
	if err := required(p, "SubscriptionArn"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, sub, err := s.subscriptionFor(c, p.Get("SubscriptionArn"))
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{"SubscriptionArn": sub.ARN, "TopicArn": t.ARN, "Owner": sub.Owner, "Protocol": sub.Protocol,
		"Endpoint": sub.Endpoint, "ConfirmationWasAuthenticated": fmt.Sprint(sub.AuthOnly), "PendingConfirmation": fmt.Sprint(!sub.Confirmed),
		"RawMessageDelivery": "false"}
	for k, v := range sub.Attributes {
		attrs[k] = v
	}
	return struct{ Attributes entries }{toEntries(attrs)}, nil
}

func (s *Sandbox) setSubscriptionAttributes(c *call, p url.Values) (any, error) {
	if err := required(p, "SubscriptionArn", "AttributeName"); err != nil {
		return nil, err
	}
	name, value := p.Get("AttributeName"), p.Get("AttributeValue")
	if name != "DeliveryPolicy" {
		return nil, snsInvalid("AttributeName: the sandbox sets DeliveryPolicy only")
	}
	if err := checkDeliveryPolicy(value, false); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, sub, err := s.subscriptionFor(c, p.Get("SubscriptionArn"))
	if err != nil {
		return nil, err
	}
	if sub.Attributes == nil {
		sub.Attributes = map[string]string{}
	}
	sub.Attributes[name] = value
	s.changed()
	return nil, nil
}

func (s *Sandbox) unsubscribe(c *call, p url.Values) (any, error) {
	arn := p.Get("SubscriptionArn")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.st.Topics {
		for i, sub := range t.Subscriptions {
			if sub.ARN != arn {
				continue
			}
			// The UnsubscribeURL in each message works without credentials
			// unless the subscriber asked otherwise.
			if c.caller.Account == "" && sub.AuthOnly || c.caller.Account != "" && c.caller.Account != sub.Owner && c.caller.Account != t.Owner {
				return nil, errorf(403, "AuthorizationError", "User: %s is not authorized to perform: SNS:Unsubscribe on resource: %s", c.caller.display(), arn)
			}
			t.Subscriptions = slices.Delete(t.Subscriptions, i, i+1)
			s.changed()
			return nil, nil
		}
	}
	return nil, errorf(404, "NotFound", "Subscription does not exist")
}

type subscriptionMember struct {
	TopicArn, Protocol, SubscriptionArn, Owner, Endpoint string
}

func (sub *subscription) member(t *topic) subscriptionMember {
	arn := sub.ARN
	if !sub.Confirmed {
		arn = "PendingConfirmation"
	}
	return subscriptionMember{TopicArn: t.ARN, Protocol: sub.Protocol, SubscriptionArn: arn, Owner: sub.Owner, Endpoint: sub.Endpoint}
}

type subscriptionList struct {
	Subscriptions struct {
		Member []subscriptionMember `xml:"member"`
	}
	NextToken string `xml:",omitempty"`
}

// subscriptionPage lists subscriptions as SNS does: 100 a page (or
// Options.PageSize) in a stable order, with a NextToken for the rest.
// Callers hold s.mu.
func (s *Sandbox) subscriptionPage(p url.Values, topics []*topic, keep func(*topic, *subscription) bool) subscriptionList {
	byKey := map[string]subscriptionMember{}
	for _, t := range topics {
		for _, sub := range t.Subscriptions {
			if keep(t, sub) {
				byKey[t.ARN+"\x00"+sub.ARN] = sub.member(t)
			}
		}
	}
	keys, next := s.page(slices.Sorted(maps.Keys(byKey)), p.Get("NextToken"), 100)
	var out subscriptionList
	for _, k := range keys {
		out.Subscriptions.Member = append(out.Subscriptions.Member, byKey[k])
	}
	out.NextToken = next
	return out
}

func (s *Sandbox) listSubscriptionsByTopic(c *call, p url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicFor(c, p.Get("TopicArn"), "sns:ListSubscriptionsByTopic")
	if err != nil {
		return nil, err
	}
	return s.subscriptionPage(p, []*topic{t}, func(*topic, *subscription) bool { return true }), nil
}

func (s *Sandbox) listSubscriptions(c *call, p url.Values) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscriptionPage(p, slices.Collect(maps.Values(s.st.Topics)), func(t *topic, sub *subscription) bool {
		return sub.Owner == c.caller.Account && t.Region == c.region
	}), nil
}

func (s *Sandbox) publish(c *call, p url.Values) (any, error) {
	if err := required(p, "Message"); err != nil {
		return nil, err
	}
	if len(p.Get("Message")) > 256*1024 {
		return nil, snsInvalid("Message too long")
	}
	if subj := p.Get("Subject"); len(subj) > 100 || strings.ContainsAny(subj, "\n\r") {
		return nil, snsInvalid("Subject")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.topicFor(c, p.Get("TopicArn"), "sns:Publish")
	if err != nil {
		return nil, err
	}
	return struct{ MessageId string }{s.publishToTopic(t, p.Get("Subject"), p.Get("Message"))}, nil
}
