package etcdstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// TestReplicaMaxStaleZero: max_stale=0 means no stale answers, as it does
// for the cache, while a plugin without the setting answers from its copy
// up to the default. Before, 0 served a stale copy of any age.
func TestReplicaMaxStaleZero(t *testing.T) {
	c, cfg, _, wm := ownCluster(t)
	setZero, setDefault := pluginSettings(t, cfg, "zero"), pluginSettings(t, cfg, "default")
	setZero[SettingMaxStale] = "0"
	zero, dflt := openBackendT(t, setZero), openBackendT(t, setDefault)
	waitApplied(t, wm)
	for _, p := range []backend.Backend{zero, dflt} {
		if v, err := getValue(t, p, "app/db"); err != nil || v != "v1" {
			t.Fatalf("etcd up: %q, %v", v, err)
		}
	}
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	waitStale(t, zero)
	waitStale(t, dflt)
	sec, err := zero.Get(testCtx(t, time.Second), backend.Ref{Name: "app/db"})
	if len(sec.Value) != 0 {
		t.Fatalf("max_stale=0 answered a stale copy (stale %v, age %s)", sec.Stale, sec.Age)
	}
	wantErr(t, err, backend.ErrUnavailable)
	sec, err = dflt.Get(testCtx(t, time.Second), backend.Ref{Name: "app/db"})
	if err != nil || string(sec.Value) != "v1" || !sec.Stale {
		t.Fatalf("default max_stale: %q stale %v, %v", sec.Value, sec.Stale, err)
	}
}

// TestDefaultsPassMaxStaleZero: the plugin's max_stale reaches the
// replica even when it is 0; the operator commands, which set none, leave
// the default.
func TestDefaultsPassMaxStaleZero(t *testing.T) {
	s := backend.Settings{SettingEndpoints: "http://127.0.0.1:2379"}
	defaults(s, backend.Defaults{KeyFile: "/k", MaxStale: 0, MaxStaleSet: true})
	if c, err := ParseSettings(s); err != nil || s[SettingMaxStale] != "0s" || c.MaxStale != 0 {
		t.Fatalf("plugin max_stale=0: setting %q, parsed %v, %v", s[SettingMaxStale], c.MaxStale, err)
	}
	s = backend.Settings{SettingEndpoints: "http://127.0.0.1:2379"}
	defaults(s, backend.Defaults{KeyFile: "/k"})
	if c, err := ParseSettings(s); err != nil || c.MaxStale != DefaultMaxStale {
		t.Fatalf("no max_stale: parsed %v, %v; want %v", c.MaxStale, err, DefaultMaxStale)
	}
}

// fixedBackend answers every name with one value.
type fixedBackend struct{}

func (fixedBackend) Get(context.Context, backend.Ref) (backend.Secret, error) {
	return backend.Secret{Value: []byte("value"), Version: 1}, nil
}
func (fixedBackend) Close() error { return nil }

// TestReplicaTooOldWrapsCause: the refusal of a too-old copy wraps etcd's
// error, so errors.Is tells a refused login from a lost connection.
func TestReplicaTooOldWrapsCause(t *testing.T) {
	cause := errors.New("etcdserver: authentication failed")
	t0 := time.Unix(1_700_000_000, 0)
	r := &Replica{now: func() time.Time { return t0.Add(2 * time.Minute) }, loadedAt: t0, lastErr: cause}
	for _, maxStale := range []time.Duration{0, time.Minute} {
		b := &replicaBackend{Backend: fixedBackend{}, r: r, maxStale: maxStale}
		sec, err := b.Get(context.Background(), backend.Ref{Name: "k"})
		if len(sec.Value) != 0 || !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, cause) {
			t.Fatalf("max stale %s: %q, %v; want unavailable wrapping the cause", maxStale, sec.Value, err)
		}
	}
	b := &replicaBackend{Backend: fixedBackend{}, r: r, maxStale: time.Hour}
	if sec, err := b.Get(context.Background(), backend.Ref{Name: "k"}); err != nil || !sec.Stale || sec.Age != 2*time.Minute {
		t.Fatalf("within max stale: stale %v age %s, %v", sec.Stale, sec.Age, err)
	}
}

// TestReplicaBackendDigest: the etcd backend says what it serves, so
// /health lists it and swarmkeep status compares managers on etcd; the
// digest is the store's, read from the copy.
func TestReplicaBackendDigest(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	initStore(t, cfg)
	w, wm := writer(t, cfg)
	mustPut(t, w, "a", "1")
	mustPut(t, w, "b", "2")
	b := openBackendT(t, pluginSettings(t, cfg, "digest"))
	waitApplied(t, wm)
	d, ok := b.(backend.Digester)
	if !ok {
		t.Fatalf("the etcd backend (%T) is not a backend.Digester", b)
	}
	got, err := d.Digest(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want, err := w.Digest(testCtx(t, 5*time.Second))
	if err != nil || got != want || got.Names != 2 {
		t.Fatalf("digest %+v, want the writer's %+v (%v)", got, want, err)
	}
	if n, err := b.(backend.Counter).Count(testCtx(t, 5*time.Second)); err != nil || n != 2 {
		t.Fatalf("count %d, %v", n, err)
	}
}
