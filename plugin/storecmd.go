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
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/swarm/configstore"
)

// Environment the operator commands read, so a host can set its paths once.
const (
	EnvCLIStore      = "SWARMKEEP_STORE"
	EnvCLIKeyFile    = "SWARMKEEP_KEY_FILE"
	EnvCLIPassphrase = "SWARMKEEP_PASSPHRASE_FILE"
	EnvCLIBackend    = "SWARMKEEP_BACKEND"
	EnvCLIBackends   = "SWARMKEEP_BACKENDS"
)

// storeFlags are the flags every store command takes. Their defaults are the
// host paths config.json mounts into the plugin, so the CLI on a manager and
// the plugin on that manager use the same store without extra settings.
type storeFlags struct {
	dir, keyFile, passFile string
	// backend names an instance of backends (the plugin's BACKENDS
	// syntax), so the commands reach the same etcd store the plugin reads.
	backend, backends string
	// wait bounds how long a write to the replicated store waits for
	// every manager's mirror; m is the medium opened, to ask it.
	wait time.Duration
	m    store.Medium
}

const storeFlagsUsage = `
Store flags (every store command):
  --store DIR             store folder (env SWARMKEEP_STORE, default /var/lib/swarmkeep/store)
  --key-file FILE         key file (env SWARMKEEP_KEY_FILE, default /etc/swarmkeep/key)
  --passphrase-file FILE  passphrase file, instead of a key file (env SWARMKEEP_PASSPHRASE_FILE)
  --backend NAME          work on this instance of --backends instead of the local store (env SWARMKEEP_BACKEND)
  --backends SPEC         instances, in the plugin's BACKENDS syntax (env SWARMKEEP_BACKENDS), e.g.
                          "shared:etcd?endpoints=https://127.0.0.1:2379&tls_ca=/etc/swarmkeep/etcd/ca.pem"
  --wait D                after a change to a replicated (swarm) or etcd store, wait up to D for
                          every manager's mirror or plugin replica to apply it, and fail naming
                          those that lag (default 15s; 0: do not wait)
`

func (f *storeFlags) bind(fs *flag.FlagSet, env *cliEnv) {
	dflt := func(k, d string) string {
		if v := env.getenv(k); v != "" {
			return v
		}
		return d
	}
	fs.StringVar(&f.dir, "store", dflt(EnvCLIStore, server.DefaultStoreDir), "store folder")
	fs.StringVar(&f.keyFile, "key-file", dflt(EnvCLIKeyFile, server.DefaultKeyFile), "key file")
	fs.StringVar(&f.passFile, "passphrase-file", env.getenv(EnvCLIPassphrase), "passphrase file")
	fs.StringVar(&f.backend, "backend", env.getenv(EnvCLIBackend), "backend instance")
	fs.StringVar(&f.backends, "backends", env.getenv(EnvCLIBackends), "backend instances")
	fs.DurationVar(&f.wait, "wait", 15*time.Second, "wait for every manager's copy")
}

func (f *storeFlags) keySource() store.KeySource {
	if f.passFile != "" {
		return store.PassphraseFile(f.passFile)
	}
	return store.KeyFile(f.keyFile)
}

// medium returns where the chosen store lives and the key that opens it.
func (f *storeFlags) medium(ctx context.Context) (store.Medium, store.KeySource, error) {
	if f.backend == "" {
		m, err := store.OpenDir(f.dir)
		if err != nil {
			return nil, nil, err
		}
		return m, f.keySource(), nil
	}
	bs, err := server.ParseBackends(f.backends, f.defaults(), driver.MaxTimeout, server.DefaultLKGDir)
	if err != nil {
		return nil, nil, fmt.Errorf("--backends: %w", err)
	}
	for _, b := range bs {
		if b.Name != f.backend {
			continue
		}
		m, k, err := store.OpenMedium(ctx, b.Type, b.Settings)
		if err != nil {
			return nil, nil, fmt.Errorf("backend %s: %w", b.Name, err)
		}
		f.m = m
		return m, k, nil
	}
	return nil, nil, fmt.Errorf("backend %q is not in --backends %q", f.backend, f.backends)
}

// defaults are what --backends instances inherit: the store folder and key
// of these flags, as a plugin's instances inherit its settings.
func (f *storeFlags) defaults() backend.Defaults {
	d := backend.Defaults{StoreDir: f.dir, KeyFile: f.keyFile, PassphraseFile: f.passFile}
	if f.passFile != "" {
		d.KeyFile = ""
	}
	return d
}

// open opens the store for one command.
// openInterruptible opens the store under a context that ends on SIGINT
// or SIGTERM; done closes the store and stops the signal watch.
func (f *storeFlags) openInterruptible() (ctx context.Context, s *store.Store, done func(), err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if s, err = f.open(ctx); err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ctx, s, func() { s.Close(); stop() }, nil
}

func (f *storeFlags) open(ctx context.Context) (*store.Store, error) {
	m, k, err := f.medium(ctx)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, m, k)
	if err != nil {
		m.Close()
		return nil, wrongKeyHint(err)
	}
	return s, nil
}

