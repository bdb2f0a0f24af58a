//go:build e2e

// Package e2e drives a real Docker engine in swarm mode with the real swarmkeep managed
// plugin: it builds the bundle, creates and enables the plugin, stores values with the
// operator CLI and checks what Swarm services see in /run/secrets.
//
// Run (as root, nothing else needed; a private dockerd is started and stopped):
//
//	go test -tags e2e -race -count=1 -v ./test/e2e/
//
// Engine selection:
//   - DOCKER_HOST unset and root: a private dockerd is started with scripts/dockerd.sh
//     under a temp dir (its own swarm on a free 127.0.0.1 port) and stopped at the end.
//   - DOCKER_HOST set (or, when not root, /var/run/docker.sock answering): that engine is
//     used; it must be a swarm manager on this host (the plugin mounts temp dirs of this
//     machine). Log assertions then need the engine's log file in SWARMKEEP_E2E_DOCKERD_LOG
//     (e.g. a file fed by `journalctl -fu docker`); without it they are skipped, or fail
//     when CI=true.
//   - No engine: the run fails when CI=true, else it is skipped with a message.
//
// Other env: SWARMKEEP_E2E_KEEP=1 keeps the temp dir (engine log, store) after the run;
// SWARMKEEP_E2E_PLUGIN overrides the plugin name (default swarmkeep:latest on the private
// engine, swarmkeep-e2e-<run>:latest on an external one).
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// env is the shared state of one e2e run.
type env struct {
	root       string // repository root
	tmp        string // temp dir of this run
	runID      string // label value on everything the run creates
	cli        *client.Client
	private    bool   // we started the engine
	dockerLog  string // engine log file ("" when unknown)
	plugin     string // plugin name as given to PluginCreate (with :latest)
	pluginID   string
	swarmkeep  string // operator CLI binary
	stateDir   string // plugin mount "state" source
	configDir  string // plugin mount "config" source
	storeDir   string // = stateDir/store (STORE_DIR inside the plugin: /var/lib/swarmkeep/store)
	keyFile    string // = configDir/key (KEY_FILE inside the plugin: /etc/swarmkeep/key)
	image      string
	ci         bool
	runStarted time.Time
	skip       string // why the run cannot happen (tests skip)
	keepOnFail bool   // something worth looking at is in tmp
}

var E *env

const runLabel = "e2e.swarmkeep.run" // not a swarmkeep.* label: the plugin ignores it

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(mainRun(m))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}

