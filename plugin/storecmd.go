package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// Environment the operator commands read, so a host can set its paths once.
const (
	EnvCLIStore      = "SWARMKEEP_STORE"
	EnvCLIKeyFile    = "SWARMKEEP_KEY_FILE"
	EnvCLIPassphrase = "SWARMKEEP_PASSPHRASE_FILE"
)

// storeFlags are the flags every store command takes. Their defaults are the
// host paths config.json mounts into the plugin, so the CLI on a manager and
// the plugin on that manager use the same store without extra settings.
type storeFlags struct {
	dir, keyFile, passFile string
}

const storeFlagsUsage = `
Store flags (every store command):
  --store DIR             store folder (env SWARMKEEP_STORE, default /var/lib/swarmkeep/store)
  --key-file FILE         key file (env SWARMKEEP_KEY_FILE, default /etc/swarmkeep/key)
  --passphrase-file FILE  passphrase file, instead of a key file (env SWARMKEEP_PASSPHRASE_FILE)
`

func (f *storeFlags) bind(fs *flag.FlagSet, env *cliEnv) {
	dflt := func(k, d string) string {
		if v := env.getenv(k); v != "" {
			return v
		}
		return d
	}
	fs.StringVar(&f.dir, "store", dflt(EnvCLIStore, DefaultStoreDir), "store folder")
	fs.StringVar(&f.keyFile, "key-file", dflt(EnvCLIKeyFile, DefaultKeyFile), "key file")
	fs.StringVar(&f.passFile, "passphrase-file", env.getenv(EnvCLIPassphrase), "passphrase file")
}

func (f *storeFlags) keySource() store.KeySource {
	if f.passFile != "" {
		return store.PassphraseFile(f.passFile)
	}
	return store.KeyFile(f.keyFile)
}

// open opens the store for one command.
func (f *storeFlags) open(ctx context.Context) (*store.Store, error) {
	m, err := store.OpenDir(f.dir)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, m, f.keySource())
	if err != nil {
		m.Close()
		return nil, err
	}
	return s, nil
}

// storeCommand wires the common flags, argument count and store opening
// around a command body.
func storeCommand(name string, nargs int, what string, extra func(fs *flag.FlagSet), body func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error) func(*cliEnv, []string) error {
	return func(env *cliEnv, args []string) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		var sf storeFlags
		sf.bind(fs, env)
		if extra != nil {
			extra(fs)
		}
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if nargs >= 0 {
			if err := exactArgs(pos, nargs, what); err != nil {
				return err
			}
		} else if len(pos) > -nargs {
			return fmt.Errorf("%w: want %s", errUsage, what)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		s, err := sf.open(ctx)
		if err != nil {
			return err
		}
		defer s.Close()
		return body(ctx, env, s, pos)
	}
}

// readValue reads a value from a file or stdin, refusing more than a store
// holds, so a wrong file never ends up half stored.
func readValue(env *cliEnv, file string) ([]byte, error) {
	const max = 1 << 20
	var r io.Reader = env.stdin
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else if v, ok, err := promptHidden(env); ok {
		return v, err
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read value: %w", err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("value larger than %d bytes", max)
	}
	if len(b) == 0 {
		return nil, errors.New("empty value: Swarm refuses empty secrets (pipe the value on stdin or use --file)")
	}
	return b, nil
}
