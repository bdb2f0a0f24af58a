package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// update rewrites the generated parts of config.json and the README instead
// of comparing them: go test ./driver/server -run TestSettingsDocs -update
// (make settings).
var update = flag.Bool("update", false, "rewrite config.json's Env and the README's settings table from Settings")

// repoRoot holds config.json and README.md.
const repoRoot = "../.."

// The README's settings table is the text between these lines, markers
// included in the file; HTML comments render as nothing.
const (
	readmeBegin = "<!-- settings:begin: generated from driver/server/settings.go by make settings -->"
	readmeEnd   = "<!-- settings:end -->"
)

// TestSettingsDocs keeps config.json's Env and the README's settings table
// in step with Settings: either file drifting (a setting added, renamed,
// its default or help changed) fails here with the command that fixes it.
func TestSettingsDocs(t *testing.T) {
	cfgPath := filepath.Join(repoRoot, "config.json")
	readmePath := filepath.Join(repoRoot, "README.md")
	cfg := readFile(t, cfgPath)
	wantCfg, err := renderConfigEnv(cfg)
	if err != nil {
		t.Fatalf("config.json: %v", err)
	}
	readme := readFile(t, readmePath)
	wantReadme, err := renderReadmeSettings(readme, wantCfg)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	for _, f := range []struct {
		path      string
		got, want []byte
	}{{cfgPath, cfg, wantCfg}, {readmePath, readme, wantReadme}} {
		if bytes.Equal(f.got, f.want) {
			continue
		}
		if *update {
			if err := os.WriteFile(f.path, f.want, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s", f.path)
			continue
		}
		t.Errorf("%s is out of step with server.Settings (fix: make settings):\n%s", filepath.Base(f.path), firstDiff(f.got, f.want))
	}
}

// TestSettingsTable checks what the generated docs rely on: unique names,
// a help line for every settable setting, and a table that lists exactly
// what Load reads, so a documented setting is never a dead one.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings {
		if seen[s.Name] {
			t.Errorf("%s listed twice", s.Name)
		}
		seen[s.Name] = true
		if s.Settable && strings.TrimSpace(s.Help) == "" {
			t.Errorf("%s is settable but has no Help: config.json and the README would describe it as nothing", s.Name)
		}
		if strings.ContainsAny(s.Help, "\n|") {
			t.Errorf("%s: Help must be one line without '|' (a README table cell)", s.Name)
		}
	}
	read := map[string]bool{}
	if _, err := Load(func(k string) string { read[k] = true; return "" }); err != nil {
		t.Fatalf("Load with every default: %v", err)
	}
	for _, s := range Settings {
		if !read[s.Name] {
			t.Errorf("%s is in Settings but Load never reads it", s.Name)
		}
	}
	for k := range read {
		if !seen[k] {
			t.Errorf("Load reads %s, which is not in Settings", k)
		}
	}
}

// TestReplaceJSONMember: only the member's value changes; the rest of the
// document keeps its bytes, key order and indentation.
func TestReplaceJSONMember(t *testing.T) {
	doc := []byte("{\n  \"A\": 1,\n  \"Env\": [ {\"x\": 1} ],\n  \"Z\": {\"k\": \"<&>\"}\n}\n")
	got, err := replaceJSONMember(doc, "Env", []map[string]string{{"Name": "a<b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"A\": 1,\n  \"Env\": [\n    {\n      \"Name\": \"a<b\"\n    }\n  ],\n  \"Z\": {\"k\": \"<&>\"}\n}\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := replaceJSONMember(doc, "Nope", 1); err == nil {
		t.Fatal("a missing member must be an error, not a silent no-op")
	}
}

// envEntry is one config.json Env entry, fields in config.json's order.
type envEntry struct {
	Name        string
	Description string
	Settable    []string
	Value       string
}

// renderConfigEnv returns config.json with its Env array rebuilt from the
// settable settings (Description is Help, plus what an empty Value means);
// every other member keeps its bytes.
func renderConfigEnv(cfg []byte) ([]byte, error) {
	var env []envEntry
	for _, s := range Settings {
		if !s.Settable {
			continue
		}
		desc := s.Help
		if s.Default == "" && s.DefaultDoc != "" {
			// docker plugin inspect shows Value "": say what that means.
			desc += " (empty: " + s.DefaultDoc + ")"
		}
		env = append(env, envEntry{Name: s.Name, Description: desc, Settable: []string{"value"}, Value: s.Default})
	}
	return replaceJSONMember(cfg, "Env", env)
}

// replaceJSONMember replaces the value of a top-level member of a JSON
// object written with two-space indentation, leaving the other bytes alone.
func replaceJSONMember(doc []byte, key string, value any) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		afterKey := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if tok != key {
			continue
		}
		start := afterKey + bytes.IndexByte(doc[afterKey:], ':') + 1
		for start < len(doc) && strings.ContainsRune(" \t\r\n", rune(doc[start])) {
			start++
		}
		end := int(dec.InputOffset())
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		// config.json is read by people too: keep < > & as they are.
		enc.SetEscapeHTML(false)
		enc.SetIndent("  ", "  ")
		if err := enc.Encode(value); err != nil {
			return nil, err
		}
		out := append([]byte{}, doc[:start]...)
		out = append(out, bytes.TrimRight(b.Bytes(), "\n")...)
		return append(out, doc[end:]...), nil
	}
	return nil, fmt.Errorf("no top-level %q member", key)
}

// renderReadmeSettings returns the README with the table between the
// markers rebuilt: the mounts from config.json, then the settable settings.
func renderReadmeSettings(readme, cfg []byte) ([]byte, error) {
	begin := bytes.Index(readme, []byte(readmeBegin+"\n"))
	end := bytes.Index(readme, []byte(readmeEnd))
	if begin < 0 || end < begin {
		return nil, fmt.Errorf("no settings table between the lines %q and %q", readmeBegin, readmeEnd)
	}
	var doc struct {
		Mounts []struct {
			Name, Description, Source string
			Settable                  []string
		}
	}
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(readmeBegin + "\n")
	b.WriteString("| setting | default | meaning |\n|---|---|---|\n")
	for _, m := range doc.Mounts {
		for _, field := range m.Settable {
			fmt.Fprintf(&b, "| `%s.%s` (mount) | `%s` | %s |\n", m.Name, field, m.Source, mdText(m.Description))
		}
	}
	for _, s := range Settings {
		if !s.Settable {
			continue
		}
		dflt := "empty"
		switch {
		case s.Default != "":
			dflt = "`" + s.Default + "`"
		case s.DefaultDoc != "":
			dflt = mdText(s.DefaultDoc)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.Name, dflt, mdText(s.Help))
	}
	out := append([]byte{}, readme[:begin]...)
	out = append(out, b.Bytes()...)
	return append(out, readme[end:]...), nil
}

var (
	mdSpecial = strings.NewReplacer(`\`, `\\`, "|", `\|`, "<", `\<`, ">", `\>`, "*", `\*`, "`", "\\`")
	upperWord = regexp.MustCompile(`\b[A-Z][A-Z0-9_]+\b`)
)

// mdText makes a help line safe in a Markdown table cell and sets the
// names of settings in code, as the rest of the README does.
func mdText(s string) string {
	return upperWord.ReplaceAllStringFunc(mdSpecial.Replace(s), func(w string) string {
		for _, st := range Settings {
			if st.Name == w {
				return "`" + w + "`"
			}
		}
		return w
	})
}

// firstDiff shows the first differing line, enough to see what drifted.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d\n  file: %s\n  want: %s", i+1, gl, wl)
		}
	}
	return "(line endings differ)"
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
