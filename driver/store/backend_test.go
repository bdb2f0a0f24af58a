package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Found, not found, versions, paths and fields, deadlines and Close are in
// the backend suite (backend_conformance_test.go); this test is about what
// only the file type does.
func TestBackend(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "db/password", "one")
	mustPut(t, ts.Store, "db/password", "two")

	// The type name is matched case-insensitively.
	b, err := backend.Open(ctx, "FILE", backend.Settings{"dir": ts.dir, "key_file": ts.key})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		ref  backend.Ref
		want string
		err  error
	}{
		{backend.Ref{Name: "db/password"}, "two", nil},
		{backend.Ref{Name: "../x"}, "", backend.ErrInvalidRef},
		{backend.Ref{Name: ""}, "", backend.ErrInvalidRef},
	}
	for _, tt := range tests {
		sec, err := b.Get(ctx, tt.ref)
		if !errors.Is(err, tt.err) || string(sec.Value) != tt.want {
			t.Errorf("Get(%+v) = %q, %v; want %q, %v", tt.ref, sec.Value, err, tt.want, tt.err)
		}
	}
}

func TestBackend_Settings(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	empty := filepath.Join(t.TempDir(), "empty")
	tests := []struct {
		name string
		set  backend.Settings
		want string
		err  error
	}{
		{"no dir", backend.Settings{"key_file": ts.key}, `"dir" is required`, nil},
		{"no key", backend.Settings{"dir": ts.dir}, "one of", nil},
		{"both keys", backend.Settings{"dir": ts.dir, "key_file": ts.key, "passphrase_file": ts.key}, "not both", nil},
		{"typo", backend.Settings{"dir": ts.dir, "keyfile": ts.key}, `unknown setting "keyfile"`, nil},
		{"no store", backend.Settings{"dir": empty, "key_file": ts.key}, "run swarmkeep init", backend.ErrNotFound},
		{"wrong key", backend.Settings{"dir": ts.dir, "key_file": newKeyFile(t)}, "does not open", ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := backend.Open(ctx, "file", tt.set)
			if err == nil {
				b.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || (tt.err != nil && !errors.Is(err, tt.err)) {
				t.Fatalf("error %v, want %q / %v", err, tt.want, tt.err)
			}
		})
	}
}
