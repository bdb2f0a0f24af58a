package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// writeTrail writes records made at the given ages before now.
func writeTrail(t *testing.T, file string, now time.Time, evs map[time.Duration]driver.Event) {
	t.Helper()
	var b []byte
	for _, age := range []time.Duration{3 * time.Hour, 2 * time.Hour, 30 * time.Minute, 10 * time.Minute, time.Minute} {
		ev, ok := evs[age]
		if !ok {
			continue
		}
		j, err := json.Marshal(audit.FromEvent(ev, now.Add(-age)))
		if err != nil {
			t.Fatal(err)
		}
		b = append(append(b, j...), '\n')
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func auditEvent(secret, service string, class driver.Class) driver.Event {
	return driver.Event{
		Request: &driver.Request{SecretName: secret, ServiceName: service, ServiceID: "sid-" + service,
			TaskName: service + ".1.x1ovn4mhwp8dcl0yn8qzmm2mq", TaskID: "x1ovn4mhwp8dcl0yn8qzmm2mq", NodeID: "n7c2kq4dxh2mtl9vqzj1ex0rp"},
		Spec: driver.Spec{Name: strings.TrimPrefix(secret, "app_")}, Backend: "local", Class: class,
		Latency: 1234 * time.Microsecond,
	}
}

func sampleTrail(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "audit.log")
	ok := auditEvent("app_db", "app_web", driver.ClassOK)
	ok.Version, ok.Cached = 3, true
	stale := auditEvent("app_db", "app_worker", driver.ClassOK)
	stale.Version, stale.Stale, stale.Age = 2, true, 125*time.Second
	denied := auditEvent("ops_token", "ops_cron", driver.ClassDenied)
	denied.Backend = "vault"
	writeTrail(t, file, time.Now(), map[time.Duration]driver.Event{
		3 * time.Hour: ok, 2 * time.Hour: auditEvent("app_key", "app_web", driver.ClassNotFound),
		30 * time.Minute: denied, time.Minute: stale,
	})
	return file
}

func TestAuditTable(t *testing.T) {
	file := sampleTrail(t)
	code, out, errOut := runCLI(t, nil, "", "audit", "--file", file)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || strings.Join(strings.Fields(lines[0]), " ") != "TIME SECRET STORED@VERSION SERVICE TASK NODE DECISION CLASS CACHED LATENCY" {
		t.Fatalf("table:\n%s", out)
	}
	first := strings.Fields(lines[1])
	if strings.Join(first[1:], " ") != "app_db db@3 app_web app_web.1 n7c2kq4dxh2m allow ok yes 1.234ms" || !strings.HasSuffix(first[0], "Z") {
		t.Fatalf("row %q", lines[1])
	}
	if !strings.Contains(lines[4], "stale 2m5s") || !strings.Contains(lines[3], "deny") || !strings.Contains(lines[2], "not_found") {
		t.Fatalf("rows:\n%s", out)
	}
	// Columns line up: every row starts its SECRET column where the header does.
	col := strings.Index(lines[0], "SECRET")
	for _, l := range lines[1:] {
		if l[col-2:col] != "  " || l[col] == ' ' {
			t.Fatalf("misaligned:\n%s", out)
		}
	}
}

func TestAuditFilters(t *testing.T) {
	file := sampleTrail(t)
	env := map[string]string{"SWARMKEEP_AUDIT_FILE": file}
	since := time.Now().Add(-90 * time.Minute).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		args []string
		want []string // secrets, in order
	}{
		{nil, []string{"app_db", "app_key", "ops_token", "app_db"}},
		{[]string{"--secret", "app_*"}, []string{"app_db", "app_key", "app_db"}},
		{[]string{"--secret", "key"}, []string{"app_key"}}, // the stored name
		{[]string{"--service", "app_w*", "--decision", "allow"}, []string{"app_db", "app_db"}},
		{[]string{"--decision", "deny"}, []string{"ops_token"}},
		{[]string{"--decision", "error"}, []string{"app_key"}},
		{[]string{"--backend", "vault"}, []string{"ops_token"}},
		{[]string{"--since", "1h"}, []string{"ops_token", "app_db"}},
		{[]string{"--since", since}, []string{"ops_token", "app_db"}},
		{[]string{"--until", "90m"}, []string{"app_db", "app_key"}},
		{[]string{"--since", "1d", "--until", "15m", "--service", "sid-ops_cron"}, []string{"ops_token"}},
		{[]string{"--secret", "nothing"}, nil},
	} {
		code, out, errOut := runCLI(t, env, "", append([]string{"audit", "--json"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l == "" {
				continue
			}
			var r audit.Record
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.V != 1 {
				t.Fatalf("%v: line %q: %v", tc.args, l, err)
			}
			got = append(got, r.Secret)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%v: got %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestAuditAllReadsTheRotatedFileFirst(t *testing.T) {
	file := sampleTrail(t)
	if err := os.Rename(file, file+".1"); err != nil {
		t.Fatal(err)
	}
	writeTrail(t, file, time.Now(), map[time.Duration]driver.Event{time.Minute: auditEvent("app_new", "app_web", driver.ClassOK)})
	_, out, _ := runCLI(t, nil, "", "audit", "--file", file)
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "app_new") {
		t.Fatalf("without --all:\n%s", out)
	}
	code, out, _ := runCLI(t, nil, "", "audit", "--file", file, "--all", "--decision", "allow")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.Contains(lines[3], "app_new") {
		t.Fatalf("with --all:\n%s", out)
	}
	// --all without a rotated file reads the one there is.
	os.Remove(file + ".1")
	if code, out, _ := runCLI(t, nil, "", "audit", "--file", file, "--all"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Fatalf("--all alone: %d\n%s", code, out)
	}
}

func TestAuditErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.log")
	code, _, errOut := runCLI(t, nil, "", "audit", "--file", missing)
	if code != 1 || !strings.Contains(errOut, "no audit trail at "+missing) || !strings.Contains(errOut, "--file") {
		t.Fatalf("missing: %d %q", code, errOut)
	}
	for _, args := range [][]string{{"--decision", "maybe"}, {"--since", "yesterday"}, {"--secret", "[a"}, {"extra"}, {"--since", "1h", "--until", "2h"}} {
		code, _, errOut := runCLI(t, nil, "", append([]string{"audit", "--file", missing}, args...)...)
		if code != 2 || !strings.Contains(errOut, "Usage: swarmkeep audit") {
			t.Errorf("%v: %d %q", args, code, errOut)
		}
	}
	notTrail := filepath.Join(dir, "plugin.log")
	os.WriteFile(notTrail, []byte("time=\"2025\" level=info msg=hello\n"), 0o600)
	if code, _, errOut := runCLI(t, nil, "", "audit", "--file", notTrail); code != 1 || !strings.Contains(errOut, "not an audit trail") {
		t.Fatalf("not a trail: %d %q", code, errOut)
	}
	// A torn last line is skipped with a note, not an error.
	file := sampleTrail(t)
	f, _ := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"v":1,"time":"20`)
	f.Close()
	code, out, errOut := runCLI(t, nil, "", "audit", "--file", file)
	if code != 0 || strings.Count(out, "\n") != 5 || !strings.Contains(errOut, "skipped 1 damaged line") {
		t.Fatalf("torn: %d %q\n%s", code, errOut, out)
	}
	if code, out, _ := runCLI(t, nil, "", "audit", "--help"); code != 0 || !strings.HasPrefix(out, "Usage: swarmkeep audit") {
		t.Fatalf("help: %d %q", code, out)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2025-03-01T08:00:00Z":        time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC),
		"2025-03-01T09:00:00.5+01:00": time.Date(2025, 3, 1, 8, 0, 0, 5e8, time.UTC),
		"2025-03-01":                  time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC),
		"90m":                         now.Add(-90 * time.Minute),
		"7d":                          now.AddDate(0, 0, -7),
		"0s":                          now,
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "d", "-2d", "tomorrow", "2025-13-01"} {
		if _, err := parseWhen(in, now); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}
