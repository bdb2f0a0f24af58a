package main

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseFormat(t *testing.T) {
	for _, ok := range []string{"", "table", "json", " json ", "{{.Name}}", "x {{json .}} y"} {
		if _, err := parseFormat(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	// A word that is no template is refused rather than printed per line
	// (docker prints it): it could be a value typed in the wrong place.
	for _, bad := range []string{sentinel, "{{.Name", "{{nofunc .}}"} {
		_, err := parseFormat(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "S3cret") {
			t.Errorf("%q: error quotes it: %v", bad, err)
		}
	}
}

func TestPrintFormatted(t *testing.T) {
	type item struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	items := []item{{"a<b>", 1}, {"c", 2}}
	table := func(w io.Writer) error { _, err := io.WriteString(w, "TABLE\n"); return err }
	for _, c := range []struct {
		format string
		v      any
		want   string
	}{
		{"", items, "TABLE\n"},
		{"table", items, "TABLE\n"},
		{"json", items, "{\"name\":\"a<b>\",\"n\":1}\n{\"name\":\"c\",\"n\":2}\n"},
		{"json", items[1], "{\n  \"name\": \"c\",\n  \"n\": 2\n}\n"},
		{"{{.Name}}={{.N}}", items, "a<b>=1\nc=2\n"},
		{"{{upper .Name}} {{json .}}", items[1], "C {\"name\":\"c\",\"n\":2}\n"},
		{"{{truncate .Name 2}}|{{lower \"X\"}}", items[0], "a<|x\n"},
	} {
		var out bytes.Buffer
		if err := printFormatted(&out, c.format, c.v, table); err != nil {
			t.Fatalf("%q: %v", c.format, err)
		}
		if out.String() != c.want {
			t.Errorf("%q: got %q, want %q", c.format, out.String(), c.want)
		}
	}
	// A field the struct lacks is an error, not an empty string: a typo
	// must not pass for "no such data".
	var out bytes.Buffer
	if err := printFormatted(&out, "{{.Value}}", items, nil); err == nil || !strings.Contains(err.Error(), "Value") {
		t.Fatalf("missing field: %v, %q", err, out.String())
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "", "--version")
	if code != 0 || !strings.HasPrefix(out, "swarmkeep version "+version) || !strings.Contains(out, runtime.Version()) ||
		!strings.Contains(out, "file") || strings.Count(out, "\n") != 1 {
		t.Fatalf("--version: %d %q %q", code, out, errOut)
	}
	if _, out2, _ := runCLI(t, nil, "", "-v"); out2 != out {
		t.Fatalf("-v: %q", out2)
	}
	out = mustRun(t, nil, "", "version")
	for _, want := range []string{"Version:     " + version, "Go version:  " + runtime.Version(), "OS/Arch:     " + runtime.GOOS + "/" + runtime.GOARCH, "Backends:    ", "file"} {
		if !strings.Contains(out, want) {
			t.Errorf("version lacks %q:\n%s", want, out)
		}
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(mustRun(t, nil, "", "version", "--format", "json")), &v); err != nil || v.Version != version || v.GoVersion != runtime.Version() {
		t.Fatalf("version json: %+v %v", v, err)
	}
	if got := mustRun(t, nil, "", "version", "--format", "{{.OS}}/{{.Arch}}"); got != runtime.GOOS+"/"+runtime.GOARCH+"\n" {
		t.Fatalf("version template: %q", got)
	}
	// The commit given at build time, shortened on the --version line.
	defer func(c string) { commit = c }(commit)
	commit = "0123456789abcdef0123"
	if _, out, _ := runCLI(t, nil, "", "--version"); !strings.Contains(out, ", build 0123456789ab ") {
		t.Fatalf("--version with a commit: %q", out)
	}
}

// TestLsFormats: names sorted whatever the order they were put in, -q,
// prefix filters (--prefix and docker's --filter name=), --format json and
// templates, for names and for one name's versions; never a value.
func TestLsFormats(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	values := map[string]string{}
	for i, n := range []string{"zeta", "app/tls/key", "beta", "app/db", "apple"} {
		v := "value-" + n + "-" + strings.Repeat("x", i)
		values[n] = v
		mustRun(t, env, v, "put", n)
	}
	mustRun(t, env, "second", "put", "app/db")

	table := mustRun(t, env, "", "ls")
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	var names []string
	for _, l := range lines[1:] {
		names = append(names, strings.Fields(l)[0])
	}
	if got := strings.Join(names, " "); got != "app/db app/tls/key apple beta zeta" {
		t.Fatalf("ls order: %s\n%s", got, table)
	}
	if got := mustRun(t, env, "", "ls", "-q"); got != "app/db\napp/tls/key\napple\nbeta\nzeta\n" {
		t.Fatalf("ls -q: %q", got)
	}
	if got := mustRun(t, env, "", "ls", "-q", "--prefix", "app/"); got != "app/db\napp/tls/key\n" {
		t.Fatalf("ls --prefix app/: %q", got)
	}
	if got := mustRun(t, env, "", "ls", "--quiet", "--filter", "name=app", "-f", "name=z"); got != "app/db\napp/tls/key\napple\nzeta\n" {
		t.Fatalf("ls --filter: %q", got)
	}
	if got := mustRun(t, env, "", "ls", "--prefix", "app/", "--format", "{{.Name}} {{.Versions}} {{.Latest}} {{.Size}}"); got != "app/db 2 2 6\napp/tls/key 1 1 "+strconv.Itoa(len(values["app/tls/key"]))+"\n" {
		t.Fatalf("ls template: %q", got)
	}
	jl := mustRun(t, env, "", "ls", "--format", "json")
	var got []lsEntry
	for _, l := range strings.Split(strings.TrimSuffix(jl, "\n"), "\n") {
		var e lsEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("ls json line %q: %v", l, err)
		}
		got = append(got, e)
	}
	if len(got) != 5 || got[0].Name != "app/db" || got[0].Versions != 2 || got[0].Size != 6 || time.Since(got[0].Updated) > time.Hour {
		t.Fatalf("ls json: %+v", got)
	}
	if got := mustRun(t, env, "", "ls", "app/db", "-q"); got != "1\n2\n" {
		t.Fatalf("ls NAME -q: %q", got)
	}
	if got := mustRun(t, env, "", "ls", "app/db", "--format", "{{.Name}}@{{.Version}}:{{.Size}}"); got != "app/db@1:"+strconv.Itoa(len(values["app/db"]))+"\napp/db@2:6\n" {
		t.Fatalf("ls NAME template: %q", got)
	}
	for _, out := range []string{table, jl, mustRun(t, env, "", "ls", "app/db", "--format", "json"), mustRun(t, env, "", "ls", "--format", "{{json .}}")} {
		for n, v := range values {
			if strings.Contains(out, v) || strings.Contains(out, "second") {
				t.Fatalf("ls shows the value of %s:\n%s", n, out)
			}
		}
	}
	for _, bad := range [][]string{
		{"ls", "-q", "--format", "json"},
		{"ls", "app/db", "--prefix", "a"},
		{"ls", "--filter", "label=x"},
		{"ls", "--format", "{{.Value}}"},
	} {
		if code, _, _ := runCLI(t, env, "", bad...); code == 0 {
			t.Errorf("%v: exit 0", bad)
		}
	}
}

// TestGetFormat: get still writes the value; with --format it prints the
// metadata and no format can reach the value.
func TestGetFormat(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "first-value", "put", "db")
	mustRun(t, env, "second-value!", "put", "db")
	if got := mustRun(t, env, "", "get", "db"); got != "second-value!" {
		t.Fatalf("get: %q", got)
	}
	var info getInfo
	if err := json.Unmarshal([]byte(mustRun(t, env, "", "get", "db", "--format", "json")), &info); err != nil ||
		info.Name != "db" || info.Version != 2 || info.Size != 13 || info.Kept != 2 || info.Created.IsZero() {
		t.Fatalf("get --format json: %+v %v", info, err)
	}
	if got := mustRun(t, env, "", "get", "db", "--version", "1", "--format", "{{.Version}} {{.Size}} {{.Kept}}"); got != "1 11 2\n" {
		t.Fatalf("get --version 1 template: %q", got)
	}
	table := mustRun(t, env, "", "get", "db", "--format", "table")
	if !strings.Contains(table, "version:  2 (of 2 kept)") || !strings.Contains(table, "size:     13 bytes") {
		t.Fatalf("get --format table: %q", table)
	}
	for _, f := range []string{"json", "table", "{{json .}}", "{{printf \"%v\" .}}"} {
		out := mustRun(t, env, "", "get", "db", "--format", f)
		if strings.Contains(out, "value") {
			t.Fatalf("get --format %s shows the value: %q", f, out)
		}
	}
	if code, _, errOut := runCLI(t, env, "", "get", "db", "--format", "{{.Value}}"); code == 0 || strings.Contains(errOut, "second") {
		t.Fatalf("get --format {{.Value}}: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "", "get", "db", "--version", "7", "--format", "json"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("get missing version: %d %q", code, errOut)
	}
}

// TestReportFormats: check, status and policy explain take --format over
// the report --json prints; --json is --format json; no format shows a
// value (check's marker is a stored value).
func TestReportFormats(t *testing.T) {
	env := checkStore(t)
	compose := filepath.Join("testdata", "compose", "missing.yml")
	j1 := mustFail(t, env, "check", "--json", "--stack=demo", "-c", compose)
	j2 := mustFail(t, env, "check", "--format", "json", "--stack=demo", "-c", compose)
	if j1 != j2 || !strings.HasPrefix(j1, "{\n") {
		t.Fatalf("check --json and --format json differ:\n%s\n%s", j1, j2)
	}
	tmpl := mustFail(t, env, "check", "--stack=demo", "-c", compose, "--format",
		"{{.OK}}{{range .Secrets}} {{.SwarmName}}:{{range .Reads}}{{.Class}}/{{.Size}}{{end}}{{end}}")
	if tmpl != "false demo_db:ok/"+strconv.Itoa(len(marker))+" demo_nope:not_found/0\n" {
		t.Fatalf("check template: %q", tmpl)
	}
	for _, out := range []string{j1, tmpl, mustFail(t, env, "check", "--stack=demo", "-c", compose, "--format", "{{json .}}")} {
		if strings.Contains(out, marker) {
			t.Fatalf("check output shows the value:\n%s", out)
		}
	}

	sock := healthServer(t, false, "")
	if got := mustRun(t, nil, "", "status", "--socket", sock, "--format", "{{.Health.Status}} {{.Health.Version}} {{.Via}}"); got != "ok 9.9.9 "+sock+"\n" {
		t.Fatalf("status template: %q", got)
	}
	if a, b := mustRun(t, nil, "", "status", "--socket", sock, "--json"), mustRun(t, nil, "", "status", "--socket", sock, "--format", "json"); a != b {
		t.Fatalf("status --json and --format json differ:\n%s\n%s", a, b)
	}
	if code, _, errOut := runCLI(t, nil, "", "status", "--socket", sock, "--json", "--format", "{{.Via}}"); code != 2 || !strings.Contains(errOut, "contradict") {
		t.Fatalf("status --json with a template: %d %q", code, errOut)
	}

	pol := map[string]string{envPolicyFile: filepath.Join(t.TempDir(), "none.yaml")}
	var rep explainReport
	if err := json.Unmarshal([]byte(mustRun(t, pol, "", "policy", "explain", "--service", "payments_api", "--stack", "payments", "--format", "json", "payments/db")), &rep); err != nil ||
		rep.Verdict != "ALLOW" || !rep.Allow || rep.Stored != "payments/db" || rep.Identity.Stack != "payments" || rep.Rule == "" || rep.PolicyHash == "" {
		t.Fatalf("policy explain json: %+v %v", rep, err)
	}
	code, out, _ := runCLI(t, pol, "", "policy", "explain", "--service", "web", "--format", "{{.Verdict}} {{.Rule}}", "payments/db")
	if code != 1 || !strings.HasPrefix(out, "DENY ") {
		t.Fatalf("policy explain template on a denial: exit %d %q", code, out)
	}
}

// mustFail runs a command that exits 1 (a report with errors) and returns
// its stdout.
func mustFail(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, env, "", args...)
	if code != 1 {
		t.Fatalf("swarmkeep %s: exit %d, want 1: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}
