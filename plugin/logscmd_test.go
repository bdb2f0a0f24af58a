package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Lines of a real engine's log (dockerd 20.10.24): the old plugin's lines
// (id 7ff18a…, logrus text inside the engine's, all at level=error), the
// engine's failed enable, and the current plugin's plain lines (e553a7…).
const (
	oldID = "7ff18a164b4f70eedee9a95dc428e9d1e3495e359af3c9a4b5fa25411a1ea459"
	newID = "e553a77d25c37edc67845a0f26a5815f3f50e55e2d6098eee0b4964199c9da19"
)

func TestLogsFromRealEngineLog(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want []string // "LEVEL [engine] message prefix"
	}{
		{oldID, []string{
			"info audit trail open file=/var/lib/swarmkeep/audit/audit.log",
			"info access policy loaded policy=\"built-in default\" policy_hash=builtin",
			"warning swarmkeep: secret \"missing_pw\": backend local: record \"missing_pw\": not found; fix: store it",
			"error swarmkeep serve: bad settings (fix with docker plugin set): REQUEST_TIMEOUT",
			"error [engine] Handler for POST /v1.41/plugins/swarmkeep/enable returned error: dial unix /run/docker/plugins/" + oldID,
		}},
		{newID[:12], []string{
			"info audit trail open file=/var/lib/swarmkeep/audit/audit.log",
			"warning swarmkeep: secret 'missing_pw': backend local: record 'missing_pw': not found; fix: store it",
			"error plugin cannot serve, answering every request with the cause: bad settings",
			"warning [engine] cleaning up after shim disconnected id=" + newID,
		}},
	} {
		code, out, errOut := runCLI(t, nil, "", "logs", "--file", "testdata/dockerd-20.10.log", "--id", tc.id, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e logEntry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			if e.Time.IsZero() {
				t.Errorf("no time: %q", l)
			}
			s := e.Level + " "
			if e.Engine {
				s += "[engine] "
			}
			got = append(got, s+e.Msg)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d lines, want %d:\n%s", tc.id, len(got), len(tc.want), strings.Join(got, "\n"))
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tc.want[i]) {
				t.Errorf("line %d:\n got %s\nwant %s…", i, got[i], tc.want[i])
			}
		}
	}
	// The table: time, level, message; --since drops what is older.
	code, out, _ := runCLI(t, nil, "", "logs", "--file", "testdata/dockerd-20.10.log", "--id", newID, "--since", "2026-12-04T20:25:10Z")
	want := "2026-12-04T20:25:14Z  warning  [engine] cleaning up after shim disconnected"
	if code != 0 || !strings.Contains(out, want) || strings.Contains(out, "audit trail open") ||
		!strings.Contains(out, "2026-12-04T20:25:15Z  error    plugin cannot serve") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, nil, "", "logs", "--file", "testdata/dockerd-20.10.log", "--id", "e553"); code != 2 || !strings.Contains(errOut, "12 characters") {
		t.Fatalf("short id: exit %d %s", code, errOut)
	}
}

// --follow prints lines appended later, and from the top of a rotated file.
func TestLogsFollowFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dockerd.log")
	line := func(msg string) string {
		return `time="2026-12-04T20:25:05Z" level=info msg="` + msg + `" plugin=` + newID + "\n"
	}
	os.WriteFile(file, []byte(line("first")), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- readLogFile(ctx, file, true, func(l string) error {
			if e, ok := matchPluginLine(l, newID); ok {
				got <- e.Msg
			}
			return nil
		})
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %q", want)
		}
	}
	expect("first")
	f, _ := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(line("second")[:20]) // a line written in two parts
	time.Sleep(2 * followPoll)
	f.WriteString(line("second")[20:])
	f.Close()
	expect("second")
	os.Rename(file, file+".1")
	os.WriteFile(file, []byte(line("after rotation")), 0o600)
	expect("after rotation")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The log is found from dockerd's stderr: a file is read, a socket under a
