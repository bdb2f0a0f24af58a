package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

// TestServeHelpListsEverySetting: serve --help is generated from
// server.Settings; every setting, its help and its default reach the user.
func TestServeHelpListsEverySetting(t *testing.T) {
	code, usage, _ := runCLI(t, nil, "", "serve", "--help")
	if code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	for _, s := range server.Settings {
		line := "\n  " + s.Name + " "
		i := strings.Index(usage, line)
		if i < 0 {
			t.Errorf("serve --help lacks %s:\n%s", s.Name, usage)
			continue
		}
		entry := usage[i:]
		if !strings.Contains(entry, s.Help) || !strings.Contains(entry, "(default "+s.DefaultText()+")") {
			t.Errorf("serve --help: %s without its help or default %q", s.Name, s.DefaultText())
		}
	}
}

// TestBuiltInTypes: the binary registers the types its build tags keep
// (backend_*.go), and serve names a type this build lacks in one line.
func TestBuiltInTypes(t *testing.T) {
	for _, typ := range builtInTypes {
		if _, err := backend.Lookup(typ); err != nil {
			t.Errorf("type %s not registered: %v", typ, err)
		}
	}
	for _, typ := range []string{"etcd", "vault"} {
		if contains(builtInTypes, typ) {
			continue
		}
		env := map[string]string{server.EnvBackends: "shared:" + typ + "?address=https://127.0.0.1:1"}
		code, _, errOut := runCLI(t, env, "", "serve")
		if code != 1 || !strings.Contains(errOut, `unknown backend type "`+typ+`"`) || !strings.Contains(errOut, "known: file") {
			t.Errorf("serve with a %s backend in a build without it: exit %d, %q", typ, code, errOut)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// serve --stay-up with a broken setting keeps the socket and answers with
// the cause instead of exiting (the managed plugin's entrypoint); without
// the flag it exits 1 at once, as the tests above rely on.
func TestServeStayUp(t *testing.T) {
	dir, err := os.MkdirTemp("", "sks-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "p.sock")
	env := map[string]string{server.EnvSocket: sock, server.EnvMetricsSocket: filepath.Join(dir, "m.sock"), server.EnvAudit: "maybe"}
	type result struct {
		code        int
		out, errOut string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCLI(t, env, "", "serve", "--stay-up")
		done <- result{code, out, errOut}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no plugin socket")
		}
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Post("http://p/SecretProvider.GetSecret", "", strings.NewReader(`{"SecretName":"db"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), "AUDIT: want on or off") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, body)
	}
	// serve stops on SIGTERM, which it catches.
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	r := <-done
	if r.code != 0 || !strings.Contains(r.errOut, "plugin cannot serve") || !strings.Contains(r.out, "stopping on signal") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
	}
}
