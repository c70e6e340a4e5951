package sandbox

import (
	"net/url"
	"sort"
	"strconv"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

// inlineResult answers Get{Role,User}Policy: the entity's name element is
// RoleName or UserName.
type inlineResult struct {
	RoleName       string `xml:",omitempty"`
	UserName       string `xml:",omitempty"`
	PolicyName     string
	PolicyDocument string
}

// inlinePolicyActions are IAM's Put, Get, List and Delete{Kind}Policy for roles
// and users alike; limit is IAM's total size of an entity's inline policies.
func inlinePolicyActions[E any](s *Sandbox, kind string, limit int,
	with func(string, func(*call, url.Values, *E) (any, error)) queryHandler,
	name func(*E) string, inline func(*E) map[string]string) map[string]queryHandler {
	notFound := func(p url.Values) error {
		return errorf(404, "NoSuchEntity", "The %s policy with name %s cannot be found.", lowerFirst(kind), p.Get("PolicyName"))
	}
	return map[string]queryHandler{
		"Put" + kind + "Policy": with("Put"+kind+"Policy", func(c *call, p url.Values, e *E) (any, error) {
			if err := required(p, "PolicyName", "PolicyDocument"); err != nil {
				return nil, err
			}
			doc := p.Get("PolicyDocument")
			if _, err := policy.Parse([]byte(doc), policy.Identity); err != nil {
				return nil, errorf(400, "MalformedPolicyDocument", "%s", err.Error())
			}
			total := len(minify(doc))
			for n, d := range inline(e) {
				if n != p.Get("PolicyName") {
					total += len(minify(d))
				}
			}
			if total > limit {
				return nil, errorf(409, "LimitExceeded", "Maximum policy size of %d bytes exceeded for %s %s", limit, lowerFirst(kind), name(e))
			}
			inline(e)[p.Get("PolicyName")] = doc
			return nil, nil
		}),
		"Get" + kind + "Policy": with("Get"+kind+"Policy", func(c *call, p url.Values, e *E) (any, error) {
			c.readOnly = true
			doc, ok := inline(e)[p.Get("PolicyName")]
			if !ok {
				return nil, notFound(p)
			}
			out := inlineResult{PolicyName: p.Get("PolicyName"), PolicyDocument: url.QueryEscape(doc)}
			if kind == "Role" {
				out.RoleName = name(e)
			} else {
				out.UserName = name(e)
			}
			return out, nil
		}),
		"Delete" + kind + "Policy": with("Delete"+kind+"Policy", func(c *call, p url.Values, e *E) (any, error) {
			if _, ok := inline(e)[p.Get("PolicyName")]; !ok {
				return nil, notFound(p)
			}
			delete(inline(e), p.Get("PolicyName"))
			return nil, nil
		}),
		"List" + kind + "Policies": with("List"+kind+"Policies", func(c *call, p url.Values, e *E) (any, error) {
			c.readOnly = true
			names := make([]string, 0, len(inline(e)))
			for n := range inline(e) {
				names = append(names, n)
			}
			sort.Strings(names)
			limit := 100
			if n, err := strconv.Atoi(p.Get("MaxItems")); err == nil && n > 0 {
				limit = min(n, 1000)
			}
			names, next := s.page(names, p.Get("Marker"), limit)
			return struct {
				PolicyNames []string `xml:"PolicyNames>member"`
				IsTruncated bool
				Marker      string `xml:",omitempty"`
			}{names, next != "", next}, nil
		}),
	}
}
