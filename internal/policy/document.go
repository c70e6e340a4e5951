// Package policy parses, builds and evaluates IAM policy documents: identity
// policies, trust policies and S3 bucket policies. It is pure (no AWS calls), so
// the sandbox can enforce policies with it and trailkeeper can check offline that
// a replication would be allowed, with one evaluator tested once.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Document is one policy document.
type Document struct {
	Version    string
	ID         string
	Statements []Statement
}

// Statement is one statement of a document. A nil Action means the statement
// uses NotAction instead, and likewise for Resource and Principal.
type Statement struct {
	Sid          string
	Effect       Effect
	Principal    *Principal
	NotPrincipal *Principal
	Action       Strings
	NotAction    Strings
	Resource     Strings
	NotResource  Strings
	Condition    Conditions
}

// Effect is Allow or Deny.
type Effect string

const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Principal is the Principal element: "*" or a map of AWS, Service, Federated and
// CanonicalUser entries.
type Principal struct {
	All       bool
	AWS       Strings
	Service   Strings
	Federated Strings
	Canonical Strings
}

// Conditions maps an operator (e.g. "StringEquals", "ForAnyValue:ArnLike") to a
// map of condition keys to the values the policy compares against.
type Conditions map[string]map[string]Strings

// Strings is a policy value that may be written as one string or a list.
type Strings []string

// Error is a malformed document; Msg reads like AWS's own message.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func malformed(format string, a ...any) error { return &Error{Msg: fmt.Sprintf(format, a...)} }

// Kind says where a document is used, which decides the elements it must have.
type Kind int

const (
	// Identity policies (role inline policies) have no Principal and need Resource.
	Identity Kind = iota
	// Resource policies (bucket policies) need Principal and Resource.
	Resource
	// Trust policies (assume-role policies) need Principal and have no Resource.
	Trust
)

// Parse reads and validates a document of the given kind. Errors are *Error.
func Parse(data []byte, kind Kind) (*Document, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, malformed("Policies must be valid JSON and the first byte must be '{'")
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, malformed("Policies must be valid JSON: %v", err)
	}
	if dec.More() {
		return nil, malformed("Policies must be valid JSON: trailing data after the document")
	}
	d := &Document{}
	for _, k := range inOrder(raw, "Version", "Id", "Statement") {
		v := raw[k]
		switch k {
		case "Version":
			if err := json.Unmarshal(v, &d.Version); err != nil {
				return nil, malformed("Version must be a string")
			}
			if d.Version != "2012-10-17" && d.Version != "2008-10-17" {
				return nil, malformed("Invalid policy version: %s", d.Version)
			}
		case "Id":
			if err := json.Unmarshal(v, &d.ID); err != nil {
				return nil, malformed("Id must be a string")
			}
		case "Statement":
			stmts, err := parseStatements(v, kind)
			if err != nil {
				return nil, err
			}
			d.Statements = stmts
		default:
			return nil, malformed("Unknown field %s", k)
		}
	}
	if _, ok := raw["Statement"]; !ok {
		return nil, malformed("Missing required field Statement")
	}
	sids := map[string]bool{}
	for _, s := range d.Statements {
		if s.Sid == "" {
			continue
		}
		if sids[s.Sid] {
			return nil, malformed("Statement IDs (SID) in a single policy must be unique")
		}
		sids[s.Sid] = true
	}
	return d, nil
}

func parseStatements(v json.RawMessage, kind Kind) ([]Statement, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		list = []json.RawMessage{v} // a single statement object is allowed
	}
	if len(list) == 0 {
		return nil, malformed("Missing required field Statement")
	}
	out := make([]Statement, 0, len(list))
	for _, item := range list {
		s, err := parseStatement(item, kind)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseStatement(v json.RawMessage, kind Kind) (Statement, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil || raw == nil {
		return Statement{}, malformed("Statement must be an object")
	}
	var s Statement
	var err error
	for _, k := range inOrder(raw, "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition") {
		val := raw[k]
		switch k {
		case "Sid":
			if json.Unmarshal(val, &s.Sid) != nil {
				return s, malformed("Sid must be a string")
			}
		case "Effect":
			var e string
			if json.Unmarshal(val, &e) != nil || (e != "Allow" && e != "Deny") {
				return s, malformed("Invalid effect: %s", strings.Trim(string(val), `"`))
			}
			s.Effect = Effect(e)
		case "Principal":
			s.Principal, err = parsePrincipal(val)
		case "NotPrincipal":
			s.NotPrincipal, err = parsePrincipal(val)
		case "Action":
			s.Action, err = parseStrings(val, k)
		case "NotAction":
			s.NotAction, err = parseStrings(val, k)
		case "Resource":
			s.Resource, err = parseStrings(val, k)
		case "NotResource":
			s.NotResource, err = parseStrings(val, k)
		case "Condition":
			s.Condition, err = parseConditions(val)
		default:
			return s, malformed("Unknown field %s", k)
		}
		if err != nil {
			return s, err
		}
	}
	if s.Effect == "" {
		return s, malformed("Missing required field Effect")
	}
	if s.Action == nil && s.NotAction == nil {
		return s, malformed("Missing required field Action")
	}
	if s.Action != nil && s.NotAction != nil {
		return s, malformed("Statement cannot have both Action and NotAction")
	}
	if s.Resource != nil && s.NotResource != nil {
		return s, malformed("Statement cannot have both Resource and NotResource")
	}
	hasPrincipal := s.Principal != nil || s.NotPrincipal != nil
	switch kind {
	case Identity:
		if hasPrincipal {
			return s, malformed("Policy document should not specify a principal.")
		}
		if s.Resource == nil && s.NotResource == nil {
			return s, malformed("Missing required field Resource")
		}
	case Resource:
		if !hasPrincipal {
			return s, malformed("Missing required field Principal")
		}
		if s.Resource == nil && s.NotResource == nil {
			return s, malformed("Missing required field Resource")
		}
	case Trust:
		if !hasPrincipal {
			return s, malformed("Missing required field Principal")
		}
	}
	for _, a := range append(append(Strings{}, s.Action...), s.NotAction...) {
		if a != "*" && !strings.Contains(a, ":") {
			return s, malformed("Policy has invalid action: %s", a)
		}
	}
	return s, nil
}

func parseStrings(v json.RawMessage, field string) (Strings, error) {
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		return Strings{one}, nil
	}
	var many []string
	if err := json.Unmarshal(v, &many); err != nil {
		return nil, malformed("%s must be a string or a list of strings", field)
	}
	if many == nil {
		many = Strings{}
	}
	return many, nil
}

