package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

const (
	tamperName  = "tamper/target"
	tamperValue = "TOP-SECRET-VALUE"
)

// checkTampered opens a fresh handle (no cache) and asserts that both Get
// and Verify report the record as damaged, by name, without a value.
func checkTampered(t *testing.T, ts testStore, what string) {
	t.Helper()
	s := ts.handle(t)
	defer s.Close()
	sec, err := s.Get(context.Background(), tamperName, 0)
	if sec.Value != nil {
		t.Fatalf("%s: Get returned a value", what)
	}
	if err == nil {
		t.Fatalf("%s: Get succeeded", what)
	}
	checkCorrupt(t, err, tamperName, tamperValue)
	var bad int
	_, bad, err = s.Verify(context.Background(), func(name string, err error) {
		if err != nil {
			checkCorrupt(t, err, "", tamperValue)
		}
	})
	if bad != 1 || err != nil {
		t.Fatalf("%s: Verify = %d bad, %v", what, bad, err)
	}
}

// TestTamper_EveryByte flips each byte of a small record file in turn.
func TestTamper_EveryByte(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, tamperName, tamperValue)
	p := recordPath(ts.dir, tamperName)
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range orig {
		for _, mask := range []byte{0x01, 0x80} {
			b := bytes.Clone(orig)
			b[i] ^= mask
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			checkTampered(t, ts, "flip")
			if t.Failed() {
				t.Fatalf("at offset %d of %d, mask %#x", i, len(orig), mask)
			}
		}
	}
	os.WriteFile(p, orig, 0o600)
	if got := mustGet(t, ts.handle(t), tamperName, 0); got != tamperValue {
		t.Fatal("restored file does not read back")
	}
}

func TestTamper_Truncate(t *testing.T) {
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, tamperName, tamperValue)
	mustPut(t, ts.Store, tamperName, tamperValue+"2")
	p := recordPath(ts.dir, tamperName)
	orig, _ := os.ReadFile(p)
	for n := range len(orig) {
		os.WriteFile(p, orig[:n], 0o600)
		checkTampered(t, ts, "truncate")
		if t.Failed() {
			t.Fatalf("truncated to %d of %d", n, len(orig))
		}
	}
	// Appended garbage is damage too.
	os.WriteFile(p, append(bytes.Clone(orig), 0), 0o600)
	checkTampered(t, ts, "extend")
}

// TestTamper_Moved swaps, copies and edits records. The variants marked
// remac also recompute the record MAC, as an attacker who knew the MAC
// key could: then only the AEAD's associated data stands in the way.
func TestTamper_Moved(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	other := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, tamperName, tamperValue)
	mustPut(t, ts.Store, "tamper/other", "OTHER-SECRET-VAL") // same length
	mustPut(t, other.Store, tamperName, "THIRD-SECRET-VAL")
	load := func(s testStore, name string) *record {
		m := s.m
		blob, _, err := m.Read(ctx, recordKey(name))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s.parse(blob, name, s.ringNow())
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	write := func(rec *record) {
		m := ts.m.(*DirMedium)
		p, _ := m.path(recordKey(tamperName))
		prev, _ := lstatRevision(p)
		if _, err := m.Write(ctx, recordKey(tamperName), rec.marshal(ts.id), prev); err != nil {
			t.Fatal(err)
		}
	}
	target := load(ts, tamperName)
	victim := load(ts, "tamper/other")
	save, _ := os.ReadFile(recordPath(ts.dir, tamperName))
	restore := func() { os.WriteFile(recordPath(ts.dir, tamperName), save, 0o600) }

	t.Run("file copied to another name", func(t *testing.T) {
		defer restore()
		b, _ := os.ReadFile(recordPath(ts.dir, "tamper/other"))
		os.WriteFile(recordPath(ts.dir, tamperName), b, 0o600)
		checkTampered(t, ts, "copy")
	})
	t.Run("file copied from another store", func(t *testing.T) {
		defer restore()
		b, _ := os.ReadFile(recordPath(other.dir, tamperName))
		os.WriteFile(recordPath(ts.dir, tamperName), b, 0o600)
		checkTampered(t, ts, "cross-store copy")
	})
	t.Run("ciphertext swapped between names", func(t *testing.T) {
		defer restore()
		b := bytes.Clone(save)
		ct := target.versions[0].ct
		i := bytes.Index(b, ct)
		copy(b[i:], victim.versions[0].ct)
		os.WriteFile(recordPath(ts.dir, tamperName), b, 0o600)
		checkTampered(t, ts, "swap")
	})
	t.Run("ciphertext swapped between names, remac", func(t *testing.T) {
		defer restore()
		r := *target
		r.versions = []sealedVersion{victim.versions[0]}
		write(&r)
		checkTampered(t, ts, "swap remac")
	})
	edits := map[string]func(v *sealedVersion){
		"version":  func(v *sealedVersion) { v.num = 2 },
		"created":  func(v *sealedVersion) { v.created++ },
		"nonce":    func(v *sealedVersion) { v.nonce = bytes.Repeat([]byte{1}, len(v.nonce)) },
		"truncate": func(v *sealedVersion) { v.ct = v.ct[:len(v.ct)-1] },
	}
	for what, edit := range edits {
		t.Run(what+" changed, remac", func(t *testing.T) {
			defer restore()
			r := *target
			v := r.versions[0]
			edit(&v)
			r.versions = []sealedVersion{v}
			r.next = 3
			write(&r)
			checkTampered(t, ts, what)
		})
	}
	t.Run("other store's record, remac", func(t *testing.T) {
		defer restore()
		r := *load(other, tamperName)
		r.key = target.key
		write(&r)
		checkTampered(t, ts, "cross-store remac")
	})
	if got := mustGet(t, ts.handle(t), tamperName, 0); got != tamperValue {
		t.Fatal("restored record does not read back")
	}
}

