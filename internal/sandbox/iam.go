package sandbox

import (
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trailkeeper/trailkeeper/internal/policy"
)

type roleXML struct {
	Path                     string
	RoleName                 string
	RoleId                   string
	Arn                      string
	CreateDate               string
	AssumeRolePolicyDocument string
	Description              string `xml:",omitempty"`
	MaxSessionDuration       int
	Tags                     []tagXML `xml:"Tags>member,omitempty"`
}

type tagXML struct{ Key, Value string }

func roleARN(acct string, r *role) string { return "arn:aws:iam::" + acct + ":role" + r.Path + r.Name }

func (r *role) xml(acct string) roleXML {
	out := roleXML{Path: r.Path, RoleName: r.Name, RoleId: r.ID, Arn: roleARN(acct, r), CreateDate: r.Created.Format(time.RFC3339),
		AssumeRolePolicyDocument: url.QueryEscape(r.Trust), Description: r.Description, MaxSessionDuration: r.MaxSession}
	for _, t := range r.Tags {
		out.Tags = append(out.Tags, tagXML(t))
	}
	return out
}

var roleNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+=,.@-]{1,64}$`) })

func noSuchRole(name string) error {
	return errorf(404, "NoSuchEntity", "The role with name %s cannot be found.", name)
}

// iamAuthorize checks a role session's identity policy for an IAM action. Callers hold s.mu.
func (s *Sandbox) iamAuthorize(c *call, action, resource string) error {
	if c.caller.root() {
		return nil
	}
	req := policy.Request{Caller: c.caller.policyCaller(), Action: action, Resource: resource, Context: c.requestContext(nil)}
	if s.identityDecision(c.caller, req) != policy.Allowed {
		return errorf(403, "AccessDenied", "User: %s is not authorized to perform: %s on resource: %s", c.caller.display(), action, resource)
	}
	return nil
}

// validateTrust parses a trust policy the way IAM does: AWS principals must exist.
func (s *Sandbox) validateTrust(doc string) error {
	d, err := policy.Parse([]byte(doc), policy.Trust)
	if err != nil {
		return errorf(400, "MalformedPolicyDocument", "%s", err.Error())
	}
	for _, st := range d.Statements {
		for _, p := range []*policy.Principal{st.Principal, st.NotPrincipal} {
			if p == nil {
				continue
			}
			for _, a := range p.AWS {
				if _, err := s.principalID(a); err != nil {
					return errorf(400, "MalformedPolicyDocument", "Invalid principal in policy: \"AWS\":\"%s\"", a)
				}
			}
		}
	}
	return nil
}

func (s *Sandbox) iamActions() map[string]queryHandler {
	withRole := func(action string, fn func(c *call, p url.Values, r *role) (any, error)) queryHandler {
		return withEntity(s, "RoleName", "role", action, func(a *account, name string) *role { return a.Roles[name] }, noSuchRole, fn)
	}
	actions := map[string]queryHandler{
		"CreateRole": s.createRole,
		"GetRole": withRole("GetRole", func(c *call, p url.Values, r *role) (any, error) {
			c.readOnly = true
			return struct{ Role roleXML }{r.xml(c.caller.Account)}, nil
		}),
		"DeleteRole": withRole("DeleteRole", func(c *call, p url.Values, r *role) (any, error) {
			if len(r.Inline) > 0 {
				return nil, errorf(409, "DeleteConflict", "Cannot delete entity, must delete policies first.")
			}
			delete(s.st.account(c.caller.Account).Roles, r.Name)
			return nil, nil
		}),
		"UpdateAssumeRolePolicy": withRole("UpdateAssumeRolePolicy", func(c *call, p url.Values, r *role) (any, error) {
			if err := s.validateTrust(p.Get("PolicyDocument")); err != nil {
				return nil, err
			}
			r.Trust = p.Get("PolicyDocument")
			return nil, nil
		}),
		"UpdateRole": withRole("UpdateRole", func(c *call, p url.Values, r *role) (any, error) {
			if d, ok := p["Description"]; ok {
				r.Description = d[0]
			}
			if m := p.Get("MaxSessionDuration"); m != "" {
				r.MaxSession, _ = strconv.Atoi(m)
			}
			return struct{}{}, nil
		}),
		"ListAttachedRolePolicies": withRole("ListAttachedRolePolicies", func(c *call, p url.Values, r *role) (any, error) {
			c.readOnly = true
			return struct {
				AttachedPolicies struct{} `xml:"AttachedPolicies"`
				IsTruncated      bool
			}{}, nil
		}),
		"ListInstanceProfilesForRole": withRole("ListInstanceProfilesForRole", func(c *call, p url.Values, r *role) (any, error) {
			c.readOnly = true
			return struct {
				InstanceProfiles struct{} `xml:"InstanceProfiles"`
				IsTruncated      bool
			}{}, nil
		}),
		"TagRole": withRole("TagRole", func(c *call, p url.Values, r *role) (any, error) {
			r.Tags = mergeTags(r.Tags, queryTags(p))
			return nil, nil
		}),
		"UntagRole": withRole("UntagRole", func(c *call, p url.Values, r *role) (any, error) {
			drop := map[string]bool{}
			for _, k := range members(p, "TagKeys") {
				drop[k] = true
			}
			var keep []tag
			for _, t := range r.Tags {
				if !drop[t.Key] {
					keep = append(keep, t)
				}
			}
			r.Tags = keep
			return nil, nil
		}),
		"ListRoleTags": withRole("ListRoleTags", func(c *call, p url.Values, r *role) (any, error) {
			c.readOnly = true
			out := struct {
				Tags        []tagXML `xml:"Tags>member"`
				IsTruncated bool
			}{}
			for _, t := range r.Tags {
				out.Tags = append(out.Tags, tagXML(t))
			}
			return out, nil
		}),
		"ListRoles": func(c *call, p url.Values) (any, error) {
			c.readOnly = true
			s.mu.Lock()
			defer s.mu.Unlock()
			if err := s.iamAuthorize(c, "iam:ListRoles", "*"); err != nil {
				return nil, err
			}
			out := struct {
				Roles       []roleXML `xml:"Roles>member"`
				IsTruncated bool
			}{}
			for _, r := range s.st.account(c.caller.Account).Roles {
				out.Roles = append(out.Roles, r.xml(c.caller.Account))
			}
			sort.Slice(out.Roles, func(i, j int) bool { return out.Roles[i].RoleName < out.Roles[j].RoleName })
			return out, nil
		},
	}
	for name, h := range s.userActions() {
		actions[name] = h
	}
	for name, h := range inlinePolicyActions(s, "Role", 10240, withRole,
		func(r *role) string { return r.Name }, func(r *role) map[string]string { return r.Inline }) {
		actions[name] = h
	}
	return actions
}

// withEntity makes the handler of an IAM action on a named role or user: it
// checks the name, the caller's permission and that the entity exists, runs fn
// under the lock, and marks state to save after a change.
func withEntity[E any](s *Sandbox, param, kind, action string, find func(*account, string) *E, missing func(string) error,
	fn func(c *call, p url.Values, e *E) (any, error)) queryHandler {
	return func(c *call, p url.Values) (any, error) {
		if err := required(p, param); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		name := p.Get(param)
		if err := s.iamAuthorize(c, "iam:"+action, "arn:aws:iam::"+c.caller.Account+":"+kind+"/"+name); err != nil {
			return nil, err
		}
		e := find(s.st.account(c.caller.Account), name)
		if e == nil {
			return nil, missing(name)
		}
		out, err := fn(c, p, e)
		if err == nil && !c.readOnly {
			s.changed()
		}
		return out, err
	}
}

func minify(doc string) string {
	var v any
	if json.Unmarshal([]byte(doc), &v) != nil {
		return doc
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func queryTags(p url.Values) []tag {
	var out []tag
	for i := 1; ; i++ {
		k := p.Get("Tags.member." + strconv.Itoa(i) + ".Key")
		if k == "" {
			return out
		}
		out = append(out, tag{k, p.Get("Tags.member." + strconv.Itoa(i) + ".Value")})
	}
}

func mergeTags(old, add []tag) []tag {
	for _, t := range add {
		found := false
		for i := range old {
			if old[i].Key == t.Key {
				old[i].Value, found = t.Value, true
			}
		}
		if !found {
			old = append(old, t)
		}
	}
	return old
}

func (s *Sandbox) createRole(c *call, p url.Values) (any, error) {
	if err := required(p, "RoleName", "AssumeRolePolicyDocument"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.newRole(c.caller.Account, p.Get("RoleName"), p.Get("Path"), p.Get("AssumeRolePolicyDocument"), p.Get("Description"), queryTags(p))
	if err != nil {
		return nil, err
	}
	if err := s.iamAuthorize(c, "iam:CreateRole", roleARN(c.caller.Account, r)); err != nil {
		return nil, err
	}
	if m := p.Get("MaxSessionDuration"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 3600 || n > 43200 {
			return nil, errorf(400, "ValidationError", "MaxSessionDuration must be between 3600 and 43200 seconds")
		}
		r.MaxSession = n
	}
	s.st.account(c.caller.Account).Roles[r.Name] = r
	s.changed()
	return struct{ Role roleXML }{r.xml(c.caller.Account)}, nil
}

// newRole validates and builds a role; CloudFormation uses it too. Callers hold s.mu.
func (s *Sandbox) newRole(acct, name, path, trust, desc string, tags []tag) (*role, error) {
	if !roleNameRE().MatchString(name) {
		return nil, errorf(400, "ValidationError", "1 validation error detected: Value '%s' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name)
	}
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") || !strings.HasSuffix(path, "/") {
		return nil, errorf(400, "ValidationError", "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.")
	}
	if s.st.account(acct).Roles[name] != nil {
		return nil, errorf(409, "EntityAlreadyExists", "Role with name %s already exists.", name)
	}
	if err := s.validateTrust(trust); err != nil {
		return nil, err
	}
	return &role{Name: name, ID: randomID("AROA", 17), Path: path, Description: desc, Created: time.Now().UTC(), Trust: trust,
		Inline: map[string]string{}, Tags: tags, MaxSession: 3600}, nil
}

func (s *Sandbox) stsActions() map[string]queryHandler {
	return map[string]queryHandler{
		"GetCallerIdentity": func(c *call, p url.Values) (any, error) {
			c.readOnly = true
			arn, uid := c.caller.ARN, c.caller.Account
			if c.caller.User != "" {
				uid = c.caller.UniqueID
			}
			if c.caller.Session != "" {
				arn, uid = c.caller.Session, c.caller.UniqueID+":"+c.caller.SessionName
			}
			return struct{ Arn, UserId, Account string }{arn, uid, c.caller.Account}, nil
		},
		"AssumeRole": s.assumeRole,
	}
}

var sessionNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+=,.@-]{2,64}$`) })

