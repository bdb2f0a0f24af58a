package vault

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Unit tests of how a request becomes a KV path (path.go) and a KV document
// becomes the delivered value (value.go).

func TestCheckPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"app/db": true, "a": true, "team-a/app_1/db.json": true, "a.b/c": true,
		"": false, "/a": false, "a/": false, "a//b": false, "a/../b": false, "..": false, "a/..b": false,
		"./a": false, "a/./b": false, "a b": false, "a\tb": false, "a\nb": false, "a?x=1": false, "a#b": false,
		"a%2f": false, `a\b`: false,
	} {
		if err := checkPath(p); (err == nil) != ok {
			t.Errorf("checkPath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestPathTemplate_Varies(t *testing.T) {
	for src, want := range map[string]bool{
		"{{.Name}}":                                false,
		"{{.Stack}}/{{.Name}}":                     false,
		"{{.Secret}}":                              false,
		`{{index .Labels "team"}}/{{.Name}}`:       false,
		"{{.Labels.team}}/{{.Name}}":               false,
		"{{with .Labels}}{{.team}}{{end}}/x":       false,
		"{{.Service}}/{{.Name}}":                   true,
		"{{$.Service}}":                            true,
		"{{if .Service}}a{{else}}b{{end}}":         true,
		`{{printf "%v" .}}`:                        true,
		"{{with .Labels}}{{.}}{{end}}":             true,
		"{{$}}":                                    true,
		"{{range $k, $v := .Labels}}{{$k}}{{end}}": false,
		`{{.Name | printf "%s-%s" .Service}}`:      true,
	} {
		p, err := parsePathTemplate(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if p.varies != want {
			t.Errorf("%s: varies = %v, want %v", src, p.varies, want)
		}
	}
}

func TestPathTemplate_Execute(t *testing.T) {
	p, err := parsePathTemplate("{{.Stack}}/{{.Labels.team}}/{{.Service}}/{{.Name}}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.execute(backend.Ref{Name: "db", Stack: "web", Service: "api", Labels: map[string]string{"team": "a"}})
	if err != nil || got != "web/a/api/db" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := p.execute(backend.Ref{Name: "db"}); !errors.Is(err, backend.ErrInvalidRef) {
		t.Fatalf("missing label: %v, want ErrInvalidRef", err)
	}
}

func TestRender(t *testing.T) {
	doc := document{where: "m/data/p", data: map[string]any{
		"z": "last", "a": json.Number("1.50"), "html": "<a&b>", "nested": map[string]any{"y": 1, "x": []any{true, nil}},
		"bytes": "line1\nline2",
	}}
	got, err := render(doc, "")
	want := `{"a":1.50,"bytes":"line1\nline2","html":"<a&b>","nested":{"x":[true,null],"y":1},"z":"last"}`
	if err != nil || string(got) != want {
		t.Fatalf("whole:\n got %s\nwant %s (%v)", got, want, err)
	}
	for field, want := range map[string]string{"z": "last", "a": "1.50", "html": "<a&b>", "bytes": "line1\nline2", "nested": `{"x":[true,null],"y":1}`} {
		if got, err := render(doc, field); err != nil || string(got) != want {
			t.Errorf("field %s: %q %v, want %q", field, got, err, want)
		}
	}
	_, err = render(doc, "missing")
	if !errors.Is(err, backend.ErrNotFound) || strings.Contains(err.Error(), "last") || !strings.Contains(err.Error(), `"html"`) {
		t.Fatalf("missing field: %v", err)
	}
}

func TestFieldNames_Bounded(t *testing.T) {
	data := map[string]any{}
	for i := range 100 {
		data[strings.Repeat("k", 5)+string(rune('a'+i%26))+strings.Repeat("x", i/26)] = i
	}
	got := fieldNames(data)
	if len(got) > 200 || !strings.Contains(got, "more") {
		t.Fatalf("field list not cut short: %d bytes: %s", len(got), got)
	}
	if fieldNames(nil) != "none" {
		t.Fatal("empty document")
	}
}
