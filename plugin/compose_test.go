package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver"
)

func loadCompose(t *testing.T, name string) *composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "compose", name))
	if err != nil {
		t.Fatal(err)
	}
	cf, _, err := parseCompose(data, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cf
}

func TestParseComposeForms(t *testing.T) {
	cf := loadCompose(t, "ok.yml")
	web := cf.Services["web"]
	if want := []serviceSecret{{Source: "db"}, {Source: "api_key", Target: "/run/secrets/api"}}; !reflect.DeepEqual(web.Secrets, want) {
		t.Fatalf("web secrets (short and long form): %+v", web.Secrets)
	}
	if web.Image != "nginx:1.27" || web.Deploy.Labels["tier"] != "front" {
		t.Fatalf("web: %+v", web)
	}
	if got := cf.Services["worker"].Deploy.Labels; !reflect.DeepEqual(got, labelMap{"tier": "back"}) {
		t.Fatalf("service labels as a list: %v", got)
	}
	if got := cf.Secrets["db"].Labels; !reflect.DeepEqual(got, labelMap{"team": "core"}) {
		t.Fatalf("secret labels as a list: %v", got)
	}
	api := cf.Secrets["api_key"]
	if api.Name != "demo_api" || api.Driver != "swarmkeep:latest" || api.Labels["team"] != "edge" {
		t.Fatalf("api_key: %+v", api)
	}
	if cf.Secrets["plain"].File != "./plain.txt" {
		t.Fatalf("plain: %+v", cf.Secrets["plain"])
	}

	cf = loadCompose(t, "mixed.yml")
	if e := cf.Secrets["ext"].External; !e.External || e.Name != "" {
		t.Fatalf("external: true: %+v", e)
	}
	if e := cf.Secrets["legacy"].External; !e.External || e.Name != "shared_legacy" {
		t.Fatalf("external: {name}: %+v", e)
	}
	if got := cf.Secrets["unused"].Labels; !reflect.DeepEqual(got, labelMap{"enabled": "true", "port": "5432", "empty": ""}) {
		t.Fatalf("scalar label values: %v", got)
	}
	if cf.Secrets["tpl"].TemplateDriver != "golang" {
		t.Fatalf("template_driver: %+v", cf.Secrets["tpl"])
	}
	if got := loadCompose(t, "policy.yml").Secrets["db"].Labels; !reflect.DeepEqual(got, labelMap{"team": "core", "swarmkeep.name": "prod/db"}) {
		t.Fatalf("labels with a <<: merge: %v", got)
	}
	if opts := loadCompose(t, "driveropts.yml").Secrets["db"].DriverOpts; opts["name"] != "prod/db" || opts["version"] != "2" {
		t.Fatalf("driver_opts: %v", opts)
	}
}

func TestParseComposeRejects(t *testing.T) {
	for _, bad := range []string{
		"",
		"services: [a, b]",
		"secrets:\n  s:\n    labels: 7\n",
		"services:\n  a:\n    secrets:\n      - target: x\n",
		"secrets:\n  s:\n    external: maybe\n",
	} {
		if _, _, err := parseCompose([]byte(bad), nil); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestPlanNamesAndLabels(t *testing.T) {
	p := planCheck(loadCompose(t, "ok.yml"), "demo", []string{"swarmkeep"})
	got := map[string]plannedSecret{}
	for _, s := range p.Secrets {
		got[s.Key] = s
	}
	db := got["db"]
	if !db.Ours || db.SwarmName != "demo_db" || db.Labels[driver.StackNamespaceLabel] != "demo" || db.Labels["team"] != "core" {
		t.Fatalf("db: %+v", db)
	}
	if !reflect.DeepEqual(db.Services, []string{"web", "worker"}) {
		t.Fatalf("db services: %v", db.Services)
	}
	if api := got["api_key"]; !api.Ours || api.SwarmName != "demo_api" {
		t.Fatalf("name: is used unprefixed, swarmkeep:latest is the plugin: %+v", api)
	}
	if got["plain"].Ours {
		t.Fatal("a file secret counted as the plugin's")
	}
	if len(p.Errors)+len(p.Warnings) != 0 || len(p.Notes) != 1 || !strings.Contains(p.Notes[0], "without the demo_ prefix") {
		t.Fatalf("ok.yml: errors %q warnings %q notes %q", p.Errors, p.Warnings, p.Notes)
	}
}

func TestPlanProblems(t *testing.T) {
	p := planCheck(loadCompose(t, "mixed.yml"), "demo", []string{"swarmkeep"})
	all := strings.Join(p.Errors, "\n")
	for _, want := range []string{"3.7 predates", "uses secret ghost"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q: %q", want, p.Errors)
		}
	}
	warns := strings.Join(p.Warnings, "\n")
	for _, want := range []string{"secret ext: external", "swarm secret shared_legacy", "template_driver golang", "secret unused: used by no service"} {
		if !strings.Contains(warns, want) {
			t.Errorf("warnings lack %q: %q", want, p.Warnings)
		}
	}
	if p := planCheck(loadCompose(t, "filedriver.yml"), "demo", []string{"swarmkeep"}); len(p.Errors) != 1 || !strings.Contains(p.Errors[0], "driver together with file") {
		t.Errorf("file+driver: %q", p.Errors)
	}
	if p := planCheck(loadCompose(t, "driveropts.yml"), "demo", []string{"swarmkeep"}); len(p.Errors) != 0 || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "driver_opts (name, version)") {
		t.Errorf("driver_opts: %q %q", p.Errors, p.Warnings)
	}
	long := &composeFile{Secrets: map[string]composeSecret{strings.Repeat("k", 60): {Driver: "swarmkeep"}}}
	if p := planCheck(long, "demo", []string{"swarmkeep"}); len(p.Errors) != 1 || !strings.Contains(p.Errors[0], "is invalid") {
		t.Errorf("65-byte swarm name: %q", p.Errors)
	}
}

func TestCheckVersionAndPluginNames(t *testing.T) {
	for v, ok := range map[string]bool{"": true, "3.8": true, "3.13": true, "4": true, "3": false, "3.7": false, "2.4": false, "x": false} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("version %q: %v", v, err)
		}
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"swarmkeep", "swarmkeep", true}, {"swarmkeep", "swarmkeep:latest", true}, {"swarmkeep:latest", "swarmkeep", true},
		{"swarmkeep:1.2", "swarmkeep", false}, {"reg:5000/swarmkeep", "reg:5000/swarmkeep:latest", true}, {"", "swarmkeep", false},
	} {
		if samePlugin(c.a, c.b) != c.same {
			t.Errorf("samePlugin(%q, %q) != %v", c.a, c.b, c.same)
		}
	}
}