func (s *Sandbox) assumeRole(c *call, p url.Values) (any, error) {
	if err := required(p, "RoleArn", "RoleSessionName"); err != nil {
		return nil, err
	}
	arn, name := p.Get("RoleArn"), p.Get("RoleSessionName")
	if !sessionNameRE().MatchString(name) {
		return nil, errorf(400, "ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*", name)
	}
	m := roleARNRE().FindStringSubmatch(arn)
	if m == nil {
		return nil, errorf(400, "ValidationError", "%s is invalid", arn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c.resourceAccount = m[1]
	denied := errorf(403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", c.caller.display(), arn)
	r := s.st.account(m[1]).Roles[m[2]]
	if r == nil {
		return nil, denied
	}
	extra := map[string][]string{}
	if ext := p.Get("ExternalId"); ext != "" {
		extra["sts:ExternalId"] = []string{ext}
	}
	req := policy.Request{Caller: c.caller.policyCaller(), Action: "sts:AssumeRole", Resource: arn, Context: c.requestContext(extra)}
	trust, err := s.parse(r.Trust, policy.Trust)
	if err != nil || trust.Evaluate(req).Decision != policy.Allowed {
		return nil, denied
	}
	if s.identityDecision(c.caller, req) != policy.Allowed {
		return nil, denied
	}
	dur := 3600
	if d := p.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > r.MaxSession {
			return nil, errorf(400, "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		}
		dur = n
	}
	key := randomID("ASIA", 16)
	sess := &session{Account: m[1], Role: r.Name, RoleID: r.ID, Name: name, Secret: randomHex(20), Token: randomHex(64),
		Expires: time.Now().UTC().Add(time.Duration(dur) * time.Second)}
	s.st.Sessions[key] = sess
	s.changed()
	type creds struct{ AccessKeyId, SecretAccessKey, SessionToken, Expiration string }
	return struct {
		Credentials     creds
		AssumedRoleUser struct{ AssumedRoleId, Arn string }
	}{creds{key, sess.Secret, sess.Token, sess.Expires.Format(time.RFC3339)},
		struct{ AssumedRoleId, Arn string }{r.ID + ":" + name, "arn:aws:sts::" + m[1] + ":assumed-role/" + r.Name + "/" + name}}, nil
}

func parsePolicyIdentity(doc string) (*policy.Document, error) {
	return policy.Parse([]byte(doc), policy.Identity)
}
