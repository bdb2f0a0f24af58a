package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backupStore is a store with two names, one with two versions, and a
// removed name (a tombstone, which keeps its version counter).
func backupStore(t *testing.T) map[string]string {
	t.Helper()
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, marker+"-a1", "put", "app/a")
	mustRun(t, env, marker+"-a2", "put", "app/a")
	mustRun(t, env, marker+"-b", "put", "b")
	mustRun(t, env, marker+"-gone", "put", "gone")
	mustRun(t, env, "", "rm", "gone")
	return env
}

func backupTo(t *testing.T, env map[string]string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "store.skb")
	code, out, errOut := runCLI(t, env, "", "backup", "--out", file)
	if code != 0 || !strings.Contains(errOut, "backed up 2 record(s)") {
		t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
	}
	return file
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	env := backupStore(t)
	file := backupTo(t, env)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 600", fi, err)
	}
	data, _ := os.ReadFile(file)
	if bytes.Contains(data, []byte(marker)) {
		t.Fatal("the backup holds a value in plaintext")
	}

	to := map[string]string{EnvCLIStore: filepath.Join(t.TempDir(), "restored"), EnvCLIKeyFile: env[EnvCLIKeyFile]}
	code, out, errOut := runCLI(t, to, "", "restore", file)
	if code != 0 || !strings.Contains(errOut, "restored 2 record(s)") {
		t.Fatalf("restore: exit %d: %s%s", code, out, errOut)
	}
	if got, want := mustRun(t, to, "", "ls", "app/a"), mustRun(t, env, "", "ls", "app/a"); got != want {
		t.Fatalf("versions differ:\n%s\nwant\n%s", got, want)
	}
	for _, c := range [][2]string{{"app/a", marker + "-a2"}, {"b", marker + "-b"}} {
		if got := mustRun(t, to, "", "get", c[0]); got != c[1] {
			t.Errorf("get %s after restore: %d bytes, not the value", c[0], len(got))
		}
	}
	if got := mustRun(t, to, "", "get", "app/a", "--version", "1"); got != marker+"-a1" {
		t.Error("version 1 of app/a lost")
	}
	// The tombstone came along: a new put of the removed name does not reuse version 1.
	mustRun(t, to, "x", "put", "gone")
	if ls := mustRun(t, to, "", "ls", "gone"); !strings.Contains(ls, "\n2 ") {
		t.Errorf("version counter of a removed name not kept:\n%s", ls)
	}
	if code, _, errOut := runCLI(t, to, "", "verify"); code != 0 {
		t.Fatalf("verify after restore: %s", errOut)
	}
	ents, _ := os.ReadDir(filepath.Dir(to[EnvCLIStore]))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".restore-") {
			t.Errorf("temp folder %s left behind", e.Name())
		}
	}
}

// Nothing is written unless the whole backup opens with the key.
func TestRestoreAllOrNothing(t *testing.T) {
	env := backupStore(t)
	file := backupTo(t, env)
	data, _ := os.ReadFile(file)
	target := filepath.Join(t.TempDir(), "restored")

	other := storeEnv(t)
	mustRun(t, other, "", "init") // another key
	cases := map[string]struct {
		data []byte
		key  string
		want string
	}{
		"wrong key": {data, other[EnvCLIKeyFile], "does not open"},
		"truncated": {data[:len(data)-40], env[EnvCLIKeyFile], "checksum"},
		// A flipped byte inside a record with a recomputed checksum: only
		// the record's MAC can tell.
		"tampered record": {reseal(flipInRecord(t, data)), env[EnvCLIKeyFile], "do not open"},
		"not a backup":    {[]byte("hello, world, this is not a backup file at all....."), env[EnvCLIKeyFile], "no swarmkeep backup header"},
	}
	for name, c := range cases {
		f := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(f, c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI(t, map[string]string{EnvCLIStore: target, EnvCLIKeyFile: c.key}, "", "restore", f)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d: %s", name, code, errOut)
		}
		if _, err := os.Lstat(target); !os.IsNotExist(err) {
			t.Fatalf("%s: %s was written: %v", name, target, err)
		}
		if strings.Contains(errOut, marker) {
			t.Fatalf("%s: a value in the error", name)
		}
	}

	// An existing store is never overwritten.
	code, _, errOut := runCLI(t, env, "", "restore", file)
	if code != 1 || !strings.Contains(errOut, "is not empty") || !strings.Contains(errOut, "mv ") {
		t.Fatalf("restore over a store: exit %d: %s", code, errOut)
	}
	if got := mustRun(t, env, "", "get", "b"); got != marker+"-b" {
		t.Fatal("the existing store changed")
	}
	// Nor is a backup file.
	if code, _, errOut := runCLI(t, env, "", "backup", "--out", file); code != 1 || !strings.Contains(errOut, "exists") {
		t.Fatalf("backup over a file: exit %d: %s", code, errOut)
	}
}

// flipInRecord flips one byte in the middle of the last object (a record).
func flipInRecord(t *testing.T, data []byte) []byte {
	t.Helper()
	objs, err := decodeBackup(data)
	if err != nil || len(objs) < 2 {
		t.Fatalf("decode: %v", err)
	}
	out := bytes.Clone(data)
	last := objs[len(objs)-1].blob
	i := bytes.Index(out, last) + len(last)/2
	out[i] ^= 0x40
	return out
}

func reseal(data []byte) []byte {
	body := data[:len(data)-32]
	sum := sha256.Sum256(body)
	return append(bytes.Clone(body), sum[:]...)
}
