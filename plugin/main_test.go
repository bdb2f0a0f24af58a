package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/server"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestMain keeps the tests away from any Docker daemon on the host: a test
// that needs one stands in for it with useDocker.
func TestMain(m *testing.M) {
	newPluginAPI = func() (pluginAPI, error) { return nil, errors.New("no Docker daemon in tests") }
	// Operator records go to a trail whose state folder does not exist
	// (so none is written), unless a test names one: never the host's.
	dir, err := os.MkdirTemp("", "swarmkeep-test-")
	if err != nil {
		panic(err)
	}
	operatorTrailDefault = dir + "/absent/audit/audit.log"
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the binary's command line in-process.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: envOf(env),
		lookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	code = run(e, args)
	return code, out.String(), errb.String()
}

func TestHelpAndDispatch(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "--help")
	if code != 0 {
		t.Fatalf("help exit %d", code)
	}
	for _, c := range []string{"serve", "init", "put", "get", "ls", "rm", "rekey", "verify", "version", "audit", "status", "check", "policy"} {
		if !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("help lacks %s:\n%s", c, out)
		}
		code, usage, _ := runCLI(t, nil, "", c, "--help")
		if code != 0 || !strings.HasPrefix(usage, "Usage: swarmkeep "+c) {
			t.Errorf("%s --help: exit %d, %q", c, code, usage)
		}
	}
	if code, _, errOut := runCLI(t, nil, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "", "put"); code != 2 || !strings.Contains(errOut, "want NAME") {
		t.Fatalf("put without name: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "", "get", "a", "b"); code != 2 || !strings.Contains(errOut, "Usage:") {
		t.Fatalf("get two names: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, nil, "", "ls", "--bogus"); code != 2 || !strings.Contains(errOut, "argument 1 is not a flag") || strings.Contains(errOut, "bogus") {
		t.Fatalf("bad flag: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, map[string]string{server.EnvLogLevel: "loud"}, "", "serve"); code != 1 || !strings.Contains(errOut, "LOG_LEVEL") {
		t.Fatalf("serve bad env: %d %q", code, errOut)
	}
}
