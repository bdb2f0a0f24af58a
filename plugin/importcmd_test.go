package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func TestImport(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	mustRun(t, env, "old", "put", "db")
	binary := []byte{0, 0xff, '\n', '"', 0xc3}
	in := `{"name":"db","value":"s3cr\"et\n"}` + "\n\n" +
		`  {"name":"bin/blob","value_base64":"` + base64.StdEncoding.EncodeToString(binary) + `"}  ` + "\n" +
		`{"name":"db","value":"third"}` // no final newline
	_, _, errOut := runCLI(t, env, in, "import")
	if !strings.Contains(errOut, "imported 3 value(s) for 2 name(s)") {
		t.Fatalf("import: %q", errOut)
	}
	for args, want := range map[string]string{"db --version 2": "s3cr\"et\n", "db": "third", "bin/blob": string(binary)} {
		if got := mustRun(t, env, "", append([]string{"get"}, strings.Fields(args)...)...); got != want {
			t.Errorf("get %s: %q, want %q", args, got, want)
		}
	}
}

// A bad line anywhere stores nothing, and the error names the line (and
// the name once known), never any part of a value.
func TestImport_BadLineRejectsAll(t *testing.T) {
	const secret = "hunter2-do-not-print"
	good := `{"name":"ok/one","value":"` + secret + `"}`
	big := strings.Repeat("x", importValueLimit+1)
	for _, c := range []struct{ bad, want string }{
		{`{"name":"a","value":` + secret + `}`, "line 2: not a valid JSON object"},
		{`{"name":"a","value":"` + secret, "line 2: truncated JSON object"},
		{`{"name":"a","valeu":"` + secret + `"}`, "line 2: unknown field"},
		{`{"name":"a","value":"` + secret + `","value_base64":"eA=="}`, `line 2: a: both "value"`},
		{`{"name":"a","value_base64":"` + secret + `"}`, `line 2: a: "value_base64" is not standard base64`},
		{`{"name":"a","value":""}`, "line 2: a: empty value"},
		{`{"name":"a"}`, `line 2: a: no "value"`},
		{`{"value":"` + secret + `"}`, `line 2: no "name"`},
		{`{"name":"../x","value":"` + secret + `"}`, "line 2: "},
		{`{"name":"a","value":12}`, `line 2: field "value" must be a string`},
		{`["` + secret + `"]`, "line 2: not a JSON object"},
		{`{"name":"a","value":"` + secret + "\xff" + `"}`, "line 2: not valid UTF-8"},
		{`{"name":"a","value":"x"} {"name":"b","value":"` + secret + `"}`, "line 2: more than one JSON value"},
		{`{"name":"big","value":"` + big + `"}`, fmt.Sprintf("line 2: big: value is %d bytes; Swarm serves secrets of at most 511999 bytes", importValueLimit+1)},
	} {
		env := storeEnv(t)
		mustRun(t, env, "", "init")
		in := good + "\n" + c.bad + "\n" + `{"name":"ok/two","value":"v"}` + "\n"
		code, out, errOut := runCLI(t, env, in, "import")
		if code != 1 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "nothing imported") {
			t.Errorf("%.60s: exit %d, %q, want %q", c.bad, code, errOut, c.want)
		}
		if strings.Contains(errOut+out, secret[:7]) || strings.Contains(errOut, "xxxxxxxx") {
			t.Errorf("%.60s: the error shows a value: %q", c.bad, errOut)
		}
		if ls := mustRun(t, env, "", "ls"); strings.Contains(ls, "ok/") {
			t.Errorf("%.60s: stored part of a rejected import:\n%s", c.bad, ls)
		}
	}
}

func TestImport_LargestValue(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	v := strings.Repeat("y", importValueLimit)
	mustRun(t, env, `{"name":"max","value":"`+v+`"}`, "import")
	if got := mustRun(t, env, "", "get", "max"); got != v {
		t.Fatalf("largest value: %d bytes back", len(got))
	}
	if code, _, errOut := runCLI(t, env, "\n \n", "import"); code != 1 || !strings.Contains(errOut, "no values") {
		t.Fatalf("empty stream: %d %q", code, errOut)
	}
}

// ls lists names sorted.
func TestLsSorted(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	var in strings.Builder
	for i := 99; i >= 0; i-- {
		fmt.Fprintf(&in, `{"name":"n/%02d","value":"v"}`+"\n", i)
	}
	mustRun(t, env, in.String(), "import")
	lines := strings.Split(strings.TrimSpace(mustRun(t, env, "", "ls")), "\n")
	if len(lines) != 101 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines[1:] {
		if !strings.HasPrefix(l, fmt.Sprintf("n/%02d ", i)) {
			t.Fatalf("line %d: %q", i+1, l)
		}
	}
}
