package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Variable interpolation as the docker CLI applies it to a compose file
// before docker stack deploy reads it: $VAR, ${VAR}, ${VAR:-default},
// ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}
// and $$ for a literal $. check used to read ${APP}/db literally and pass:
// what it resolves must be what the deploy will create.

// interpolateNode substitutes variables in every scalar value of the
// document (not in mapping keys, as the CLI does) and returns the names of
// the variables that were not set, which become blank strings.
func interpolateNode(root *yaml.Node, lookup func(string) (string, bool)) (unset []string, err error) {
	seen := map[string]bool{}
	var walk func(n *yaml.Node, isKey bool) error
	walk = func(n *yaml.Node, isKey bool) error {
		switch n.Kind {
		case yaml.AliasNode:
			return nil // its anchor is walked where it is defined
		case yaml.ScalarNode:
			if isKey || !strings.Contains(n.Value, "$") {
				return nil
			}
			v, missing, err := interpolate(n.Value, lookup)
			if err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			for _, m := range missing {
				seen[m] = true
			}
			n.Value = v
			if n.Style == 0 {
				// A plain ${X} was a string; its value is typed as the
				// CLI types it (external: ${EXT} may become true).
				n.Tag = ""
			}
			return nil
		}
		for i, c := range n.Content {
			if err := walk(c, n.Kind == yaml.MappingNode && i%2 == 0); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, false); err != nil {
		return nil, err
	}
	for k := range seen {
		unset = append(unset, k)
	}
	sort.Strings(unset)
	return unset, nil
}

var errBadTemplate = errors.New("invalid interpolation: a $ must start $NAME, ${NAME...} or $$ (a literal $)")

// interpolate substitutes the variables of one string.
func interpolate(s string, lookup func(string) (string, bool)) (out string, unset []string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i += 2
		case i+1 < len(s) && s[i+1] == '{':
			end := closingBrace(s, i+2)
			if end < 0 {
				return "", nil, fmt.Errorf("invalid interpolation: ${ without its closing }")
			}
			v, miss, err := expandBraced(s[i+2:end], lookup)
			if err != nil {
				return "", nil, err
			}
			b.WriteString(v)
			unset = append(unset, miss...)
			i = end + 1
		default:
			n := nameLen(s[i+1:])
			if n == 0 {
				return "", nil, errBadTemplate
			}
			name := s[i+1 : i+1+n]
			v, ok := lookup(name)
			if !ok {
				unset = append(unset, name)
			}
			b.WriteString(v)
			i += 1 + n
		}
	}
	return b.String(), unset, nil
}

// closingBrace finds the } that closes a ${ whose body starts at from,
// past nested ${...} in a default.
func closingBrace(s string, from int) int {
	depth := 1
	for j := from; j < len(s); j++ {
		switch {
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case s[j] == '}':
			if depth--; depth == 0 {
				return j
			}
		}
	}
	return -1
}

// expandBraced expands the body of ${...}.
func expandBraced(body string, lookup func(string) (string, bool)) (string, []string, error) {
	n := nameLen(body)
	if n == 0 {
		return "", nil, errBadTemplate
	}
	name, rest := body[:n], body[n:]
	v, set := lookup(name)
	if rest == "" {
		if !set {
			return "", []string{name}, nil
		}
		return v, nil, nil
	}
	colon := strings.HasPrefix(rest, ":")
	op := strings.TrimPrefix(rest, ":")
	if op == "" {
		return "", nil, errBadTemplate
	}
	arg := op[1:]
	// With a colon, an empty value counts as unset.
	present := set && (!colon || v != "")
	switch op[0] {
	case '-':
		if present {
			return v, nil, nil
		}
		out, miss, err := interpolate(arg, lookup)
		return out, miss, err
	case '+':
		if !present {
			return "", nil, nil
		}
		out, miss, err := interpolate(arg, lookup)
		return out, miss, err
	case '?':
		if present {
			return v, nil, nil
		}
		msg, _, err := interpolate(arg, lookup)
		if err != nil {
			return "", nil, err
		}
		if msg == "" {
			return "", nil, fmt.Errorf("required variable %s is missing a value", name)
		}
		return "", nil, fmt.Errorf("required variable %s is missing a value: %s", name, msg)
	}
	return "", nil, errBadTemplate
}

// nameLen is the length of the variable name s starts with, 0 if none.
func nameLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return i
	}
	return len(s)
}
