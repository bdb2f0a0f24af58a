package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

func TestGenerateKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "key")
	if err := GenerateKeyFile(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != 32 {
		t.Fatalf("key file is not base64 of 32 bytes: %v", err)
	}
	if err := GenerateKeyFile(p); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second GenerateKeyFile = %v, want fs.ErrExist", err)
	}
	if b2, _ := os.ReadFile(p); !bytes.Equal(b, b2) {
		t.Fatal("existing key file was changed")
	}
}

func TestKeyFile_Formats(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, 32)
	b64 := base64.StdEncoding.EncodeToString(raw)
	tests := []struct {
		name    string
		content []byte
		ok      bool
	}{
		{"base64 newline", []byte(b64 + "\n"), true},
		{"base64 bare", []byte(b64), true},
		{"base64 crlf", []byte(b64 + "\r\n"), true},
		{"raw", raw, true},
		{"short", []byte("c2hvcnQ="), false},
		{"garbage", []byte("not a key at all, not a key at all, not a k!!"), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			os.WriteFile(p, tt.content, 0o400)
			kek, err := KeyFile(p).kek(kdfParams{kind: kdfKeyFile})
			if (err == nil) != tt.ok {
				t.Fatalf("kek = %v, want ok=%v", err, tt.ok)
			}
			if err == nil && !bytes.Equal(kek, raw) {
				t.Fatal("wrong key decoded")
			}
			if err != nil && len(tt.content) > 4 && strings.Contains(err.Error(), string(tt.content[:5])) {
				t.Fatalf("error quotes the key file: %v", err)
			}
			// The fix must be a command that exists: init writes key files
			// (there is no keygen).
			if err != nil && (!strings.Contains(err.Error(), "swarmkeep init") || strings.Contains(err.Error(), "keygen")) {
				t.Fatalf("error does not give the real fix: %v", err)
			}
		})
	}
	if _, err := KeyFile(filepath.Join(dir, "missing")).kek(kdfParams{kind: kdfKeyFile}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing key file: %v", err)
	}
}

func TestPassphraseFile(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "s")
	m, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Init(ctx, m, cheapPassphrase(writePassphrase(t, "correct horse\n")), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "x", "secret")
	s.Close()

	tests := []struct {
		pass string
		err  error
	}{
		{"correct horse", nil},             // trailing newline trimmed at init
		{"correct horse\r\n", nil},         // CRLF too
		{"correct horse\n\n", ErrWrongKey}, // only one newline is trimmed
		{"correct horsE", ErrWrongKey},
		{"", nil}, // refused, checked below
	}
	for _, tt := range tests {
		// The real PassphraseFile: the cheap parameters come from the keyring.
		m, _ := OpenDir(dir)
		s, err := Open(ctx, m, PassphraseFile(writePassphrase(t, tt.pass)))
		switch {
		case tt.pass == "":
			if err == nil || !strings.Contains(err.Error(), "empty") {
				t.Errorf("empty passphrase: %v", err)
			}
		case tt.err == nil && err != nil:
			t.Errorf("Open(%q): %v", tt.pass, err)
		case tt.err != nil:
			if !errors.Is(err, tt.err) || !errors.Is(err, backend.ErrCorrupt) {
				t.Errorf("Open(%q) = %v, want %v", tt.pass, err, tt.err)
			}
		default:
			if got := mustGet(t, s, "x", 0); got != "secret" {
				t.Errorf("got %q", got)
			}
		}
		if s != nil {
			s.Close()
		} else {
			m.Close()
		}
	}
}

func TestOpen_WrongKey(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "x", "secret")
	tests := []struct {
		name string
		src  KeySource
	}{
		{"other key file", KeyFile(newKeyFile(t))},
		{"passphrase on key-file store", cheapPassphrase(writePassphrase(t, "pw"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := OpenDir(ts.dir)
			defer m.Close()
			_, err := Open(ctx, m, tt.src)
			if !errors.Is(err, ErrWrongKey) || !errors.Is(err, backend.ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrWrongKey", err)
			}
			if !strings.Contains(err.Error(), "does not open this store: ") {
				t.Fatalf("unclear message: %v", err)
			}
		})
	}
	// And a key-file source on a passphrase store.
	dir := filepath.Join(t.TempDir(), "p")
	m, _ := OpenDir(dir)
	s, err := Init(ctx, m, cheapPassphrase(writePassphrase(t, "pw")), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	m, _ = OpenDir(dir)
	defer m.Close()
	if _, err := Open(ctx, m, KeyFile(ts.key)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("key file on passphrase store = %v", err)
	}
}

// TestPassphraseFile_DefaultCost runs the production argon2id parameters
// once, so the defaults are exercised and their cost visible.
func TestPassphraseFile_DefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("argon2id with 64 MiB")
	}
	k := PassphraseFile(writePassphrase(t, "pw"))
	p, _ := k.fresh()
	if p.time != 3 || p.memory != 64<<10 || p.threads != 2 || len(p.salt) != 16 {
		t.Fatalf("default parameters %+v", p)
	}
	a, err := k.kek(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.kek(p)
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Fatal("derivation is not deterministic")
	}
}