func mainRun(m *testing.M) (code int) {
	start := time.Now()
	e := &env{ci: os.Getenv("CI") == "true", image: "swarmkeep-testbox:1", runStarted: start}
	// notRunnable: in CI a test that cannot run must fail, never skip.
	// The tests then skip themselves (visible as SKIP with -v and in -json).
	notRunnable := func(format string, args ...any) int {
		msg := fmt.Sprintf(format, args...)
		if e.ci {
			logf("FAIL: cannot run the e2e tests (CI=true): %s", msg)
			return 1
		}
		logf("SKIP: %s", msg)
		E = &env{skip: msg}
		return m.Run()
	}
	wd, err := os.Getwd()
	if err != nil {
		logf("FAIL: %v", err)
		return 1
	}
	e.root = filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(e.root, "go.mod")); err != nil {
		logf("FAIL: repository root not found from %s", wd)
		return 1
	}
	if _, err := exec.LookPath("docker"); err != nil && os.Getenv("DOCKER_HOST") == "" && os.Geteuid() != 0 {
		return notRunnable("no docker CLI and not root")
	}
	// Short path: dockerd's sockets live under it.
	e.tmp, err = os.MkdirTemp("", "ske2e-")
	if err != nil {
		logf("FAIL: %v", err)
		return 1
	}
	e.runID = filepath.Base(e.tmp)[len("ske2e-"):]
	keep := os.Getenv("SWARMKEEP_E2E_KEEP") == "1"
	defer func() {
		if keep || (code != 0 && e.keepOnFail) {
			logf("kept %s (engine log: %s)", e.tmp, e.dockerLog)
			return
		}
		if err := os.RemoveAll(e.tmp); err != nil {
			logf("warning: removing %s: %v", e.tmp, err)
		}
	}()

	// Setup builds the plugin and the CLI from scratch on a fresh machine
	// (no build cache, 2 cores): minutes, not seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// 1. The engine.
	switch {
	case os.Getenv("DOCKER_HOST") == "" && os.Geteuid() == 0:
		engineDir := filepath.Join(e.tmp, "engine")
		logf("starting a private dockerd under %s", engineDir)
		out, err := runCmd(ctx, e.root, nil, nil, filepath.Join(e.root, "scripts", "dockerd.sh"), "start", engineDir)
		e.dockerLog = filepath.Join(engineDir, "dockerd.log")
		var once sync.Once
		stopEngine := func() {
			once.Do(func() {
				sctx, scancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer scancel()
				if _, err := runCmd(sctx, e.root, nil, nil, filepath.Join(e.root, "scripts", "dockerd.sh"), "stop", engineDir); err != nil {
					logf("warning: stopping the private dockerd: %v", err)
					code = 1
				}
			})
		}
		defer stopEngine()
		// Ctrl-C (go test forwards it) must not leave a private engine running.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		go func() {
			s, ok := <-sig
			if !ok {
				return
			}
			logf("%s: removing test objects and stopping the private dockerd", s)
			e.cleanup()
			stopEngine()
			logf("kept %s", e.tmp)
			os.Exit(130)
		}()
		if err != nil {
			logf("FAIL: private dockerd: %v", err)
			return 1
		}
		line := strings.TrimSpace(lastLine(out))
		host, ok := strings.CutPrefix(line, "DOCKER_HOST=")
		if !ok {
			logf("FAIL: dockerd.sh start printed %q, want DOCKER_HOST=…", line)
			return 1
		}
		os.Setenv("DOCKER_HOST", host)
		e.private = true
		e.keepOnFail = true
	case os.Getenv("DOCKER_HOST") == "":
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return notRunnable("no DOCKER_HOST, no /var/run/docker.sock, and not root (a private dockerd needs root)")
		}
	}
	if !e.private {
		e.dockerLog = os.Getenv("SWARMKEEP_E2E_DOCKERD_LOG")
	}
	e.cli, err = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		logf("FAIL: docker client: %v", err)
		return 1
	}
	defer e.cli.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = e.cli.Ping(pctx)
	pcancel()
	if err != nil {
		if e.private {
			logf("FAIL: private engine does not answer: %v", err)
			return 1
		}
		return notRunnable("no Docker engine answers at %s: %v", e.cli.DaemonHost(), err)
	}
	info, err := e.cli.Info(ctx)
	if err != nil {
		logf("FAIL: docker info: %v", err)
		return 1
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		if e.private {
			logf("FAIL: private engine is not a swarm manager (%s)", info.Swarm.LocalNodeState)
			return 1
		}
		return notRunnable("the engine at %s is not a swarm manager (run docker swarm init)", e.cli.DaemonHost())
	}
	logf("engine %s (server %s, API %s), run %s", e.cli.DaemonHost(), info.ServerVersion, e.cli.ClientVersion(), e.runID)

	// 2. Plugin bundle, operator CLI, store + key.
	e.plugin = os.Getenv("SWARMKEEP_E2E_PLUGIN")
	if e.plugin == "" {
		if e.private {
			e.plugin = "swarmkeep:latest"
		} else {
			e.plugin = "swarmkeep-e2e-" + strings.ToLower(e.runID) + ":latest"
		}
	}
	if !strings.Contains(e.plugin, ":") {
		e.plugin += ":latest"
	}
	e.keepOnFail = true
	if err := e.setup(ctx); err != nil {
		logf("FAIL: setup: %v", err)
		e.cleanup()
		return 1
	}
	logf("setup done in %s", time.Since(start).Round(time.Millisecond))

	code = m.Run()
	// The leak scan greps the plugin's inspect JSON, so it is taken before the cleanup removes
	// the plugin, and the logs after it, once the plugin's last lines are written.
	inspect := e.pluginInspectJSON()
	e.cleanup()
	if err := e.scanForLeaks(inspect); err != nil {
		logf("FAIL: %v", err)
		code = 1
	}
	logf("e2e run took %s", time.Since(start).Round(time.Millisecond))
	return code
}

