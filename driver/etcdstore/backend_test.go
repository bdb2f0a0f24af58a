package etcdstore

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
)

func openBackendT(t testing.TB, set backend.Settings) backend.Backend {
	t.Helper()
	b, err := backend.Open(testCtx(t, 10*time.Second), "etcd", set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestBackendGet goes through backend.Open and checks the sentinels the
// backend suite (TestBackendConformance) does not: names that cannot be
// stored, a tampered record, the wrong key, no store under the prefix.
func TestBackendGet(t *testing.T) {
	c := sharedCluster(t)
	cfg := testConfig(t, c)
	s := initStore(t, cfg)
	mustPut(t, s, "svc/db", "first")
	mustPut(t, s, "svc/db", "second")
	mustPut(t, s, "svc/tampered", "x")
	b := openBackendT(t, settingsOf(cfg))
	ctx := testCtx(t, 20*time.Second)

	sec, err := b.Get(ctx, backend.Ref{Name: "svc/db", Reuse: true})
	if err != nil || string(sec.Value) != "second" {
		t.Fatalf("Get latest = %q, %v", sec.Value, err)
	}
	put, err := c.Client(t).Put(ctx, cfg.Prefix+"r/svc/tampered", "garbage")
	if err != nil {
		t.Fatal(err)
	}
	// The backend answers from its replica: wait for the watch to bring
	// the change (swarmkeep put waits the same way).
	waitFor(t, "the tampered record in the copy", func() bool { return replicaOf(t, b).Applied() >= put.Header.Revision })
	for _, tc := range []struct {
		ref  backend.Ref
		want error
	}{
		{backend.Ref{Name: "../etc"}, backend.ErrInvalidRef},
		{backend.Ref{Name: "svc/tampered"}, backend.ErrCorrupt},
	} {
		_, err := b.Get(ctx, tc.ref)
		if !errors.Is(err, tc.want) {
			t.Errorf("Get(%+v) = %v, want %v", tc.ref, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "second") {
			t.Errorf("error holds a value: %v", err)
		}
	}

	wrongKey := cfg
	wrongKey.KeyFile = newKeyFile(t)
	_, err = backend.Open(ctx, "etcd", settingsOf(wrongKey))
	wantErr(t, err, backend.ErrCorrupt)
	empty := cfg
	empty.Prefix = cfg.Prefix + "empty/"
	_, err = backend.Open(ctx, "etcd", settingsOf(empty))
	wantErr(t, err, backend.ErrNotFound)
	if !strings.Contains(err.Error(), "swarmkeep init") || !strings.Contains(err.Error(), empty.Prefix) {
		t.Fatalf("no-store error does not say where and what to do: %v", err)
	}
}

// TestBackendDown: with etcd gone, a name in the backend's replica is
// answered from it, marked stale once etcd stops confirming the copy; a
// name the copy lacks fails with ErrUnavailable within its deadline; both
// work again once etcd is back, without a reopen. Opening with etcd down
// and no saved copy fails with ErrUnavailable.
func TestBackendDown(t *testing.T) {
	fastReplica(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	cfg := testConfig(t, c)
	s := initStore(t, cfg)
	mustPut(t, s, "x", "value")
	b := openBackendT(t, settingsOf(cfg))
	get := func(name string, d time.Duration) (backend.Secret, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return b.Get(ctx, backend.Ref{Name: name})
	}
	if _, err := get("x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	waitStale(t, b)
	sec, err := get("x", time.Second)
	if err != nil || string(sec.Value) != "value" || !sec.Stale || sec.Age <= 0 {
		t.Fatalf("with etcd down: %q stale %v age %v, %v; want the copy, marked stale", sec.Value, sec.Stale, sec.Age, err)
	}
	for _, d := range []time.Duration{300 * time.Millisecond, 3 * time.Second} {
		start := time.Now()
		_, err := get("absent", d)
		el := time.Since(start)
		t.Logf("deadline %v: %v after %v", d, err, el)
		wantErr(t, err, backend.ErrUnavailable)
		if el > min(d, missTimeout)+time.Second {
			t.Fatalf("Get took %v with a %v deadline", el, d)
		}
	}
	start := time.Now()
	_, err = backend.Open(testCtx(t, 500*time.Millisecond), "etcd", settingsOf(cfg))
	wantErr(t, err, backend.ErrUnavailable)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Open took %v with a 500ms deadline", el)
	}

	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sec, err := get("x", 2*time.Second)
		if err == nil && !sec.Stale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after etcd came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestParseSettings(t *testing.T) {
	c, err := ParseSettings(backend.Settings{
		SettingEndpoints: " https://10.0.0.1:2379, https://etcd-2:22379/ ",
		SettingKeyFile:   "/run/k",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Endpoints, []string{"https://10.0.0.1:2379", "https://etcd-2:22379"}) ||
		c.Prefix != DefaultPrefix || c.DialTimeout != DefaultDialTimeout || c.KeySource().String() != "key file /run/k" {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = ParseSettings(backend.Settings{
		SettingEndpoints: "http://127.0.0.1:2379", SettingPrefix: "/p/", SettingDialTimeout: "500ms",
		SettingUsername: "u", SettingPasswordFile: "/run/pw", SettingPassphraseFile: "/run/pp",
	})
	if err != nil || c.Prefix != "/p/" || c.DialTimeout != 500*time.Millisecond || c.Username != "u" ||
		c.KeySource().String() != "passphrase file /run/pp" {
		t.Fatalf("explicit: %+v %v", c, err)
	}

	base := func(kv ...string) backend.Settings {
		s := backend.Settings{SettingEndpoints: "https://127.0.0.1:2379", SettingKeyFile: "/k"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "<unset>" {
				delete(s, kv[i])
			} else {
				s[kv[i]] = kv[i+1]
			}
		}
		return s
	}
	for _, tc := range []struct {
		set  backend.Settings
		want string // in the error
	}{
		{base("tls_crt", "/c", "dir", "/d"), `unknown setting "dir", "tls_crt"`},
		{base(SettingEndpoints, "<unset>"), `"endpoints" is required`},
		{base(SettingEndpoints, "127.0.0.1:2379"), `"127.0.0.1:2379" is not an etcd member URL`},
		{base(SettingEndpoints, "https://127.0.0.1"), "is not an etcd member URL"},
		{base(SettingEndpoints, "https://a:1,,https://b:1"), `"" is not an etcd member URL`},
		{base(SettingEndpoints, "https://u:p@a:1"), "is not an etcd member URL"},
		{base(SettingEndpoints, "https://a:1/v3"), "is not an etcd member URL"},
		{base(SettingEndpoints, "https://a:1,http://b:1"), "mixes http:// and https://"},
		{base(SettingEndpoints, "http://a:1", SettingTLSCA, "/ca"), "need https:// endpoints"},
		{base(SettingTLSCert, "/c"), `set both "tls_cert" and "tls_key"`},
		{base(SettingUsername, "u"), `set both "username" and "password_file"`},
		{base(SettingPasswordFile, "/pw"), `set both "username" and "password_file"`},
		{base(SettingPrefix, "/swarmkeep"), `"prefix": "/swarmkeep" must end with '/'`},
		{base(SettingPrefix, ""), `must end with '/'`},
		{base(SettingDialTimeout, "3"), `"dial_timeout": "3" is not a duration`},
		{base(SettingDialTimeout, "-1s"), "is not a duration"},
		{base(SettingKeyFile, "<unset>"), `one of "key_file" or "passphrase_file" is required`},
		{base(SettingPassphraseFile, "/p"), `set "key_file" or "passphrase_file", not both`},
	} {
		_, err := ParseSettings(tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.set, err, tc.want)
		}
	}
}

// TestOpenMissingFiles: every file setting that names a missing file is
// reported by name, with the path, before anything is dialled.
func TestOpenMissingFiles(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	for _, setting := range []string{SettingKeyFile, SettingPassphraseFile, SettingPasswordFile, SettingTLSCA} {
		set := backend.Settings{SettingEndpoints: "https://127.0.0.1:1", SettingKeyFile: newKeyFile(t)}
		switch setting {
		case SettingPassphraseFile:
			delete(set, SettingKeyFile)
		case SettingPasswordFile:
			set[SettingUsername] = "u"
		}
		set[setting] = missing
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := backend.Open(ctx, "etcd", set)
		cancel()
		if err == nil || !strings.Contains(err.Error(), `"`+setting+`"`) || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s missing: %v", setting, err)
		}
	}
}
