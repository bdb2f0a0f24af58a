package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/cache"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// writeLKG writes copies into the last-known-good store at dir, sealed
// with the key in keyFile, as the plugin's cache does.
func writeLKG(t *testing.T, dir, keyFile string, copies map[string]string) {
	t.Helper()
	ctx := context.Background()
	s, err := cache.OpenLKGStore(ctx, dir, store.KeyFile(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := cache.NewStoreLKG(s)
	for k, v := range copies {
		if err := l.Save(ctx, k, backend.Secret{Value: []byte(v), Version: 1}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// readLKG opens the last-known-good store at dir with keyFile as a
// restarted plugin does, and returns the copy under key.
func readLKG(dir, keyFile, key string) (string, error) {
	ctx := context.Background()
	s, err := cache.OpenLKGStore(ctx, dir, store.KeyFile(keyFile))
	if err != nil {
		return "", err
	}
	defer s.Close()
	got, _, err := cache.NewStoreLKG(s).Load(ctx, key)
	return string(got.Value), err
}

// keyringFile is where a store folder keeps its keyring (FORMAT.md).
func keyringFile(dir string) string {
	sum := sha256.Sum256([]byte("keyring"))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(dir, "objects", h[:2], h)
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// TestRekeyCoversLastKnownGoodStores: a plugin restarted with the key
// rekey --new-key-file made must still open its last-known-good copies,
// and a plain rekey must retire the data key those copies were sealed
// with, as it does for the store.
func TestRekeyCoversLastKnownGoodStores(t *testing.T) {
	env := storeEnv(t)
	lkgDir := env[EnvCLILKGDir]
	mustRun(t, env, "", "init")
	mustRun(t, env, "v1", "put", "db")
	k1 := env[EnvCLIKeyFile]
	shared, other := filepath.Join(lkgDir, "shared"), filepath.Join(lkgDir, "vault1")
	writeLKG(t, shared, k1, map[string]string{"a": "copy-a", "b": "copy-b"})
	writeLKG(t, other, k1, map[string]string{"c": "copy-c"})
	// Not stores: left alone, and not laid out as stores.
	os.MkdirAll(filepath.Join(lkgDir, "empty"), 0o700)
	os.WriteFile(filepath.Join(lkgDir, "notes"), []byte("x"), 0o600)

	k2 := filepath.Join(t.TempDir(), "key2")
	_, _, errOut := runCLI(t, env, "", "rekey", "--new-key-file", k2)
	if !strings.Contains(errOut, "last-known-good store "+shared+": data keys now wrapped under key file "+k2) {
		t.Errorf("rekey --new-key-file output: %q", errOut)
	}
	for dir, want := range map[string][2]string{shared: {"a", "copy-a"}, other: {"c", "copy-c"}} {
		if got, err := readLKG(dir, k2, want[0]); err != nil || got != want[1] {
			t.Fatalf("%s with the new key: %q, %v", dir, got, err)
		}
		if _, err := readLKG(dir, k1, want[0]); !errors.Is(err, store.ErrWrongKey) {
			t.Fatalf("%s still opens with the old key: %v", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(lkgDir, "empty", "objects")); err == nil {
		t.Fatal("rekey laid out a store in a folder that held none")
	}
	// Run again, as after an interruption: every store is already done.
	if out := mustRun2(t, env, "rekey", "--new-key-file", k2); strings.Count(out, "already wrapped under") != 3 {
		t.Fatalf("second rekey --new-key-file: %q", out)
	}

	// Plain rekey, with the new key. Keep a backup of the copies first.
	env[EnvCLIKeyFile] = k2
	backup := filepath.Join(t.TempDir(), "backup")
	copyTree(t, shared, backup)
	out := mustRun2(t, env, "rekey")
	if !strings.Contains(out, "last-known-good store "+shared+": re-encrypted 2 record(s) under a new data key; 1 old key(s) retired") {
		t.Errorf("rekey output: %q", out)
	}
	if got, err := readLKG(shared, k2, "a"); err != nil || got != "copy-a" {
		t.Fatalf("after rekey: %q, %v", got, err)
	}
	// The old keyring (and so the old data key) no longer opens the
	// copies on disk; it still opens the backup made with it.
	if got, err := readLKG(backup, k2, "b"); err != nil || got != "copy-b" {
		t.Fatalf("the backup with its own keyring: %q, %v", got, err)
	}
	data, err := os.ReadFile(keyringFile(backup))
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(keyringFile(shared), 0o600)
	if err := os.WriteFile(keyringFile(shared), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if got, err := readLKG(shared, k2, k); err == nil {
			t.Fatalf("the retired data key still opens copy %s: %q", k, got)
		}
	}
}

// mustRun2 runs a command that must succeed and returns its stderr,
// where rekey reports.
func mustRun2(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, _, errOut := runCLI(t, env, "", args...)
	if code != 0 {
		t.Fatalf("swarmkeep %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return errOut
}

// TestRekeyReportsForeignLastKnownGoodStore: a last-known-good store that
// the plugin's key does not open is named with its fix; the others and
// the store are still rekeyed.
func TestRekeyReportsForeignLastKnownGoodStore(t *testing.T) {
	env := storeEnv(t)
	lkgDir := env[EnvCLILKGDir]
	mustRun(t, env, "", "init")
	mustRun(t, env, "v1", "put", "db")
	stray := filepath.Join(t.TempDir(), "stray.key")
	if err := store.GenerateKeyFile(stray); err != nil {
		t.Fatal(err)
	}
	writeLKG(t, filepath.Join(lkgDir, "a"), stray, map[string]string{"x": "copy-x"})
	writeLKG(t, filepath.Join(lkgDir, "b"), env[EnvCLIKeyFile], map[string]string{"y": "copy-y"})

	code, _, errOut := runCLI(t, env, "", "rekey")
	if code != 1 || !strings.Contains(errOut, filepath.Join(lkgDir, "a")) || !strings.Contains(errOut, "remove the folder") {
		t.Fatalf("exit %d: %q", code, errOut)
	}
	for _, want := range []string{"store " + env[EnvCLIStore] + ": re-encrypted 1 record(s)", "last-known-good store " + filepath.Join(lkgDir, "b") + ": re-encrypted 1 record(s)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output lacks %q: %q", want, errOut)
		}
	}
	if strings.Contains(errOut, "copy-") {
		t.Fatalf("output shows a value: %q", errOut)
	}
}