// systemd unit is the journal of that unit.
func TestFindEngineLog(t *testing.T) {
	root := t.TempDir()
	defer func(old string) { procRoot = old }(procRoot)
	procRoot = root
	proc := func(pid, cmdline, fd2, cgroup string) {
		d := filepath.Join(root, pid)
		os.MkdirAll(filepath.Join(d, "fd"), 0o755)
		os.WriteFile(filepath.Join(d, "comm"), []byte("dockerd\n"), 0o644)
		os.WriteFile(filepath.Join(d, "cmdline"), []byte(strings.ReplaceAll(cmdline, " ", "\x00")+"\x00"), 0o644)
		os.WriteFile(filepath.Join(d, "cgroup"), []byte(cgroup), 0o644)
		os.Symlink(fd2, filepath.Join(d, "fd", "2"))
	}
	proc("100", "/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock", "socket:[4711]", "0::/system.slice/docker.service\n")
	proc("200", "dockerd --data-root /tmp/x/data -H unix:///tmp/x/docker.sock", "/tmp/x/dockerd.log", "0::/user.slice\n")
	os.MkdirAll(filepath.Join(root, "300"), 0o755)
	os.WriteFile(filepath.Join(root, "300", "comm"), []byte("containerd\n"), 0o644)

	if src, err := findEngineLog(""); err != nil || src.unit != "docker.service" || src.file != "" {
		t.Errorf("default engine: %+v %v", src, err)
	}
	if src, err := findEngineLog("unix:///tmp/x/docker.sock"); err != nil || src.file != "/tmp/x/dockerd.log" {
		t.Errorf("private engine: %+v %v", src, err)
	}
	if _, err := findEngineLog("unix:///tmp/other.sock"); err == nil || !strings.Contains(err.Error(), "--file") {
		t.Errorf("unknown engine: %v", err)
	}
}

// The journal is read with journalctl -u UNIT -o cat, from --since.
func TestLogsJournal(t *testing.T) {
	defer func(old func(context.Context, ...string) *exec.Cmd) { journalCommand = old }(journalCommand)
	var args []string
	journalCommand = func(ctx context.Context, a ...string) *exec.Cmd {
		args = a
		return exec.CommandContext(ctx, "cat", "testdata/dockerd-20.10.log")
	}
	var lines []string
	from := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	err := readJournal(context.Background(), "docker.service", from, false, func(l string) error {
		if e, ok := matchPluginLine(l, newID); ok {
			lines = append(lines, e.Level+" "+e.Msg)
		}
		return nil
	})
	if err != nil || len(lines) != 4 {
		t.Fatalf("%v %q", err, lines)
	}
	if strings.Join(args, " ") != "-u docker.service -o cat --no-pager --since @1796414400" {
		t.Fatalf("journalctl %q", args)
	}
}

// An engine at --log-format json (25.0 and later) writes its own lines as
// JSON; the plugin's stay logrus text (a logger of their own).
func TestParseEngineJSONLine(t *testing.T) {
	line := `{"level":"error","msg":"Handler for POST /v1.47/plugins/swarmkeep/enable returned error: dial unix /run/docker/plugins/` + newID + `/swarmkeep.sock: connect: no such file or directory","time":"2026-12-04T20:11:38.775355079Z"}`
	e, ok := matchPluginLine(line, newID)
	if !ok || !e.Engine || e.Level != "error" || e.Time.IsZero() || !strings.HasPrefix(e.Msg, "Handler for POST") {
		t.Fatalf("%v %+v", ok, e)
	}
	if _, ok := matchPluginLine(`{"level":"info","msg":"shim disconnected","id":"`+newID+`"}`, newID); ok {
		t.Fatal("the engine's info line about the plugin kept")
	}
	if _, _, ok := parseEngineLine("not a log line " + newID); ok {
		t.Fatal("a line that is not logfmt parsed")
	}
}
