// Command swarmkeep is the swarmkeep plugin binary. Its serve command is the
// managed plugin's entrypoint; its other commands manage the encrypted store
// from a manager host. Values never travel in argv: put reads stdin or a file.
//
// This package is the only one that reads the environment, sets up logging and
// picks backends; everything else lives in driver/.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// version (and commit, when the build knows it) are set at build time with
// -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// command is one subcommand: its one-line summary, usage text and body.
type command struct {
	summary string
	usage   string
	run     func(env *cliEnv, args []string) error
}

var commands = map[string]command{}

func register(name string, c command) { commands[name] = c }

// cliEnv is what commands read and write, so tests can drive them.
type cliEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// lookupEnv tells an unset variable from an empty one, as compose
	// interpolation must (${X-default}); nil: set means non-empty.
	lookupEnv func(string) (string, bool)
}

func (e *cliEnv) lookup(name string) (string, bool) {
	if e.lookupEnv != nil {
		return e.lookupEnv(name)
	}
	v := e.getenv(name)
	return v, v != ""
}

// errUsage marks an error whose fix is the command's usage text.
var errUsage = errors.New("usage")

// exitError gives a command's failure an exit status other than 1, for
// commands whose usage documents several.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// The etcd client's gRPC layer logs to stderr on its own; swarmkeep
	// reports backend failures itself, with the secret and task, so
	// gRPC's lines would only add noise to the dockerd log.
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, io.Discard))
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, lookupEnv: os.LookupEnv}
	os.Exit(run(env, os.Args[1:]))
}

func run(env *cliEnv, args []string) int {
	args = commandFirst(args)
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-v") {
		// docker --version: one line; the version command has the details.
		args = append([]string{"version", "--short"}, args[1:]...)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				fmt.Fprint(env.stdout, c.usage)
				return 0
			}
		}
		printHelp(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		// Not echoed: a value pasted in the wrong place lands here.
		fmt.Fprintf(env.stderr, "swarmkeep: unknown command (the first argument); run swarmkeep --help for the list\n")
		return 2
	}
	err := c.run(env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(env.stdout, c.usage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.stderr, "swarmkeep %s: %v\n\n%s", args[0], err, c.usage)
		return 2
	default:
		fmt.Fprintf(env.stderr, "swarmkeep %s: %v\n", args[0], err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
}

func printHelp(w io.Writer) {
	fmt.Fprintf(w, "swarmkeep %s: Docker Swarm secrets driver with an encrypted store\n\nUsage: swarmkeep COMMAND [flags]\n\nCommands:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun swarmkeep COMMAND --help for a command's flags, swarmkeep --version for the build.\n")
}

// globalFlags take a value and may stand before the command, as in
// swarmkeep --store DIR ls.
var globalFlags = map[string]bool{"store": true, "key-file": true, "passphrase-file": true, "backend": true, "backends": true}

// commandFirst moves global flags that precede the command behind it, where
// the command's own flag set parses them.
func commandFirst(args []string) []string {
	var lead []string
	for len(args) > 0 && strings.HasPrefix(args[0], "--") && args[0] != "--help" {
		name, _, hasValue := strings.Cut(strings.TrimPrefix(args[0], "--"), "=")
		if !globalFlags[name] {
			break
		}
		lead = append(lead, args[0])
		args = args[1:]
		if !hasValue && len(args) > 0 {
			lead = append(lead, args[0])
			args = args[1:]
		}
	}
	if len(lead) == 0 || len(args) == 0 {
		return append(lead, args...)
	}
	return append(append([]string{args[0]}, lead...), args[1:]...)
}

// parseArgs parses flags anywhere among the arguments (Go's flag package
// stops at the first positional one) and returns the positionals.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	total := len(args)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %s", errUsage, flagProblem(fs, err, total-len(fs.Args())))
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagProblem rewrites the flag package's error without the argument it
// quotes: a value typed in the wrong place (put db --s3cret, --version
// s3cret) must not reach the terminal, its scrollback or a CI log. It names
// the argument by position, and a flag only when the flag set defines it.
// n is the number of arguments consumed when parsing stopped.
func flagProblem(fs *flag.FlagSet, err error, n int) string {
	msg := err.Error()
	for _, p := range []struct{ prefix, say string }{
		{"flag provided but not defined: ", "is not a flag of this command"},
		{"bad flag syntax: ", "is not a valid flag"},
	} {
		if strings.HasPrefix(msg, p.prefix) {
			return fmt.Sprintf("argument %d %s (not shown: it could be a value)", n, p.say)
		}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok && fs.Lookup(name) != nil {
		return "flag --" + name + " needs a value"
	}
	// invalid value "X" for flag -NAME: CAUSE
	if rest, ok := strings.CutPrefix(msg, "invalid "); ok {
		if i := strings.LastIndex(rest, " for flag -"); i >= 0 {
			// The cause is the flag package's (parse error, value out
			// of range) or a flag.Value's own, which never quotes.
			name, cause, _ := strings.Cut(rest[i+len(" for flag -"):], ": ")
			if fs.Lookup(name) != nil {
				return fmt.Sprintf("argument %d: invalid value for flag --%s (not shown): %s", n, name, cause)
			}
		}
	}
	return fmt.Sprintf("argument %d cannot be parsed (not shown: it could be a value)", n)
}

// exactArgs checks the number of positionals. It never prints them: an
// extra one is often a value typed on the command line (put db s3cret).
func exactArgs(pos []string, n int, what string) error {
	if len(pos) != n {
		hint := ""
		if len(pos) > n {
			hint = " (not shown: an extra argument could be a value; values come from stdin or --file)"
		}
		return fmt.Errorf("%w: want %s, got %d argument(s)%s", errUsage, what, len(pos), hint)
	}
	return nil
}
