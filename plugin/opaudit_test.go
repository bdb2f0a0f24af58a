package main

import (
	"encoding/json"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// operatorRecords reads the trail's operator records through swarmkeep
// audit --decision operator --format json.
func operatorRecords(t *testing.T, env map[string]string) []audit.Record {
	t.Helper()
	out := mustRun(t, env, "", "audit", "--decision", "operator", "--format", "json")
	var recs []audit.Record
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestOperatorActionsAudited: init, put, rm, import and rekey each add an
// operator record to the plugin's trail with the OS user, shown by
// swarmkeep audit; no record holds a value.
func TestOperatorActionsAudited(t *testing.T) {
	env := storeEnv(t)
	state := filepath.Join(filepath.Dir(env[EnvCLIStore]), "state")
	os.Mkdir(state, 0o700)
	trail := filepath.Join(state, "audit", "audit.log")
	env[EnvCLIAuditFile] = trail

	mustRun(t, env, "", "init")
	mustRun(t, env, "value-one", "put", "db")
	mustRun(t, env, "value-two", "put", "db")
	mustRun(t, env, "", "rollback", "db", "--no-rollout")
	mustRun(t, env, "", "rm", "db", "--version", "1")
	mustRun(t, env, `{"name":"app/a","value":"value-three"}`+"\n"+`{"name":"app/b","value":"value-four"}`, "import")
	mustRun(t, env, "", "rekey")
	mustRun(t, env, "", "rm", "app/a")
	// A failed change is no change: nothing recorded.
	if code, _, _ := runCLI(t, env, "", "rm", "nothing"); code == 0 {
		t.Fatal("rm of a missing name succeeded")
	}

	me, uid := "", os.Getuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		me = u.Username
	}
	recs := operatorRecords(t, env)
	var got []string
	for _, r := range recs {
		got = append(got, r.Action+" "+r.Stored+"@"+strconv.FormatUint(r.Version, 10))
		if r.User != me || r.UID == nil || *r.UID != uid || r.Class != "ok" || r.Secret != "" || r.V != audit.FormatVersion || r.Time.IsZero() {
			t.Errorf("record %+v: want user %q uid %d", r, me, uid)
		}
	}
	want := "init @0,put db@1,put db@2,rollback db@3,rm db@1,import app/a@1,import app/b@1,rekey @0,rm app/a@0"
	if strings.Join(got, ",") != want {
		t.Fatalf("operator records:\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	b, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "value-") {
		t.Fatalf("the trail holds a value:\n%s", b)
	}
	// The table shows the action and the user.
	table := mustRun(t, env, "", "audit", "--decision", "operator")
	if !strings.Contains(table, "user:"+me) || !strings.Contains(table, "db@2") || len(strings.Fields(strings.Split(table, "\n")[2])) != 10 {
		t.Fatalf("audit table:\n%s", table)
	}
	for _, l := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		if f := strings.Fields(l); f[7] != "operator" {
			t.Fatalf("row %q", l)
		}
	}
	// Requests' filters never match operator records.
	if out := mustRun(t, env, "", "audit", "--decision", "allow", "--format", "json"); out != "" {
		t.Fatalf("--decision allow matched operator records: %q", out)
	}
	if out := mustRun(t, env, "", "audit", "--secret", "app/*", "--format", "{{.Action}} {{.Stored}}"); out != "import app/a\nimport app/b\nrm app/a\n" {
		t.Fatalf("--secret on the stored name: %q", out)
	}
}

// TestOperatorUser: SUDO_USER names the user when root runs the command,
// and is ignored from anyone else, who could set it to anything.
func TestOperatorUser(t *testing.T) {
	defer func(f func() int) { realUID = f }(realUID)
	env := &cliEnv{getenv: envOf(map[string]string{"SUDO_USER": "alice"})}
	realUID = func() int { return 0 }
	if name, uid := osUser(env); name != "alice" || uid != 0 {
		t.Fatalf("root under sudo: %q %d", name, uid)
	}
	realUID = func() int { return 4242424 }
	if name, uid := osUser(env); name == "alice" || uid != 4242424 {
		t.Fatalf("non-root with SUDO_USER: %q %d", name, uid)
	}
	realUID = func() int { return 0 }
	env.getenv = envOf(nil)
	if name, _ := osUser(env); name != "root" {
		t.Fatalf("root: %q", name)
	}
}

// TestOperatorTrailUnwritable: the change stands and the command succeeds,
// with a warning; where the state folder does not exist, or with
// --audit-file off, nothing is written and nothing said.
func TestOperatorTrailUnwritable(t *testing.T) {
	env := storeEnv(t)
	state := filepath.Join(t.TempDir(), "state")
	os.Mkdir(state, 0o700)
	os.WriteFile(filepath.Join(state, "audit"), nil, 0o600) // a file where the folder goes
	env[EnvCLIAuditFile] = filepath.Join(state, "audit", "audit.log")
	mustRun(t, env, "", "init")
	code, _, errOut := runCLI(t, env, "v", "put", "db")
	if code != 0 || !strings.Contains(errOut, "stored db version 1") || !strings.Contains(errOut, "not recorded in the audit trail") {
		t.Fatalf("unwritable trail: %d %q", code, errOut)
	}
	if got := mustRun(t, env, "", "get", "db"); got != "v" {
		t.Fatalf("value after the warning: %q", got)
	}

	noState := filepath.Join(t.TempDir(), "absent", "audit", "audit.log")
	for _, file := range []string{noState, "off"} {
		env[EnvCLIAuditFile] = file
		if code, _, errOut := runCLI(t, env, "v", "put", "db"); code != 0 || errOut != "stored db version "+map[string]string{noState: "2", "off": "3"}[file]+"\n" {
			t.Fatalf("%s: %d %q", file, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(noState))); !os.IsNotExist(err) {
		t.Fatalf("a trail folder was made where no plugin runs: %v", err)
	}
	// --audit-file wins over the environment.
	os.Remove(filepath.Join(state, "audit"))
	mustRun(t, env, "v", "put", "db", "--audit-file", filepath.Join(state, "audit", "audit.log"))
	env[EnvCLIAuditFile] = filepath.Join(state, "audit", "audit.log")
	if recs := operatorRecords(t, env); len(recs) != 1 || recs[0].Version != 4 {
		t.Fatalf("--audit-file: %+v", recs)
	}
}

// TestPutWarnsAboutTheEchoNewline: a one-line value ending in a newline is
// stored as given, with a warning; --keep-newline silences it, and
// multi-line values (PEM, configs) are not warned about.
func TestPutWarnsAboutTheEchoNewline(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("from-an-editor\n"), 0o600)
	for _, c := range []struct {
		stdin string
		args  []string
		warn  bool
	}{
		{"hunter2\n", nil, true},
		{"", []string{"--file", file}, true},
		{"hunter2\n", []string{"--keep-newline"}, false},
		{"hunter2", nil, false},
		{"-----BEGIN X-----\nabc\n-----END X-----\n", nil, false},
		{"\n", nil, false}, // a newline alone is no echo trap: nothing precedes it
	} {
		code, _, errOut := runCLI(t, env, c.stdin, append([]string{"put", "pw"}, c.args...)...)
		if code != 0 || strings.Contains(errOut, "ends in a newline") != c.warn || strings.Contains(errOut, "hunter2") {
			t.Errorf("put %q %v: exit %d, stderr %q, want warning %v", c.stdin, c.args, code, errOut, c.warn)
		}
		want := c.stdin
		if c.args != nil && c.args[0] == "--file" {
			want = "from-an-editor\n"
		}
		if got := mustRun(t, env, "", "get", "pw"); got != want {
			t.Errorf("stored %q, want %q as given", got, want)
		}
	}
}

// TestWrongKeyIsSaidAsSuch: a key file that is not the store's is reported
// as a wrong key with its fix, not as a corrupt record to put again.
func TestWrongKeyIsSaidAsSuch(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "v", "put", "db")
	other := filepath.Join(t.TempDir(), "other-key")
	env2 := map[string]string{EnvCLIStore: env[EnvCLIStore], EnvCLIKeyFile: other}
	mustRun(t, env2, "", "init", "--store", filepath.Join(t.TempDir(), "s2")) // writes the other key
	for _, args := range [][]string{{"get", "db"}, {"put", "db"}, {"ls"}, {"verify"}, {"rekey", "--lkg-dir", t.TempDir()}} {
		code, _, errOut := runCLI(t, env2, "v2", args...)
		if code != 1 || !strings.Contains(errOut, "key file "+other+" does not open this store: it was sealed with another key; use the key the store was created with") ||
			strings.Contains(errOut, "corrupt") || strings.Contains(errOut, "put the value again") {
			t.Errorf("%v: exit %d %q", args, code, errOut)
		}
	}
}
