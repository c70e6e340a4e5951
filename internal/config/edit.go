package config

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// WithoutSource returns a config file's text with one source's entry taken
// out and everything else (comments, order, spacing) as it was: what
// remove-source leaves, so that a later apply or remove-source does not grant
// the account again. It refuses a list written in flow style ([...]) and the
// last source (a config needs one): those are edited by hand.
func WithoutSource(data []byte, account string) ([]byte, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a trailkeeper.yaml")
	}
	var seq *yaml.Node
	top := root.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value == "sources" {
			seq = top[i+1]
		}
	}
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("no list of sources")
	}
	if seq.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("sources: is written as [...]: take account %s out by hand", account)
	}
	var item *yaml.Node
	for _, it := range seq.Content {
		for j := 0; j+1 < len(it.Content); j += 2 {
			if it.Content[j].Value == "account_id" && it.Content[j+1].Value == account {
				item = it
			}
		}
	}
	switch {
	case item == nil:
		return nil, fmt.Errorf("account %s is not in sources:", account)
	case len(seq.Content) == 1:
		return nil, fmt.Errorf("account %s is the only source, and a config needs one", account)
	}
	lines := strings.SplitAfter(string(data), "\n")
	indent := func(l string) int { return len(l) - len(strings.TrimLeft(l, " \t")) }
	blank := func(l string) bool { return strings.TrimSpace(l) == "" }
	// The item's dash is on its first key's line, or alone on a line above.
	start := item.Line - 1
	for start > 0 && !strings.HasPrefix(strings.TrimSpace(lines[start]), "-") {
		start--
	}
	dash := indent(lines[start])
	end := start + 1
	for end < len(lines) {
		if !blank(lines[end]) && indent(lines[end]) <= dash {
			break
		}
		if blank(lines[end]) { // a blank line belongs to the item only if the item goes on after it
			next := end
			for next < len(lines) && blank(lines[next]) {
				next++
			}
			if next == len(lines) || indent(lines[next]) <= dash {
				break
			}
		}
		end++
	}
	return []byte(strings.Join(append(lines[:start:start], lines[end:]...), "")), nil
}
