//go:build e2e

// Package multi runs swarmkeep on a real 3-manager swarm on one machine (three
// private dockerd on loopback addresses, see /work/shared/docs/three-managers.md
// and scripts/dockerd.sh): the plugin enabled on every engine with its own state
// and config folders, and the agent beside each engine started with the ExecStart
// line of scripts/swarmkeep-agent.service. It tests the replicated ("swarm")
// store: the medium's conformance against the real engines, put from any
// manager, coherence, an agent down during a put, rekey, rm, status, and a
// kill -9 of the leader. Every plugin also reads one etcd (on 127.0.0.1,
// /usr/bin/etcd) as a second instance: a put is served at once by new
// tasks, and the kill -9 happens with etcd stopped, so the new leader
// serves from its local replica.
//
//	go test -tags e2e -race -count=1 -v ./test/e2e/multi/
//
// Needs root. In CI (CI=true) it fails, never skips, when it cannot run.
// Env: SWARMKEEP_E2E_MULTI_ADDRS (three loopback addresses, default
// 127.0.24.1,127.0.24.2,127.0.24.3: swarm gossip binds ADDR:7946, so no other
// engine on the host may use them); SWARMKEEP_E2E_KEEP=1 keeps the temp dir.
package multi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/swarmkeep/swarmkeep/driver/etcdstore/etcdtest"
)

const (
	plugin = "swarmkeep:latest"
	image  = "swarmkeep-testbox:1"
)

// engine is one manager: its dockerd, plugin folders and agent.
type engine struct {
	n                int
	addr, dir, host  string
	state, config    string // plugin mounts
	store, key       string // = state/store, config/key
	cli              *client.Client
	nodeID, pluginID string
	agent            *exec.Cmd
	agentDone        chan struct{}
	agentLog         string
	agentMu          sync.Mutex
}

type cluster struct {
	root, tmp, bin string
	engines        []*engine
	ci             bool
	// etcd is one etcd on 127.0.0.1 that every plugin reads as the second
	// backend instance etcdName (etcdSpec, BACKENDS syntax).
	etcd     *etcdtest.Cluster
	etcdSpec string
}

// etcdName is the plugins' etcd instance: secrets labelled
// swarmkeep.backend=kv read it; the rest read the default (local:file, the
// folder each agent mirrors the replicated store into).
const etcdName = "kv"

var C *cluster

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "multi: "+format+"\n", args...) }

func TestMain(m *testing.M) { os.Exit(mainRun(m)) }

