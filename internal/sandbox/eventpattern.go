package sandbox

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// EventBridge's event patterns, as the User Guide's "Event patterns" and
// "Content filtering" pages describe them: every field of the pattern must
// match (fields nest like the event's), a field's array of values matches
// when any does, an event field that is an array matches when any element
// does, and "$or" takes any of several patterns. Values are exact (strings,
// numbers, null, booleans) or one of the filters prefix, suffix,
// anything-but, exists, numeric, equals-ignore-case and wildcard.

// eventPattern is a parsed pattern.
type eventPattern map[string]any

// parseEventPattern checks a pattern as PutRule does.
func parseEventPattern(text string) (eventPattern, error) {
	var p map[string]any
	if err := json.Unmarshal([]byte(text), &p); err != nil || p == nil {
		return nil, invalidPattern("Filter is not an object")
	}
	if len(p) == 0 {
		return nil, invalidPattern("Empty objects are not allowed")
	}
	if err := checkPatternObject(p); err != nil {
		return nil, err
	}
	return p, nil
}

func invalidPattern(reason string) error {
	return errorf(400, "InvalidEventPatternException", "Event pattern is not valid. Reason: %s", reason)
}

func checkPatternObject(p map[string]any) error {
	for k, v := range p {
		if k == "$or" {
			alts, ok := v.([]any)
			if !ok || len(alts) < 2 {
				return invalidPattern("$or must be an array of at least two patterns")
			}
			for _, a := range alts {
				m, ok := a.(map[string]any)
				if !ok || len(m) == 0 {
					return invalidPattern("each $or alternative must be a non-empty object")
				}
				if err := checkPatternObject(m); err != nil {
					return err
				}
			}
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				return invalidPattern("Empty objects are not allowed")
			}
			if err := checkPatternObject(v); err != nil {
				return err
			}
		case []any:
			if len(v) == 0 {
				return invalidPattern(fmt.Sprintf("Empty arrays are not allowed (field %q)", k))
			}
			for _, m := range v {
				if f, ok := m.(map[string]any); ok {
					if err := checkFilter(f); err != nil {
						return err
					}
				}
			}
		default:
			return invalidPattern(fmt.Sprintf("Match value must be String, number, true, false, or null (field %q must hold an array)", k))
		}
	}
	return nil
}

func checkFilter(f map[string]any) error {
	if len(f) != 1 {
		return invalidPattern("a content filter has exactly one key")
	}
	for op, arg := range f {
		switch op {
		case "prefix", "suffix", "equals-ignore-case", "wildcard":
			if s, ok := arg.(string); !ok {
				if m, ok := arg.(map[string]any); !ok || op != "prefix" && op != "suffix" || m["equals-ignore-case"] == nil {
					return invalidPattern(op + " match pattern must be a string")
				}
			} else if op == "wildcard" && strings.Contains(s, "**") {
				return invalidPattern("Consecutive wildcard characters at pos " + fmt.Sprint(strings.Index(s, "**")+1))
			}
		case "exists":
			if _, ok := arg.(bool); !ok {
				return invalidPattern("exists match pattern must be either true or false.")
			}
		case "anything-but":
			switch a := arg.(type) {
			case string, float64:
			case []any:
				if len(a) == 0 {
					return invalidPattern("Empty arrays are not allowed")
				}
			case map[string]any:
				if err := checkFilter(a); err != nil {
					return err
				}
			default:
				return invalidPattern("Value of anything-but must be an array or single string/number value.")
			}
		case "numeric":
			a, ok := arg.([]any)
			if !ok || len(a) == 0 || len(a)%2 != 0 {
				return invalidPattern("Value of numeric must be an array of operator and number pairs.")
			}
			for i := 0; i < len(a); i += 2 {
				op, _ := a[i].(string)
				if _, ok := a[i+1].(float64); !ok || !numericOps[op] {
					return invalidPattern("Unrecognized numeric range operator: " + fmt.Sprint(a[i]))
				}
			}
		default:
			return invalidPattern("Unrecognized match type " + op)
		}
	}
	return nil
}

var numericOps = map[string]bool{"=": true, "<": true, "<=": true, ">": true, ">=": true}

// matches says whether the event (decoded JSON) matches the pattern.
func (p eventPattern) matches(event map[string]any) bool { return matchObject(p, event) }

func matchObject(p map[string]any, event map[string]any) bool {
	for k, want := range p {
		if k == "$or" {
			hit := false
			for _, alt := range want.([]any) {
				if matchObject(alt.(map[string]any), event) {
					hit = true
					break
				}
			}
			if !hit {
				return false
			}
			continue
		}
		have, present := event[k]
		switch w := want.(type) {
		case map[string]any:
			sub, ok := have.(map[string]any)
			if !ok {
				// An absent or non-object field matches only a nested pattern of exists:false.
				if !matchObject(w, map[string]any{}) {
					return false
				}
			} else if !matchObject(w, sub) {
				return false
			}
		case []any:
			if !matchField(w, have, present) {
				return false
			}
		}
	}
	return true
}

// matchField matches one leaf: any pattern value against any event value.
func matchField(want []any, have any, present bool) bool {
	values := []any{have}
	if a, ok := have.([]any); ok {
		values = a
	}
	for _, w := range want {
		if f, ok := w.(map[string]any); ok {
			if e, ok := f["exists"].(bool); ok {
				if e == (present && have != nil) {
					return true
				}
				continue
			}
			if !present {
				continue
			}
			for _, v := range values {
				if matchFilter(f, v) {
					return true
				}
			}
			continue
		}
		if !present {
			continue
		}
		for _, v := range values {
			if equalValue(w, v) {
				return true
			}
		}
	}
	return false
}

func equalValue(w, v any) bool {
	if wf, ok := w.(float64); ok {
		vf, ok := v.(float64)
		return ok && wf == vf
	}
	return w == v
}

func matchFilter(f map[string]any, v any) bool {
	for op, arg := range f {
		s, isString := v.(string)
		switch op {
		case "prefix", "suffix":
			want, fold := arg.(string), false
			if m, ok := arg.(map[string]any); ok {
				want, fold = fmt.Sprint(m["equals-ignore-case"]), true
			}
			if !isString {
				return false
			}
			if fold {
				s, want = strings.ToLower(s), strings.ToLower(want)
			}
			if op == "prefix" {
				return strings.HasPrefix(s, want)
			}
			return strings.HasSuffix(s, want)
		case "equals-ignore-case":
			return isString && strings.EqualFold(s, arg.(string))
		case "wildcard":
			return isString && wildcard(arg.(string), s)
		case "anything-but":
			switch a := arg.(type) {
			case []any:
				for _, x := range a {
					if equalValue(x, v) {
						return false
					}
				}
				return true
			case map[string]any:
				return !matchFilter(a, v)
			default:
				return !equalValue(a, v)
			}
		case "numeric":
			n, ok := v.(float64)
			if !ok {
				return false
			}
			a := arg.([]any)
			for i := 0; i < len(a); i += 2 {
				if !compareNumber(a[i].(string), n, a[i+1].(float64)) {
					return false
				}
			}
			return true
		}
	}
	return false
}

func compareNumber(op string, n, x float64) bool {
	switch op {
	case "=":
		return math.Abs(n-x) < 1e-9
	case "<":
		return n < x
	case "<=":
		return n <= x
	case ">":
		return n > x
	case ">=":
		return n >= x
	}
	return false
}

// wildcard matches * as any run of characters (EventBridge has no ?).
func wildcard(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
