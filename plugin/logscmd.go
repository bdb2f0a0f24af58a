package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

// followPoll is how often logs --follow looks for new lines in a file.
const followPoll = 250 * time.Millisecond

func init() {
	register("logs", command{
		summary: "show the plugin's lines from the engine's log (journal or dockerd log file)",
		usage: `Usage: swarmkeep logs [--follow] [--since T] [--file FILE] [--plugin NAME | --id ID] [--json]

Prints the plugin's lines from the engine's log: time, level, message. The
engine logs a plugin's output with its own (journalctl -u docker, or dockerd's
stderr), tagged plugin=<plugin id>; the engine's own warnings and errors
that name the plugin (an enable that failed, a dial error) are shown too,
marked [engine].
Where the log is: the dockerd process's stderr tells (/proc/PID/fd/2); a file
is read directly, the journal through journalctl -u <dockerd's unit>.

  --follow, -f     keep printing new lines (Ctrl-C stops)
  --since T        from T: RFC 3339, a date (UTC) or a duration ago (90m, 1h, 7d)
  --file FILE      read this dockerd log file (the engine's stderr, or a file
                   journalctl writes) instead of finding the log
  --plugin NAME    the plugin (default swarmkeep:latest); its id comes from the Docker API
  --id ID          the plugin id (or a prefix of it): skips the Docker API
  --json           one JSON object per line: time, level, engine, msg
`,
		run: runLogs,
	})
}

// logSource is where the engine's log is: a file or a journald unit.
type logSource struct {
	file string
	unit string
}

// Hooks for tests: where /proc is and how journalctl is run.
var (
	procRoot       = "/proc"
	journalCommand = func(ctx context.Context, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "journalctl", args...)
	}
)

func runLogs(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	var follow bool
	fs.BoolVar(&follow, "follow", false, "follow")
	fs.BoolVar(&follow, "f", false, "follow")
	since := fs.String("since", "", "start time")
	file := fs.String("file", "", "dockerd log file")
	name := fs.String("plugin", "swarmkeep:latest", "plugin name")
	id := fs.String("id", "", "plugin id")
	asJSON := fs.Bool("json", false, "JSON lines")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	var from time.Time
	if *since != "" {
		if from, err = parseWhen(*since, time.Now()); err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pid := *id
	if pid == "" {
		lctx, cancel := context.WithTimeout(ctx, statusTimeout)
		info, err := lookupPluginID(lctx, *name)
		cancel()
		if err != nil {
			return err
		}
		pid = info
	}
	if len(pid) < 12 {
		return fmt.Errorf("%w: --id needs at least 12 characters of the plugin id (docker plugin ls shows them)", errUsage)
	}
	src := logSource{file: *file}
	if src.file == "" {
		if src, err = findEngineLog(os.Getenv("DOCKER_HOST")); err != nil {
			return err
		}
	}
	print := printLogEntry(env.stdout, *asJSON)
	filter := func(line string) error {
		e, ok := matchPluginLine(line, pid)
		if !ok || (!from.IsZero() && !e.Time.IsZero() && e.Time.Before(from)) {
			return nil
		}
		return print(e)
	}
	if src.unit != "" {
		return readJournal(ctx, src.unit, from, follow, filter)
	}
	return readLogFile(ctx, src.file, follow, filter)
}

// lookupPluginID asks the daemon for the plugin's full id.
func lookupPluginID(ctx context.Context, name string) (string, error) {
	api, err := newPluginAPI()
	if err != nil {
		return "", fmt.Errorf("docker client: %w; fix: check DOCKER_HOST, or pass --id", err)
	}
	defer api.Close()
	p, _, err := api.PluginInspectWithRaw(ctx, name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("%v; or pass --id with the id of a plugin removed since", notFound(ctx, api, name))
		}
		return "", fmt.Errorf("cannot ask the Docker daemon for plugin %s: %w; fix: pass --id", name, err)
	}
	return p.ID, nil
}

// matchPluginLine keeps the plugin's lines and the engine's lines that
// name it, with the plugin's own level.
func matchPluginLine(line, id string) (logEntry, bool) {
	if !strings.Contains(line, id) {
		return logEntry{}, false
	}
	e, plugin, ok := parseEngineLine(line)
	if !ok {
		return logEntry{}, false
	}
	if strings.HasPrefix(plugin, id) {
		return pluginEntry(e), true
	}
	// The engine's own lines about the plugin: its failures only (an
	// enable that failed, a dial error); its container housekeeping at
	// info level is noise here.
	if e.Level != "warning" && e.Level != "error" && e.Level != "fatal" {
		return logEntry{}, false
	}
	e.Engine = true
	return e, true
}

func printLogEntry(w io.Writer, asJSON bool) func(logEntry) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return func(e logEntry) error { return enc.Encode(e) }
	}
	return func(e logEntry) error {
		t := "-"
		if !e.Time.IsZero() {
			t = e.Time.UTC().Format(time.RFC3339)
		}
		msg := e.Msg
		if e.Engine {
			msg = "[engine] " + msg
		}
		_, err := fmt.Fprintf(w, "%s  %-7s  %s\n", t, e.Level, msg)
		return err
	}
}

