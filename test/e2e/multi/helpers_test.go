//go:build e2e

package multi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
)

// agentCommand is the ExecStart line of scripts/swarmkeep-agent.service with
// the binary at bin and $SWARMKEEP_AGENT_FLAGS expanded to flags, as systemd
// runs it with /etc/default/swarmkeep-agent.
func agentCommand(root, bin string, flags []string) ([]string, error) {
	unit, err := os.ReadFile(filepath.Join(root, "scripts", "swarmkeep-agent.service"))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(unit), "\n") {
		rest, ok := strings.CutPrefix(line, "ExecStart=")
		if !ok {
			continue
		}
		var argv []string
		for i, f := range strings.Fields(rest) {
			switch {
			case i == 0:
				if f != "/usr/local/bin/swarmkeep" {
					return nil, fmt.Errorf("ExecStart runs %s, not the installed binary", f)
				}
				argv = append(argv, bin)
			case f == "$SWARMKEEP_AGENT_FLAGS":
				argv = append(argv, flags...)
			default:
				argv = append(argv, f)
			}
		}
		return argv, nil
	}
	return nil, fmt.Errorf("no ExecStart in scripts/swarmkeep-agent.service")
}

// startAgent runs the agent beside the engine, as the systemd unit does.
func (e *engine) startAgent(c *cluster) error {
	e.agentMu.Lock()
	defer e.agentMu.Unlock()
	argv, err := agentCommand(c.root, c.bin, []string{"--mirror-store", e.store, "--publish-every", "300ms"})
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(e.agentLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(done) }()
	e.agent, e.agentDone = cmd, done
	return nil
}

// stopAgent stops the agent with SIGTERM, as systemctl stop does.
func (e *engine) stopAgent() {
	e.agentMu.Lock()
	defer e.agentMu.Unlock()
	if e.agent == nil {
		return
	}
	e.agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.agentDone:
	case <-time.After(10 * time.Second):
		e.agent.Process.Kill()
		<-e.agentDone
	}
	e.agent = nil
}

// cli runs the operator CLI on manager e against the replicated store.
func (c *cluster) cli(ctx context.Context, e *engine, stdin []byte, args ...string) (string, error) {
	env := append(e.env(), "SWARMKEEP_BACKENDS=swarm:swarm", "SWARMKEEP_BACKEND=swarm",
		"SWARMKEEP_KEY_FILE="+e.key, "SWARMKEEP_STORE="+e.store)
	return run(ctx, env, stdin, c.bin, args...)
}

// etcdCLI runs the operator CLI on manager e against the etcd store (the
// plugins' instance etcdName), with that manager's key file.
func (c *cluster) etcdCLI(ctx context.Context, e *engine, stdin []byte, args ...string) (string, error) {
	env := append(e.env(), "SWARMKEEP_BACKENDS="+c.etcdSpec, "SWARMKEEP_BACKEND="+etcdName,
		"SWARMKEEP_KEY_FILE="+e.key, "SWARMKEEP_STORE="+e.store)
	return run(ctx, env, stdin, c.bin, args...)
}

func mustCLI(t *testing.T, e *engine, stdin []byte, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := C.cli(ctx, e, stdin, args...)
	if err != nil {
		t.Fatalf("manager %d: swarmkeep %s: %v", e.n, strings.Join(args, " "), err)
	}
	return out
}

// getSecret asks e's plugin for name over its socket, as the engine does;
// "kv:NAME" asks for NAME in the etcd store.
func (e *engine) getSecret(name string) (value []byte, errLine string, err error) {
	labels := map[string]string{}
	if n, ok := strings.CutPrefix(name, etcdName+":"); ok {
		name, labels["swarmkeep.backend"] = n, etcdName
	}
	sock := filepath.Join("/run/docker/plugins", e.pluginID, "swarmkeep.sock")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	defer hc.CloseIdleConnections()
	body, _ := json.Marshal(map[string]any{"SecretName": name, "SecretLabels": labels, "ServiceName": "probe"})
	req, _ := http.NewRequest(http.MethodPost, "http://plugin/SecretProvider.GetSecret", bytes.NewReader(body))
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Value []byte
		Err   string
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, "", fmt.Errorf("HTTP %d %q: %w", resp.StatusCode, raw, err)
	}
	return out.Value, out.Err, nil
}

