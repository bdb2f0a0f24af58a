package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"
)

func writeCompose(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckMergesComposeFiles: with several -c files check read only the
// last, and passed a deploy whose first file needs a missing value.
func TestCheckMergesComposeFiles(t *testing.T) {
	env := checkStore(t) // demo/db and demo/api are stored
	base := writeCompose(t, "base.yml", `services:
  app:
    image: app:1
    secrets: [db, nope]
secrets:
  db:
    driver: swarmkeep
    labels: {swarmkeep.name: demo/none}
  nope:
    driver: swarmkeep
`)
	// Replaces db as a whole (its label goes) and adds api to app's secrets.
	over := writeCompose(t, "over.yml", `services:
  app:
    image: app:2
    secrets: [api]
secrets:
  db:
    driver: swarmkeep
  api:
    driver: swarmkeep
`)
	code, out, errOut := runCLI(t, env, "", "check", "--stack", "demo", "-c", base, "-c", over)
	if code != 1 || strings.Contains(out+errOut, marker) {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"2 compose files merged", "error: secret nope for service demo_app", "not_found",
		"ok " + itoa(len(marker)) + " B"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "demo/none") || strings.Count(out, "error:") != 1 {
		t.Errorf("db was not replaced by the later file, or extra errors:\n%s", out)
	}
	// The later file overrides: nope is fixed there, so the deploy works.
	fix := writeCompose(t, "fix.yml", "secrets:\n  nope:\n    driver: swarmkeep\n    labels: {swarmkeep.name: demo/db}\n")
	if code, out, errOut := runCLI(t, env, "", "check", "--stack", "demo", "-c", base, "-c", over, "-c", fix); code != 0 || !strings.Contains(out, "ok: 3 secret(s) resolved") {
		t.Fatalf("fixed by a third file: exit %d:\n%s%s", code, out, errOut)
	}
}

// TestCheckLabelOnlyOverride: an override file that only adds labels to a
// driver secret replaces it with a secret without driver, which the docker
// CLI deploys as file: . and fails; check passed it without a word.
func TestCheckLabelOnlyOverride(t *testing.T) {
	env := checkStore(t)
	base := writeCompose(t, "base.yml", "services:\n  app:\n    image: app:1\n    secrets: [db, api]\n"+
		"secrets:\n  db:\n    driver: swarmkeep\n  api:\n    driver: swarmkeep\n")
	over := writeCompose(t, "over.yml", "secrets:\n  db:\n    labels:\n      swarmkeep.version: \"1\"\n")
	code, out, errOut := runCLI(t, env, "", "check", "--stack", "demo", "--plugin", "swarmkeep", "-c", base, "-c", over)
	if code != 1 || !strings.Contains(out, "error: secret db: neither driver, file nor environment") || !strings.Contains(out, "repeat driver:") {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	// Repeating the driver in the override is right.
	good := writeCompose(t, "good.yml", "secrets:\n  db:\n    driver: swarmkeep\n    labels:\n      swarmkeep.name: demo/db\n")
	if code, out, errOut := runCLI(t, env, "", "check", "--stack", "demo", "--plugin", "swarmkeep", "-c", base, "-c", good); code != 0 {
		t.Fatalf("driver repeated: exit %d:\n%s%s", code, out, errOut)
	}
}

// TestCheckInterpolates: ${VAR} was taken literally (a warning, exit 0);
// it is substituted from the environment as the docker CLI does.
func TestCheckInterpolates(t *testing.T) {
	env := checkStore(t)
	compose := `services:
  app:
    secrets: [db]
secrets:
  db:
    driver: ${DRIVER:-swarmkeep}
    labels:
      swarmkeep.name: ${STORED:?set STORED to the stored name}
      note: $${NOT_A_VAR}
`
	file := writeCompose(t, "stack.yml", compose)
	run := func(vars map[string]string) (int, string) {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range vars {
			e[k] = v
		}
		code, out, errOut := runCLI(t, e, "", "check", "--stack", "demo", "-c", file)
		return code, out + errOut
	}
	if code, out := run(nil); code != 1 || !strings.Contains(out, "required variable STORED is missing a value: set STORED to the stored name") {
		t.Fatalf("STORED unset: exit %d:\n%s", code, out)
	}
	if code, out := run(map[string]string{"STORED": "demo/db"}); code != 0 || !strings.Contains(out, "ok: 1 secret(s) resolved") || !strings.Contains(out, "demo/db") {
		t.Fatalf("STORED=demo/db: exit %d:\n%s", code, out)
	}
	if code, out := run(map[string]string{"STORED": "demo/none"}); code != 1 || !strings.Contains(out, "not_found") {
		t.Fatalf("STORED=demo/none: exit %d:\n%s", code, out)
	}
	if code, out := run(map[string]string{"STORED": "demo/db", "DRIVER": "other"}); code != 1 || !strings.Contains(out, "nothing was checked") {
		t.Fatalf("DRIVER=other: exit %d:\n%s", code, out)
	}
	bad := writeCompose(t, "bad.yml", "secrets:\n  db:\n    driver: swarmkeep\n    labels: {swarmkeep.name: \"${STORED\"}\n")
	if code, out, _ := runCLI(t, env, "", "check", "--stack", "demo", "-c", bad); code != 1 || !strings.Contains(out, "without its closing }") {
		t.Fatalf("unterminated ${: exit %d:\n%s", code, out)
	}
}

func TestInterpolate(t *testing.T) {
	vars := map[string]string{"SET": "v", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, c := range []struct{ in, want, unset string }{
		{"plain", "plain", ""},
		{"$SET/${SET}", "v/v", ""},
		{"$$SET $${SET} $$", "$SET ${SET} $", ""},
		{"${UNSET}x$UNSET", "x", "UNSET,UNSET"},
		{"${UNSET:-d} ${UNSET-d} ${EMPTY:-d} ${EMPTY-d}", "d d d ", ""},
		{"${SET:-d} ${SET-d}", "v v", ""},
		{"${UNSET:-${SET}-x}", "v-x", ""},
		{"${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt} ${UNSET+alt}", "alt  alt ", ""},
		{"${EMPTY?e}", "", ""},
		{"a$SET_b", "a", "SET_b"},
	} {
		got, unset, err := interpolate(c.in, lookup)
		if err != nil || got != c.want || strings.Join(unset, ",") != c.unset {
			t.Errorf("%q: got %q %v %v, want %q unset %q", c.in, got, unset, err, c.want, c.unset)
		}
	}
	for _, bad := range []string{"${UNSET:?must be set}", "${EMPTY:?}", "${UNSET?}", "${", "${SET", "$", "a $ b", "${1X}", "${SET:x}", "${}", "${SET:}"} {
		if got, _, err := interpolate(bad, lookup); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

// TestCheckPluginName: a plugin installed as myorg/swarmkeep:1.2 is named
// so in compose files; check looked for "swarmkeep", found nothing and
// said "ok: 0 secret(s) resolved".
func TestCheckPluginName(t *testing.T) {
	env := checkStore(t)
	compose := writeCompose(t, "stack.yml", "services:\n  app:\n    secrets: [db]\nsecrets:\n  db:\n    driver: myorg/swarmkeep:1.2\n")
	ours := func(name string) *types.Plugin {
		p := plugin(name, true)
		p.Config.Interface.Socket = pluginSocket
		return p
	}
	check := func(extra ...string) (int, string) {
		code, out, errOut := runCLI(t, env, "", append([]string{"check", "--stack", "demo", "-c", compose}, extra...)...)
		return code, out + errOut
	}

	useDocker(t, &fakeDocker{plugins: map[string]*types.Plugin{"myorg/swarmkeep:1.2": ours("myorg/swarmkeep:1.2"), "vault:latest": plugin("vault:latest", true)}})
	if code, out := check(); code != 0 || !strings.Contains(out, "ok: 1 secret(s) resolved") || !strings.Contains(out, "installed under here") {
		t.Fatalf("installed as myorg/swarmkeep:1.2: exit %d:\n%s", code, out)
	}

	useDocker(t, &fakeDocker{plugins: map[string]*types.Plugin{"vault:latest": plugin("vault:latest", true)}})
	if code, out := check(); code != 1 || !strings.Contains(out, "nothing was checked (drivers in the file: myorg/swarmkeep:1.2)") ||
		!strings.Contains(out, "no swarmkeep plugin is installed on this host (secret providers: vault:latest)") {
		t.Fatalf("not installed: exit %d:\n%s", code, out)
	}
	if code, out := check("--plugin", "myorg/swarmkeep:1.2"); code != 0 || !strings.Contains(out, "ok: 1 secret(s) resolved") {
		t.Fatalf("--plugin: exit %d:\n%s", code, out)
	}
	// NAME matches NAME:latest, as the engine resolves it.
	latest := writeCompose(t, "latest.yml", "services:\n  app:\n    secrets: [db]\nsecrets:\n  db:\n    driver: myorg/swarmkeep:latest\n")
	if code, out, errOut := runCLI(t, env, "", "check", "--stack", "demo", "-c", latest, "--plugin", "myorg/swarmkeep"); code != 0 || !strings.Contains(out, "ok: 1 secret(s) resolved") {
		t.Fatalf("--plugin without tag: exit %d:\n%s%s", code, out, errOut)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A plain ${X} is typed after substitution, as the CLI types it; a quoted
// one stays a string; keys are not interpolated.
func TestParseComposeInterpolationTypes(t *testing.T) {
	vars := map[string]string{"EXT": "true", "V": "3.8"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	cf, unset, err := parseCompose([]byte("version: \"${V}\"\nsecrets:\n  a:\n    external: ${EXT}\n  ${KEY}:\n    driver: swarmkeep\n    labels: {x: '${MISSING}'}\n"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if cf.Version != "3.8" || !cf.Secrets["a"].External.External || cf.Secrets["${KEY}"].Driver != "swarmkeep" ||
		cf.Secrets["${KEY}"].Labels["x"] != "" || strings.Join(unset, ",") != "MISSING" {
		t.Fatalf("%+v, unset %v", cf, unset)
	}
}