func TestKDFParams_Bounds(t *testing.T) {
	salt := make([]byte, 16)
	for _, p := range []kdfParams{
		{kind: kdfArgon2id, time: 0, memory: 64, threads: 1, salt: salt},
		{kind: kdfArgon2id, time: 65, memory: 64, threads: 1, salt: salt},
		{kind: kdfArgon2id, time: 1, memory: 4, threads: 1, salt: salt},
		{kind: kdfArgon2id, time: 1, memory: 2 << 20, threads: 1, salt: salt},
		{kind: kdfArgon2id, time: 1, memory: 64, threads: 0, salt: salt},
		{kind: kdfArgon2id, time: 1, memory: 64, threads: 1, salt: salt[:8]},
		// What a tampered keyring could ask for before the bounds were
		// tied to what init writes (t=3, m=64 MiB, p=2), and just past
		// the new bounds.
		{kind: kdfArgon2id, time: 64, memory: 1 << 20, threads: 2, salt: salt},
		{kind: kdfArgon2id, time: 3, memory: 1 << 20, threads: 2, salt: salt},
		{kind: kdfArgon2id, time: 64, memory: 64 << 10, threads: 2, salt: salt},
		{kind: kdfArgon2id, time: 2*argonTime + 1, memory: 64 << 10, threads: 2, salt: salt},
		{kind: kdfArgon2id, time: 3, memory: 2*argonMemory + 1, threads: 2, salt: salt},
		{kind: kdfArgon2id, time: 3, memory: 64 << 10, threads: 9, salt: salt},
		{kind: kdfArgon2id, time: 3, memory: 64 << 10, threads: 255, salt: salt},
	} {
		if _, err := PassphraseFile("/nonexistent").kek(p); !errors.Is(err, backend.ErrCorrupt) {
			t.Errorf("kek(%+v) = %v, want ErrCorrupt", p, err)
		}
	}
	// What init writes, the cheap test parameters and the largest values
	// accepted all pass.
	fresh, _ := PassphraseFile("/nonexistent").fresh()
	cheap, _ := cheapPassphrase("/nonexistent").fresh()
	for _, p := range []kdfParams{
		fresh, cheap,
		{kind: kdfArgon2id, time: 2 * argonTime, memory: 2 * argonMemory, threads: 8, salt: make([]byte, 64)},
	} {
		if err := p.check(); err != nil {
			t.Errorf("check(%+v) = %v", p, err)
		}
	}
}

// TestKDFParams_TamperedKeyring raises the passes in a keyring's header:
// Open must refuse it before deriving anything, and say why.
func TestKDFParams_TamperedKeyring(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "s")
	pass := writePassphrase(t, "pw")
	m, _ := OpenDir(dir)
	s, err := Init(ctx, m, cheapPassphrase(pass), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.m.(*DirMedium).path(keyringKey)
	s.Close()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Object file: 2-byte key length, the key, then the keyring blob,
	// whose t is at offset 26 (FORMAT.md). 7 passes of 64 KiB are cheap,
	// so a reader without the bound would derive and then fail the AEAD.
	off := 2 + len(keyringKey) + 26
	if got := binary.BigEndian.Uint32(b[off:]); got != 1 {
		t.Fatalf("t at offset 26 = %d, want the cheap parameters' 1", got)
	}
	binary.BigEndian.PutUint32(b[off:], 2*argonTime+1)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	m, _ = OpenDir(dir)
	defer m.Close()
	_, err = Open(ctx, m, PassphraseFile(pass))
	if !errors.Is(err, backend.ErrCorrupt) || errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("Open with t=7 in the keyring = %v, want out of range", err)
	}
}

// TestKeyFile_Long: a long base64 file must be refused, not overflow.
func TestKeyFile_Long(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(make([]byte, 200))), 0o400)
	if _, err := KeyFile(p).kek(kdfParams{kind: kdfKeyFile}); err == nil {
		t.Fatal("200-byte key accepted")
	}
}
