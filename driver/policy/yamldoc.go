package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The file as written. Rules and match conditions decode by hand, not by
// struct tags: the library's Node.Decode, which custom decoders must use,
// forgets KnownFields and accepts duplicate keys, and a match condition
// written as "stack:" (null) must be an error, not "any stack". Decoding by
// hand also keeps every line number for the error messages.
type fileDoc struct {
	Version lstr      `yaml:"version"`
	Default lstr      `yaml:"default"`
	Shared  *lstrList `yaml:"shared"`
	Rules   []ruleDoc `yaml:"rules"`
}

type ruleDoc struct {
	line  int
	Name  lstr
	Match matchDoc
	Allow lstrList
	Deny  lstrList
}

type matchDoc struct {
	Stack, Service, Image, Node *lstr
	Labels                      []labelDoc
}

type labelDoc struct {
	key string
	val lstr
}

// lstr is a scalar with its line. set tells "" from absent or null: the
// library never calls a decoder for a null node.
type lstr struct {
	s    string
	line int
	set  bool
}

func (l *lstr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return &ParseError{Line: n.Line, Err: fmt.Errorf("want a string, got a %s", kindName(n.Kind))}
	}
	l.s, l.line, l.set = n.Value, n.Line, true
	return nil
}

// lstrList is a list of scalars. The library drops null items from a
// list silently; "deny: [~]" must not load as "deny nothing".
type lstrList []lstr

func (l *lstrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.SequenceNode {
		return &ParseError{Line: n.Line, Err: fmt.Errorf("want a list, got a %s", kindName(n.Kind))}
	}
	for i, item := range n.Content {
		var s lstr
		if err := decodeSet(item, &s, fmt.Sprintf("list item [%d]", i)); err != nil {
			return err
		}
		*l = append(*l, s)
	}
	return nil
}

func (r *ruleDoc) UnmarshalYAML(n *yaml.Node) error {
	r.line = n.Line
	return eachKey(n, "a rule", func(key string, k, v *yaml.Node) error {
		switch key {
		case "name":
			return v.Decode(&r.Name)
		case "match":
			return v.Decode(&r.Match)
		case "allow":
			return v.Decode(&r.Allow)
		case "deny":
			return v.Decode(&r.Deny)
		}
		return &ParseError{Line: k.Line, Err: fmt.Errorf("unknown field %q in a rule (want name, match, allow, deny)", key)}
	})
}

func (m *matchDoc) UnmarshalYAML(n *yaml.Node) error {
	return eachKey(n, "match", func(key string, k, v *yaml.Node) error {
		if key == "service_labels" {
			return eachKey(v, "match.service_labels", func(label string, lk, lv *yaml.Node) error {
				if label == "" {
					return &ParseError{Line: lk.Line, Field: "match.service_labels", Err: errors.New("empty label key")}
				}
				d := labelDoc{key: label}
				if err := decodeSet(lv, &d.val, "match.service_labels."+label); err != nil {
					return err
				}
				m.Labels = append(m.Labels, d)
				return nil
			})
		}
		dst := map[string]**lstr{"stack": &m.Stack, "service": &m.Service, "image": &m.Image, "node": &m.Node}[key]
		if dst == nil {
			return &ParseError{Line: k.Line, Err: fmt.Errorf("unknown field %q in match (want stack, service, service_labels, image, node)", key)}
		}
		*dst = new(lstr)
		return decodeSet(v, *dst, "match."+key)
	})
}

// decodeSet decodes a scalar that must be present: null is an error.
func decodeSet(v *yaml.Node, dst *lstr, field string) error {
	if err := v.Decode(dst); err != nil {
		return err
	}
	if !dst.set {
		return &ParseError{Line: v.Line, Field: field, Err: errors.New("empty pattern")}
	}
	return nil
}

// eachKey walks a mapping node, refusing duplicate and merge keys, which
// the hand decoding would otherwise let through.
func eachKey(n *yaml.Node, what string, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return &ParseError{Line: n.Line, Field: what, Err: fmt.Errorf("want a mapping, got a %s", kindName(n.Kind))}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			return &ParseError{Line: k.Line, Field: what, Err: errors.New("keys must be plain strings (no merge keys)")}
		}
		if first, dup := seen[k.Value]; dup {
			return &ParseError{Line: k.Line, Field: what, Err: fmt.Errorf("key %q already defined on line %d", k.Value, first)}
		}
		seen[k.Value] = k.Line
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "string"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}

// sortedKeys is for deterministic messages over maps.
func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FormatLabels renders labels as k=v, sorted, for explain output.
func FormatLabels(m map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
