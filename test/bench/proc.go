package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	srvpkg "github.com/swarmkeep/swarmkeep/driver/server"
)

// binaries are the programs the bench runs as processes of their own.
type binaries struct {
	// plugin is the shipped swarmkeep binary, built as `make build` and
	// the plugin bundle build it (static, -trimpath, -s -w).
	plugin string
	// null is test/bench/nullplugin, built the same way.
	null string
	// rootfs is the size of the plugin bundle's rootfs.
	rootfs int64
}

// build runs scripts/build-rootfs.sh into dir/bundle, which builds the
// shipped binary, and builds the null plugin next to it.
func build(ctx context.Context, root, dir string) (binaries, error) {
	out := filepath.Join(dir, "bundle")
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build-rootfs.sh"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("build-rootfs.sh: %v: %s", err, strings.TrimSpace(string(b)))
	}
	bins := binaries{plugin: filepath.Join(out, "rootfs", "swarmkeep"), null: filepath.Join(dir, "nullplugin")}
	err := filepath.WalkDir(filepath.Join(out, "rootfs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			bins.rootfs += fi.Size()
		}
		return err
	})
	if err != nil {
		return binaries{}, err
	}
	cmd = exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bins.null, "./test/bench/nullplugin")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("build the null plugin: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return bins, nil
}

// proc is one plugin process: the shipped `swarmkeep serve` or the null
// plugin.
type proc struct {
	name    string
	cmd     *exec.Cmd
	sock    string
	metrics string // the shipped plugin's METRICS_SOCKET; "" for the null plugin
	log     string
	client  *http.Client
	start   time.Time
	ready   time.Duration // exec to the first Activate answer
	exited  chan error
}

// shippedEnv is the environment of a `swarmkeep serve` named name: every
// setting at its default (audit on, the built-in policy, log level info,
// GOGC as serve sets it) except the paths, which point into dir/name, and
// extra (BACKENDS for the remote backends).
func shippedEnv(dir, name, storeDir, keyFile string, extra map[string]string) map[string]string {
	home := filepath.Join(dir, name)
	env := map[string]string{
		srvpkg.EnvSocket:        filepath.Join(dir, name+".sock"),
		srvpkg.EnvMetricsSocket: filepath.Join(dir, name+"-metrics.sock"),
		srvpkg.EnvStoreDir:      storeDir,
		srvpkg.EnvKeyFile:       keyFile,
		srvpkg.EnvLKGDir:        filepath.Join(home, "lkg"),
		srvpkg.EnvAuditFile:     filepath.Join(home, "audit", "audit.log"),
		// Absent: the built-in default policy, as on a fresh install.
		srvpkg.EnvPolicyFile: filepath.Join(home, "policy.yaml"),
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startShipped starts `swarmkeep serve` with env and waits until its socket
// answers.
func startShipped(bin, dir, name string, env map[string]string, conns int) (*proc, error) {
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	p := &proc{name: name, sock: env[srvpkg.EnvSocket], metrics: env[srvpkg.EnvMetricsSocket]}
	return p, p.run(exec.Command(bin, "serve"), list, filepath.Join(dir, name+".log"), conns)
}

// startNull starts the null plugin on dir/name.sock.
func startNull(bin, dir, name string, conns int) (*proc, error) {
	p := &proc{name: name, sock: filepath.Join(dir, name+".sock")}
	return p, p.run(exec.Command(bin, p.sock), nil, filepath.Join(dir, name+".log"), conns)
}

// run starts cmd with env only, its output in logFile, and waits for the
// first successful /Plugin.Activate answer, dialling every millisecond.
func (p *proc) run(cmd *exec.Cmd, env []string, logFile string, conns int) error {
	_ = os.Remove(p.sock)
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	p.cmd, p.log, p.exited = cmd, logFile, make(chan error, 1)
	// A fresh client per poll: no connection is kept from a failed try.
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.sock)
		},
	}}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { p.exited <- cmd.Wait() }()
	deadline := p.start.Add(10 * time.Second)
	for activate(probe) != nil {
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("%s exited before answering (%v); its log ends: %s", p.name, err, p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("%s: no /Plugin.Activate answer in 10 s; its log ends: %s", p.name, p.logTail())
		}
		time.Sleep(time.Millisecond)
	}
	p.ready = time.Since(p.start)
	p.client = newClient(p.sock, conns)
	return nil
}

func activate(c *http.Client) error {
	req, _ := http.NewRequest(http.MethodPost, "http://plugin/Plugin.Activate", nil)
	req.Header.Add("Accept", versionMimetype)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "secretprovider") {
		return fmt.Errorf("activate: status %d: %s", resp.StatusCode, b)
	}
	return nil
}

// pid is the process id, for /proc.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// target loads this process; names 0..n-1 are stored behind it, and the
// null plugin answers nullValue to all.
func (p *proc) target(n int) target {
	return target{client: p.client, n: n, pid: p.pid(), null: p.metrics == ""}
}

// stop sends SIGTERM, the way docker plugin disable does, and kills the
// process if it is not gone in 10 s.
func (p *proc) stop() error {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s ignored SIGTERM for 10 s", p.name)
	}
}

// memory reads the process's resident set (VmRSS) and its peak (VmHWM).
func (p *proc) memory() (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q", k, v)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("no VmRSS/VmHWM in /proc status")
	}
	return rss, hwm, sc.Err()
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time (utime + stime, all threads) process pid has
// used so far; pid 0 is this process, the load generator.
func cpuTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'; there the state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// logTail is the end of the process's log, for an error message.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}
