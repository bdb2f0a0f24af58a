//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// Resilience: the plugin process dies under the engine (the engine restarts it), and the
// engine itself restarts (the plugin comes back enabled, the swarm from its data-root).

const (
	procTimeout    = 30 * time.Second // a killed plugin is running again
	restartTimeout = 60 * time.Second // dockerd stops / answers again
)

// ---- the plugin's process on this host ----

// proc names one process across pid reuse: its pid and its start time (clock ticks since
// boot, /proc/<pid>/stat field 22).
type proc struct {
	pid   int
	start uint64
}

func (p proc) String() string { return strconv.Itoa(p.pid) }

// procStat returns the state letter, parent pid and start time of pid.
func procStat(pid int) (state byte, ppid int, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	// "pid (comm) state ppid … starttime …": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ppid, _ = strconv.Atoi(f[1])
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], ppid, start, err
}

func procArgv(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// hasArgPair reports whether argv holds flag immediately followed by value.
func hasArgPair(argv []string, flag, value string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag && argv[i+1] == value {
			return true
		}
	}
	return false
}

// findPluginProc finds the running plugin process of plugin id on this host.
//
// The plugin is a container of the engine's containerd (namespace <ns>-plugins) whose
// container id is the plugin id; its init process runs the Entrypoint, /swarmkeep serve.
// A process is the plugin when its argv is [.../swarmkeep serve] and it belongs to the
// plugin id: its cgroup path is named after the container id (…/<plugin id>, whatever the
// cgroup driver adds around it), or its parent is the containerd shim started with
// -id <plugin id>. Other engines' swarmkeep plugins (parallel runs) have other ids. When
// containerd's own record of the task is readable (the private engine's state dir:
// …/io.containerd.runtime.v2.task/<ns>/<plugin id>/init.pid), its pid must be the one
// found; during a restart the two may briefly disagree, and the caller polls.
func findPluginProc(pluginID string) (proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return proc{}, err
	}
	var found []proc
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		argv := procArgv(pid)
		if len(argv) < 2 || filepath.Base(argv[0]) != "swarmkeep" || argv[1] != "serve" {
			continue
		}
		state, ppid, start, err := procStat(pid)
		if err != nil || state == 'Z' || state == 'X' {
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if strings.Contains(string(cg), pluginID) || hasArgPair(procArgv(ppid), "-id", pluginID) {
			found = append(found, proc{pid: pid, start: start})
		}
	}
	if E.private {
		matches, _ := filepath.Glob(filepath.Join(E.tmp, "engine", "exec", "containerd", "*", "io.containerd.runtime.v2.task", "*", pluginID, "init.pid"))
		if len(matches) == 1 {
			b, err := os.ReadFile(matches[0])
			if err != nil {
				return proc{}, err
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				return proc{}, fmt.Errorf("%s: %q", matches[0], b)
			}
			if len(found) != 1 || found[0].pid != pid {
				return proc{}, fmt.Errorf("containerd's task pid %d (%s) is not the plugin process found in /proc %v", pid, matches[0], found)
			}
		}
	}
	switch len(found) {
	case 0:
		return proc{}, fmt.Errorf("no running `swarmkeep serve` process of plugin %.12s", pluginID)
	case 1:
		return found[0], nil
	default:
		return proc{}, fmt.Errorf("%d `swarmkeep serve` processes of plugin %.12s: %v", len(found), pluginID, found)
	}
}

