package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Caller is who makes a request, as a policy sees it.
type Caller struct {
	// Account is the 12-digit account of the principal; empty for service principals
	// and anonymous callers.
	Account string
	// ARN is the principal's ARN as policies name it: arn:aws:iam::ACCT:root,
	// arn:aws:iam::ACCT:user/NAME or arn:aws:iam::ACCT:role/NAME (for a role session,
	// the role's ARN: aws:PrincipalArn).
	ARN string
	// UniqueID is the role's or user's unique ID (AROA..., AIDA...). AWS stores role
	// principals of resource policies as unique IDs, so a recreated role no longer matches.
	UniqueID string
	// Service is set for service principals such as cloudtrail.amazonaws.com.
	Service string
}

// Request is one authorization question.
type Request struct {
	Caller   Caller
	Action   string // service:Action, e.g. s3:GetObject
	Resource string // ARN
	// Context holds condition keys (matched case-insensitively) and their values.
	Context map[string][]string
}

// Decision is the outcome of evaluating one or more documents.
type Decision int

const (
	// ImplicitDeny: no statement applies.
	ImplicitDeny Decision = iota
	// Allowed: an Allow statement applies and no Deny does.
	Allowed
	// ExplicitDeny: a Deny statement applies; nothing overrides it.
	ExplicitDeny
)

func (d Decision) String() string {
	return [...]string{"implicit deny", "allow", "explicit deny"}[d]
}

// Result says what decided a request and which statement did it.
type Result struct {
	Decision Decision
	// Sid of the deciding statement (the first Deny, else the first Allow); Index is
	// its position, for statements without Sid.
	Sid   string
	Index int
}

// Evaluate applies the document to the request. For Identity documents the
// principal is implicit; for Resource and Trust documents a statement applies
// only when its Principal matches the caller.
func (d *Document) Evaluate(r Request) Result {
	res := Result{Decision: ImplicitDeny, Index: -1}
	vars := d.Version == "2012-10-17" // the 2008 grammar reads ${...} literally
	for i := range d.Statements {
		s := &d.Statements[i]
		if !s.applies(r, vars) {
			continue
		}
		if s.Effect == Deny {
			return Result{Decision: ExplicitDeny, Sid: s.Sid, Index: i}
		}
		if res.Decision == ImplicitDeny {
			res = Result{Decision: Allowed, Sid: s.Sid, Index: i}
		}
	}
	return res
}

func (s *Statement) applies(r Request, vars bool) bool {
	if s.Principal != nil && !s.Principal.matches(r.Caller) {
		return false
	}
	if s.NotPrincipal != nil && s.NotPrincipal.matches(r.Caller) {
		return false
	}
	if s.Action != nil && !anyMatch(s.Action, r.Action, true) {
		return false
	}
	if s.NotAction != nil && anyMatch(s.NotAction, r.Action, true) {
		return false
	}
	resources, notResources, cond := s.Resource, s.NotResource, s.Condition
	if vars {
		var ok bool
		if resources, ok = expandAll(resources, r.Context); !ok {
			return false
		}
		if notResources, ok = expandAll(notResources, r.Context); !ok {
			return false
		}
		if cond, ok = cond.expand(r.Context); !ok {
			return false
		}
	}
	if resources != nil && !anyMatch(resources, r.Resource, false) {
		return false
	}
	if notResources != nil && anyMatch(notResources, r.Resource, false) {
		return false
	}
	return cond.hold(r.Context)
}

