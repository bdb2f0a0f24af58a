package main

import (
	"strings"
	"testing"

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
