package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// anyFS lets render write into a temp dir, which is usually on a disk.
func anyFS(t *testing.T) {
	t.Helper()
	prev := onTmpfs
	onTmpfs = func(string) error { return nil }
	t.Cleanup(func() { onTmpfs = prev })
}

func renderFile(t *testing.T, env map[string]string, file, dir string, extra ...string) (int, string) {
	t.Helper()
	args := append([]string{"render", "-c", filepath.Join("testdata", "compose", file), "--stack", "demo", "--plugin", "swarmkeep", "--dir", dir}, extra...)
	code, out, errOut := runCLI(t, env, "", args...)
	if strings.Contains(out+errOut, marker) {
		t.Fatalf("render printed a value:\n%s%s", out, errOut)
	}
	return code, out + errOut
}

func TestRenderWritesValuesAndOverrideThenCleans(t *testing.T) {
	anyFS(t)
	env := checkStore(t)
	dir := filepath.Join(t.TempDir(), "run", "demo")
	code, out := renderFile(t, env, "ok.yml", dir)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "docker-compose -f testdata/compose/ok.yml -f "+filepath.Join(dir, "override.yml")+" up") {
		t.Errorf("output lacks the compose command:\n%s", out)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v %v, want mode 700", fi, err)
	}
	var ov struct {
		Version string
		Secrets map[string]map[string]string
	}
	b, err := os.ReadFile(filepath.Join(dir, "override.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &ov); err != nil {
		t.Fatal(err)
	}
	if ov.Version != "3.8" || len(ov.Secrets) != 2 {
		t.Fatalf("override: %+v", ov)
	}
	for _, key := range []string{"db", "api_key"} {
		p := ov.Secrets[key]["file"]
		if p != filepath.Join(dir, key) {
			t.Errorf("secret %s: file %q", key, p)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o400 {
			t.Fatalf("%s: %v %v, want mode 400", p, fi, err)
		}
		if v, _ := os.ReadFile(p); string(v) != marker {
			t.Errorf("%s holds %d bytes, not the stored value", p, len(v))
		}
	}
	if strings.Contains(string(b), marker) {
		t.Fatal("the override holds a value")
	}
	// A file: secret of the compose file is none of render's business.
	if _, ok := ov.Secrets["plain"]; ok {
		t.Error("override names the file: secret plain")
	}

	code, out = renderFile(t, env, "ok.yml", dir, "--clean")
	if code != 0 || !strings.Contains(out, "removed 3 file(s)") {
		t.Fatalf("clean: exit %d: %s", code, out)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still there after --clean: %v", dir, err)
	}
	// Cleaning twice is fine.
	if code, out = renderFile(t, env, "ok.yml", dir, "--clean"); code != 0 || !strings.Contains(out, "nothing to clean") {
		t.Fatalf("second clean: exit %d: %s", code, out)
	}
}

// One secret that does not resolve: nothing is written at all.
func TestRenderAllOrNothing(t *testing.T) {
	anyFS(t)
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, marker, "put", storedName(t, "demo", "demo_db"))
	dir := filepath.Join(t.TempDir(), "demo")
	code, out := renderFile(t, env, "ok.yml", dir)
	if code != 1 || !strings.Contains(out, "nothing written") || !strings.Contains(out, "secret api_key") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s was created: %v", dir, err)
	}

	// The access policy applies as in the plugin: stack demo may not read prod/db.
	mustRun(t, env, marker, "put", "prod/db")
	code, out = renderFile(t, env, "policy.yml", dir)
	if code != 1 || !strings.Contains(out, "nothing written") {
		t.Fatalf("policy: exit %d: %s", code, out)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s was created: %v", dir, err)
	}
}

// A secret named like render's own override file would be mounted with the
// override's content: refused, nothing written.
func TestRenderRefusesItsOwnFileNames(t *testing.T) {
	anyFS(t)
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, marker, "put", storedName(t, "demo", "demo_override.yml"))
	dir := filepath.Join(t.TempDir(), "demo")
	code, out := renderFile(t, env, "reserved.yml", dir)
	if code != 1 || !strings.Contains(out, `secret key "override.yml" is the name of a file render writes`) {
		t.Fatalf("exit %d: %s", code, out)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s was created: %v", dir, err)
	}
}

// A re-render drops the value of a secret the file no longer has; clean
// never removes a file render did not write.
func TestRenderAgainAndForeignFiles(t *testing.T) {
	anyFS(t)
	env := checkStore(t)
	dir := filepath.Join(t.TempDir(), "demo")
	if code, out := renderFile(t, env, "ok.yml", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	only := filepath.Join(t.TempDir(), "only-db.yml")
	if err := os.WriteFile(only, []byte("services: {app: {image: x, secrets: [db]}}\nsecrets: {db: {driver: swarmkeep}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, env, "", "render", "-c", only, "--stack", "demo", "--plugin", "swarmkeep", "--dir", dir)
	if code != 0 {
		t.Fatalf("re-render: exit %d: %s%s", code, out, errOut)
	}
	if _, err := os.Lstat(filepath.Join(dir, "api_key")); !os.IsNotExist(err) {
		t.Fatalf("api_key left after a render without it: %v", err)
	}
	mine := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(mine, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = renderFile(t, env, "ok.yml", dir, "--clean")
	if code != 1 || !strings.Contains(out, "notes.txt") {
		t.Fatalf("clean with a foreign file: exit %d: %s", code, out)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Fatalf("clean removed a file render did not write: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "db")); !os.IsNotExist(err) {
		t.Fatalf("clean left a value: %v", err)
	}
}

// The real check: a folder on a disk is refused, /dev/shm (tmpfs) is not.
func TestRenderOnlyOnTmpfs(t *testing.T) {
	env := checkStore(t)
	disk := t.TempDir()
	if onTmpfs(disk) == nil {
		t.Skipf("%s is itself on a tmpfs", disk)
	}
	code, out := renderFile(t, env, "ok.yml", filepath.Join(disk, "demo"))
	if code != 1 || !strings.Contains(out, "not on a tmpfs") {
		t.Fatalf("disk: exit %d: %s", code, out)
	}
	if _, err := os.Lstat(filepath.Join(disk, "demo")); !os.IsNotExist(err) {
		t.Fatalf("wrote to disk: %v", err)
	}
	if onTmpfs("/dev/shm") != nil {
		t.Skip("/dev/shm is not a tmpfs here")
	}
	shm, err := os.MkdirTemp("/dev/shm", "sk-render-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	dir := filepath.Join(shm, "demo")
	if code, out := renderFile(t, env, "ok.yml", dir); code != 0 {
		t.Fatalf("tmpfs: exit %d: %s", code, out)
	}
	if code, out := renderFile(t, env, "ok.yml", dir, "--clean"); code != 0 {
		t.Fatalf("clean: exit %d: %s", code, out)
	}
}

func TestProjectName(t *testing.T) {
	env := &cliEnv{getenv: func(string) string { return "" }}
	if got := projectName(env, "/srv/My App_1/compose.yml"); got != "myapp_1" {
		t.Fatalf("got %q", got)
	}
	env.getenv = func(k string) string {
		if k == "COMPOSE_PROJECT_NAME" {
			return "shop"
		}
		return ""
	}
	if got := projectName(env, "/srv/x/compose.yml"); got != "shop" {
		t.Fatalf("got %q", got)
	}
}