func mainRun(m *testing.M) (code int) {
	start := time.Now()
	c := &cluster{ci: os.Getenv("CI") == "true"}
	if os.Geteuid() != 0 {
		if c.ci {
			logf("FAIL: the 3-manager tests need root (private dockerd); CI=true")
			return 1
		}
		logf("SKIP: the 3-manager tests need root (private dockerd)")
		return 0
	}
	wd, _ := os.Getwd()
	c.root = filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	var err error
	// Short: unix socket paths live under it.
	if c.tmp, err = os.MkdirTemp("/tmp", "skm-"); err != nil {
		logf("FAIL: %v", err)
		return 1
	}
	defer func() {
		if os.Getenv("SWARMKEEP_E2E_KEEP") == "1" || code != 0 {
			logf("kept %s", c.tmp)
			return
		}
		os.RemoveAll(c.tmp)
	}()
	addrs := strings.Split(envOr("SWARMKEEP_E2E_MULTI_ADDRS", "127.0.24.1,127.0.24.2,127.0.24.3"), ",")
	if len(addrs) != 3 {
		logf("FAIL: SWARMKEEP_E2E_MULTI_ADDRS must name three addresses")
		return 1
	}
	for i, a := range addrs {
		e := &engine{n: i + 1, addr: a, dir: filepath.Join(c.tmp, fmt.Sprintf("e%d", i+1))}
		e.state, e.config = filepath.Join(e.dir, "state"), filepath.Join(e.dir, "config")
		e.store, e.key = filepath.Join(e.state, "store"), filepath.Join(e.config, "key")
		e.agentLog = filepath.Join(e.dir, "agent.log")
		c.engines = append(c.engines, e)
	}
	C = c
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	defer func() {
		t0 := time.Now()
		c.teardown()
		logf("teardown took %s", time.Since(t0).Round(time.Millisecond))
	}()
	if err := c.setup(ctx); err != nil {
		logf("FAIL: setup: %v", err)
		return 1
	}
	logf("3-manager swarm with the plugin and agents up in %s", time.Since(start).Round(time.Millisecond))
	code = m.Run()
	logf("run took %s", time.Since(start).Round(time.Millisecond))
	return code
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// run runs a command with extra env and stdin, returning stdout; the error
// carries stderr.
func run(ctx context.Context, env []string, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (e *engine) env() []string { return []string{"DOCKER_HOST=" + e.host} }

func (e *engine) docker(ctx context.Context, args ...string) (string, error) {
	return run(ctx, e.env(), nil, "docker", args...)
}

func (c *cluster) setup(ctx context.Context) error {
	t0 := time.Now()
	bundle := filepath.Join(c.tmp, "bundle")
	var buildErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		_, buildErr = run(ctx, nil, nil, filepath.Join(c.root, "scripts", "build-rootfs.sh"), bundle)
	})
	// etcd on 127.0.0.1: the plugins run on the host network.
	var etcdErr error
	wg.Go(func() {
		if c.etcd, etcdErr = etcdtest.New(etcdtest.Options{}); etcdErr == nil {
			c.etcdSpec = etcdName + ":etcd?endpoints=" + strings.Join(c.etcd.Endpoints(), ",") + "&prefix=/skm/"
		}
	})
	// Manager 1 inits the swarm; its ingress network goes at once, before
	// anyone joins (two engines would race to create its vxlan interface).
	e1 := c.engines[0]
	if err := e1.start(ctx, c.root, ""); err != nil {
		return err
	}
	if _, err := e1.docker(ctx, "network", "rm", "ingress"); err != nil {
		return err
	}
	if _, err := e1.docker(ctx, "swarm", "update", "--dispatcher-heartbeat", "1s"); err != nil {
		return err
	}
	token, err := e1.docker(ctx, "swarm", "join-token", "-q", "manager")
	if err != nil {
		return err
	}
	info, err := e1.cli.Info(ctx)
	if err != nil {
		return err
	}
	join := strings.TrimSpace(token) + "@" + info.Swarm.RemoteManagers[0].Addr
	errs := make([]error, 3)
	var jg sync.WaitGroup
	for _, e := range c.engines[1:] {
		jg.Go(func() { errs[e.n-1] = e.start(ctx, c.root, join) })
	}
	jg.Wait()
	wg.Wait()
	for _, err := range append(errs, buildErr, etcdErr) {
		if err != nil {
			return err
		}
	}
	logf("engines up and bundle built in %s", time.Since(t0).Round(time.Millisecond))
	c.bin = filepath.Join(c.tmp, "swarmkeep")
	bin, err := os.ReadFile(filepath.Join(bundle, "rootfs", "swarmkeep"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.bin, bin, 0o755); err != nil {
		return err
	}
	for _, e := range c.engines {
		for _, d := range []string{e.state, e.config} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
	}
	// Plugin, test image and agent on every engine, in parallel.
	for _, e := range c.engines {
		jg.Go(func() { errs[e.n-1] = e.install(ctx, c, bundle) })
	}
	jg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// The README's steps: init once, from any manager (it writes the key
	// there), then copy the key to every other manager.
	if _, err := c.cli(ctx, e1, nil, "init"); err != nil {
		return err
	}
	key, err := os.ReadFile(e1.key)
	if err != nil {
		return err
	}
	for _, e := range c.engines[1:] {
		if err := os.WriteFile(e.key, key, 0o400); err != nil {
			return err
		}
	}
	// The etcd store, once, with the same key (init keeps an existing key
	// file). The plugins were enabled before it existed, as on a swarm
	// where etcd is added later.
	if _, err := c.etcdCLI(ctx, e1, nil, "init"); err != nil {
		return err
	}
	return nil
}

// start starts the engine (joining join, TOKEN@ADDR, unless empty).
func (e *engine) start(ctx context.Context, root, join string) error {
	env := []string{"SWARM_ADDR=" + e.addr}
	if join != "" {
		env = append(env, "SWARM_JOIN="+join)
	}
	out, err := run(ctx, env, nil, filepath.Join(root, "scripts", "dockerd.sh"), "start", e.dir)
	if err != nil {
		return fmt.Errorf("engine %d: %w", e.n, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	host, ok := strings.CutPrefix(lines[len(lines)-1], "DOCKER_HOST=")
	if !ok {
		return fmt.Errorf("engine %d: dockerd.sh printed %q", e.n, out)
	}
	e.host = host
	if e.cli == nil {
		if e.cli, err = client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation()); err != nil {
			return err
		}
	}
	info, err := e.cli.Info(ctx)
	if err != nil {
		return err
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive {
		return fmt.Errorf("engine %d: swarm state %s", e.n, info.Swarm.LocalNodeState)
	}
	e.nodeID = info.Swarm.NodeID
	return nil
}

func (e *engine) install(ctx context.Context, c *cluster, bundle string) error {
	steps := [][]string{
		{"plugin", "create", plugin, bundle},
		{"plugin", "set", plugin, "state.source=" + e.state, "config.source=" + e.config,
			"BACKENDS=local:file " + c.etcdSpec},
		{"plugin", "enable", "--timeout", "30", plugin},
	}
	for _, s := range steps {
		if _, err := e.docker(ctx, s...); err != nil {
			return fmt.Errorf("engine %d: %w", e.n, err)
		}
	}
	id, err := e.docker(ctx, "plugin", "inspect", "-f", "{{.ID}}", plugin)
	if err != nil {
		return err
	}
	e.pluginID = strings.TrimSpace(id)
	if _, err := run(ctx, e.env(), nil, filepath.Join(c.root, "test", "testbox", "build.sh"), image); err != nil {
		return fmt.Errorf("engine %d: test image: %w", e.n, err)
	}
	return e.startAgent(c)
}

// teardown stops the agents, then the engines: TERM to the three dockerds at
// once (leaving the swarm one manager after the other waits on a lost
// quorum), then dockerd.sh stop cleans up after each.
func (c *cluster) teardown() {
	var wg sync.WaitGroup
	if c.etcd != nil {
		wg.Go(c.etcd.Close)
	}
	for _, e := range c.engines {
		e.stopAgent()
		if e.cli != nil {
			e.cli.Close()
		}
		wg.Go(func() {
			t0 := time.Now()
			if b, err := os.ReadFile(filepath.Join(e.dir, "dockerd.pid")); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(pid, syscall.SIGTERM) == nil {
					for i := 0; i < 400 && syscall.Kill(pid, 0) == nil; i++ {
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
			t1 := time.Now()
			// Seconds on a quiet machine; minutes on a loaded one, where
			// its scans of /proc are slow. Cut short, it leaves processes.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			defer func() {
				logf("engine %d: dockerd exited in %s, cleanup %s", e.n, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
			}()
			cmd := exec.CommandContext(ctx, filepath.Join(c.root, "scripts", "dockerd.sh"), "stop", e.dir)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			if err != nil || time.Since(t1) > 30*time.Second {
				logf("engine %d: dockerd.sh stop: %v\n%s", e.n, err, errb.String())
			}
		})
	}
	wg.Wait()
}
