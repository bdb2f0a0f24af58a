package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const explainPolicy = `version: 1
rules:
  - name: payments-api
    match:
      stack: payments
      service_labels: {tier: backend}
      image: "registry.example.com/payments/*@sha256:*"
    allow: ["db/payments/*"]
    deny: ["payments/admin/**"]
  - name: everyone
    deny: ["root/**"]
`

func writePolicy(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyExplain(t *testing.T) {
	file := writePolicy(t, explainPolicy)
	env := map[string]string{envPolicyFile: file}
	api := []string{"policy", "explain", "--service", "payments_api", "--stack", "payments",
		"--service-label", "tier=backend", "--image", "registry.example.com/payments/api:1@sha256:ab", "--node", "n1"}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"rule allows", append(api, "db/payments/main"), []string{
			"ALLOW  db/payments/main", "rule:     payments-api", `reason:   rule "payments-api" allows db/payments/*`,
			"policy:   " + file + " (sha256:", "matching rules: payments-api, everyone",
			"labels com.docker.stack.namespace=payments,tier=backend"}},
		{"deny wins", append(api, "payments/admin/x"), []string{"DENY  payments/admin/x", "rule:     payments-api"}},
		{"stack default", append(api, "payments/db"), []string{"ALLOW", "rule:     default:stack-namespace"}},
		{"no match", []string{"policy", "explain", "other/x", "--service", "web"}, []string{
			"DENY  other/x", "rule:     -", "reason:   no rule grants it", "stack -", "matching rules: everyone"}},
		{"flag after name", []string{"policy", "explain", "x", "--service", "web", "--stack", "web"}, []string{"DENY", "matching rules: everyone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, env, "", tt.args...)
			// A denial exits 1, so a script does not read it as a
			// green light (it exited 0).
			want := 0
			if strings.HasPrefix(out, "DENY") {
				want = 1
			}
			if code != want || (want == 1) != strings.Contains(errOut, "denied") {
				t.Fatalf("exit %d, want %d: %s", code, want, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestPolicyExplainExitStatus(t *testing.T) {
	file := writePolicy(t, explainPolicy)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--service", "payments_api", "--stack", "payments", "payments/db"}, 0},
		{[]string{"--service", "web", "other/x"}, 1},
		{[]string{"--service", "web"}, 2},
		{[]string{"--service", "web", "--file", writePolicy(t, "version: 1\nrules: [{name: r, allow: [\"a/***\"]}]\n"), "x"}, 3},
	} {
		args := append([]string{"policy", "explain", "--file", file}, c.args...)
		if code, out, errOut := runCLI(t, nil, "", args...); code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, code, c.code, out, errOut)
		}
	}
}

func TestPolicyExplainDefault(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	code, out, errOut := runCLI(t, nil, "", "policy", "explain", "--file", missing, "--service", "web_front", "--stack", "web", "web/db")
	if code != 0 || !strings.Contains(out, "ALLOW  web/db") || !strings.Contains(out, "built-in default (builtin); "+missing+" does not exist") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestPolicyCheck(t *testing.T) {
	good := writePolicy(t, explainPolicy)
	code, out, _ := runCLI(t, map[string]string{envPolicyFile: good}, "", "policy", "check")
	if code != 0 || !strings.Contains(out, "ok: "+good) || !strings.Contains(out, "rules:   2 (payments-api, everyone)") {
		t.Fatalf("good: exit %d\n%s", code, out)
	}
	bad := writePolicy(t, "version: 1\nrules:\n  - name: r\n    allow: [\"a/***\"]\n")
	code, _, errOut := runCLI(t, nil, "", "policy", "check", "--file", bad)
	if code != 1 || !strings.Contains(errOut, bad+`:4: rule "r": allow[0]`) {
		t.Fatalf("bad: exit %d %q", code, errOut)
	}
	missing := filepath.Join(t.TempDir(), "none.yaml")
	code, _, errOut = runCLI(t, nil, "", "policy", "check", "--file", missing)
	if code != 1 || !strings.Contains(errOut, "no such file") || !strings.Contains(errOut, "built-in default") {
		t.Fatalf("missing: exit %d %q", code, errOut)
	}
}

func TestPolicyUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		prefix string
	}{
		{[]string{"policy", "--help"}, "Usage: swarmkeep policy COMMAND"},
		{[]string{"help", "policy"}, "Usage: swarmkeep policy COMMAND"},
		{[]string{"policy", "explain", "--help"}, "Usage: swarmkeep policy explain"},
		{[]string{"policy", "check", "-h"}, "Usage: swarmkeep policy check"},
	} {
		code, out, _ := runCLI(t, nil, "", c.args...)
		if code != 0 || !strings.HasPrefix(out, c.prefix) {
			t.Errorf("%v: exit %d %q", c.args, code, out)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"policy"}, "want a command"},
		{[]string{"policy", "frob"}, "unknown policy command (not shown"},
		{[]string{"policy", "explain", "x"}, "explain: usage: --service is required"},
		{[]string{"policy", "explain", "--service", "s"}, "want one STORED_NAME"},
		{[]string{"policy", "explain", "--service", "s", "--service-label", "novalue", "x"}, "want KEY=VALUE"},
		{[]string{"policy", "explain", "--service", "s", "--stack", "a", "--service-label", "com.docker.stack.namespace=b", "x"}, "contradicts"},
		{[]string{"policy", "check", "extra"}, "want no arguments"},
	} {
		code, _, errOut := runCLI(t, nil, "", c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "Usage: swarmkeep policy") {
			t.Errorf("%v: exit %d %q", c.args, code, errOut)
		}
	}
}
