package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
)

// TestPutWaitsForReplicas: swarmkeep put to an etcd backend returns once
// the running plugin's replica holds the new version, so the plugin's very
// next answer is the new value; the plugin is counted.
func TestPutWaitsForReplicas(t *testing.T) {
	etcdtest.Require(t)
	c := etcdtest.Start(t, etcdtest.Options{})
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	spec := "shared:etcd?endpoints=" + c.Endpoints()[0] + "&prefix=/applied/"
	env := map[string]string{EnvCLIKeyFile: key, EnvCLIBackends: spec, EnvCLIBackend: "shared", EnvCLIStore: filepath.Join(dir, "store")}
	mustRun(t, env, "", "init")
	mustRun(t, env, "v1", "put", "db")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := backend.Open(ctx, "etcd", backend.Settings{
		"endpoints": c.Endpoints()[0], "prefix": "/applied/", "key_file": key,
		"replica_id": "manager-1", "replica_dir": filepath.Join(dir, "replica"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, v := range []string{"v2", "v3", "v4"} {
		code, _, errOut := runCLI(t, env, v, "put", "db")
		if code != 0 || !strings.Contains(errOut, "applied by 1 plugin(s)") {
			t.Fatalf("put %d: exit %d: %q", i, code, errOut)
		}
		sec, err := p.Get(ctx, backend.Ref{Name: "db"})
		if err != nil || string(sec.Value) != v {
			t.Fatalf("after put %d: %q, %v; want %q", i, sec.Value, err, v)
		}
	}
	code, _, errOut := runCLI(t, env, "", "rm", "db")
	if code != 0 || !strings.Contains(errOut, "applied by 1 plugin(s)") {
		t.Fatalf("rm: exit %d: %q", code, errOut)
	}
	if _, err := p.Get(ctx, backend.Ref{Name: "db"}); err == nil {
		t.Fatal("removed name still answered")
	}
	if code, _, errOut := runCLI(t, env, "v5", "put", "--wait", "0", "db"); code != 0 || strings.Contains(errOut, "applied") {
		t.Fatalf("put --wait 0: exit %d: %q", code, errOut)
	}
}
