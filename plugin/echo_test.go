package main

import (
	"sort"
	"strings"
	"testing"
)

// sentinel stands for a value typed on the command line by mistake.
const sentinel = "MyS3cretPassw0rd"

// TestNoCommandEchoesAnArgument runs every command with the sentinel as an
// extra argument, as an unknown flag and as a bad flag value: the usage
// errors must never print it (put db 'MyS3cretPassw0rd' used to).
func TestNoCommandEchoesAnArgument(t *testing.T) {
	env := storeEnv(t)
	mustRun(t, env, "", "init")
	// The positionals each command takes, so the sentinel is one too many.
	takes := map[string][]string{"put": {"db"}, "get": {"db"}, "rm": {"db"}, "ls": {"db"},
		"check": {"--stack", "demo", "-c", "testdata/compose/ok.yml"}}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var runs [][]string
	for _, n := range names {
		if n == "policy" {
			continue // its subcommands below
		}
		pos := takes[n]
		runs = append(runs,
			append(append([]string{n}, pos...), sentinel),
			append(append([]string{n}, pos...), "--"+sentinel),
			append(append([]string{n}, pos...), "--"+sentinel+"=x"),
			append(append([]string{n}, pos...), "-"+sentinel, "x"),
			append(append([]string{n, sentinel}, pos...), "y", "z"))
	}
	for _, sub := range [][]string{{"policy", "explain", "--service", "s", "x"}, {"policy", "check"}} {
		runs = append(runs, append(sub, sentinel), append(sub, "--"+sentinel))
	}
	runs = append(runs,
		[]string{sentinel},
		[]string{"policy", sentinel},
		[]string{"--store", "x", sentinel},
		[]string{"get", "db", "--version", sentinel},
		[]string{"init", "--max-versions=" + sentinel},
		[]string{"check", "--timeout", sentinel, "--stack", "demo", "-c", "x.yml"},
		[]string{"check", "--stack", sentinel + " x", "-c", "x.yml"},
		[]string{"policy", "explain", "--service", "s", "--service-label", sentinel, "x"},
		[]string{"policy", "explain", "--service", "s", "--service-label", "a=" + sentinel, "--service-label", "a=" + sentinel, "x"},
		[]string{"policy", "explain", "--service", "s", "--stack", "a", "--service-label", "com.docker.stack.namespace=" + sentinel, "x"},
	)
	for _, args := range runs {
		code, out, errOut := runCLI(t, env, "", args...)
		if code == 0 {
			t.Errorf("swarmkeep %s: exit 0", strings.Join(args, " "))
		}
		if strings.Contains(out+errOut, "S3cret") {
			t.Errorf("swarmkeep %s printed the argument:\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}
}
