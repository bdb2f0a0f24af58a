package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver"
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

// TestVerifyOutput: a healthy record is not reported (it was printed as
// "FAIL db: <nil>"); a damaged one is, with its cause, and fails the command.
func TestVerifyOutput(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "v1", "put", "db")
	mustRun(t, env, "v2", "put", "api")
	code, out, errOut := runCLI(t, env, "", "verify")
	if code != 0 || out != "2 record(s) open, 0 failed\n" || errOut != "" {
		t.Fatalf("healthy store: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Flip the last byte of db's record file (objects/<sha256 of r/db>).
	sum := sha256.Sum256([]byte("r/db"))
	h := hex.EncodeToString(sum[:])
	p := filepath.Join(env[EnvCLIStore], "objects", h[:2], h)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, env, "", "verify")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "FAIL db: ") || strings.Contains(out, "<nil>") ||
		lines[1] != "1 record(s) open, 1 failed" || !strings.Contains(errOut, "restore them from a backup") {
		t.Fatalf("damaged db: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestPutRefusesWhatSwarmCannotServe: Swarm refuses more than
// driver.MaxValueBytes at every task start, so put refuses it up front,
// unless it is base64 text of a value within the limit.
func TestPutRefusesWhatSwarmCannotServe(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	limit := strconv.Itoa(driver.MaxValueBytes)

	if code, _, errOut := runCLI(t, env, strings.Repeat("x", driver.MaxValueBytes), "put", "max"); code != 0 || errOut != "stored max version 1\n" {
		t.Fatalf("a value at the limit: exit %d %q", code, errOut)
	}
	for _, n := range []int{driver.MaxValueBytes + 1, 512000, 1 << 20} {
		// '.' is not base64, so no decoding can make it fit.
		code, _, errOut := runCLI(t, env, strings.Repeat(".", n), "put", "big")
		if code != 1 || !strings.Contains(errOut, limit) || !strings.Contains(errOut, "no task could ever get it") {
			t.Fatalf("%d bytes: exit %d %q", n, code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, env, strings.Repeat("x", 1<<20+1), "put", "big"); code != 1 || !strings.Contains(errOut, limit) {
		t.Fatalf("over 1 MiB: exit %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, env, "", "ls", "big"); code == 0 {
		t.Fatal("a refused value was stored")
	}

	// base64 text over the limit whose decoding fits: stored, with the
	// label to use; text whose decoding does not fit either: refused.
	fits := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfe}, driver.MaxValueBytes))
	code, _, errOut := runCLI(t, env, fits+"\n", "put", "b64")
	if code != 0 || !strings.Contains(errOut, "swarmkeep.encoding=base64") || !strings.Contains(errOut, "decodes to "+limit+" bytes") {
		t.Fatalf("base64 that fits decoded: exit %d %q", code, errOut)
	}
	tooBig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfe}, driver.MaxValueBytes+1))
	if code, _, errOut := runCLI(t, env, tooBig, "put", "b64big"); code != 1 || !strings.Contains(errOut, "swarmkeep.encoding=base64") {
		t.Fatalf("base64 that does not fit: exit %d %q", code, errOut)
	}
}
