package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Client returns an administrator's client to every member (the client
// certificate with TLS, root once auth is enabled), closed when t ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newClient builds an administrator's client. It authenticates as root
// when auth is enabled, which needs a reachable member.
func (c *Cluster) newClient(endpoints []string) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	}
	if c.TLS != nil {
		tc, err := c.TLS.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	if c.rootPassword != "" {
		cfg.Username, cfg.Password = "root", c.rootPassword
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", endpoints, err)
	}
	return cli, nil
}

// Leader returns the index of the member that is the raft leader, as the
// first running member that answers sees it.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	var last error
	for i, m := range c.Members {
		if !m.Running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, m.ClientURL)
		cancel()
		if err != nil {
			last = err
			continue
		}
		if st.Leader == st.Header.MemberId {
			return i, nil
		}
		for j, o := range c.Members {
			if j == i {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ost, err := cli.Status(sctx, o.ClientURL)
			cancel()
			if err == nil && ost.Header.MemberId == st.Leader {
				return j, nil
			}
		}
	}
	return -1, fmt.Errorf("no etcd leader found: %v", last)
}

// EnableAuth turns on etcd user authentication: it creates user root
// (with a random password the helpers keep) and enables auth. From then
// on [Cluster.Client] authenticates as root.
func (c *Cluster) EnableAuth(ctx context.Context) error {
	if c.rootPassword != "" {
		return errors.New("etcd auth is already enabled")
	}
	b := make([]byte, 16)
	rand.Read(b)
	pw := hex.EncodeToString(b)
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.UserAdd(ctx, "root", pw); err != nil {
		return fmt.Errorf("add root user: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return fmt.Errorf("grant root role: %w", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable auth: %w", err)
	}
	c.rootPassword = pw
	return nil
}

// AddUser creates user with password and a role of the same name that
// may read and write every key starting with prefix, and nothing else.
func (c *Cluster) AddUser(ctx context.Context, user, password, prefix string) error {
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.RoleAdd(ctx, user); err != nil {
		return fmt.Errorf("add role %s: %w", user, err)
	}
	perm := clientv3.PermissionType(clientv3.PermReadWrite)
	if _, err := cli.RoleGrantPermission(ctx, user, prefix, clientv3.GetPrefixRangeEnd(prefix), perm); err != nil {
		return fmt.Errorf("grant %s on %s: %w", user, prefix, err)
	}
	if _, err := cli.UserAdd(ctx, user, password); err != nil {
		return fmt.Errorf("add user %s: %w", user, err)
	}
	if _, err := cli.UserGrantRole(ctx, user, user); err != nil {
		return fmt.Errorf("grant role %s: %w", user, err)
	}
	return nil
}

// SetPassword changes user's password. etcd then rejects every token
// issued before (the auth store's revision moves).
func (c *Cluster) SetPassword(ctx context.Context, user, password string) error {
	cli, err := c.newClient(c.Endpoints())
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.UserChangePassword(ctx, user, password); err != nil {
		return fmt.Errorf("change password of %s: %w", user, err)
	}
	return nil
}
