package server

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// TestWarmRetriesUntilOpen: a backend that cannot open when the plugin
// starts (its store is initialised, or its key copied, later) is opened in
// the background once it can, with no request. A follower's plugin gets no
// requests, so before this its etcd replica never started there, and it had
// no copy to answer from when it led through an etcd outage.
func TestWarmRetriesUntilOpen(t *testing.T) {
	dir := t.TempDir()
	key, storeDir := filepath.Join(dir, "key"), filepath.Join(dir, "store")
	env := map[string]string{
		EnvBackends: "local:file", EnvStoreDir: storeDir, EnvKeyFile: key,
		EnvAudit: "off", EnvPolicyFile: filepath.Join(dir, "policy.yaml"),
	}
	s := serverFromEnv(t, env, Options{})
	first := make(chan error, 1)
	s.Warm(func(_ string, err error) {
		select {
		case first <- err:
		default:
		}
	})
	if err := <-first; err == nil {
		t.Fatal("opened a store that does not exist yet")
	}
	// The operator initialises the store after the plugin started.
	if err := store.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	m, err := store.OpenDir(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Init(context.Background(), m, store.KeyFile(key), store.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	waitUntil(t, func() bool { _, ok := s.lazies["local"].Opened(); return ok })
}
