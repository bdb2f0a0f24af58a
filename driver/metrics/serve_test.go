package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// unixClient talks HTTP over the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

func fetch(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// freePort finds a loopback port no one listens on; Serve does not report
// the port it bound, which is fine for a configured one.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestServeUnixAndTCP(t *testing.T) {
	m := newTest(t)
	m.SetBackendReady("local", nil)
	m.SetBackendReady("shared", nil)
	m.Observe(ev("local", driver.ClassNotFound, time.Millisecond))
	sock := filepath.Join(t.TempDir(), "run", "m.sock")
	addr := freePort(t)
	stop, err := Serve(context.Background(), sock, addr, m.Handler())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(sock)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o660 {
		t.Fatalf("socket %v %v", st.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(sock), ".metrics-*")); len(left) != 0 {
		t.Fatalf("temporary folders left: %v", left)
	}

	code, body := fetch(t, unixClient(sock), "http://metrics/health")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); code != http.StatusOK || err != nil {
		t.Fatalf("/health over the socket: %d %v", code, err)
	}
	if len(h.RecentErrors) != 1 || h.RecentErrors[0].Secret != "app_db" || h.RecentErrors[0].Line == "" {
		t.Fatalf("the root-only socket shows every detail: %+v", h.RecentErrors)
	}
	if code, body := fetch(t, http.DefaultClient, "http://"+addr+"/health"); code != http.StatusOK || strings.Contains(body, "app_db") {
		t.Fatalf("/health over TCP: %d %s", code, body)
	}
	if code, body := fetch(t, http.DefaultClient, "http://"+addr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "swarmkeep_build_info") {
		t.Fatalf("/metrics over TCP: %d", code)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("TCP port still open after stop")
	}
}

func TestServeStopsWithContext(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := Serve(ctx, sock, "", newTest(t).Handler()); err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(sock); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("socket still there after the context ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // a crash leaves the file behind
	stop, err := Serve(context.Background(), sock, "", newTest(t).Handler())
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer stop()
	if code, _ := fetch(t, unixClient(sock), "http://metrics/metrics"); code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}

	// A socket someone answers on is not stale.
	if _, err := Serve(context.Background(), sock, "", newTest(t).Handler()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on a live socket: %v", err)
	}
}

func TestServeKeepsOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	os.WriteFile(path, []byte("precious"), 0o400)
	if _, err := Serve(context.Background(), path, "", newTest(t).Handler()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("socket over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("the file was replaced")
	}
}

func TestServeRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9714", ":9714", "10.0.0.1:9714", "[::]:9714", "example.com:9714", "127.0.0.1", "127.0.0.1:http"} {
		sock := filepath.Join(t.TempDir(), "m.sock")
		stop, err := Serve(context.Background(), sock, addr, newTest(t).Handler())
		if err == nil {
			stop()
			t.Errorf("%s accepted", addr)
			continue
		}
		// It names the setting's part, not what it holds (the setting may
		// hold anything; the error reaches /health).
		// (The hint itself says 127.0.0.1:9714, hence the cut.)
		msg := strings.ReplaceAll(err.Error(), "like 127.0.0.1:9714", "")
		if !strings.Contains(msg, "metrics address") || strings.Contains(msg, addr) {
			t.Errorf("%s: error does not name the metrics address, or repeats it: %v", addr, err)
		}
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: socket made before the address was refused", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:9714", "127.1.2.3:0", "[::1]:9714", "localhost:9714"} {
		if err := CheckAddr(addr); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
	if err := CheckAddr("0.0.0.0:9714"); !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("unclear refusal: %v", err)
	}
}

func TestResolveSocket(t *testing.T) {
	for in, want := range map[string]string{
		"":                  DefaultSocket,
		"stats":             "/run/docker/plugins/stats.sock",
		"/run/x/../m.sock":  "/run/m.sock",
		"sub/m.sock":        "",
		`c:\windows\m.sock`: "",
	} {
		got, err := ResolveSocket(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ResolveSocket(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestStopLeavesANewerSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	stop, err := Serve(context.Background(), sock, "", newTest(t).Handler())
	if err != nil {
		t.Fatal(err)
	}
	// A restarted plugin took the path over before this one stopped.
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stop removed the newer socket: %v", err)
	}
}

// TestHealthOverTCPOmitsStoresAndProblem: the loopback port, open to every
// local user, must neither make the plugin read its stores (a digest reads
// every record) nor show the problem text (it may quote a setting).
func TestHealthOverTCPOmitsStoresAndProblem(t *testing.T) {
	const problem = "plugin cannot serve: BACKENDS: PROBLEMTEXT"
	var calls atomic.Int64
	m := New(Options{Version: "1.2.3", Backends: []string{"local"}, Problem: problem,
		Stores: func() map[string]backend.StoreDigest {
			calls.Add(1)
			return map[string]backend.StoreDigest{"local": {ID: "id", Names: 1, Digest: "d1"}}
		}})
	m.SetBackendReady("local", nil)
	sock := filepath.Join(t.TempDir(), "m.sock")
	addr := freePort(t)
	stop, err := Serve(context.Background(), sock, addr, m.Handler())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	code, body := fetch(t, http.DefaultClient, "http://"+addr+"/health")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusServiceUnavailable || h.Status != StatusDegraded {
		t.Fatalf("/health over TCP: %d %v %s", code, err, body)
	}
	if n := calls.Load(); n != 0 || h.Stores != nil || strings.Contains(body, `"stores"`) {
		t.Fatalf("/health over TCP computed store digests (%d calls): %s", n, body)
	}
	if h.Problem != "" || strings.Contains(body, "PROBLEMTEXT") {
		t.Fatalf("/health over TCP shows the problem text: %s", body)
	}

	code, body = fetch(t, unixClient(sock), "http://metrics/health")
	h = Health{}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("/health over the socket: %d %v", code, err)
	}
	if calls.Load() != 1 || h.Stores["local"].Digest != "d1" || h.Problem != problem {
		t.Fatalf("the root-only socket shows stores and the problem: %s", body)
	}
}