// waitPluginProc waits (bounded) for a running plugin process other than not (zero: any).
func waitPluginProc(t *testing.T, not proc, timeout time.Duration) proc {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := findPluginProc(E.pluginID)
		if err == nil && p != not {
			return p
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("still the old process %s", p)
			}
			t.Fatalf("plugin process (other than %v) within %s: %v\nplugin log:\n%s", not, timeout, err, E.pluginLogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killProc sends SIGKILL to p, after checking the pid still names the same process.
func killProc(t *testing.T, p proc) {
	t.Helper()
	if _, _, start, err := procStat(p.pid); err != nil || start != p.start {
		t.Fatalf("plugin process %s is gone before the kill (%v)", p, err)
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -KILL %d: %v", p.pid, err)
	}
	t.Logf("SIGKILL sent to the plugin process (pid %d)", p.pid)
}

// waitLogCount waits (bounded) until at least n plugin log lines after m contain sub
// (case-insensitive) and returns them.
func waitLogCount(t *testing.T, m logMark, n int, timeout time.Duration, sub string) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []string
		for _, l := range E.pluginLines(m) {
			if strings.Contains(strings.ToLower(l), strings.ToLower(sub)) {
				got = append(got, l)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d plugin log lines containing %q within %s, want at least %d; plugin log:\n%s", len(got), sub, timeout, n, E.pluginLogTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPluginEnabled waits (bounded) until the plugin is enabled, under the same id.
func waitPluginEnabled(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		p, _, err := E.cli.PluginInspectWithRaw(ctx, E.plugin)
		if err == nil && p.Enabled {
			if p.ID != E.pluginID {
				t.Fatalf("plugin %s has id %.12s, want %.12s", E.plugin, p.ID, E.pluginID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %s not enabled within %s (err %v)\nplugin log:\n%s", E.plugin, timeout, err, E.pluginLogTail(20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The plugin process is SIGKILLed (twice) while a service scales from 1 to 4: the engine
// restarts it each time, and the service converges to 4 running tasks with the exact value.
//
// The secret has swarmkeep.reuse=false: the plugin answers DoNotReuse, so the engine stores
// each task's copy under <secret>.<task> and a task can only start with an answer the plugin
// gave for that very task; a reusable secret could start a new task from the node's copy
// fetched for an earlier task, without the restarted plugin answering anything.
func TestPluginKilledWhileScaling(t *testing.T) {
	begin(t)
	name := uniq("kill_pw")
	value := []byte("survives a plugin kill: \x00\x01\xfe\xff\r\n")
	put(t, name, value)
	id := createSecret(t, name, map[string]string{"swarmkeep.reuse": "false"})
	svc := createService(t, svcName("kill"), 1, secretRef(id, name, "pw"))
	first := waitRunning(t, svc, 1, startTimeout, nil)
	assertSecretInTasks(t, first, "pw", value)

	if _, err := findPluginProc(E.pluginID); err != nil && !E.private && !E.ci {
		t.Skipf("the plugin's process is not visible from this test (%v); engine in another pid namespace?", err)
	}
	p0 := waitPluginProc(t, proc{}, 10*time.Second)
	t.Logf("plugin %.12s runs as pid %s", E.pluginID, p0)
	m := E.mark()
	scaleService(t, svc, 4)
	killProc(t, p0) // the new tasks' requests are being dispatched
	p1 := waitPluginProc(t, p0, procTimeout)
	t.Logf("the engine restarted the plugin: pid %s", p1)
	if E.dockerLog != "" {
		waitLogCount(t, m, 1, procTimeout, "swarmkeep serving")
		// Past the engine's post-start check (it dials the socket 500 ms after the start),
		// so the second kill hits a plugin the engine considers started, while the new
		// tasks are still being retried.
		time.Sleep(700 * time.Millisecond)
	} else {
		time.Sleep(2 * time.Second)
	}
	killProc(t, p1)
	p2 := waitPluginProc(t, p1, procTimeout)
	t.Logf("the engine restarted the plugin again: pid %s", p2)
	if needLog(t) {
		waitLogCount(t, m, 2, procTimeout, "swarmkeep serving")
	}
	waitPluginEnabled(t, 10*time.Second)

	tasks := waitRunning(t, svc, 4, startTimeout, nil)
	assertSecretInTasks(t, tasks, "pw", value)
	added := notIn(tasks, taskIDs(first))
	if needLog(t) {
		// Every task started after the kills got its own answer (DoNotReuse) from the plugin.
		for _, tk := range added {
			waitLogRe(t, m, logTimeout, doNotReuseField, "secret served", "secret="+name, tk.ID)
		}
	}
	// The last process is the one serving, and it stayed up.
	if p, err := findPluginProc(E.pluginID); err != nil || p != p2 {
		t.Errorf("plugin process after convergence: %v (err %v), want pid %s still running", p, err, p2)
	}
	code, resp := callPlugin(t, getSecretRequest{SecretName: name, SecretLabels: map[string]string{"swarmkeep.reuse": "false"}, TaskID: "e2ekill"})
	if code != 200 || resp.Err != "" || !bytes.Equal(resp.Value, value) {
		t.Errorf("GetSecret to the restarted plugin: HTTP %d %+v, want 200 and value %q", code, resp, value)
	}
	// Whether the kills hit the engine's calls for the new tasks (timing decides; the
	// outcome must be the same): its failed dials to the plugin socket.
	t.Logf("the engine's calls to the plugin failed to connect %d time(s) during the kills",
		len(engineLines(m, "Unable to connect to plugin", E.pluginID)))
	if all, err := tasksOf(ctxFor(t, 10*time.Second), svc); err == nil {
		t.Logf("tasks of the service (%d running, %d added):%s", len(tasks), len(added), describeTasks(all))
	}
}

// engineLines returns the engine log's lines after m (not only the plugin's) containing
// every one of subs.
func engineLines(m logMark, subs ...string) []string {
	if E.dockerLog == "" {
		return nil
	}
	b, err := os.ReadFile(E.dockerLog)
	if err != nil || int64(len(b)) < int64(m) {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b[m:]), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// ---- restarting the private engine ----

// privateEngineDir is the directory TestMain gave to scripts/dockerd.sh start, resolved as
// the script resolves it (realpath): its dockerd's --pidfile is named from it.
func privateEngineDir() string {
	dir := filepath.Join(E.tmp, "engine")
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return real
	}
	return dir
}

// engineAnswers reports whether the engine answers a ping now (a fresh connection).
func engineAnswers() bool {
	E.cli.Close() // drops idle connections only; the client stays usable
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := E.cli.Ping(ctx)
	return err == nil
}

// stopPrivateDockerd stops the private dockerd as scripts/dockerd.sh stop does (SIGTERM to
// the pid in DIR/dockerd.pid, checked to be the dockerd of DIR), but without leaving the
// swarm and without cleaning anything: the swarm, the plugin and the images stay in the
// data-root. It returns how long the stop took.
func stopPrivateDockerd(t *testing.T, dir string) time.Duration {
	t.Helper()
	pidfile := filepath.Join(dir, "dockerd.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("private dockerd pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !hasArgPair(procArgv(pid), "--pidfile", pidfile) {
		t.Fatalf("pid %q of %s is not the private dockerd (argv %q)", b, pidfile, procArgv(pid))
	}
	began := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("kill -TERM dockerd %d: %v", pid, err)
	}
	gone := func() bool {
		state, _, _, err := procStat(pid)
		return err != nil || state == 'Z' || state == 'X'
	}
	deadline := began.Add(restartTimeout)
	for !gone() {
		if time.Now().After(deadline) {
			// As dockerd.sh stop does; the restart below is still tested.
			t.Errorf("dockerd (pid %d) still running %s after SIGTERM: killing it", pid, restartTimeout)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(2 * time.Second)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(began)
}

// startPrivateDockerd starts the private dockerd again with scripts/dockerd.sh start DIR:
// the same data-root, exec-root, pidfile, socket, containerd namespaces and flags as
// TestMain's. The swarm is already in the data-root, so the script does not init one (it
// only runs swarm init when the node is not active). The client's idle connections, to
// the old process, are dropped.
func startPrivateDockerd(ctx context.Context, dir string) error {
	out, err := runCmd(ctx, E.root, nil, nil, filepath.Join(E.root, "scripts", "dockerd.sh"), "start", dir)
	E.cli.Close()
	if err != nil {
		return err
	}
	if got, want := strings.TrimSpace(lastLine(out)), "DOCKER_HOST="+os.Getenv("DOCKER_HOST"); got != want {
		return fmt.Errorf("dockerd.sh start printed %q, want %q", got, want)
	}
	return nil
}

// waitSwarmManager waits (bounded) until the engine is an active swarm manager again.
func waitSwarmManager(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx := ctxFor(t, timeout+10*time.Second)
	deadline := time.Now().Add(timeout)
	for {
		info, err := E.cli.Info(ctx)
		if err == nil && info.Swarm.LocalNodeState == swarm.LocalNodeStateActive && info.Swarm.ControlAvailable {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine not an active swarm manager within %s: state %q control %v err %v (log %s)",
				timeout, info.Swarm.LocalNodeState, info.Swarm.ControlAvailable, err, E.dockerLog)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// containerRuns reports whether the task's container exists and runs on the engine now.
func containerRuns(tk swarm.Task) bool {
	if tk.Status.ContainerStatus == nil || tk.Status.ContainerStatus.ContainerID == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := E.cli.ContainerInspect(ctx, tk.Status.ContainerStatus.ContainerID)
	return err == nil && c.State != nil && c.State.Running
}

// The private dockerd restarts (without leaving the swarm): the plugin comes back enabled
// and serving, the existing service's tasks run again with the exact value, a new service
// gets its value, and a value put after the restart reaches a new task.
//
// After a daemon restart the engine re-enables the plugin with no HTTP timeout on its
// calls, and every node session asks again for the secrets of all its tasks: the plugin's
// own REQUEST_TIMEOUT is then the only bound on an answer.
func TestDockerdRestart(t *testing.T) {
	begin(t)
	if !E.private {
		t.Skip("restarting the engine needs the private dockerd the suite starts (DOCKER_HOST unset, root); this engine is not ours to restart")
	}
	dir := privateEngineDir()
	if _, err := os.Stat(filepath.Join(dir, "dockerd.pid")); err != nil {
		t.Fatalf("private engine directory %s: %v", dir, err)
	}
	name := uniq("restart_pw")
	v1 := []byte("before the restart \x00\xff\n")
	put(t, name, v1)
	id := createSecret(t, name, nil)
	svc := createService(t, svcName("restart"), 2, secretRef(id, name, "pw"))
	before := waitRunning(t, svc, 2, startTimeout, nil)
	assertSecretInTasks(t, before, "pw", v1)
	p0 := waitPluginProc(t, proc{}, 10*time.Second)

	// Whatever happens below, the tests after this one need the engine back.
	t.Cleanup(func() {
		if engineAnswers() {
			return
		}
		t.Errorf("the private engine does not answer after the test: starting it again")
		ctx, cancel := context.WithTimeout(context.Background(), restartTimeout+10*time.Second)
		defer cancel()
		if err := startPrivateDockerd(ctx, dir); err != nil {
			t.Errorf("starting the private dockerd again: %v", err)
		}
	})

	m := E.mark()
	took := stopPrivateDockerd(t, dir)
	t.Logf("private dockerd stopped in %s", took.Round(time.Millisecond))
	began := time.Now()
	ctx := ctxFor(t, restartTimeout+10*time.Second)
	if err := startPrivateDockerd(ctx, dir); err != nil {
		if !engineAnswers() {
			t.Fatalf("starting the private dockerd again: %v", err)
		}
		// E.g. the script saw the node still "pending" and tried swarm init: the swarm
		// from the data-root decides below.
		t.Logf("dockerd.sh start failed but the engine answers: %v", err)
	}
	waitSwarmManager(t, 30*time.Second)
	t.Logf("private dockerd answers again, swarm manager active, in %s", time.Since(began).Round(time.Millisecond))

	// The plugin: enabled under the same id, a new process, a new "serving" line.
	waitPluginEnabled(t, 30*time.Second)
	p1 := waitPluginProc(t, p0, procTimeout)
	t.Logf("plugin process: pid %s before, pid %s after the restart", p0, p1)
	if needLog(t) {
		waitLog(t, m, procTimeout, "swarmkeep serving")
	}

	// The existing service runs again, with the value the plugin serves after the restart.
	// Right after the restart the store still says the old tasks run, in containers that
	// are gone, until the agent reports them: only tasks with a live container count.
	after := waitRunning(t, svc, 2, startTimeout, containerRuns)
	assertSecretInTasks(t, after, "pw", v1)
	if needLog(t) {
		// The engine's memory of secrets is gone: each running task was answered after the
		// restart (a task kept across it was asked for again by the new node session).
		for _, tk := range after {
			waitLog(t, m, logTimeout, "secret served", "secret="+name, tk.ID)
		}
		reasked := 0
		for _, tk := range before {
			for _, l := range E.pluginLines(m) {
				if strings.Contains(l, "secret served") && strings.Contains(l, tk.ID) {
					reasked++
					break
				}
			}
		}
		t.Logf("%d of the %d tasks from before the restart were asked for again by the new node session; %d running tasks now, %d of them new",
			reasked, len(before), len(after), len(notIn(after, taskIDs(before))))
	}

	// A new service with a new driver secret.
	name2 := uniq("restart_new")
	v2 := []byte("created after the restart")
	put(t, name2, v2)
	id2 := createSecret(t, name2, nil)
	svc2 := createService(t, svcName("restart-new"), 1, secretRef(id2, name2, "pw2"))
	assertSecretInTasks(t, waitRunning(t, svc2, 1, startTimeout, nil), "pw2", v2)

	// A value put now reaches the next tasks of the existing service.
	v3 := []byte("put after the restart")
	put(t, name, v3)
	old := taskIDs(after)
	updateService(t, svc, func(s *swarm.ServiceSpec) { s.TaskTemplate.ForceUpdate++ })
	fresh := waitRunning(t, svc, 2, startTimeout, func(tk swarm.Task) bool { return !old[tk.ID] })
	assertSecretInTasks(t, fresh, "pw", v3)
}
