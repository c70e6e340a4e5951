package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// A Glue column's Hive type, and the JSON SerDe that reads a record into it
// (org.apache.hive.hcatalog.data.JsonSerDe): keys match the column and field
// names case-insensitively; a string column takes any JSON value, an object
// or array as its JSON text (as Athena's CloudTrail table keeps
// requestparameters); a missing key is NULL.

type hiveType struct {
	kind   string       // string, bigint, ..., struct, array, map (lower case)
	args   string       // of decimal(p,s), varchar(n)
	fields []hiveColumn // of a struct
	key    *hiveType    // of a map
	elem   *hiveType    // of an array, a map's values
}

type hiveColumn struct {
	name string
	typ  *hiveType
}

// parseHiveType reads a type as Glue keeps it, e.g. struct<a:string,b:array<int>>.
func parseHiveType(s string) (*hiveType, error) {
	p := &hiveParser{s: s}
	t, err := p.typ()
	if err == nil && p.peek() != "" {
		err = fmt.Errorf("unexpected %q after the type", p.s[p.i:])
	}
	if err != nil {
		return nil, fmt.Errorf("type %q: %v", s, err)
	}
	return t, nil
}

type hiveParser struct {
	s string
	i int
}

// peek is the next token: a name or one of <>,:() ("" at the end).
func (p *hiveParser) peek() string {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
	if p.i == len(p.s) {
		return ""
	}
	if strings.IndexByte("<>,:()", p.s[p.i]) >= 0 {
		return p.s[p.i : p.i+1]
	}
	j := p.i
	for j < len(p.s) && strings.IndexByte("<>,:() ", p.s[j]) < 0 {
		j++
	}
	return p.s[p.i:j]
}

func (p *hiveParser) next() string {
	t := p.peek()
	p.i += len(t)
	return t
}

func (p *hiveParser) expect(tok string) error {
	if got := p.next(); got != tok {
		return fmt.Errorf("expected %q, found %q", tok, got)
	}
	return nil
}

func (p *hiveParser) typ() (*hiveType, error) {
	t := &hiveType{kind: strings.ToLower(p.next())}
	switch t.kind {
	case "string", "int", "integer", "bigint", "smallint", "tinyint", "boolean", "double", "float", "date", "timestamp", "binary":
	case "decimal", "varchar", "char":
		if p.peek() == "(" {
			start := p.i
			for p.next() != ")" {
				if p.peek() == "" {
					return nil, fmt.Errorf("an unclosed (")
				}
			}
			t.args = p.s[start:p.i]
		}
	case "array":
		if err := p.expect("<"); err != nil {
			return nil, err
		}
		elem, err := p.typ()
		if err != nil {
			return nil, err
		}
		t.elem = elem
		return t, p.expect(">")
	case "map":
		if err := p.expect("<"); err != nil {
			return nil, err
		}
		key, err := p.typ()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		val, err := p.typ()
		if err != nil {
			return nil, err
		}
		t.key, t.elem = key, val
		return t, p.expect(">")
	case "struct":
		if err := p.expect("<"); err != nil {
			return nil, err
		}
		for {
			name := p.next()
			if name == "" || strings.IndexByte("<>,:()", name[0]) >= 0 {
				return nil, fmt.Errorf("expected a field name, found %q", name)
			}
			if err := p.expect(":"); err != nil {
				return nil, err
			}
			ft, err := p.typ()
			if err != nil {
				return nil, err
			}
			t.fields = append(t.fields, hiveColumn{name: strings.ToLower(name), typ: ft})
			if sep := p.next(); sep == ">" {
				return t, nil
			} else if sep != "," {
				return nil, fmt.Errorf("expected , or >, found %q", sep)
			}
		}
	case "":
		return nil, fmt.Errorf("a type is missing")
	default:
		return nil, fmt.Errorf("%q is not a Hive type Athena reads", t.kind)
	}
	return t, nil
}

// duck is the type's DuckDB name.
func (t *hiveType) duck() string {
	switch t.kind {
	case "string", "varchar", "char":
		return "VARCHAR"
	case "int", "integer":
		return "INTEGER"
	case "binary":
		return "BLOB"
	case "decimal":
		return "DECIMAL" + t.args
	case "array":
		return t.elem.duck() + "[]"
	case "map":
		return "MAP(" + t.key.duck() + ", " + t.elem.duck() + ")"
	case "struct":
		parts := make([]string, len(t.fields))
		for i, f := range t.fields {
			parts[i] = quoteIdent(f.name) + " " + f.typ.duck()
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")"
	}
	return strings.ToUpper(t.kind)
}

// serdeRow reads one JSON record into the columns, by lower-case name.
func serdeRow(raw json.RawMessage, columns []hiveColumn) (map[string]any, error) {
	fields, err := objectFields(raw)
	if err != nil {
		return nil, err
	}
	row := make(map[string]any, len(columns))
	for _, c := range columns {
		v, err := serdeValue(fields[c.name], c.typ)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", c.name, err)
		}
		row[c.name] = v
	}
	return row, nil
}

// objectFields are an object's members by lower-case key (the first of
// keys that differ only in case).
func objectFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		lk := strings.ToLower(k)
		if _, dup := out[lk]; !dup || k == lk {
			out[lk] = v
		}
	}
	return out, nil
}

func serdeValue(raw json.RawMessage, t *hiveType) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch t.kind {
	case "string", "varchar", "char", "date", "timestamp", "binary":
		if raw[0] == '"' {
			var s string
			err := json.Unmarshal(raw, &s)
			return s, err
		}
		return string(raw), nil
	case "int", "integer", "bigint", "smallint", "tinyint":
		n, err := strconv.ParseInt(strings.Trim(string(raw), `"`), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not an integer", raw)
		}
		return n, nil
	case "double", "float", "decimal":
		f, err := strconv.ParseFloat(strings.Trim(string(raw), `"`), 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a number", raw)
		}
		return f, nil
	case "boolean":
		b, err := strconv.ParseBool(strings.Trim(string(raw), `"`))
		if err != nil {
			return nil, fmt.Errorf("%s is not a boolean", raw)
		}
		return b, nil
	case "struct":
		fields, err := objectFields(raw)
		if err != nil {
			return nil, err
		}
		out := make(map[string]any, len(t.fields))
		for _, f := range t.fields {
			if out[f.name], err = serdeValue(fields[f.name], f.typ); err != nil {
				return nil, fmt.Errorf("%s: %v", f.name, err)
			}
		}
		return out, nil
	case "array":
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("not a JSON array: %v", err)
		}
		out := make([]any, len(items))
		for i, item := range items {
			v, err := serdeValue(item, t.elem)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case "map":
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("not a JSON object: %v", err)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			v, err := serdeValue(item, t.elem)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("type %s is not read by the sandbox", t.kind)
}
