//go:build e2e

package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

var (
	pluginDisableForce = types.PluginDisableOptions{Force: true}
	pluginRemoveForce  = types.PluginRemoveOptions{Force: true}
)

func pluginCreateOptions(name string) types.PluginCreateOptions {
	return types.PluginCreateOptions{RepoName: name}
}

func pluginEnableTimeout(sec int) types.PluginEnableOptions {
	return types.PluginEnableOptions{Timeout: sec}
}

// runCmd runs a command in dir with optional extra env and stdin; it returns stdout, and an
// error carrying stderr when the command fails.
func runCmd(ctx context.Context, dir string, extraEnv []string, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// tarDir makes an uncompressed tar of dir (relative paths), as `docker plugin create` does.
func tarDir(dir string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// tarFiles makes a tar of in-memory files.
func tarFiles(files map[string][]byte, modes map[string]int64) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if m, ok := modes[n]; ok {
			mode = m
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// buildTestImage builds test/testbox (FROM scratch + static busybox) with the legacy
// builder through the API; nothing is pulled.
func buildTestImage(ctx context.Context, cli *client.Client, root, tag string) error {
	dockerfile, err := os.ReadFile(filepath.Join(root, "test", "testbox", "Dockerfile"))
	if err != nil {
		return err
	}
	bbPath := os.Getenv("BUSYBOX")
	if bbPath == "" {
		bbPath = "/bin/busybox"
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil || !bytes.HasPrefix(bb, []byte("\x7fELF")) {
		if os.Geteuid() == 0 {
			logf("installing busybox-static (apt-get)")
			if _, err := runCmd(ctx, "/", []string{"DEBIAN_FRONTEND=noninteractive"}, nil, "apt-get", "update"); err != nil {
				return err
			}
			if _, err := runCmd(ctx, "/", []string{"DEBIAN_FRONTEND=noninteractive"}, nil, "apt-get", "install", "-y", "busybox-static"); err != nil {
				return err
			}
			bb, err = os.ReadFile("/bin/busybox")
		}
		if err != nil {
			return fmt.Errorf("need a static busybox at %s (apt-get install -y busybox-static): %w", bbPath, err)
		}
	}
	tarball, err := tarFiles(map[string][]byte{"Dockerfile": dockerfile, "busybox": bb}, map[string]int64{"busybox": 0o755})
	if err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, tarball, build.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The body is a JSON message stream; an error arrives as {"error": …}.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("reading build output: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build: %s", msg.Error)
		}
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("image %s missing after build: %w", tag, err)
	}
	return nil
}

// ---- per-test helpers ----

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uniq makes a name unique to this run (secret and stored names are global in a store/swarm).
func uniq(base string) string { return base + "_" + E.runID }

// cliRun runs the operator CLI against the run's store and key.
func cliRun(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	// The store and key come from the environment the CLI documents (SWARMKEEP_STORE,
	// SWARMKEEP_KEY_FILE), so the flags' position does not matter.
	out, err := runCmd(ctx, E.tmp, E.cliEnv(), stdin, E.swarmkeep, args...)
	if err != nil {
		t.Fatalf("swarmkeep %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cliEnv points the operator commands at the test plugin's store, key and
// audit trail (put and rm add operator records to it), never the host's.
func (e *env) cliEnv() []string {
	return []string{"SWARMKEEP_STORE=" + e.storeDir, "SWARMKEEP_KEY_FILE=" + e.keyFile,
		"SWARMKEEP_AUDIT_FILE=" + filepath.Join(e.stateDir, "audit", "audit.log")}
}

// put stores value under name with `swarmkeep put NAME` reading stdin; the value is recorded
// for the leak scan (leak_test.go).
func put(t *testing.T, name string, value []byte) {
	t.Helper()
	recordValue("put "+name, value)
	cliRun(t, value, "put", name)
}

// createSecret creates a driver secret named name with labels (plus the run label) and
// removes it when the test ends (after the test's services, which are cleaned up first).
func createSecret(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	l := map[string]string{runLabel: E.runID}
	for k, v := range labels {
		l[k] = v
	}
	resp, err := E.cli.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: name, Labels: l},
		Driver:      &swarm.Driver{Name: E.plugin},
	})
	if err != nil {
		t.Fatalf("SecretCreate %s (driver %s): %v", name, E.plugin, err)
	}
	t.Cleanup(func() { removeSecret(t, resp.ID) })
	return resp.ID
}

func removeSecret(t *testing.T, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = E.cli.SecretRemove(ctx, id); err == nil || cerrdefs.IsNotFound(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("warning: removing secret %s: %v", id, err)
}

// secretRef mounts secret (id, name) at /run/secrets/<target>.
func secretRef(id, name, target string) *swarm.SecretReference {
	return &swarm.SecretReference{
		SecretID:   id,
		SecretName: name,
		File:       &swarm.SecretReferenceFileTarget{Name: target, UID: "0", GID: "0", Mode: 0o444},
	}
}

// sleeper is the task command: a shell that exits at once on SIGTERM.
var sleeper = []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}

// createService creates a replicated service of the test image running a sleeper with the
// given secrets; restarts are quick so failing tasks retry fast. It is removed when the test
// ends.
func createService(t *testing.T, name string, replicas uint64, secrets ...*swarm.SecretReference) string {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	grace := time.Second
	delay := 500 * time.Millisecond
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{runLabel: E.runID}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           E.image,
				Command:         sleeper,
				Secrets:         secrets,
				StopGracePeriod: &grace,
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}
	resp, err := E.cli.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("ServiceCreate %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := E.cli.ServiceRemove(ctx, resp.ID); err != nil && !cerrdefs.IsNotFound(err) {
			t.Logf("warning: removing service %s: %v", name, err)
		}
	})
	return resp.ID
}