// TestTamper_RemoveDamaged: a damaged record can still be removed, and a
// version counter or MAC edit cannot roll back numbering unnoticed.
func TestTamper_RemoveDamaged(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, tamperName, tamperValue)
	p := recordPath(ts.dir, tamperName)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, flip(b, len(b)/2), 0o600)
	if _, err := ts.Put(ctx, tamperName, []byte("new")); !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("Put over damaged record = %v", err)
	}
	if err := ts.Remove(ctx, tamperName, 1); !errors.Is(err, backend.ErrCorrupt) {
		t.Fatalf("Remove(1) of damaged record = %v", err)
	}
	if err := ts.Remove(ctx, tamperName, 0); err != nil {
		t.Fatalf("Remove(0) of damaged record = %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("damaged record still there: %v", err)
	}
	mustPut(t, ts.Store, tamperName, "fresh")
}

// TestTamper_Keyring flips each byte of the keyring: every one must make
// Open fail with ErrCorrupt (mostly ErrWrongKey), never succeed.
func TestTamper_Keyring(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, tamperName, tamperValue)
	m := ts.m.(*DirMedium)
	p, _ := m.path(keyringKey)
	orig, _ := os.ReadFile(p)
	for i := range orig {
		os.WriteFile(p, flip(orig, i), 0o600)
		m2, _ := OpenDir(ts.dir)
		s, err := Open(ctx, m2, KeyFile(ts.key))
		if err == nil {
			s.Close()
			t.Fatalf("Open succeeded with keyring byte %d flipped", i)
		}
		m2.Close()
		if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("byte %d: %v", i, err)
		}
	}
}

// FuzzParse feeds arbitrary bytes to every parser of untrusted input:
// none may panic, and a record that parses must have passed its MAC.
func FuzzParse(f *testing.F) {
	ts := newTestStore(f, InitOptions{})
	mustPut(f, ts.Store, "fuzz", "value")
	blob, _, _ := ts.m.Read(context.Background(), recordKey("fuzz"))
	ring, _, _ := ts.m.Read(context.Background(), keyringKey)
	f.Add(blob)
	f.Add(ring)
	f.Add([]byte("swkR\x01\x00\x00\x00\x01"))
	key := ts.ringNow().keys[ts.ringNow().active]
	kek, _ := KeyFile(ts.key).kek(kdfParams{kind: kdfKeyFile})
	f.Fuzz(func(t *testing.T, b []byte) {
		splitObject(b)
		if sk, err := parseKeyring(b); err == nil {
			sk.open(kek)
		}
		rec, err := parseRecord(b, "fuzz", ts.id, func(uint32) *dataKey { return key })
		if err == nil {
			if !bytes.Equal(b, blob) {
				t.Fatalf("a record other than the one written passed its MAC")
			}
			for i := range rec.versions {
				rec.open(ts.id, &rec.versions[i])
			}
		} else if !errors.Is(err, backend.ErrCorrupt) {
			t.Fatalf("parse error does not wrap ErrCorrupt: %v", err)
		}
	})
}
