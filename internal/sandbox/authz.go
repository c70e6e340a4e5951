package sandbox

import (
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// requestContext holds the global condition keys of a request.
func (c *call) requestContext(extra map[string][]string) map[string][]string {
	ctx := map[string][]string{
		"aws:SecureTransport": {boolString(c.secure)},
		"aws:CurrentTime":     {time.Now().UTC().Format(time.RFC3339)},
		"aws:EpochTime":       {itoa(time.Now().Unix())},
	}
	if c.sourceIP != "" && c.caller.Service == "" {
		ctx["aws:SourceIp"] = []string{c.sourceIP}
	}
	if c.caller.Account != "" {
		ctx["aws:PrincipalAccount"] = []string{c.caller.Account}
		ctx["aws:PrincipalArn"] = []string{c.caller.ARN}
		switch {
		case c.caller.root():
			ctx["aws:PrincipalType"] = []string{"Account"}
			ctx["aws:userid"] = []string{c.caller.Account}
		case c.caller.User != "":
			ctx["aws:PrincipalType"] = []string{"User"}
			ctx["aws:userid"] = []string{c.caller.UniqueID}
			ctx["aws:username"] = []string{c.caller.User}
		default:
			ctx["aws:PrincipalType"] = []string{"AssumedRole"}
			ctx["aws:userid"] = []string{c.caller.UniqueID + ":" + c.caller.SessionName}
		}
	}
	if c.caller.Service != "" {
		ctx["aws:PrincipalServiceName"] = []string{c.caller.Service}
	}
	for k, v := range extra {
		ctx[k] = v
	}
	return ctx
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func (c caller) policyCaller() policy.Caller {
	return policy.Caller{Account: c.Account, ARN: c.ARN, UniqueID: c.UniqueID, Service: c.Service}
}

// identityDecision evaluates the caller's own permissions. A root principal may do
// anything in its account; a role session has what its inline policies grant.
// Callers hold s.mu.
func (s *Sandbox) identityDecision(c caller, req policy.Request) policy.Decision {
	if c.root() {
		return policy.Allowed
	}
	if c.User != "" {
		u := s.st.account(c.Account).Users[c.User]
		if u == nil || u.ID != c.UniqueID {
			return policy.ImplicitDeny
		}
		return s.inlineDecision(u.Inline, req)
	}
	if c.Session == "" {
		return policy.ImplicitDeny // services and anonymous callers have no identity policy
	}
	r := s.st.account(c.Account).Roles[roleNameFromARN(c.ARN)]
	if r == nil || r.ID != c.UniqueID {
		return policy.ImplicitDeny // the role was deleted (or recreated) under the session
	}
	return s.inlineDecision(r.Inline, req)
}

// inlineDecision evaluates a principal's inline policies together. Callers hold s.mu.
func (s *Sandbox) inlineDecision(inline map[string]string, req policy.Request) policy.Decision {
	out := policy.ImplicitDeny
	for _, doc := range inline {
		d, err := s.parse(doc, policy.Identity)
		if err != nil {
			continue
		}
		switch d.Evaluate(req).Decision {
		case policy.ExplicitDeny:
			return policy.ExplicitDeny
		case policy.Allowed:
			out = policy.Allowed
		}
	}
	return out
}

// authorize decides an S3 request on bucket b, following AWS's rules: an explicit
// Deny anywhere wins; within the bucket owner's account the identity policy or the
// bucket policy may allow; across accounts both must. Callers hold s.mu.
func (s *Sandbox) authorize(c *call, b *bucket, action, resource string, extra map[string][]string) error {
	req := policy.Request{Caller: c.caller.policyCaller(), Action: action, Resource: resource, Context: c.requestContext(extra)}
	identity := s.identityDecision(c.caller, req)
	res := policy.Result{Decision: policy.ImplicitDeny}
	if b.policyDoc != nil {
		res = b.policyDoc.Evaluate(req)
	}
	owner := c.caller.Account == b.Owner
	ownerManagesPolicy := owner && c.caller.root() &&
		(action == "s3:GetBucketPolicy" || action == "s3:PutBucketPolicy" || action == "s3:DeleteBucketPolicy")
	switch {
	case (identity == policy.ExplicitDeny || res.Decision == policy.ExplicitDeny) && !ownerManagesPolicy:
	case owner && (identity == policy.Allowed || res.Decision == policy.Allowed):
		return nil
	case c.caller.Account == "" && res.Decision == policy.Allowed:
		return nil
	case c.caller.Account != "" && identity == policy.Allowed && res.Decision == policy.Allowed:
		return nil
	}
	return accessDenied("User: %s is not authorized to perform: %s on resource: \"%s\"", c.caller.display(), action, resource)
}

func (c caller) display() string {
	switch {
	case c.Session != "":
		return c.Session
	case c.Service != "":
		return c.Service
	case c.Account != "":
		return c.ARN
	}
	return "anonymous"
}

func roleNameFromARN(arn string) string {
	for i := len(arn) - 1; i >= 0; i-- {
		if arn[i] == '/' {
			return arn[i+1:]
		}
	}
	return ""
}
