package etcdtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestTLSAuthRestart exercises the helper end to end on one member: TLS
// with client certificates, user auth, and a stop and restart that keeps
// the data.
func TestTLSAuthRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c := Start(t, Options{TLS: true})
	if err := c.EnableAuth(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.AddUser(ctx, "app", "pw1", "/app/"); err != nil {
		t.Fatal(err)
	}
	tc, err := c.TLS.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	user, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: tc, Username: "app", Password: "pw1",
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	if _, err := user.Put(ctx, "/app/k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := user.Put(ctx, "/other/k", "v"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("put outside the role's prefix: %v, want permission denied", err)
	}
	if err := c.Stop(0); err != nil {
		t.Fatal(err)
	}
	if c.Members[0].Running() {
		t.Fatal("member still running after Stop")
	}
	if err := c.Restart(0); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Client(t).Get(ctx, "/app/k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v", resp, err)
	}
}
