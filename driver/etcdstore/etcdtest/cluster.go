package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary is the etcd server the helpers run.
const Binary = "/usr/bin/etcd"

// Bounds on every wait. A loaded CI machine running tests with -race can
// be slow to start a member, so these are generous; they only matter
// when something is broken.
var (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Options say what to start.
type Options struct {
	// Members is the cluster size; 0 means 1.
	Members int
	// TLS serves clients over https with a certificate from a generated
	// CA and requires client certificates (--client-cert-auth). Peers
	// still talk plain http on 127.0.0.1.
	TLS bool
}

// Cluster is a running etcd cluster. Its methods are safe for use by one
// test goroutine at a time.
type Cluster struct {
	Members []*Member
	// TLS holds the generated CA and certificates; nil without TLS.
	TLS *TLSFiles

	dir          string
	rootPassword string // set once EnableAuth ran
}

// Available reports why etcd tests cannot run here, or nil.
func Available() error {
	st, err := os.Stat(Binary)
	if err != nil {
		return fmt.Errorf("%s not found (install Debian package etcd-server): %w", Binary, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", Binary)
	}
	return nil
}

// Require skips t when etcd is not installed, or fails it when the
// environment has CI=true.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd tests cannot run and CI=true: %v", err)
		}
		t.Skipf("skipping etcd test: %v", err)
	}
}

// Start starts a cluster for t and stops it when t ends. It skips or
// fails t like [Require] when etcd is missing.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	Require(t)
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// New starts a cluster; the caller must Close it. Tests usually want
// [Start]; New is for clusters shared by a whole package (TestMain).
func New(o Options) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Members <= 0 {
		o.Members = 1
	}
	var err error
	// Free ports are found by binding and releasing them, so another
	// process can take one before etcd binds it; try again with new ones.
	for range 3 {
		var c *Cluster
		c, err = start(o)
		if err == nil {
			return c, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

func start(o Options) (*Cluster, error) {
	dir, err := os.MkdirTemp(scratchRoot(), "etcdtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if o.TLS {
		if c.TLS, err = GenerateTLS(filepath.Join(dir, "tls")); err != nil {
			c.Close()
			return nil, err
		}
	}
	ports, err := freePorts(2 * o.Members)
	if err != nil {
		c.Close()
		return nil, err
	}
	scheme := "http"
	if o.TLS {
		scheme = "https"
	}
	var initial []string
	for i := range o.Members {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			dataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.args = c.args(m, strings.Join(initial, ","))
		if err := m.start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for i := range c.Members {
		if err := c.waitReady(ctx, i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// args are one member's flags. Timings are etcd's defaults: shorter ones
// make elections flap on a loaded machine. bcrypt's lowest cost keeps
// Authenticate cheap.
func (c *Cluster) args(m *Member, initial string) []string {
	a := []string{
		"--name", m.Name,
		"--data-dir", m.dataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", initial,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", filepath.Base(c.dir),
		"--bcrypt-cost", "4",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
	if c.TLS != nil {
		a = append(a,
			"--cert-file", c.TLS.ServerCert,
			"--key-file", c.TLS.ServerKey,
			"--trusted-ca-file", c.TLS.CA,
			"--client-cert-auth")
	}
	return a
}

// Endpoints are the members' client URLs, in member order.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.ClientURL
	}
	return eps
}

// Stop stops member i with SIGTERM, then SIGKILL if it does not exit.
func (c *Cluster) Stop(i int) error { return c.Members[i].stop(false) }

// Kill stops member i with SIGKILL.
func (c *Cluster) Kill(i int) error { return c.Members[i].stop(true) }

// Restart starts a stopped member i again on its data directory and
// waits until it serves linearizable reads.
func (c *Cluster) Restart(i int) error {
	if err := c.Members[i].start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.waitReady(ctx, i)
}

// Close kills every member and removes the cluster's directory.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		m.stop(true)
	}
	os.RemoveAll(c.dir)
}

// waitReady polls member i until a linearizable read through it alone
// succeeds, which needs a leader and the member caught up with it.
func (c *Cluster) waitReady(ctx context.Context, i int) error {
	m := c.Members[i]
	var last error
	for {
		if m.exited() {
			return fmt.Errorf("etcd member %s exited during start: %s", m.Name, m.logTail())
		}
		last = c.probe(ctx, m.ClientURL)
		if last == nil {
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("etcd member %s not ready after %v: %v; log: %s", m.Name, startTimeout, last, m.logTail())
		case <-t.C:
		}
	}
}

func (c *Cluster) probe(ctx context.Context, endpoint string) error {
	cli, err := c.newClient([]string{endpoint})
	if err != nil {
		return err
	}
	defer cli.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = cli.Get(pctx, "etcdtest/probe")
	return err
}

// scratchRoot is where member directories go: tmpfs when there is one,
// since etcd fsyncs every write.
func scratchRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".etcdtest-probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(errors.New("find a free port"), err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
