package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// A plugin whose settings are broken keeps its socket and says why: the
// engine's GetSecret gets the secret, the cause and the fix; /health says
// degraded with the cause and lists the request; the log has the line.
// Before, serve exited and the engine said only "dial unix ...".
func TestBrokenAnswersWithCause(t *testing.T) {
	dir, err := os.MkdirTemp("", "skb-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, msock := filepath.Join(dir, "p.sock"), filepath.Join(dir, "m.sock")
	env := map[string]string{EnvSocket: sock, EnvMetricsSocket: msock, EnvRequestTimeout: "99h"}
	getenv := func(k string) string { return env[k] }
	_, cause := Load(getenv)
	if cause == nil {
		t.Fatal("Load accepted REQUEST_TIMEOUT=99h")
	}
	var logs lockedBuffer
	b := NewBroken(getenv, cause, NewLogger(&logs, logrus.InfoLevel), "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	}()
	waitSocket(t, sock)
	waitSocket(t, msock)

	body := `{"SecretName":"db_pw","ServiceName":"api","TaskID":"t1","TaskName":"api.1.t1","SecretLabels":{"x":"y"}}`
	resp, err := engineClient(sock).Post("http://plugin/SecretProvider.GetSecret", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got driver.Response
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || len(got.Value) != 0 ||
		!strings.Contains(got.Err, `secret "db_pw"`) || !strings.Contains(got.Err, "REQUEST_TIMEOUT") ||
		!strings.Contains(got.Err, "fix: "+BrokenFix) || strings.Contains(got.Err, "\n") {
		t.Fatalf("GetSecret: HTTP %d %+v", resp.StatusCode, got)
	}
	resp, err = engineClient(sock).Post("http://plugin/Plugin.Activate", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var act bytes.Buffer
	act.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(act.String(), "secretprovider") {
		t.Fatalf("activate: %q", act.String())
	}

	resp, err = engineClient(msock).Get("http://plugin/health")
	if err != nil {
		t.Fatal(err)
	}
	var h metrics.Health
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || h.Status != metrics.StatusDegraded ||
		!strings.Contains(h.Problem, "REQUEST_TIMEOUT") || !strings.Contains(h.Problem, BrokenFix) ||
		len(h.RecentErrors) != 1 || h.RecentErrors[0].Secret != "db_pw" || h.RecentErrors[0].Line != got.Err {
		t.Fatalf("health: HTTP %d %+v", resp.StatusCode, h)
	}
	if l := logs.String(); !strings.Contains(l, strings.ReplaceAll(got.Err, `"`, "'")+" ") || !strings.Contains(l, "task_id=t1") {
		t.Fatalf("log:\n%s", l)
	}
}

// The sockets are the settings' where they are valid, else the defaults.
func TestBrokenSockets(t *testing.T) {
	for _, tc := range []struct {
		env             map[string]string
		sock, msock, ad string
	}{
		{map[string]string{}, "/run/docker/plugins/swarmkeep.sock", metrics.DefaultSocket, ""},
		{map[string]string{EnvSocket: "a/b", EnvMetricsSocket: "x/y", EnvMetricsAddr: "10.0.0.1:1"}, "/run/docker/plugins/swarmkeep.sock", metrics.DefaultSocket, ""},
		{map[string]string{EnvSocket: "sk", EnvMetricsSocket: "m", EnvMetricsAddr: "127.0.0.1:9714"}, "/run/docker/plugins/sk.sock", "/run/docker/plugins/m.sock", "127.0.0.1:9714"},
	} {
		s, m, a := brokenSockets(func(k string) string { return tc.env[k] })
		if s != tc.sock || m != tc.msock || a != tc.ad {
			t.Errorf("%v: %s %s %s", tc.env, s, m, a)
		}
	}
}

func waitSocket(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s", path)
		}
	}
}