// wrongKeyHint adds the fix to a key that does not open the store: the
// store's records are fine, so it is the key to change, not the values.
func wrongKeyHint(err error) error {
	if errors.Is(err, store.ErrWrongKey) {
		return fmt.Errorf("%w; use the key the store was created with (--key-file or --passphrase-file, "+
			"env %s or %s), or restore the keyring from a backup if it is damaged", err, EnvCLIKeyFile, EnvCLIPassphrase)
	}
	return err
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
		ctx, s, done, err := sf.openInterruptible()
		if err != nil {
			return err
		}
		defer done()
		var then func(context.Context) error
		if err := body(context.WithValue(ctx, thenKey{}, &then), env, s, pos); err != nil {
			return err
		}
		if err := sf.awaitCopies(ctx, env, s); err != nil {
			return err
		}
		if then != nil {
			return then(ctx)
		}
		return nil
	}
}

// thenKey carries, in a store command body's context, where the body leaves
// work that must wait until every manager's copy holds its change.
type thenKey struct{}

// afterCopies runs fn once the change the body made is on every manager's
// copy (put --rollout: a rollout started sooner could have the leader
// serve its new tasks the old value). Outside a store command it runs fn
// at once.
func afterCopies(ctx context.Context, fn func(context.Context) error) error {
	if p, ok := ctx.Value(thenKey{}).(*func(context.Context) error); ok {
		*p = fn
		return nil
	}
	return fn(ctx)
}

// awaitCopies waits, after a change, until every manager's copy of the
// store holds it: the replicated store's mirrors, etcd plugins' replicas.
func (f *storeFlags) awaitCopies(ctx context.Context, env *cliEnv, s *store.Store) error {
	if err := f.awaitMirrors(ctx, env); err != nil {
		return err
	}
	return confirmApplied(ctx, env, s, f.wait)
}

// awaitMirrors keeps the replicated store's promise: once a command that
// changed it returns, every manager's plugin answers the change. It waits
// for each reachable manager's mirror to publish that it applied the
// write; a manager that is down catches up when it returns, before its
// agent publishes anything, and is only named.
func (f *storeFlags) awaitMirrors(ctx context.Context, env *cliEnv) error {
	cm, ok := f.m.(*configstore.Medium)
	if !ok || cm.LastWrite() == 0 || f.wait <= 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, f.wait)
	defer cancel()
	down, err := cm.AwaitMirrors(wctx, 20*time.Millisecond)
	for _, d := range down {
		fmt.Fprintf(env.stderr, "note: manager %s is down; its agent catches up when it returns\n", d)
	}
	if err != nil {
		return fmt.Errorf("the change is stored in the swarm, but %w within --wait %s; their plugins answer the previous state until their agents catch up (fix: start swarmkeep-agent there; swarmkeep status names them)", err, f.wait)
	}
	return nil
}

// readValue reads a value from a file or stdin, refusing more than a store
// holds, so a wrong file never ends up half stored, and any value Swarm
// could never deliver: it refuses 0 bytes and more than driver.MaxValueBytes
// at every task start, long after put said "stored".
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
		if err == nil {
			err = servable(env, v)
		}
		if err != nil {
			clear(v)
			return nil, err
		}
		return v, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read value: %w", err)
	}
	if len(b) > max {
		clear(b)
		return nil, fmt.Errorf("value larger than %d bytes: Swarm delivers at most %d bytes, even decoded from base64", max, driver.MaxValueBytes)
	}
	if err := servable(env, b); err != nil {
		clear(b)
		return nil, err
	}
	return b, nil
}

// servable checks a value against Swarm's limits. Text over the limit that
// is base64 of a value within it can be served with swarmkeep.encoding=base64
// (the plugin decodes before delivery): it is stored, with a note saying so.
func servable(env *cliEnv, v []byte) error {
	limit := fmt.Sprintf("Swarm delivers %d to %d bytes (500 KiB - 1)", driver.MinValueBytes, driver.MaxValueBytes)
	switch {
	case len(v) == 0:
		return errors.New("empty value: Swarm refuses empty secrets (pipe the value on stdin or use --file)")
	case len(v) <= driver.MaxValueBytes:
		return nil
	}
	if dec, err := driver.DecodeBase64(v); err == nil && len(dec) >= driver.MinValueBytes && len(dec) <= driver.MaxValueBytes {
		n := len(dec)
		clear(dec)
		fmt.Fprintf(env.stderr, "note: the value is %d bytes of base64 text, over Swarm's limit, but decodes to %d bytes: "+
			"give its secrets the label swarmkeep.encoding=base64 (without it every task start fails)\n", len(v), n)
		return nil
	}
	return fmt.Errorf("value is %d bytes and %s: no task could ever get it; "+
		"store a smaller value, or base64 text (base64 or base64 -w0) that decodes to at most %d bytes, served with the label swarmkeep.encoding=base64",
		len(v), limit, driver.MaxValueBytes)
}
