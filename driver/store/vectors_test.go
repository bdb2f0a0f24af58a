package store

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// The vectors in testdata/v1 are small stores written by this code and
// committed, so that any change to the on-disk format fails this test.
// Regenerate them only for a deliberate new format version:
//
//	go test ./driver/store -run TestVectors -update-vectors
var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/v1 (format changes only)")

// Each vector directory holds store/ (a DirMedium root), the key file
// "key" or the passphrase file "passphrase", and "expect", with lines:
//
//	get NAME VERSION "VALUE"   the value (Go-quoted) at VERSION (0: latest)
//	notfound NAME VERSION
//	corrupt NAME
//	verify OK BAD             the counts Verify reports
//	put NAME VERSION "VALUE"  a Put of VALUE must get VERSION
func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	for _, v := range []string{"keyfile", "passphrase"} {
		t.Run(v, func(t *testing.T) {
			// Copied, key included: git checks files out 0644, and a key
			// file that others can read is refused.
			src := filepath.Join(t.TempDir(), v)
			copyTree(t, filepath.Join("testdata", "v1", v), src)
			dir := filepath.Join(src, "store")
			var k KeySource = KeyFile(filepath.Join(src, "key"))
			if v == "passphrase" {
				k = PassphraseFile(filepath.Join(src, "passphrase"))
			}
			s := openStore(t, dir, k)
			runExpect(t, s, filepath.Join(src, "expect"))
		})
	}
}

func runExpect(t *testing.T, s *Store, path string) {
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, " ", 4)
		num := func(i int) uint64 {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				t.Fatalf("expect:%d: %v", n, err)
			}
			return v
		}
		value := func() string {
			v, err := strconv.Unquote(f[3])
			if err != nil {
				t.Fatalf("expect:%d: %v", n, err)
			}
			return v
		}
		switch f[0] {
		case "get":
			if got := mustGet(t, s, f[1], num(2)); got != value() {
				t.Errorf("expect:%d: got %q", n, got)
			}
		case "notfound":
			if _, err := s.Get(ctx, f[1], num(2)); !errors.Is(err, backend.ErrNotFound) {
				t.Errorf("expect:%d: Get = %v", n, err)
			}
		case "corrupt":
			_, err := s.Get(ctx, f[1], 0)
			checkCorrupt(t, err, f[1])
		case "verify":
			ok, bad, err := s.Verify(ctx, nil)
			if uint64(ok) != num(1) || uint64(bad) != num(2) || err != nil {
				t.Errorf("expect:%d: Verify = %d ok, %d bad, %v", n, ok, bad, err)
			}
		case "put":
			if v := mustPut(t, s, f[1], value()); v != num(2) {
				t.Errorf("expect:%d: Put = version %d", n, v)
			}
		default:
			t.Fatalf("expect:%d: unknown directive %q", n, f[0])
		}
	}
}

func writeVectors(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join("testdata", "v1")
	os.RemoveAll(root)

	// Key file vector: a fixed, obviously non-secret key.
	dir := filepath.Join(root, "keyfile")
	os.MkdirAll(dir, 0o700)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	os.WriteFile(filepath.Join(dir, "key"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
	s := initVector(t, filepath.Join(dir, "store"), KeyFile(filepath.Join(dir, "key")), 3)
	mustPut(t, s, "app/db/password", "hunter2")
	mustPut(t, s, "app/db/password", "correct horse battery staple")
	for _, v := range []string{"a", "b", "c", "d"} {
		mustPut(t, s, "pruned", v)
	}
	mustPut(t, s, "removed-version", "x")
	mustPut(t, s, "removed-version", "y")
	s.Remove(ctx, "removed-version", 1)
	mustPut(t, s, "tombstone", "z")
	s.Remove(ctx, "tombstone", 0)
	mustPut(t, s, "binary", "\x00\x01\xfe\xff")
	mustPut(t, s, "damaged", "will be damaged")
	s.Close()
	p := recordPath(filepath.Join(dir, "store"), "damaged")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, flip(b, len(b)-40), 0o600)
	writeExpect(t, dir, `# key file store, MaxVersions 3
get app/db/password 0 "correct horse battery staple"
get app/db/password 1 "hunter2"
get app/db/password 2 "correct horse battery staple"
notfound pruned 1
get pruned 2 "b"
get pruned 0 "d"
notfound removed-version 1
get removed-version 0 "y"
notfound tombstone 0
get binary 0 "\x00\x01\xfe\xff"
corrupt damaged
verify 4 1
put tombstone 2 "again"
put pruned 5 "e"
notfound pruned 2
`)

	// Passphrase vector, with cheap argon2id parameters in its keyring.
	dir = filepath.Join(root, "passphrase")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "passphrase"), []byte("swarmkeep test vector\n"), 0o600)
	s = initVector(t, filepath.Join(dir, "store"), cheapPassphrase(filepath.Join(dir, "passphrase")), 10)
	mustPut(t, s, "hello", "world")
	s.Close()
	writeExpect(t, dir, `# passphrase store (argon2id t=1 m=64KiB p=1)
get hello 1 "world"
verify 1 0
`)
}

func initVector(t *testing.T, dir string, k KeySource, maxVersions int) *Store {
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Init(context.Background(), m, k, InitOptions{MaxVersions: maxVersions})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeExpect(t *testing.T, dir, text string) {
	os.Remove(filepath.Join(dir, "store", ".lock"))
	if err := os.WriteFile(filepath.Join(dir, "expect"), []byte(text), 0o600); err != nil {
		t.Fatal(fmt.Errorf("write vectors: %w", err))
	}
}
