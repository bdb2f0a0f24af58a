package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	p := mustParse(t, examplePolicy)
	if p.Source() != "test.yaml" || !strings.HasPrefix(p.Hash(), "sha256:") || p.DenyByDefault() {
		t.Fatalf("%s %s", p.Source(), p.Hash())
	}
	j := mustParse(t, `{"version": 1, "default": "deny", "rules": [{"name": "r", "match": {"service_labels": {"a": "b*"}}, "deny": ["x/**"]}]}`)
	if !j.DenyByDefault() || len(j.RuleNames()) != 1 {
		t.Fatal("json policy")
	}
	// Null match means "any"; an explicit null shared means the default list.
	n := mustParse(t, "version: 1\nshared:\nrules:\n- name: r\n  match:\n  allow: [a]\n")
	if !n.Decide(Identity{}, "shared/x").Allow || !n.Decide(Identity{Stack: "s"}, "a").Allow {
		t.Fatal("null match or shared")
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(body string) string { return "version: 1\nrules:\n  - name: r\n" + body }
	tests := []struct {
		name, src string
		line      int
		want      []string // substrings of the message
	}{
		{"empty", "", 0, []string{"version", "missing"}},
		{"no version", "default: stack\n", 0, []string{"version", "missing"}},
		{"version 2", "version: 2\n", 1, []string{"version", `"2" is not supported`}},
		{"version string", "version: one\n", 1, []string{"not supported"}},
		{"bad default", "version: 1\ndefault: allow\n", 2, []string{"default", "not stack or deny"}},
		{"unknown top key", "version: 1\nrule: []\n", 2, []string{`field rule not found`}},
		{"duplicate top key", "version: 1\nversion: 1\n", 2, []string{"already defined"}},
		{"syntax", "version: 1\nrules: [\n", 2, []string{"did not find"}},
		{"two documents", "version: 1\n---\nversion: 1\n", 2, []string{"more than one YAML document"}},
		{"bad shared", "version: 1\nshared: [ok/**, \"x[\"]\n", 2, []string{"shared[1]", "reserved"}},
		{"shared not list", "version: 1\nshared: x\n", 2, []string{"want a list, got a string"}},
		{"rule not mapping", "version: 1\nrules: [x]\n", 2, []string{"want a mapping"}},
		{"missing name", "version: 1\nrules:\n  - allow: [a]\n", 3, []string{"rules[0].name", "missing"}},
		{"bad name", "version: 1\nrules:\n  - name: \"a b\"\n    allow: [a]\n", 3, []string{"name", "letters"}},
		{"reserved name", "version: 1\nrules:\n  - name: shared\n    allow: [a]\n", 3, []string{"reserved"}},
		{"duplicate name", rule("    allow: [a]\n  - name: r\n    deny: [b]\n"), 5, []string{`rule "r"`, "duplicate", "line 3"}},
		{"neither allow nor deny", rule("    match: {stack: s}\n"), 3, []string{`rule "r"`, "neither allow nor deny"}},
		{"empty allow and deny", rule("    allow: []\n    deny: []\n"), 3, []string{"neither allow nor deny"}},
		{"unknown rule key", rule("    allows: [a]\n"), 4, []string{`unknown field "allows"`}},
		{"duplicate rule key", rule("    allow: [a]\n    allow: [b]\n"), 5, []string{"already defined on line 4"}},
		{"merge key", "version: 1\nx: &x {allow: [a]}\n", 2, []string{"field x not found"}},
		{"rule merge key", rule("    <<: {allow: [a]}\n"), 4, []string{"merge"}},
		{"unknown match key", rule("    match: {stacks: s}\n    allow: [a]\n"), 4, []string{`unknown field "stacks" in match`}},
		{"null match condition", rule("    match:\n      stack:\n    allow: [a]\n"), 5, []string{"match.stack", "empty"}},
		{"empty match condition", rule("    match: {service: \"\"}\n    allow: [a]\n"), 4, []string{`rule "r"`, "match.service", "empty"}},
		{"bad image glob", rule("    match: {image: \"a***\"}\n    allow: [a]\n"), 4, []string{"match.image", "more than two"}},
		{"bad label glob", rule("    match: {service_labels: {tier: \"{a}\"}}\n    allow: [a]\n"), 4, []string{"match.service_labels.tier"}},
		{"null label", rule("    match: {service_labels: {tier: }}\n    allow: [a]\n"), 4, []string{"match.service_labels.tier", "empty"}},
		{"labels not mapping", rule("    match: {service_labels: [a]}\n    allow: [a]\n"), 4, []string{"want a mapping"}},
		{"condition not string", rule("    match: {node: [a]}\n    allow: [a]\n"), 4, []string{"want a string, got a list"}},
		{"bad allow", rule("    allow: [ok, \"\"]\n"), 4, []string{`rule "r"`, "allow[1]", "empty"}},
		{"null allow item", rule("    allow: [ok, ~]\n"), 4, []string{"list item [1]", "empty pattern"}},
		{"null deny item", rule("    allow: [a]\n    deny:\n      -\n"), 6, []string{"list item [0]", "empty pattern"}},
		{"bad deny", rule("    deny: [\"a\\tb\"]\n"), 4, []string{"deny[0]", "control character"}},
		{"allow not list", rule("    allow: {a: b}\n"), 4, []string{"want a list, got a mapping"}},
		{"too large", "version: 1\n#" + strings.Repeat("x", MaxFileBytes), 0, []string{"larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "p.yaml")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ParseError", err, err)
			}
			msg := err.Error()
			if pe.Source != "p.yaml" || !strings.HasPrefix(msg, "p.yaml") || pe.Line != tt.line || strings.Contains(msg, "\n") {
				t.Errorf("error %q: source %q line %d, want line %d", msg, pe.Source, pe.Line, tt.line)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "policy.") {
				t.Errorf("error %q names a Go type", msg)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Load(path); err != nil || p.Source() != path {
		t.Fatalf("%v %v", p, err)
	}
}

// FuzzParse: the parser must not panic, and any policy it accepts must
// answer Decide without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(examplePolicy))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if p != nil {
				t.Fatal("policy and error")
			}
			return
		}
		for _, s := range []string{"a", "a/b", "shared/x", "../x"} {
			p.Decide(Identity{Stack: "a", Service: "s", ServiceLabels: map[string]string{"k": "v"}}, s)
		}
	})
}