func (e *env) setup(ctx context.Context) error {
	E = e
	e.stateDir = filepath.Join(e.tmp, "state")
	e.configDir = filepath.Join(e.tmp, "config")
	e.storeDir = filepath.Join(e.stateDir, "store")
	e.keyFile = filepath.Join(e.configDir, "key")
	e.swarmkeep = filepath.Join(e.tmp, "bin", "swarmkeep")
	for _, d := range []string{e.stateDir, e.configDir, filepath.Dir(e.swarmkeep)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	bundle := filepath.Join(e.tmp, "bundle")
	logf("building the plugin bundle (scripts/build-rootfs.sh) and the operator CLI")
	if _, err := runCmd(ctx, e.root, nil, nil, filepath.Join(e.root, "scripts", "build-rootfs.sh"), bundle); err != nil {
		return fmt.Errorf("scripts/build-rootfs.sh: %w", err)
	}
	// The operator CLI is the same static binary (./plugin) as the one in the bundle.
	bin, err := os.ReadFile(filepath.Join(bundle, "rootfs", "swarmkeep"))
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.WriteFile(e.swarmkeep, bin, 0o755); err != nil {
		return err
	}
	if _, err := runCmd(ctx, e.root, e.cliEnv(), nil, e.swarmkeep, "init"); err != nil {
		return fmt.Errorf("swarmkeep init: %w", err)
	}
	if err := e.installPlugin(ctx, bundle); err != nil {
		return err
	}
	logf("building the test image %s", e.image)
	if err := buildTestImage(ctx, e.cli, e.root, e.image); err != nil {
		return fmt.Errorf("test image: %w", err)
	}
	return nil
}

// installPlugin creates the plugin from the bundle, points its mounts at our temp dirs and
// enables it.
func (e *env) installPlugin(ctx context.Context, bundle string) error {
	if p, _, err := e.cli.PluginInspectWithRaw(ctx, e.plugin); err == nil {
		if !e.private && os.Getenv("SWARMKEEP_E2E_PLUGIN") == "" {
			return fmt.Errorf("plugin %s already exists", e.plugin)
		}
		logf("removing an old plugin %s (%s)", e.plugin, p.ID)
		_ = e.cli.PluginDisable(ctx, e.plugin, pluginDisableForce)
		if err := e.cli.PluginRemove(ctx, e.plugin, pluginRemoveForce); err != nil {
			return fmt.Errorf("remove old plugin: %w", err)
		}
	}
	tarball, err := tarDir(bundle)
	if err != nil {
		return err
	}
	if err := e.cli.PluginCreate(ctx, tarball, pluginCreateOptions(e.plugin)); err != nil {
		return fmt.Errorf("PluginCreate %s: %w", e.plugin, err)
	}
	settings := []string{
		"state.source=" + e.stateDir,
		"config.source=" + e.configDir,
		"LOG_LEVEL=debug",
	}
	if err := e.cli.PluginSet(ctx, e.plugin, settings); err != nil {
		return fmt.Errorf("PluginSet %v: %w", settings, err)
	}
	if err := e.cli.PluginEnable(ctx, e.plugin, pluginEnableTimeout(30)); err != nil {
		return fmt.Errorf("PluginEnable %s: %w (plugin log: %s)", e.plugin, err, e.pluginLogHint())
	}
	p, _, err := e.cli.PluginInspectWithRaw(ctx, e.plugin)
	if err != nil {
		return err
	}
	if !p.Enabled {
		return fmt.Errorf("plugin %s not enabled after PluginEnable", e.plugin)
	}
	e.pluginID = p.ID
	logf("plugin %s enabled (id %.12s)", e.plugin, p.ID)
	return nil
}

// begin starts every test: it skips when the run cannot happen (never in CI, where
// TestMain fails instead).
func begin(t *testing.T) {
	t.Helper()
	if E == nil || E.skip != "" {
		reason := "no engine"
		if E != nil {
			reason = E.skip
		}
		t.Skip("e2e: " + reason)
	}
}

func (e *env) pluginLogHint() string {
	if e.dockerLog == "" {
		return "engine log unknown; set SWARMKEEP_E2E_DOCKERD_LOG"
	}
	return "grep plugin= " + e.dockerLog
}

// cleanup removes what the run created: services, secrets (by run label), the plugin.
func (e *env) cleanup() {
	if e.cli == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", runLabel+"="+e.runID))
	if svcs, err := e.cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: f}); err == nil {
		for _, s := range svcs {
			_ = e.cli.ServiceRemove(ctx, s.ID)
		}
	}
	// Stack resources carry the namespace label; our stacks are named e2e<run>…
	if svcs, err := e.cli.ServiceList(ctx, swarm.ServiceListOptions{}); err == nil {
		for _, s := range svcs {
			if strings.HasPrefix(s.Spec.Labels["com.docker.stack.namespace"], stackPrefix(e)) {
				_ = e.cli.ServiceRemove(ctx, s.ID)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		secs, err := e.cli.SecretList(ctx, swarm.SecretListOptions{})
		if err != nil {
			break
		}
		left := 0
		for _, s := range secs {
			if s.Spec.Labels[runLabel] == e.runID || strings.HasPrefix(s.Spec.Labels["com.docker.stack.namespace"], stackPrefix(e)) {
				if err := e.cli.SecretRemove(ctx, s.ID); err != nil {
					left++
				}
			}
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if e.plugin != "" && e.pluginID != "" {
		_ = e.cli.PluginDisable(ctx, e.plugin, pluginDisableForce)
		if err := e.cli.PluginRemove(ctx, e.plugin, pluginRemoveForce); err != nil {
			logf("warning: removing plugin %s: %v", e.plugin, err)
		}
	}
}

func stackPrefix(e *env) string { return "e2e" + strings.ToLower(e.runID) }