// updateService applies mutate to the current spec of service id.
func updateService(t *testing.T, id string, mutate func(*swarm.ServiceSpec)) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	svc, _, err := E.cli.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("ServiceInspect %s: %v", id, err)
	}
	spec := svc.Spec
	mutate(&spec)
	resp, err := E.cli.ServiceUpdate(ctx, id, svc.Version, spec, swarm.ServiceUpdateOptions{QueryRegistry: false})
	if err != nil {
		t.Fatalf("ServiceUpdate %s: %v", id, err)
	}
	for _, w := range resp.Warnings {
		t.Logf("ServiceUpdate warning: %s", w)
	}
}

func tasksOf(ctx context.Context, serviceID string) ([]swarm.Task, error) {
	return E.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
}

func describeTasks(tasks []swarm.Task) string {
	var b strings.Builder
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Meta.CreatedAt.Before(tasks[j].Meta.CreatedAt) })
	for _, tk := range tasks {
		fmt.Fprintf(&b, "\n  task %.12s slot %d desired=%s state=%s msg=%q err=%q", tk.ID, tk.Slot, tk.DesiredState, tk.Status.State, tk.Status.Message, tk.Status.Err)
	}
	return b.String()
}

// waitRunning waits (bounded) until service has exactly n running tasks (desired running,
// state running, with a container) for which ok returns true; it returns them.
func waitRunning(t *testing.T, serviceID string, n int, timeout time.Duration, ok func(swarm.Task) bool) []swarm.Task {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	var last []swarm.Task
	for {
		tasks, err := tasksOf(ctx, serviceID)
		if err != nil {
			t.Fatalf("TaskList: %v", err)
		}
		last = tasks
		var run []swarm.Task
		pending := 0
		for _, tk := range tasks {
			if tk.DesiredState != swarm.TaskStateRunning {
				continue
			}
			if tk.Status.State == swarm.TaskStateRunning && tk.Status.ContainerStatus != nil &&
				tk.Status.ContainerStatus.ContainerID != "" && (ok == nil || ok(tk)) {
				run = append(run, tk)
			} else {
				pending++
			}
		}
		if len(run) == n && pending == 0 {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %.12s: want %d running tasks within %s; tasks:%s\nplugin log:\n%s",
				serviceID, n, timeout, describeTasks(last), E.pluginLogTail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitTaskFailed waits (bounded) for a task of service that failed or was rejected with a
// non-empty error, and returns it.
func waitTaskFailed(t *testing.T, serviceID string, timeout time.Duration) swarm.Task {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := tasksOf(ctx, serviceID)
		if err != nil {
			t.Fatalf("TaskList: %v", err)
		}
		for _, tk := range tasks {
			if (tk.Status.State == swarm.TaskStateFailed || tk.Status.State == swarm.TaskStateRejected) && tk.Status.Err != "" {
				return tk
			}
			if tk.Status.State == swarm.TaskStateRunning {
				t.Fatalf("service %.12s: task %.12s is running, want it to fail; tasks:%s", serviceID, tk.ID, describeTasks(tasks))
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %.12s: no failed task within %s; tasks:%s\nplugin log:\n%s", serviceID, timeout, describeTasks(tasks), E.pluginLogTail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// execIn runs cmd in container id and returns stdout, stderr and the exit code.
func execIn(t *testing.T, id string, cmd ...string) ([]byte, []byte, int) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	ex, err := E.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create in %.12s: %v", id, err)
	}
	att, err := E.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach: %v", err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader); err != nil {
		t.Fatalf("exec output: %v", err)
	}
	for {
		insp, err := E.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			t.Fatalf("exec inspect: %v", err)
		}
		if !insp.Running {
			return stdout.Bytes(), stderr.Bytes(), insp.ExitCode
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containerOf(t *testing.T, tk swarm.Task) string {
	t.Helper()
	if tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.ContainerID == "" {
		t.Fatalf("task %.12s has no container", tk.ID)
	}
	return tk.Status.ContainerStatus.ContainerID
}

// readSecretFile returns /run/secrets/<target> as seen inside the task's container.
func readSecretFile(t *testing.T, tk swarm.Task, target string) []byte {
	t.Helper()
	out, errOut, code := execIn(t, containerOf(t, tk), "cat", "/run/secrets/"+target)
	if code != 0 {
		t.Fatalf("task %.12s: cat /run/secrets/%s: exit %d: %s", tk.ID, target, code, errOut)
	}
	return out
}

// assertSecretInTasks checks that every task sees exactly want at /run/secrets/<target>.
// want is recorded for the leak scan: it covers values seeded straight into a remote backend.
func assertSecretInTasks(t *testing.T, tasks []swarm.Task, target string, want []byte) {
	t.Helper()
	recordValue("served at /run/secrets/"+target, want)
	for _, tk := range tasks {
		got := readSecretFile(t, tk, target)
		if !bytes.Equal(got, want) {
			t.Errorf("task %.12s /run/secrets/%s = %q, want %q", tk.ID, target, got, want)
		}
	}
}

func hasSecret(tk swarm.Task, secretID string) bool {
	if tk.Spec.ContainerSpec == nil {
		return false
	}
	for _, s := range tk.Spec.ContainerSpec.Secrets {
		if s.SecretID == secretID {
			return true
		}
	}
	return false
}

// ---- plugin log (lines of the engine log tagged plugin=<id>) ----

// logMark is a position in the engine log; assertions look at lines after it.
type logMark int64

func (e *env) mark() logMark {
	if e.dockerLog == "" {
		return 0
	}
	st, err := os.Stat(e.dockerLog)
	if err != nil {
		return 0
	}
	return logMark(st.Size())
}

// pluginLines returns the plugin's lines in the engine log after m.
func (e *env) pluginLines(m logMark) []string {
	if e.dockerLog == "" || e.pluginID == "" {
		return nil
	}
	f, err := os.Open(e.dockerLog)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(int64(m), io.SeekStart); err != nil {
		return nil
	}
	tag := "plugin=" + e.pluginID
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), tag) {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

func (e *env) pluginLogTail(n int) string {
	lines := e.pluginLines(0)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "  (no plugin log: " + e.pluginLogHint() + ")"
	}
	return "  " + strings.Join(lines, "\n  ")
}

// needLog reports whether log assertions can run; without a log they are skipped (the rest
// of the test still runs), and in CI that is a failure.
func needLog(t *testing.T) bool {
	t.Helper()
	if E.dockerLog != "" {
		return true
	}
	if E.ci {
		t.Errorf("log assertion impossible: engine log unknown (set SWARMKEEP_E2E_DOCKERD_LOG)")
	} else {
		t.Logf("NOTE: skipping the plugin-log assertion: set SWARMKEEP_E2E_DOCKERD_LOG to the engine's log file")
	}
	return false
}

// waitLog waits (bounded) for a plugin log line after m containing every one of subs
// (case-insensitive) and returns it.
func waitLog(t *testing.T, m logMark, timeout time.Duration, subs ...string) string {
	t.Helper()
	return waitLogRe(t, m, timeout, nil, subs...)
}

// waitLogRe is waitLog with a regular expression the line must also match (nil: none).
func waitLogRe(t *testing.T, m logMark, timeout time.Duration, re *regexp.Regexp, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range E.pluginLines(m) {
			ll := strings.ToLower(l)
			all := re == nil || re.MatchString(l)
			for _, s := range subs {
				if !all || !strings.Contains(ll, strings.ToLower(s)) {
					all = false
					break
				}
			}
			if all {
				return l
			}
		}
		if time.Now().After(deadline) {
			if re != nil {
				subs = append(subs, "/"+re.String()+"/")
			}
			lines := E.pluginLines(m)
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			t.Fatalf("no plugin log line containing all of %q within %s; plugin lines since the test began:\n  %s",
				subs, timeout, strings.Join(lines, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---- direct calls to the plugin socket (what the engine sends) ----

type getSecretRequest struct {
	SecretName    string            `json:",omitempty"`
	SecretLabels  map[string]string `json:",omitempty"`
	ServiceName   string            `json:",omitempty"`
	ServiceID     string            `json:",omitempty"`
	ServiceLabels map[string]string `json:",omitempty"`
	TaskID        string            `json:",omitempty"`
	TaskName      string            `json:",omitempty"`
	TaskImage     string            `json:",omitempty"`
	NodeID        string            `json:",omitempty"`
}

type getSecretResponse struct {
	Value      []byte
	Err        string
	DoNotReuse bool
}

// pluginSocket is where the engine dials the plugin (exec root is fixed for plugins).
func (e *env) pluginSocket() string {
	return filepath.Join("/run/docker/plugins", e.pluginID, "swarmkeep.sock")
}

// callPlugin sends POST /SecretProvider.GetSecret to the running plugin over its unix socket.
func callPlugin(t *testing.T, req getSecretRequest) (int, getSecretResponse) {
	t.Helper()
	sock := E.pluginSocket()
	if _, err := os.Stat(sock); err != nil {
		if E.ci {
			t.Fatalf("plugin socket not reachable from the test: %v", err)
		}
		t.Skipf("plugin socket not reachable from the test (%v); engine on another host?", err)
	}
	hc := &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	body, _ := json.Marshal(req)
	hreq, _ := http.NewRequest(http.MethodPost, "http://plugin.moby.localhost/SecretProvider.GetSecret", bytes.NewReader(body))
	hreq.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := hc.Do(hreq)
	if err != nil {
		t.Fatalf("GetSecret over %s: %v", sock, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out getSecretResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("GetSecret: HTTP %d, body %q: %v", resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}
