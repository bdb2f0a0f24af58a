//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

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
