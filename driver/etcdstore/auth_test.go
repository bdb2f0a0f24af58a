package etcdstore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestAuth runs the backend against a member with user authentication:
// user "sk" may only touch keys under /auth/.
func TestAuth(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	ctx := testCtx(t, 40*time.Second)
	if err := c.EnableAuth(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.AddUser(ctx, "sk", "pw-1", "/auth/"); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "password")
	writePassword(t, pwFile, "pw-1\n")
	userConfig := func(t *testing.T) Config {
		cfg := testConfig(t, c)
		cfg.Prefix = "/auth" + cfg.Prefix
		cfg.Username, cfg.PasswordFile = "sk", pwFile
		return cfg
	}
	cfg := userConfig(t)
	s := initStore(t, cfg)
	mustPut(t, s, "app/db", "one")

	t.Run("wrong password", func(t *testing.T) {
		bad := userConfig(t)
		bad.PasswordFile = filepath.Join(t.TempDir(), "pw")
		writePassword(t, bad.PasswordFile, "not-the-password")
		_, err := NewMedium(testCtx(t, 5*time.Second), bad)
		t.Log(err)
		wantErr(t, err, backend.ErrDenied)
		if strings.Contains(err.Error(), "not-the-password") {
			t.Fatal("error holds the password")
		}
	})

	t.Run("missing password file", func(t *testing.T) {
		bad := userConfig(t)
		bad.PasswordFile = filepath.Join(t.TempDir(), "nope")
		_, err := NewMedium(testCtx(t, 5*time.Second), bad)
		if err == nil || !strings.Contains(err.Error(), SettingPasswordFile) || !strings.Contains(err.Error(), bad.PasswordFile) {
			t.Fatalf("error does not name the setting and path: %v", err)
		}
	})

	t.Run("no user", func(t *testing.T) {
		anon := userConfig(t)
		anon.Username, anon.PasswordFile = "", ""
		_, err := store.Open(testCtx(t, 5*time.Second), newMedium(t, anon), anon.KeySource())
		t.Log(err)
		wantErr(t, err, backend.ErrDenied)
		if !strings.Contains(err.Error(), SettingUsername) {
			t.Fatalf("error does not say what to set: %v", err)
		}
	})

	t.Run("outside the role", func(t *testing.T) {
		out := userConfig(t)
		out.Prefix = "/elsewhere/"
		_, err := store.Init(testCtx(t, 5*time.Second), newMedium(t, out), out.KeySource(), store.InitOptions{})
		t.Log(err)
		wantErr(t, err, backend.ErrDenied)
	})

	// The backend runs on while the password is rotated in etcd and in
	// the file, in either order; in between, calls that reach etcd fail
	// with ErrDenied and recover by themselves. Names in the backend's
	// replica answer without etcd, so the calls ask for one it lacks,
	// which is read from etcd (and is not found once etcd lets us in).
	t.Run("rotation", func(t *testing.T) {
		b, err := backend.Open(ctx, "etcd", settingsOf(cfg))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		get := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := b.Get(ctx, backend.Ref{Name: "app/absent", Reuse: true})
			if errors.Is(err, backend.ErrNotFound) {
				return nil
			}
			if err == nil {
				t.Fatal("an absent name was found")
			}
			return err
		}
		mustWork := func(when string) {
			t.Helper()
			if err := get(); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
		mustWork("before rotation")
		if err := c.SetPassword(ctx, "sk", "pw-2"); err != nil {
			t.Fatal(err)
		}
		err = get()
		t.Log(err)
		wantErr(t, err, backend.ErrDenied)
		writePassword(t, pwFile, "pw-2\n")
		mustWork("etcd, then file rotated")
		mustPut(t, s, "app/db", "two") // the writer's handle, lock included

		writePassword(t, pwFile, "pw-3")
		mustWork("file rotated first (the old token is still good)")
		if err := c.SetPassword(ctx, "sk", "pw-3"); err != nil {
			t.Fatal(err)
		}
		mustWork("file, then etcd rotated")
		mustPut(t, s, "app/db", "three")
	})

	// A plugin restarted while etcd is down answers from its saved
	// replica, and logs in once etcd is back.
	t.Run("replica with etcd down", func(t *testing.T) {
		fastReplica(t)
		set := pluginSettings(t, cfg, "auth")
		b := openBackendT(t, set)
		r := replicaOf(t, b)
		waitFor(t, "the copy saved", func() bool { return savedHas(t, r, s.Medium().(*Medium).LastWrite()) })
		b.Close()
		if err := c.Kill(0); err != nil {
			t.Fatal(err)
		}
		b2, err := backend.Open(testCtx(t, 5*time.Second), "etcd", set)
		if err != nil {
			t.Fatalf("open with etcd down and a saved copy: %v", err)
		}
		defer b2.Close()
		sec, err := b2.Get(testCtx(t, time.Second), backend.Ref{Name: "app/db"})
		if err != nil || string(sec.Value) != "three" || !sec.Stale {
			t.Fatalf("etcd down: %q stale %v, %v", sec.Value, sec.Stale, err)
		}
		if err := c.Restart(0); err != nil {
			t.Fatal(err)
		}
		r2 := replicaOf(t, b2)
		waitFor(t, "the copy confirmed after the login", func() bool { stale, _, _ := r2.Staleness(); return !stale })
	})
}

func writePassword(t testing.TB, path, pw string) {
	t.Helper()
	if err := etcdtest.WriteFileAtomic(path, []byte(pw)); err != nil {
		t.Fatal(err)
	}
}

// settingsOf is the backend.Settings form of c.
func settingsOf(c Config) backend.Settings {
	s := backend.Settings{
		SettingEndpoints:   strings.Join(c.Endpoints, ","),
		SettingPrefix:      c.Prefix,
		SettingDialTimeout: c.DialTimeout.String(),
		SettingKeyFile:     c.KeyFile,
	}
	for k, v := range map[string]string{
		SettingTLSCA: c.TLSCA, SettingTLSCert: c.TLSCert, SettingTLSKey: c.TLSKey,
		SettingUsername: c.Username, SettingPasswordFile: c.PasswordFile,
	} {
		if v != "" {
			s[k] = v
		}
	}
	return s
}
