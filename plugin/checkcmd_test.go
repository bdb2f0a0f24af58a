package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver"
)

// marker is every stored value in these tests: it must never be printed.
const marker = "MARKER-value-never-printed"

// storedName asks the driver which stored name a stack secret reads, so
// the tests follow the naming rule wherever driver.ParseSpec takes it.
func storedName(t *testing.T, stack, swarmName string) string {
	t.Helper()
	spec, err := driver.ParseSpec(swarmName, map[string]string{driver.StackNamespaceLabel: stack})
	if err != nil {
		t.Fatal(err)
	}
	return spec.Name
}

// checkStore is a store holding demo's db and api values.
func checkStore(t *testing.T) map[string]string {
	t.Helper()
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	for _, swarm := range []string{"demo_db", "demo_api"} {
		mustRun(t, env, marker, "put", storedName(t, "demo", swarm))
	}
	return env
}

func checkFile(t *testing.T, env map[string]string, file string, extra ...string) (int, string) {
	t.Helper()
	args := append([]string{"check", "-c", filepath.Join("testdata", "compose", file), "--stack", "demo"}, extra...)
	code, out, errOut := runCLI(t, env, "", args...)
	if strings.Contains(out+errOut, marker) {
		t.Fatalf("check %s printed a value:\n%s%s", file, out, errOut)
	}
	return code, out + errOut
}

func TestCheckAllPresent(t *testing.T) {
	env := checkStore(t)
	code, out := checkFile(t, env, "ok.yml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"SECRET", "SWARM NAME", "demo_db", storedName(t, "demo", "demo_db"), "demo_web,demo_worker",
		fmt.Sprintf("ok %d B", len(marker)), "demo_api", "without the demo_ prefix", "ok: 2 secret(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "plain") {
		t.Errorf("a file secret was checked:\n%s", out)
	}
}

func TestCheckFailures(t *testing.T) {
	env := checkStore(t)
	for _, c := range []struct {
		file string
		code int
		want []string
	}{
		{"missing.yml", 1, []string{"error: secret nope for service demo_app", "not_found", "swarmkeep put " + storedName(t, "demo", "demo_nope")}},
		{"badlabel.yml", 1, []string{"error: secret db:", "swarmkeep.version"}},
		{"filedriver.yml", 1, []string{"error: secret db: driver together with file"}},
		{"driveropts.yml", 0, []string{"warning: secret db: driver_opts", "ok: 1 secret(s) resolved, 1 warning(s)"}},
		{"mixed.yml", 1, []string{"error: compose version 3.7", "ghost", "warning: secret unused (used by no service)", "warning: secret ext: external"}},
	} {
		code, out := checkFile(t, env, c.file)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d:\n%s", c.file, code, c.code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", c.file, w, out)
			}
		}
	}
}

func TestCheckJSON(t *testing.T) {
	env := checkStore(t)
	code, out, errOut := runCLI(t, env, "", "check", "--json", "--stack=demo", "-c", filepath.Join("testdata", "compose", "missing.yml"))
	if code != 1 || strings.Contains(out+errOut, marker) {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.OK || len(rep.Secrets) != 2 || len(rep.Errors) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	db, nope := rep.Secrets[0], rep.Secrets[1]
	if db.Reads[0].Class != "ok" || db.Reads[0].Size != len(marker) || db.Reads[0].Service != "demo_app" {
		t.Errorf("db: %+v", db)
	}
	if nope.Reads[0].Class != string(driver.ClassNotFound) || nope.Reads[0].Error == "" {
		t.Errorf("nope: %+v", nope)
	}
}

func TestCheckPolicy(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, marker, "put", "prod/db")
	code, out := checkFile(t, env, "policy.yml")
	if code != 1 || !strings.Contains(out, "deny") || !strings.Contains(out, "policy_denied") || !strings.Contains(out, "no rule grants it") {
		t.Fatalf("default policy, another namespace: exit %d:\n%s", code, out)
	}
	grant := filepath.Join("testdata", "compose", "grant-policy.yml")
	if code, out := checkFile(t, env, "policy.yml", "--policy", grant); code != 0 || !strings.Contains(out, "allow (demo-reads-prod-db)") {
		t.Fatalf("granted: exit %d:\n%s", code, out)
	}
	if code, out := checkFile(t, env, "policy.yml", "--policy", filepath.Join(t.TempDir(), "none.yml")); code != 1 || !strings.Contains(out, "--policy") {
		t.Fatalf("missing policy file: exit %d:\n%s", code, out)
	}
	if code, out := checkFile(t, env, "policy.yml", "--policy", filepath.Join("testdata", "compose", "ok.yml")); code != 1 || !strings.Contains(out, "ok.yml") {
		t.Fatalf("a compose file as policy: exit %d:\n%s", code, out)
	}
}

func TestCheckTemplateValue(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, marker+"{{ .Service.Name }}", "put", storedName(t, "demo", "demo_tpl"))
	compose := "services:\n  app:\n    secrets: [tpl]\nsecrets:\n  tpl:\n    driver: swarmkeep\n    template_driver: golang\n"
	code, out, errOut := runCLI(t, env, compose, "check", "--stack", "demo", "-c", "-")
	if code != 0 || !strings.Contains(out, "its value contains {{") || strings.Contains(out+errOut, marker) {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
}

func TestCheckUsage(t *testing.T) {
	env := checkStore(t)
	if code, _, errOut := runCLI(t, env, "", "check", "-c", "x.yml"); code != 2 || !strings.Contains(errOut, "--stack NAME is required") {
		t.Fatalf("no --stack: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "", "check", "--stack", "demo"); code != 2 || !strings.Contains(errOut, "-c COMPOSE_FILE") {
		t.Fatalf("no -c: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "", "check", "--stack", "demo", "-c", "testdata/compose/ok.yml", "--backends", "bad"); code != 1 || !strings.Contains(errOut, "--backends") {
		t.Fatalf("bad --backends: %d %q", code, errOut)
	}
	compose := "services:\n  app:\n    secrets: [db]\nsecrets:\n  db:\n    driver: swarmkeep\n"
	if code, out, errOut := runCLI(t, env, compose, "check", "--stack", "demo", "-c", "-"); code != 0 || !strings.Contains(out, fmt.Sprintf("ok %d B", len(marker))) {
		t.Fatalf("compose on stdin: %d %q %q", code, out, errOut)
	}
	// Nothing checked is a failure, not "ok: 0 secret(s) resolved".
	if code, out, _ := runCLI(t, env, "", "check", "--stack", "demo", "-c", "testdata/compose/ok.yml", "--plugin", "other"); code != 1 ||
		!strings.Contains(out, "nothing was checked (drivers in the file: swarmkeep, swarmkeep:latest)") || !strings.Contains(out, "--plugin NAME") {
		t.Fatalf("--plugin other: %d %q", code, out)
	}
}
