package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func storeEnv(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	return map[string]string{
		EnvCLIStore:   filepath.Join(dir, "store"),
		EnvCLIKeyFile: filepath.Join(dir, "cfg", "key"),
		EnvCLILKGDir:  filepath.Join(dir, "lkg"),
	}
}

func mustRun(t *testing.T, env map[string]string, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, env, stdin, args...)
	if code != 0 {
		t.Fatalf("swarmkeep %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestStoreCommands(t *testing.T) {
	env := storeEnv(t)
	if code, _, errOut := runCLI(t, env, "x", "put", "db"); code != 1 || !strings.Contains(errOut, "swarmkeep init") {
		t.Fatalf("put before init: %d %q", code, errOut)
	}
	out := mustRun(t, env, "", "init", "--max-versions", "3")
	if !strings.Contains(out, "wrote a new key") || !strings.Contains(out, "initialised store") {
		t.Fatalf("init: %q", out)
	}
	if st, err := os.Stat(env[EnvCLIKeyFile]); err != nil || st.Mode().Perm() != 0o400 {
		t.Fatalf("key file: %v %v", st.Mode(), err)
	}
	if code, _, _ := runCLI(t, env, "", "init"); code != 1 {
		t.Fatal("second init succeeded")
	}

	mustRun(t, env, "one", "put", "db")
	mustRun(t, env, "two\n", "put", "db")
	if got := mustRun(t, env, "", "get", "db"); got != "two\n" {
		t.Fatalf("get latest: %q", got)
	}
	if got := mustRun(t, nil, "", "--store", env[EnvCLIStore], "--key-file="+env[EnvCLIKeyFile], "get", "db"); got != "two\n" {
		t.Fatalf("global flags before the command: %q", got)
	}
	if got := mustRun(t, env, "", "get", "--version", "1", "db"); got != "one" {
		t.Fatalf("get v1 (flag before name): %q", got)
	}
	valueFile := filepath.Join(t.TempDir(), "v")
	os.WriteFile(valueFile, []byte("from-file"), 0o600)
	mustRun(t, env, "", "put", "app/token", "--file", valueFile)
	if got := mustRun(t, env, "", "get", "app/token"); got != "from-file" {
		t.Fatalf("get from file: %q", got)
	}

	ls := mustRun(t, env, "", "ls")
	if !strings.Contains(ls, "NAME") || !strings.Contains(ls, "db ") || !strings.Contains(ls, "app/token") {
		t.Fatalf("ls: %q", ls)
	}
	for _, v := range []string{"one", "two", "from-file"} {
		if strings.Contains(ls, v) {
			t.Fatalf("ls shows a value: %q", ls)
		}
	}
	if lsv := mustRun(t, env, "", "ls", "db"); strings.Count(lsv, "\n") != 3 {
		t.Fatalf("ls db: %q", lsv)
	}

	for _, bad := range [][]string{{"put", "bad name"}, {"put", "../etc"}} {
		if code, _, _ := runCLI(t, env, "v", bad...); code == 0 {
			t.Fatalf("%v accepted", bad)
		}
	}
	if code, _, errOut := runCLI(t, env, "", "put", "db"); code != 1 || !strings.Contains(errOut, "empty value") {
		t.Fatalf("empty put: %d %q", code, errOut)
	}

	mustRun(t, env, "", "rekey")
	if got := mustRun(t, env, "", "get", "db"); got != "two\n" {
		t.Fatalf("after rekey: %q", got)
	}
	newKey := filepath.Join(t.TempDir(), "key2")
	mustRun(t, env, "", "rekey", "--new-key-file", newKey)
	if code, _, _ := runCLI(t, env, "", "get", "db"); code != 1 {
		t.Fatal("old key still opens the store after --new-key-file")
	}
	env[EnvCLIKeyFile] = newKey
	if out := mustRun(t, env, "", "verify"); !strings.Contains(out, "2 record(s) open, 0 failed") {
		t.Fatalf("verify: %q", out)
	}

	mustRun(t, env, "", "rm", "db", "--version", "1")
	if code, _, _ := runCLI(t, env, "", "get", "db", "--version", "1"); code != 1 {
		t.Fatal("removed version still readable")
	}
	mustRun(t, env, "", "rm", "db")
	if code, _, errOut := runCLI(t, env, "", "get", "db"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("removed name: %d %q", code, errOut)
	}
}

func TestPassphraseStore(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600)
	env := map[string]string{EnvCLIStore: filepath.Join(dir, "store"), EnvCLIPassphrase: pass}
	mustRun(t, env, "", "init")
	mustRun(t, env, "v", "put", "a")
	os.WriteFile(pass, []byte("wrong\n"), 0o600)
	if code, _, errOut := runCLI(t, env, "", "get", "a"); code != 1 || strings.Contains(errOut, "correct horse") {
		t.Fatalf("wrong passphrase: %d %q", code, errOut)
	}
}
