package main

import (
	"fmt"
	"os"

	"golang.org/x/term"
)

// promptHidden reads a value typed at a terminal without echoing it. ok is
// false when stdin is not a terminal, and the caller reads it as a stream.
func promptHidden(env *cliEnv) (value []byte, ok bool, err error) {
	f, isFile := env.stdin.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return nil, false, nil
	}
	fmt.Fprint(env.stderr, "value (input hidden): ")
	v, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return nil, true, fmt.Errorf("read value: %w", err)
	}
	if len(v) == 0 {
		return nil, true, fmt.Errorf("empty value: Swarm refuses empty secrets")
	}
	return v, true, nil
}
