package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver"
)

func TestBackend(t *testing.T) {
	ctx := context.Background()
	ts := newTestStore(t, InitOptions{})
	mustPut(t, ts.Store, "db/password", "one")
	mustPut(t, ts.Store, "db/password", "two")

	b, err := driver.Open(ctx, "FILE", driver.Settings{"dir": ts.dir, "key_file": ts.key})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		ref  driver.Ref
		want string
		err  error
	}{
		{driver.Ref{Name: "db/password"}, "two", nil},
		{driver.Ref{Name: "db/password", Version: 1}, "one", nil},
		{driver.Ref{Name: "db/password", Version: 3}, "", driver.ErrNotFound},
		{driver.Ref{Name: "nope"}, "", driver.ErrNotFound},
		{driver.Ref{Name: "../x"}, "", driver.ErrInvalidRef},
		{driver.Ref{Name: "db/password", Field: "user"}, "", driver.ErrInvalidRef},
		{driver.Ref{Name: "db/password", Path: "kv/db"}, "", driver.ErrInvalidRef},
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
		set  driver.Settings
		want string
		err  error
	}{
		{"no dir", driver.Settings{"key_file": ts.key}, `"dir" is required`, nil},
		{"no key", driver.Settings{"dir": ts.dir}, "one of", nil},
		{"both keys", driver.Settings{"dir": ts.dir, "key_file": ts.key, "passphrase_file": ts.key}, "not both", nil},
		{"typo", driver.Settings{"dir": ts.dir, "keyfile": ts.key}, `unknown setting "keyfile"`, nil},
		{"no store", driver.Settings{"dir": empty, "key_file": ts.key}, "run swarmkeep init", driver.ErrNotFound},
		{"wrong key", driver.Settings{"dir": ts.dir, "key_file": newKeyFile(t)}, "does not open", ErrWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := driver.Open(ctx, "file", tt.set)
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
