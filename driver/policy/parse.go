package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a policy file. Real files are a few KiB; the bound
// keeps a runaway file from stalling the plugin at every reload.
const MaxFileBytes = 1 << 20

// Version is the only file format version this package reads.
const Version = 1

// ParseError is a policy file that cannot be used. It names the file, and
// when known the line, the rule and the field, so an operator can fix it
// from the log line alone.
type ParseError struct {
	Source string
	Line   int
	Rule   string
	Field  string
	Err    error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Rule != "" {
		b.WriteString(": rule " + strconv.Quote(e.Rule))
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse compiles a policy file (YAML; JSON is YAML too). source names the
// file in errors and in Source(). Unknown keys, a second document, a bad
// version or default, duplicate or missing rule names, rules that grant
// and deny nothing, and invalid patterns are all errors: a typo must never
// load as a policy that quietly means something else.
func Parse(data []byte, source string) (p *Policy, err error) {
	if len(data) > MaxFileBytes {
		return nil, &ParseError{Source: source, Err: fmt.Errorf("file is larger than %d bytes", MaxFileBytes)}
	}
	// The YAML library has panicked on hostile input before; a policy
	// reload must fail, not take the plugin down.
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &ParseError{Source: source, Err: fmt.Errorf("yaml parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ParseError{Source: source, Field: "version", Err: errors.New("missing (the file is empty); want version: 1")}
		}
		return nil, yamlError(source, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ParseError{Source: source, Line: extra.Line, Err: errors.New("more than one YAML document")}
	}
	p, err = compile(&doc)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.Source = source
		}
		return nil, err
	}
	sum := sha256.Sum256(data)
	p.source, p.hash = source, "sha256:"+hex.EncodeToString(sum[:])
	return p, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlError turns the library's errors, which may span lines and name Go
// types, into one ParseError line.
func yamlError(source string, err error) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.Source = source
		return pe
	}
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs = te.Errors
	}
	e := &ParseError{Source: source}
	for i, m := range msgs {
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			if i == 0 {
				e.Line, _ = strconv.Atoi(sub[1])
				m = m[len(sub[0]):]
			}
		}
		msgs[i] = goType.ReplaceAllString(m, "")
	}
	e.Err = errors.New(strings.Join(msgs, "; "))
	return e
}

var goType = regexp.MustCompile(` (?:in|into) (?:type )?\S*policy\.\w+`)

func compile(doc *fileDoc) (*Policy, error) {
	p := &Policy{}
	switch {
	case !doc.Version.set:
		return nil, &ParseError{Field: "version", Err: errors.New("missing; want version: 1")}
	case doc.Version.s != strconv.Itoa(Version):
		return nil, &ParseError{Line: doc.Version.line, Field: "version", Err: fmt.Errorf("%q is not supported; want 1", doc.Version.s)}
	}
	switch doc.Default.s {
	case "", "stack":
	case "deny":
		p.denyDefault = true
	default:
		return nil, &ParseError{Line: doc.Default.line, Field: "default", Err: fmt.Errorf("%q is not stack or deny", doc.Default.s)}
	}
	shared := defaultShared
	var sharedLines []lstr
	if doc.Shared != nil {
		sharedLines, shared = *doc.Shared, nil
		for _, s := range sharedLines {
			shared = append(shared, s.s)
		}
	} else if p.denyDefault {
		// "default: deny" means only the file grants: the built-in
		// shared/** is one of the defaults it turns off.
		shared = nil
	}
	for i, s := range shared {
		g, err := CompileGlob(s)
		if err != nil {
			e := &ParseError{Field: fmt.Sprintf("shared[%d]", i), Err: err}
			if i < len(sharedLines) {
				e.Line = sharedLines[i].line
			}
			return nil, e
		}
		p.shared = append(p.shared, sharedPattern(g))
	}
	seen := map[string]int{}
	for i := range doc.Rules {
		r, err := compileRule(&doc.Rules[i], i, seen)
		if err != nil {
			return nil, err
		}
		p.rules = append(p.rules, r)
	}
	return p, nil
}

var ruleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func compileRule(d *ruleDoc, i int, seen map[string]int) (rule, error) {
	fail := func(line int, field string, err error) (rule, error) {
		if line == 0 {
			line = d.line
		}
		return rule{}, &ParseError{Line: line, Rule: d.Name.s, Field: field, Err: err}
	}
	switch name := d.Name.s; {
	case name == "":
		return fail(d.Name.line, fmt.Sprintf("rules[%d].name", i), errors.New("missing"))
	case !ruleName.MatchString(name):
		return fail(d.Name.line, "name", errors.New("want 1 to 64 letters, digits, '.', '_' or '-'"))
	case name == RuleShared:
		return fail(d.Name.line, "name", errors.New("reserved for the shared list"))
	case seen[name] > 0:
		return fail(d.Name.line, "name", fmt.Errorf("duplicate; first defined on line %d", seen[name]))
	}
	seen[d.Name.s] = max(d.line, 1)
	if len(d.Allow) == 0 && len(d.Deny) == 0 {
		return fail(0, "", errors.New("has neither allow nor deny"))
	}
	r := rule{name: d.Name.s}
	conds := []struct {
		field string
		src   *lstr
		dst   **Glob
	}{
		{"match.stack", d.Match.Stack, &r.stack},
		{"match.service", d.Match.Service, &r.service},
		{"match.image", d.Match.Image, &r.image},
		{"match.node", d.Match.Node, &r.node},
	}
	for _, c := range conds {
		if c.src == nil {
			continue
		}
		g, err := CompileGlob(c.src.s)
		if err != nil {
			return fail(c.src.line, c.field, err)
		}
		*c.dst = g
	}
	for _, l := range d.Match.Labels {
		g, err := CompileGlob(l.val.s)
		if err != nil {
			return fail(l.val.line, "match.service_labels."+l.key, err)
		}
		r.labels = append(r.labels, labelCond{key: l.key, glob: g})
	}
	sort.Slice(r.labels, func(a, b int) bool { return r.labels[a].key < r.labels[b].key })
	for _, list := range []struct {
		field string
		src   lstrList
		dst   *[]pattern
		verb  string
	}{{"allow", d.Allow, &r.allow, "allows"}, {"deny", d.Deny, &r.deny, "denies"}} {
		for j, s := range list.src {
			g, err := CompileGlob(s.s)
			if err != nil {
				return fail(s.line, fmt.Sprintf("%s[%d]", list.field, j), err)
			}
			reason := fmt.Sprintf("rule %q %s %s", r.name, list.verb, g.src)
			*list.dst = append(*list.dst, pattern{glob: g, reason: reason})
		}
	}
	return r, nil
}