// findEngineLog finds where the dockerd serving host logs: its stderr,
// read from /proc. A file is read as is; a socket under systemd is the
// journal, read by the unit dockerd runs in.
func findEngineLog(host string) (logSource, error) {
	pid, err := findDockerd(host)
	if err != nil {
		return logSource{}, err
	}
	target, err := os.Readlink(filepath.Join(procRoot, pid, "fd", "2"))
	if err != nil {
		return logSource{}, fmt.Errorf("cannot see where dockerd (pid %s) writes its log: %w; fix: run as root, or pass --file", pid, err)
	}
	switch {
	case strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "/dev/"):
		return logSource{file: strings.TrimSuffix(target, " (deleted)")}, nil
	case strings.HasPrefix(target, "socket:") || strings.HasPrefix(target, "pipe:"):
		if unit := systemdUnit(pid); unit != "" {
			return logSource{unit: unit}, nil
		}
	}
	return logSource{}, fmt.Errorf("dockerd (pid %s) writes its log to %s, which swarmkeep cannot read; fix: pass --file with the file it ends up in", pid, target)
}

// findDockerd picks the dockerd serving host (DOCKER_HOST; empty: the
// default socket): the one whose -H names its socket, or the only one.
func findDockerd(host string) (string, error) {
	sock := strings.TrimPrefix(host, "unix://")
	if sock == "" {
		sock = "/var/run/docker.sock"
	}
	dirs, err := os.ReadDir(procRoot)
	if err != nil {
		return "", fmt.Errorf("cannot list processes: %w; fix: pass --file", err)
	}
	var all, named, plain []string
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join(procRoot, d.Name(), "comm"))
		if strings.TrimSpace(string(comm)) != "dockerd" {
			continue
		}
		all = append(all, d.Name())
		cmd, _ := os.ReadFile(filepath.Join(procRoot, d.Name(), "cmdline"))
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		hosts := hostArgs(args)
		for _, h := range hosts {
			if strings.TrimPrefix(h, "unix://") == sock {
				named = append(named, d.Name())
			}
		}
		if len(hosts) == 0 || (len(hosts) == 1 && strings.HasPrefix(hosts[0], "fd://")) {
			plain = append(plain, d.Name())
		}
	}
	switch {
	case len(named) == 1:
		return named[0], nil
	case len(all) == 1:
		return all[0], nil
	case len(named) == 0 && sock == "/var/run/docker.sock" && len(plain) == 1:
		return plain[0], nil
	case len(all) == 0:
		return "", errors.New("no dockerd runs on this host; fix: run on a manager, or pass --file with a copy of its log")
	}
	return "", fmt.Errorf("%d dockerd processes run here and none is plainly the one at %s; fix: pass --file", len(all), sock)
}

// hostArgs returns dockerd's -H/--host values.
func hostArgs(args []string) []string {
	var out []string
	for i, a := range args {
		for _, f := range []string{"-H", "--host"} {
			if a == f && i+1 < len(args) {
				out = append(out, args[i+1])
			} else if v, ok := strings.CutPrefix(a, f+"="); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// systemdUnit is the service unit a process runs in, from its cgroup
// (0::/system.slice/docker.service), or "".
func systemdUnit(pid string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, pid, "cgroup"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.LastIndexByte(l, '/'); i >= 0 && strings.HasSuffix(l, ".service") {
			return l[i+1:]
		}
	}
	return ""
}

// readLogFile passes each line of file to fn; with follow it then waits for
// more, and starts again from the top when the file is rotated or cut.
func readLogFile(ctx context.Context, file string, follow bool, fn func(string) error) error {
	f, err := os.Open(file)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("%w; fix: run as root (sudo swarmkeep logs)", err)
		}
		return err
	}
	defer func() { f.Close() }()
	r := bufio.NewReaderSize(f, 64<<10)
	var partial string
	for {
		line, err := r.ReadString('\n')
		if err == nil {
			if err := fn(partial + line); err != nil {
				return err
			}
			partial = ""
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		partial += line
		if !follow {
			if partial != "" {
				return fn(partial)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
		if rotated(f, file) {
			nf, err := os.Open(file)
			if err != nil {
				continue // between the rename and the new file
			}
			f.Close()
			f, partial = nf, ""
			r.Reset(f)
		}
	}
}

// rotated tells whether path is now another file than f, or f was cut
// below where it was read.
func rotated(f *os.File, path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	cur, err := f.Stat()
	if err != nil {
		return true
	}
	if !os.SameFile(st, cur) {
		return true
	}
	off, err := f.Seek(0, io.SeekCurrent)
	return err == nil && cur.Size() < off
}

// readJournal runs journalctl for unit's messages (-o cat: the engine's
// lines as written) and passes each line to fn.
func readJournal(ctx context.Context, unit string, from time.Time, follow bool, fn func(string) error) error {
	args := []string{"-u", unit, "-o", "cat", "--no-pager"}
	if !from.IsZero() {
		args = append(args, "--since", "@"+strconv.FormatInt(from.Unix(), 10))
	}
	if follow {
		args = append(args, "-f")
	}
	cmd := journalCommand(ctx, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journalctl: %w; fix: install systemd's journalctl, or pass --file", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var fnErr error
	for sc.Scan() {
		if fnErr = fn(sc.Text()); fnErr != nil {
			break
		}
	}
	if fnErr != nil {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	if fnErr != nil {
		return fnErr
	}
	if werr != nil && ctx.Err() == nil {
		return fmt.Errorf("journalctl -u %s: %w; fix: run as root or a systemd-journal member, or pass --file", unit, werr)
	}
	return nil
}