// expand replaces the policy variables in v (${aws:PrincipalAccount},
// ${key, 'default'}, and ${*}, ${?}, ${$} for the literal characters) with
// the request's values. A variable without a value and without a default
// makes the statement not apply (IAM: "the entire statement" is invalid).
// A value is literal: escaped so that a * in it is no wildcard.
func expand(v string, ctx map[string][]string) (string, bool) {
	if !strings.Contains(v, "${") {
		return v, true
	}
	var b strings.Builder
	for {
		i := strings.Index(v, "${")
		if i < 0 {
			b.WriteString(v)
			return b.String(), true
		}
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			b.WriteString(v)
			return b.String(), true
		}
		b.WriteString(v[:i])
		name := strings.TrimSpace(v[i+2 : i+j])
		v = v[i+j+1:]
		switch name {
		case "*", "?", "$":
			b.WriteString(literal(name))
			continue
		}
		key, def, hasDefault := strings.Cut(name, ",")
		val := lookup(ctx, strings.TrimSpace(key))
		switch {
		case len(val) == 1:
			b.WriteString(literal(val[0]))
		case hasDefault:
			def = strings.TrimSpace(def)
			if len(def) < 2 || def[0] != '\'' || def[len(def)-1] != '\'' {
				return "", false
			}
			b.WriteString(literal(def[1 : len(def)-1]))
		default:
			return "", false // no value, or several: nothing to put in one place
		}
	}
}

func expandAll(vs []string, ctx map[string][]string) ([]string, bool) {
	if vs == nil {
		return nil, true
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		var ok bool
		if out[i], ok = expand(v, ctx); !ok {
			return nil, false
		}
	}
	return out, true
}

func (c Conditions) expand(ctx map[string][]string) (Conditions, bool) {
	if c == nil {
		return nil, true
	}
	out := make(Conditions, len(c))
	for op, keys := range c {
		out[op] = make(map[string]Strings, len(keys))
		for k, vs := range keys {
			e, ok := expandAll(vs, ctx)
			if !ok {
				return nil, false
			}
			out[op][k] = e
		}
	}
	return out, true
}

// literal escapes the wildcard characters of s for Glob: each is written
// after a NUL byte, which Glob reads as "this character itself".
func literal(s string) string {
	if !strings.ContainsAny(s, "*?") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '*' || s[i] == '?' {
			b.WriteByte(0)
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func anyMatch(patterns []string, v string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			if Glob(strings.ToLower(p), strings.ToLower(v)) {
				return true
			}
		} else if Glob(p, v) {
			return true
		}
	}
	return false
}

// matches reports whether the principal element names the caller.
func (p *Principal) matches(c Caller) bool {
	if p.All {
		return true
	}
	if c.Service != "" {
		for _, s := range p.Service {
			if s == c.Service {
				return true
			}
		}
		return false
	}
	for _, a := range p.AWS {
		switch {
		case a == "*":
			return true
		case c.Account != "" && (a == c.Account || a == "arn:aws:iam::"+c.Account+":root"):
			return true
		case a == c.ARN && c.ARN != "":
			return true
		case a == c.UniqueID && c.UniqueID != "":
			return true
		}
	}
	return false
}

