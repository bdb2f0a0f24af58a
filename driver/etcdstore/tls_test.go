package etcdstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestTLS runs the backend against a member that serves https and
// requires client certificates.
func TestTLS(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{TLS: true})
	other, err := etcdtest.GenerateTLS(t.TempDir()) // a CA the member does not know
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(t *testing.T) Config {
		cfg := testConfig(t, c)
		cfg.TLSCA, cfg.TLSCert, cfg.TLSKey = c.TLS.CA, c.TLS.ClientCert, c.TLS.ClientKey
		return cfg
	}

	t.Run("client certificate", func(t *testing.T) {
		cfg := withCert(t)
		s := initStore(t, cfg)
		mustPut(t, s, "tls/x", "value")
		if got := mustGet(t, handle(t, cfg), "tls/x", 0); got != "value" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("wrong CA", func(t *testing.T) {
		cfg := withCert(t)
		cfg.TLSCA = other.CA
		start := time.Now()
		_, err := store.Open(testCtx(t, time.Second), newMedium(t, cfg), cfg.KeySource())
		t.Log(err)
		wantErr(t, err, backend.ErrUnavailable)
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("error does not say the CA is wrong: %v", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("took %v with a 1s deadline", el)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		cfg := withCert(t)
		cfg.TLSCert, cfg.TLSKey = "", ""
		_, err := store.Open(testCtx(t, time.Second), newMedium(t, cfg), cfg.KeySource())
		t.Log(err)
		wantErr(t, err, backend.ErrUnavailable)
		if !strings.Contains(err.Error(), SettingTLSCert) {
			t.Fatalf("error does not mention the certificate: %v", err)
		}
	})

	// The medium starts with a certificate the member rejects; replacing
	// the files (as a certificate rotation does) must fix it without a
	// new medium.
	t.Run("rotated client certificate", func(t *testing.T) {
		cfg := withCert(t)
		dir := t.TempDir()
		cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		copyFile(t, other.ClientCert, cfg.TLSCert)
		copyFile(t, other.ClientKey, cfg.TLSKey)
		m := newMedium(t, cfg)
		if _, err := m.Stat(testCtx(t, time.Second), "keyring"); err == nil {
			t.Fatal("a certificate from another CA was accepted")
		}
		if err := c.TLS.IssueClient(cfg.TLSCert, cfg.TLSKey, "swarmkeep"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := m.Stat(testCtx(t, 2*time.Second), "keyring")
			if err == nil || strings.Contains(err.Error(), backend.ErrNotFound.Error()) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still failing after the certificate was replaced: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("missing files", func(t *testing.T) {
		for _, setting := range []string{SettingTLSCA, SettingTLSCert, SettingTLSKey} {
			cfg := withCert(t)
			missing := filepath.Join(t.TempDir(), "nope.pem")
			switch setting {
			case SettingTLSCA:
				cfg.TLSCA = missing
			case SettingTLSCert:
				cfg.TLSCert = missing
			case SettingTLSKey:
				cfg.TLSKey = missing
			}
			_, err := NewMedium(testCtx(t, time.Second), cfg)
			if err == nil || !strings.Contains(err.Error(), `"`+setting+`"`) || !strings.Contains(err.Error(), missing) {
				t.Fatalf("%s missing: %v", setting, err)
			}
		}
	})
}

// TestCertReloader: a changed pair is served from the next handshake;
// a half-rotated one (new certificate, old key) keeps the previous pair.
func TestCertReloader(t *testing.T) {
	ca, err := etcdtest.GenerateTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &certReloader{certFile: filepath.Join(dir, "c.pem"), keyFile: filepath.Join(dir, "k.pem")}
	if err := r.check(); err == nil || !strings.Contains(err.Error(), SettingTLSCert) {
		t.Fatalf("missing files: %v", err)
	}
	if err := ca.IssueClient(r.certFile, r.keyFile, "one"); err != nil {
		t.Fatal(err)
	}
	first, err := r.get(nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := r.get(nil); again != first {
		t.Fatal("unchanged files were loaded again")
	}
	if err := ca.IssueClient(r.certFile, r.keyFile, "two"); err != nil {
		t.Fatal(err)
	}
	second, err := r.get(nil)
	if err != nil || bytes.Equal(second.Certificate[0], first.Certificate[0]) {
		t.Fatalf("rotated pair not loaded: %v", err)
	}
	// New certificate, key not yet replaced.
	if err := ca.IssueClient(filepath.Join(dir, "c3.pem"), filepath.Join(dir, "k3.pem"), "three"); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(dir, "c3.pem"), r.certFile)
	if cur, err := r.get(nil); err != nil || cur != second {
		t.Fatalf("half-rotated pair: %v, or not the previous pair", err)
	}
	copyFile(t, filepath.Join(dir, "k3.pem"), r.keyFile)
	if cur, err := r.get(nil); err != nil || cur == second {
		t.Fatalf("completed rotation not loaded: %v", err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := etcdtest.WriteFileAtomic(to, b); err != nil {
		t.Fatal(err)
	}
}