func parsePrincipal(v json.RawMessage) (*Principal, error) {
	var star string
	if err := json.Unmarshal(v, &star); err == nil {
		if star != "*" {
			return nil, malformed("Invalid principal in policy")
		}
		return &Principal{All: true}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil || len(m) == 0 {
		return nil, malformed("Invalid principal in policy")
	}
	p := &Principal{}
	for _, k := range inOrder(m) {
		val := m[k]
		vals, err := parseStrings(val, "Principal")
		// S3 refuses a principal kind that names nobody ({"AWS":[]}): a
		// statement for no one is a mistake, not an empty grant.
		if err != nil || len(vals) == 0 {
			return nil, malformed("Invalid principal in policy")
		}
		switch k {
		case "AWS":
			p.AWS = vals
		case "Service":
			p.Service = vals
		case "Federated":
			p.Federated = vals
		case "CanonicalUser":
			p.Canonical = vals
		default:
			return nil, malformed("Invalid principal in policy")
		}
	}
	return p, nil
}

func parseConditions(v json.RawMessage) (Conditions, error) {
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, malformed("Condition must be an object of objects")
	}
	c := Conditions{}
	for _, op := range inOrder(raw) {
		keys := raw[op]
		if _, err := parseOperator(op); err != nil {
			return nil, err
		}
		c[op] = map[string]Strings{}
		for _, key := range inOrder(keys) {
			val := keys[key]
			var vals Strings
			var one any
			if err := json.Unmarshal(val, &one); err != nil {
				return nil, malformed("Invalid Condition value for %s", key)
			}
			switch x := one.(type) {
			case []any:
				for _, e := range x {
					s, ok := scalar(e)
					if !ok {
						return nil, malformed("Invalid Condition value for %s", key)
					}
					vals = append(vals, s)
				}
			default:
				s, ok := scalar(x)
				if !ok {
					return nil, malformed("Invalid Condition value for %s", key)
				}
				vals = Strings{s}
			}
			c[op][key] = vals
		}
	}
	return c, nil
}

// scalar turns JSON booleans and numbers into the strings conditions compare.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return fmt.Sprint(x), true
	case float64:
		return strings.TrimSuffix(fmt.Sprintf("%f", x), ".000000"), true
	}
	return "", false
}

// MarshalJSON writes a one-element list as a plain string, as AWS does.
func (s Strings) MarshalJSON() ([]byte, error) {
	if len(s) == 1 {
		return json.Marshal(s[0])
	}
	return json.Marshal([]string(s))
}

// MarshalJSON writes the principal in AWS's form.
func (p *Principal) MarshalJSON() ([]byte, error) {
	if p.All {
		return []byte(`"*"`), nil
	}
	m := map[string]Strings{}
	for k, v := range map[string]Strings{"AWS": p.AWS, "Service": p.Service, "Federated": p.Federated, "CanonicalUser": p.Canonical} {
		if len(v) > 0 {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// MarshalJSON writes the statement's elements in the order people expect.
func (s Statement) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	field := func(name string, v any) {
		data, _ := json.Marshal(v)
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", name, data)
	}
	if s.Sid != "" {
		field("Sid", s.Sid)
	}
	field("Effect", s.Effect)
	if s.Principal != nil {
		field("Principal", s.Principal)
	}
	if s.NotPrincipal != nil {
		field("NotPrincipal", s.NotPrincipal)
	}
	for _, f := range []struct {
		name string
		v    Strings
	}{{"Action", s.Action}, {"NotAction", s.NotAction}, {"Resource", s.Resource}, {"NotResource", s.NotResource}} {
		if f.v != nil {
			field(f.name, f.v)
		}
	}
	if len(s.Condition) > 0 {
		field("Condition", s.Condition)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// MarshalJSON writes the document minified, the form whose size S3 limits.
func (d *Document) MarshalJSON() ([]byte, error) {
	type doc struct {
		Version   string      `json:"Version,omitempty"`
		ID        string      `json:"Id,omitempty"`
		Statement []Statement `json:"Statement"`
	}
	return json.Marshal(doc{d.Version, d.ID, d.Statements})
}

// Statement returns the statement with the given Sid, or nil.
func (d *Document) Statement(sid string) *Statement {
	for i := range d.Statements {
		if d.Statements[i].Sid == sid {
			return &d.Statements[i]
		}
	}
	return nil
}

// Keys lists the condition keys a statement uses, sorted; handy in diagnostics.
func (c Conditions) Keys() []string {
	var keys []string
	for _, m := range c {
		for k := range m {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// inOrder lists a JSON object's keys in a fixed order, the given ones first,
// so that a document with several errors always reports the same one.
func inOrder[V any](m map[string]V, first ...string) []string {
	out := make([]string, 0, len(m))
	for _, k := range first {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}
