package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// template is a parsed CloudFormation template.
type template struct {
	Parameters map[string]map[string]any
	Resources  map[string]map[string]any
	Outputs    map[string]map[string]any
	Conditions map[string]any
}

// parseTemplate reads a JSON or YAML template, turning YAML short forms (!Sub,
// !Ref, !GetAtt a.b, ...) into their long forms.
func parseTemplate(body string) (*template, error) {
	var doc any
	if strings.HasPrefix(strings.TrimSpace(body), "{") {
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			return nil, fmt.Errorf("Template format error: JSON not well-formed. (%v)", err)
		}
	} else {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(body), &n); err != nil {
			return nil, fmt.Errorf("Template format error: YAML not well-formed. (%v)", err)
		}
		if len(n.Content) == 0 {
			return nil, fmt.Errorf("Template format error: empty template")
		}
		var err error
		b := &expansion{nodes: maxTemplateNodes}
		if doc, err = b.fromNode(n.Content[0], 0); err != nil {
			return nil, err
		}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("Template format error: not a map")
	}
	t := &template{Parameters: map[string]map[string]any{}, Resources: map[string]map[string]any{}, Outputs: map[string]map[string]any{}}
	for k, v := range m {
		switch k {
		case "Parameters", "Resources", "Outputs":
			sec, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("Template format error: %s must be a map", k)
			}
			for name, body := range sec {
				bm, ok := body.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("Template format error: %s %s must be a map", k, name)
				}
				map[string]map[string]map[string]any{"Parameters": t.Parameters, "Resources": t.Resources, "Outputs": t.Outputs}[k][name] = bm
			}
		case "Conditions":
			t.Conditions, _ = v.(map[string]any)
		case "AWSTemplateFormatVersion", "Description", "Metadata", "Mappings", "Transform", "Rules":
		default:
			return nil, fmt.Errorf("Template format error: Invalid template property or properties [%s]", k)
		}
	}
	if len(t.Resources) == 0 {
		return nil, fmt.Errorf("Template format error: At least one Resources member must be defined.")
	}
	for name, r := range t.Resources {
		if _, ok := r["Type"].(string); !ok {
			return nil, fmt.Errorf("Template format error: [/Resources/%s] Every Resources object must contain a Type member.", name)
		}
	}
	return t, nil
}

// A template expands to at most this many nodes, at most this deep: YAML
// aliases can name themselves (a cycle) or nest to expand exponentially in a
// few hundred bytes. A 51,200-byte template (CloudFormation's limit for
// TemplateBody) of plain YAML stays far below both.
const (
	maxTemplateNodes = 200_000
	maxTemplateDepth = 100
)

var errExpansion = fmt.Errorf("Template format error: YAML not well-formed. (aliases expand beyond %d nodes or %d levels)", maxTemplateNodes, maxTemplateDepth)

type expansion struct{ nodes int }

func (b *expansion) fromNode(n *yaml.Node, depth int) (any, error) {
	b.nodes--
	if b.nodes < 0 || depth > maxTemplateDepth {
		return nil, errExpansion
	}
	var v any
	switch n.Kind {
	case yaml.AliasNode:
		return b.fromNode(n.Alias, depth+1)
	case yaml.ScalarNode:
		if strings.HasPrefix(n.Tag, "!!") || n.Tag == "" {
			if err := n.Decode(&v); err != nil {
				return nil, err
			}
		} else {
			v = n.Value
		}
	case yaml.SequenceNode:
		list := []any{}
		for _, c := range n.Content {
			e, err := b.fromNode(c, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, e)
		}
		v = list
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			e, err := b.fromNode(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = e
		}
		v = m
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		name := tag[1:]
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}, nil
		case "GetAtt":
			if s, ok := v.(string); ok {
				res, attr, _ := strings.Cut(s, ".")
				v = []any{res, attr}
			}
		}
		return map[string]any{"Fn::" + name: v}, nil
	}
	return v, nil
}

// resolver evaluates intrinsic functions against parameters, pseudo parameters,
// resources already created and the account's exports.
type resolver struct {
	params   map[string]string
	pseudo   map[string]string
	physical map[string]string            // logical id -> Ref value
	attrs    map[string]map[string]string // logical id -> attribute -> value
	exports  map[string]string
}

const noValue = "\x00AWS::NoValue"

func (r *resolver) ref(name string) (string, error) {
	if v, ok := r.params[name]; ok {
		return v, nil
	}
	if v, ok := r.pseudo[name]; ok {
		return v, nil
	}
	if name == "AWS::NoValue" {
		return noValue, nil
	}
	if v, ok := r.physical[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("Template format error: Unresolved resource dependencies [%s] in the Resources block of the template", name)
}

func (r *resolver) resolve(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			rv, err := r.resolve(e)
			if err != nil {
				return nil, err
			}
			if rv != noValue {
				out = append(out, rv)
			}
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return r.intrinsic(k, arg)
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			rv, err := r.resolve(e)
			if err != nil {
				return nil, err
			}
			if rv != noValue {
				out[k] = rv
			}
		}
		return out, nil
	}
	return v, nil
}

var subVarRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$\{([^}!]+)\}`) })

func (r *resolver) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Template error: Ref needs a string")
		}
		return r.ref(name)
	case "Fn::Sub":
		text, vars := "", map[string]any{}
		switch a := arg.(type) {
		case string:
			text = a
		case []any:
			if len(a) != 2 {
				return nil, fmt.Errorf("Template error: Fn::Sub needs a string or [string, map]")
			}
			text, _ = a[0].(string)
			m, _ := a[1].(map[string]any)
			for k, e := range m {
				rv, err := r.resolve(e)
				if err != nil {
					return nil, err
				}
				vars[k] = rv
			}
		default:
			return nil, fmt.Errorf("Template error: Fn::Sub needs a string or [string, map]")
		}
		var firstErr error
		out := subVarRE().ReplaceAllStringFunc(text, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := vars[name]; ok {
				return fmt.Sprint(v)
			}
			if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
				v, err := r.getAtt(res, attr)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				return v
			}
			v, err := r.ref(name)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			return v
		})
		return strings.ReplaceAll(out, "${!", "${"), firstErr
	case "Fn::GetAtt":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Template error: every Fn::GetAtt object requires two non-empty parameters")
		}
		res, _ := parts[0].(string)
		attr, _ := parts[1].(string)
		return r.getAtt(res, attr)
	case "Fn::Join":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Template error: Fn::Join needs [delimiter, list]")
		}
		sep, _ := parts[0].(string)
		list, err := r.resolve(parts[1])
		if err != nil {
			return nil, err
		}
		items, _ := list.([]any)
		strs := make([]string, len(items))
		for i, e := range items {
			strs[i] = fmt.Sprint(e)
		}
		return strings.Join(strs, sep), nil
	case "Fn::Select":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Template error: Fn::Select needs [index, list]")
		}
		idx, _ := r.resolve(parts[0])
		list, err := r.resolve(parts[1])
		if err != nil {
			return nil, err
		}
		i, _ := strconv.Atoi(fmt.Sprint(idx))
		items, _ := list.([]any)
		if i < 0 || i >= len(items) {
			return nil, fmt.Errorf("Template error: Fn::Select cannot select nonexistent value at index %d", i)
		}
		return items[i], nil
	case "Fn::Split":
		parts, ok := arg.([]any)
		if !ok || len(parts) != 2 {
			return nil, fmt.Errorf("Template error: Fn::Split needs [delimiter, string]")
		}
		sep, _ := parts[0].(string)
		src, err := r.resolve(parts[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(fmt.Sprint(src), sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::ImportValue":
		name, err := r.resolve(arg)
		if err != nil {
			return nil, err
		}
		v, ok := r.exports[fmt.Sprint(name)]
		if !ok {
			return nil, fmt.Errorf("No export named %v found", name)
		}
		return v, nil
	case "Fn::Base64":
		v, err := r.resolve(arg)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(v))), nil
	case "Fn::GetAZs":
		reg := r.pseudo["AWS::Region"]
		return []any{reg + "a", reg + "b", reg + "c"}, nil
	}
	return nil, fmt.Errorf("Template format error: Unrecognized function %s", fn)
}

func (r *resolver) getAtt(res, attr string) (string, error) {
	a, ok := r.attrs[res]
	if !ok {
		return "", fmt.Errorf("Template error: instance of Fn::GetAtt references undefined resource %s", res)
	}
	v, ok := a[attr]
	if !ok {
		return "", fmt.Errorf("Template error: resource %s does not support attribute type %s in Fn::GetAtt", res, attr)
	}
	return v, nil
}

// references lists the logical ids a value refers to, for ordering creation.
func references(v any, out map[string]bool) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			references(e, out)
		}
	case map[string]any:
		for k, e := range x {
			switch k {
			case "Ref":
				if s, ok := e.(string); ok {
					out[s] = true
				}
			case "Fn::GetAtt":
				if l, ok := e.([]any); ok && len(l) > 0 {
					if s, ok := l[0].(string); ok {
						out[s] = true
					}
				}
			case "Fn::Sub":
				text, _ := e.(string)
				if l, ok := e.([]any); ok && len(l) > 0 {
					text, _ = l[0].(string)
				}
				for _, m := range subVarRE().FindAllStringSubmatch(text, -1) {
					name, _, _ := strings.Cut(m[1], ".")
					out[name] = true
				}
			}
			references(e, out)
		}
	}
}

// creationOrder sorts resources so that each comes after those it refers to.
func creationOrder(t *template) ([]string, error) {
	deps := map[string][]string{}
	for name, r := range t.Resources {
		refs := map[string]bool{}
		references(r["Properties"], refs)
		switch d := r["DependsOn"].(type) {
		case string:
			refs[d] = true
		case []any:
			for _, e := range d {
				if s, ok := e.(string); ok {
					refs[s] = true
				}
			}
		}
		for ref := range refs {
			if _, ok := t.Resources[ref]; ok {
				deps[name] = append(deps[name], ref)
			}
		}
	}
	names := make([]string, 0, len(t.Resources))
	for n := range t.Resources {
		names = append(names, n)
	}
	sort.Strings(names)
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("Template format error: Circular dependency between resources: [%s]", n)
		case 2:
			return nil
		}
		state[n] = 1
		sort.Strings(deps[n])
		for _, d := range deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}
