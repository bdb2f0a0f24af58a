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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildBundle runs scripts/build-rootfs.sh into out and returns the plugin
// binary it built (static, stripped: what the managed plugin runs) and the
// total size of the files under out/rootfs.
func buildBundle(ctx context.Context, root, out string) (bin string, size int64, err error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "build-rootfs.sh"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("build-rootfs.sh: %v: %s", err, strings.TrimSpace(string(b)))
	}
	err = filepath.WalkDir(filepath.Join(out, "rootfs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			size += fi.Size()
		}
		return err
	})
	return filepath.Join(out, "rootfs", "swarmkeep"), size, err
}

// plugin is one `swarmkeep serve` process.
type plugin struct {
	cmd    *exec.Cmd
	sock   string
	client *http.Client
	start  time.Time
	ready  time.Duration // exec to first Activate answer
	exited chan error
}

// startPlugin execs bin serve with the store's settings in the environment,
// as the managed plugin gets them from config.json, and waits for the first
// successful /Plugin.Activate answer, dialling every millisecond.
func startPlugin(bin, sock, storeDir, keyFile, logFile string, conns int) (*plugin, error) {
	_ = os.Remove(sock)
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"SOCKET=" + sock, "STORE_DIR=" + storeDir, "KEY_FILE=" + keyFile,
		"LOG_LEVEL=info", "REQUEST_TIMEOUT=5s",
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &plugin{cmd: cmd, sock: sock, exited: make(chan error, 1)}
	// A fresh client per poll: no connection is kept from a failed try.
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- cmd.Wait() }()
	deadline := p.start.Add(10 * time.Second)
	for {
		if activate(probe) == nil {
			p.ready = time.Since(p.start)
			break
		}
		select {
		case err := <-p.exited:
			return nil, fmt.Errorf("swarmkeep serve exited before answering (%v): see %s", err, logFile)
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("no /Plugin.Activate answer in 10 s: see %s", logFile)
		}
		time.Sleep(time.Millisecond)
	}
	p.client = newClient(sock, conns)
	return p, nil
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

// memory reads the process's resident set (VmRSS) and its peak (VmHWM).
func (p *plugin) memory() (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
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

// stop sends SIGTERM, the way docker plugin disable does, and kills the
// process if it is not gone in 10 s.
func (p *plugin) stop() error {
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
		return errors.New("swarmkeep serve ignored SIGTERM for 10 s")
	}
}

// startTimes starts and stops the plugin n times and returns the best and
// the median time from exec to socket ready, plus the median time from exec
// to the first served GetSecret (the store opens in the background).
func startTimes(ctx context.Context, bin, dir, storeDir, keyFile string, n int) (best, median, firstGet time.Duration, err error) {
	var ready, gets []time.Duration
	tmpl := newBodyTemplate()
	for range n {
		p, err := startPlugin(bin, filepath.Join(dir, "start.sock"), storeDir, keyFile, filepath.Join(dir, "start.log"), 1)
		if err != nil {
			return 0, 0, 0, err
		}
		ready = append(ready, p.ready)
		err = p.target(1).get(ctx, 0, tmpl.body(nil, 0), nil)
		gets = append(gets, time.Since(p.start))
		if serr := p.stop(); err == nil && serr != nil {
			err = fmt.Errorf("stop: %w", serr)
		}
		if err != nil {
			return 0, 0, 0, err
		}
	}
	slices.Sort(ready)
	slices.Sort(gets)
	return ready[0], ready[len(ready)/2], gets[len(gets)/2], nil
}

func (p *plugin) target(n int) target { return target{client: p.client, n: n} }