// wantSecret checks that e's plugin answers want for name now.
func wantSecret(t *testing.T, e *engine, name string, want []byte) {
	t.Helper()
	got, line, err := e.getSecret(name)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("manager %d answers %s = %q (error %q, %v), want %q", e.n, name, got, line, err, want)
	}
}

// leader returns the engine that leads, asking through any live one.
func (c *cluster) leader(ctx context.Context, via *engine) (*engine, error) {
	nodes, err := via.cli.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("role", "manager"))})
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if n.ManagerStatus != nil && n.ManagerStatus.Leader {
			for _, e := range c.engines {
				if e.nodeID == n.ID {
					return e, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no leader")
}

func (c *cluster) byNode(id string) *engine {
	for _, e := range c.engines {
		if e.nodeID == id {
			return e
		}
	}
	return nil
}

// readTaskSecret cats /run/secrets/target in a task's container, through
// the engine of the task's node.
func readTaskSecret(t *testing.T, tk swarm.Task, target string) []byte {
	t.Helper()
	e := C.byNode(tk.NodeID)
	if e == nil || tk.Status.ContainerStatus == nil {
		t.Fatalf("task %.12s: no engine or container", tk.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := e.cli.ContainerExecCreate(ctx, tk.Status.ContainerStatus.ContainerID, container.ExecOptions{
		Cmd: []string{"cat", "/run/secrets/" + target}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec in task %.12s on manager %d: %v", tk.ID, e.n, err)
	}
	att, err := e.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatal(err)
	}
	return stdout.Bytes()
}

// createService runs replicas sleepers of the test image with secret
// (driver swarmkeep) at /run/secrets/<secret>; removed at the end of t.
// A secret written "kv:NAME" is NAME in the etcd store (label
// swarmkeep.backend=kv), at /run/secrets/NAME; others are in the default
// (replicated) store.
func createService(t *testing.T, via *engine, name string, replicas uint64, secrets ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var refs []*swarm.SecretReference
	for _, s := range secrets {
		labels := map[string]string{}
		if n, ok := strings.CutPrefix(s, etcdName+":"); ok {
			s, labels["swarmkeep.backend"] = n, etcdName
		}
		labels["swarmkeep.name"] = s
		r, err := via.cli.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: name + "-" + s,
			Labels: labels}, Driver: &swarm.Driver{Name: plugin}})
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, &swarm.SecretReference{SecretID: r.ID, SecretName: name + "-" + s,
			File: &swarm.SecretReferenceFileTarget{Name: s, UID: "0", GID: "0", Mode: 0o444}})
	}
	grace, delay := time.Second, 500*time.Millisecond
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: image, Secrets: refs, StopGracePeriod: &grace,
				Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}
	r, err := via.cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// waitRunning waits until n tasks of service run (desired running, state
// running), asking via, and fails on timeout listing the tasks.
func waitRunning(t *testing.T, via *engine, service string, n int, timeout time.Duration, ok func(swarm.Task) bool) []swarm.Task {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []swarm.Task
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tasks, err := via.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", service))})
		cancel()
		if err == nil {
			var running []swarm.Task
			for _, tk := range tasks {
				if tk.DesiredState == swarm.TaskStateRunning && tk.Status.State == swarm.TaskStateRunning && (ok == nil || ok(tk)) {
					running = append(running, tk)
				}
			}
			if len(running) == n {
				return running
			}
			last = tasks
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, tk := range last {
				fmt.Fprintf(&b, "\n  %.12s node %.12s %s/%s %s", tk.ID, tk.NodeID, tk.DesiredState, tk.Status.State, tk.Status.Err)
			}
			t.Fatalf("service %s: not %d running tasks within %s:%s", service, n, timeout, b.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}
