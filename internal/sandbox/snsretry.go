package sandbox

import (
	"encoding/json"
	"math"
	"time"
)

// SNS's HTTP/S delivery policy (SNS Developer Guide, "Amazon SNS message
// delivery retries", "Creating an HTTP/S delivery policy"): after a failed
// first attempt, numNoDelayRetries at once, numMinDelayRetries minDelayTarget
// apart, the backoff phase from minDelayTarget to maxDelayTarget, then
// numMaxDelayRetries maxDelayTarget apart; numRetries counts them all, and the
// whole policy takes at most 3,600 seconds. The default for HTTP/S is three
// retries 20 seconds apart. A topic sets it with its DeliveryPolicy attribute
// ({"http":{"defaultHealthyRetryPolicy":{...},"disableSubscriptionOverrides":
// false}}), a subscription with its own ({"healthyRetryPolicy":{...}}), which
// wins unless the topic disables overrides.
type retryPolicy struct {
	MinDelayTarget     *int   `json:"minDelayTarget"`
	MaxDelayTarget     *int   `json:"maxDelayTarget"`
	NumRetries         *int   `json:"numRetries"`
	NumNoDelayRetries  int    `json:"numNoDelayRetries"`
	NumMinDelayRetries int    `json:"numMinDelayRetries"`
	NumMaxDelayRetries int    `json:"numMaxDelayRetries"`
	BackoffFunction    string `json:"backoffFunction"`
}

type topicDeliveryPolicy struct {
	HTTP *struct {
		Default  *retryPolicy `json:"defaultHealthyRetryPolicy"`
		Disabled bool         `json:"disableSubscriptionOverrides"`
	} `json:"http"`
}

type subscriptionDeliveryPolicy struct {
	Healthy *retryPolicy `json:"healthyRetryPolicy"`
}

const maxRetryTime = 3600 // seconds, a hard limit of SNS

// defaults fills what a policy leaves out with SNS's defaults.
func (p retryPolicy) defaults() retryPolicy {
	twenty, three := 20, 3
	if p.MinDelayTarget == nil {
		p.MinDelayTarget = &twenty
	}
	if p.MaxDelayTarget == nil {
		p.MaxDelayTarget = &twenty
	}
	if p.NumRetries == nil {
		p.NumRetries = &three
	}
	if p.BackoffFunction == "" {
		p.BackoffFunction = "linear"
	}
	return p
}

// check validates a policy as SNS does, naming the field at fault.
func (p retryPolicy) check(field string) error {
	p = p.defaults()
	min, max, n := *p.MinDelayTarget, *p.MaxDelayTarget, *p.NumRetries
	switch {
	case min < 1 || min > max:
		return snsInvalid("DeliveryPolicy: %s.minDelayTarget must be between 1 and maxDelayTarget", field)
	case max > maxRetryTime:
		return snsInvalid("DeliveryPolicy: %s.maxDelayTarget must be less than or equal to %d", field, maxRetryTime)
	case n < 0 || n > 100:
		return snsInvalid("DeliveryPolicy: %s.numRetries must be between 0 and 100", field)
	case p.NumNoDelayRetries < 0 || p.NumMinDelayRetries < 0 || p.NumMaxDelayRetries < 0 ||
		p.NumNoDelayRetries+p.NumMinDelayRetries+p.NumMaxDelayRetries > n:
		return snsInvalid("DeliveryPolicy: %s: numNoDelayRetries, numMinDelayRetries and numMaxDelayRetries must add up to at most numRetries", field)
	}
	switch p.BackoffFunction {
	case "linear", "arithmetic", "geometric", "exponential":
	default:
		return snsInvalid("DeliveryPolicy: %s.backoffFunction must be one of linear, arithmetic, geometric, exponential", field)
	}
	var total time.Duration
	for _, d := range p.delays() {
		total += d
	}
	if total > maxRetryTime*time.Second {
		return snsInvalid("DeliveryPolicy: %s: the retries take %ds, more than the %ds SNS allows", field, int(total.Seconds()), maxRetryTime)
	}
	return nil
}

// delays is the wait before each retry. SNS does not publish the formulas of
// its backoff curves: linear and exponential are what their names say, and
// arithmetic and geometric, drawn between them in the guide's graph, are
// taken as linear and exponential.
func (p retryPolicy) delays() []time.Duration {
	p = p.defaults()
	min, max := float64(*p.MinDelayTarget), float64(*p.MaxDelayTarget)
	backoff := *p.NumRetries - p.NumNoDelayRetries - p.NumMinDelayRetries - p.NumMaxDelayRetries
	var out []time.Duration
	add := func(n int, seconds float64) {
		for range n {
			out = append(out, time.Duration(seconds*float64(time.Second)))
		}
	}
	add(p.NumNoDelayRetries, 0)
	add(p.NumMinDelayRetries, min)
	for i := range backoff {
		t := 0.0
		if backoff > 1 {
			t = float64(i) / float64(backoff-1)
		}
		d := min + (max-min)*t
		if p.BackoffFunction == "exponential" || p.BackoffFunction == "geometric" {
			d = min * math.Pow(max/min, t)
		}
		add(1, d)
	}
	add(p.NumMaxDelayRetries, max)
	return out
}

// checkDeliveryPolicy validates a topic's (topic) or a subscription's
// DeliveryPolicy attribute.
func checkDeliveryPolicy(value string, topic bool) error {
	if topic {
		var tp topicDeliveryPolicy
		if err := json.Unmarshal([]byte(value), &tp); err != nil {
			return snsInvalid("DeliveryPolicy: not JSON: %v", err)
		}
		if tp.HTTP != nil && tp.HTTP.Default != nil {
			return tp.HTTP.Default.check("http.defaultHealthyRetryPolicy")
		}
		return nil
	}
	var sp subscriptionDeliveryPolicy
	if err := json.Unmarshal([]byte(value), &sp); err != nil {
		return snsInvalid("DeliveryPolicy: not JSON: %v", err)
	}
	if sp.Healthy != nil {
		return sp.Healthy.check("healthyRetryPolicy")
	}
	return nil
}

// retryDelays is the schedule of retries for a delivery to sub (nil for a
// message that is not a subscription's yet, as a confirmation request: the
// topic's policy). Callers hold s.mu.
func retryDelays(t *topic, sub *subscription) []time.Duration {
	p := retryPolicy{}
	var tp topicDeliveryPolicy
	overridable := true
	if json.Unmarshal([]byte(t.Attributes["DeliveryPolicy"]), &tp) == nil && tp.HTTP != nil {
		if tp.HTTP.Default != nil {
			p = *tp.HTTP.Default
		}
		overridable = !tp.HTTP.Disabled
	}
	var sp subscriptionDeliveryPolicy
	if sub != nil && overridable && json.Unmarshal([]byte(sub.Attributes["DeliveryPolicy"]), &sp) == nil && sp.Healthy != nil {
		p = *sp.Healthy
	}
	return p.delays()
}