// Glob matches s against a pattern where * is any run of characters and ? one
// (a NUL before either makes it literal: how expanded policy variables stay literal).
func Glob(pattern, s string) bool {
	// Iterative matcher with backtracking to the last star: linear in practice.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p+1 < len(pattern) && pattern[p] == 0 && pattern[p+1] == s[i]: // an escaped literal
			p += 2
			i++
		case p < len(pattern) && pattern[p] != 0 && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// operator is a parsed condition operator name.
type operator struct {
	base     string // e.g. StringEquals
	ifExists bool
	set      string // "", "ForAnyValue" or "ForAllValues"
}

var operators = map[string]bool{
	"StringEquals": true, "StringNotEquals": true, "StringEqualsIgnoreCase": true,
	"StringNotEqualsIgnoreCase": true, "StringLike": true, "StringNotLike": true,
	"ArnEquals": true, "ArnNotEquals": true, "ArnLike": true, "ArnNotLike": true,
	"Bool": true, "IpAddress": true, "NotIpAddress": true, "Null": true,
	"NumericEquals": true, "NumericNotEquals": true, "NumericLessThan": true,
	"NumericLessThanEquals": true, "NumericGreaterThan": true, "NumericGreaterThanEquals": true,
	"DateEquals": true, "DateNotEquals": true, "DateLessThan": true,
	"DateLessThanEquals": true, "DateGreaterThan": true, "DateGreaterThanEquals": true,
}

func parseOperator(name string) (operator, error) {
	op := operator{base: name}
	if set, rest, ok := strings.Cut(name, ":"); ok {
		if set != "ForAnyValue" && set != "ForAllValues" {
			return op, malformed("Invalid Condition type : %s", name)
		}
		op.set, op.base = set, rest
	}
	if b, ok := strings.CutSuffix(op.base, "IfExists"); ok && b != "Null" {
		op.base, op.ifExists = b, true
	}
	if !operators[op.base] {
		return op, malformed("Invalid Condition type : %s", name)
	}
	return op, nil
}

// negated operators are true when no policy value matches.
func (o operator) negated() bool {
	return strings.Contains(o.base, "Not") && o.base != "Null"
}

func (c Conditions) hold(ctx map[string][]string) bool {
	for name, keys := range c {
		op, err := parseOperator(name)
		if err != nil {
			return false // unreachable for parsed documents
		}
		for key, want := range keys {
			if !op.holds(lookup(ctx, key), want) {
				return false
			}
		}
	}
	return true
}

func lookup(ctx map[string][]string, key string) []string {
	if v, ok := ctx[key]; ok {
		return v
	}
	for k, v := range ctx {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// holds evaluates one operator on one key, following IAM's documented rules for
// missing keys, IfExists and the set operators.
func (o operator) holds(have, want []string) bool {
	if o.base == "Null" {
		absent := len(have) == 0
		for _, w := range want {
			if (w == "true") == absent {
				return true
			}
		}
		return false
	}
	if len(have) == 0 {
		switch {
		case o.set == "ForAllValues":
			return true
		case o.set == "ForAnyValue":
			return false
		case o.ifExists:
			return true
		default:
			return o.negated()
		}
	}
	one := func(v string) bool { return o.single(v, want) }
	if o.set == "ForAllValues" {
		for _, v := range have {
			if !one(v) {
				return false
			}
		}
		return true
	}
	for _, v := range have {
		if one(v) {
			return true
		}
	}
	return false
}

// single compares one request value against the policy's values: any policy value
// matching makes a positive operator true and a negated one false.
func (o operator) single(v string, want []string) bool {
	base := strings.Replace(o.base, "Not", "", 1)
	match := false
	for _, w := range want {
		if compare(base, v, w) {
			match = true
			break
		}
	}
	if o.negated() {
		return !match
	}
	return match
}

func compare(base, v, w string) bool {
	if base != "StringLike" && base != "ArnLike" {
		w = strings.ReplaceAll(w, "\x00", "") // escapes matter only to globs
	}
	switch base {
	case "StringEquals", "ArnEquals":
		return v == w
	case "StringEqualsIgnoreCase":
		return strings.EqualFold(v, w)
	case "StringLike", "ArnLike":
		return Glob(w, v)
	case "Bool":
		return strings.EqualFold(v, w)
	case "IpAddress":
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return false
		}
		if pfx, err := netip.ParsePrefix(w); err == nil {
			return pfx.Contains(ip)
		}
		a, err := netip.ParseAddr(w)
		return err == nil && a == ip
	}
	if n, ok := strings.CutPrefix(base, "Numeric"); ok {
		a, err1 := strconv.ParseFloat(v, 64)
		b, err2 := strconv.ParseFloat(w, 64)
		return err1 == nil && err2 == nil && order(n, cmpFloat(a, b))
	}
	if n, ok := strings.CutPrefix(base, "Date"); ok {
		a, ok1 := parseDate(v)
		b, ok2 := parseDate(w)
		return ok1 && ok2 && order(n, a.Compare(b))
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func order(name string, c int) bool {
	switch name {
	case "Equals":
		return c == 0
	case "LessThan":
		return c < 0
	case "LessThanEquals":
		return c <= 0
	case "GreaterThan":
		return c > 0
	case "GreaterThanEquals":
		return c >= 0
	}
	return false
}

func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), true
	}
	return time.Time{}, false
}
