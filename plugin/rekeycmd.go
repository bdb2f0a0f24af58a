package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// EnvCLILKGDir is where rekey looks for last-known-good stores.
const EnvCLILKGDir = "SWARMKEEP_LKG_DIR"

func init() {
	register("rekey", command{
		summary: "re-encrypt every record under a new data key, or change the key file",
		usage: `Usage: swarmkeep rekey [--new-key-file FILE | --new-passphrase-file FILE] [--lkg-dir DIR] [store flags]

Rekeys the store and every last-known-good store under --lkg-dir: the
encrypted copies of remote backends' values that this host's plugin keeps,
sealed with the plugin's key (KEY_FILE or PASSPHRASE_FILE).

Without a new key: makes a new data key in each store, re-encrypts every record
with it and drops the old data keys from the keyring. The key file or
passphrase stays. A running plugin keeps serving throughout; an interrupted
rekey is finished by running it again.

With --new-key-file (created if missing) or --new-passphrase-file: wraps each
store's data keys under the new key instead; data keys and records are not
changed. Then update the plugin's KEY_FILE or PASSPHRASE_FILE (or replace the
file at its path) and restart it. With --backend, last-known-good stores move
to the new key only if that instance uses the plugin's key. Stores already
under the new key are left as they are, so running it again after an
interruption, or on each manager of a shared etcd store, is safe.

Neither form reaches copies made before it: a keyring backup (with the key it
was sealed with) still opens the records of its time, and after
--new-key-file/--new-passphrase-file it opens today's records too, since the
data keys did not change. After a key leaks, run rekey --new-key-file, move
the plugin to the new key, then run rekey with the new key.

  --new-key-file FILE         wrap the data keys under this key file
  --new-passphrase-file FILE  wrap the data keys under this passphrase
  --lkg-dir DIR               last-known-good stores, one folder per backend instance
                              (env SWARMKEEP_LKG_DIR, default /var/lib/swarmkeep/lkg)
` + auditFileUsage + storeFlagsUsage,
		run: runRekey,
	})
}

// rekeyOp is the change rekey makes to one store.
type rekeyOp struct {
	newKey store.KeySource // nil: a new data key
}

func runRekey(env *cliEnv, args []string) error {
	fset := flag.NewFlagSet("rekey", flag.ContinueOnError)
	var sf storeFlags
	sf.bind(fset, env)
	var newKey, newPass string
	fset.StringVar(&newKey, "new-key-file", "", "wrap the data keys under this key file")
	fset.StringVar(&newPass, "new-passphrase-file", "", "wrap the data keys under this passphrase")
	lkgDir := server.DefaultLKGDir
	if v := env.getenv(EnvCLILKGDir); v != "" {
		lkgDir = v
	}
	fset.StringVar(&lkgDir, "lkg-dir", lkgDir, "last-known-good stores")
	auditFile := auditFileFlag(fset, env)
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	var op rekeyOp
	switch {
	case newKey != "" && newPass != "":
		return fmt.Errorf("%w: give --new-key-file or --new-passphrase-file, not both", errUsage)
	case newPass != "":
		op = rekeyOp{newKey: store.PassphraseFile(newPass)}
	case newKey != "":
		if _, err := os.Stat(newKey); errors.Is(err, fs.ErrNotExist) {
			if err := store.GenerateKeyFile(newKey); err != nil {
				return err
			}
			fmt.Fprintf(env.stderr, "wrote a new key to %s: back it up\n", newKey)
		}
		op = rekeyOp{newKey: store.KeyFile(newKey)}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m, k, err := sf.medium(ctx)
	if err != nil {
		return err
	}
	what := "store " + sf.dir
	if sf.backend != "" {
		what = "backend " + sf.backend
	}
	if err := op.apply(ctx, env, what, m, k); err != nil {
		return err
	}
	recordAction(env, *auditFile, sf.backend, audit.Record{Action: audit.ActionRekey})
	if err := sf.awaitMirrors(ctx, env); err != nil {
		return err
	}
	// Last-known-good stores are sealed with the plugin's key. Their data
	// keys are rotated whatever store was rekeyed; they move to a new key
	// only when the plugin's key is what changed, or the plugin could no
	// longer open them.
	if op.newKey != nil && k.String() != sf.keySource().String() {
		fmt.Fprintf(env.stderr, "last-known-good stores left under %s: they are sealed with the plugin's key, not %s's\n", sf.keySource(), what)
		return nil
	}
	return op.applyLKG(ctx, env, lkgDir, sf.keySource())
}

// apply opens the store on m with k and makes op's change, then closes it.
// A store that k does not open but the new key does was already moved by
// an interrupted run, and is left as it is.
func (op rekeyOp) apply(ctx context.Context, env *cliEnv, what string, m store.Medium, k store.KeySource) error {
	s, err := store.Open(ctx, m, k)
	if errors.Is(err, store.ErrWrongKey) && op.newKey != nil {
		if s2, err2 := store.Open(ctx, m, op.newKey); err2 == nil {
			s2.Close()
			fmt.Fprintf(env.stderr, "%s: data keys already wrapped under %s\n", what, op.newKey)
			return nil
		}
	}
	if err != nil {
		m.Close()
		return fmt.Errorf("%s: %w", what, wrongKeyHint(err))
	}
	defer s.Close()
	if op.newKey != nil {
		if err := s.ChangeKEK(ctx, op.newKey); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		fmt.Fprintf(env.stderr, "%s: data keys now wrapped under %s\n", what, op.newKey)
		return nil
	}
	st, err := s.Rekey(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(env.stderr, "%s: re-encrypted %d record(s) under a new data key; %d old key(s) retired\n", what, st.Records, st.OldKeys)
	return nil
}

// applyLKG makes op's change to every last-known-good store under dir,
// each opened with the plugin's key k. It goes on past a store that
// fails, and returns every failure with its fix.
func (op rekeyOp) applyLKG(ctx context.Context, env *cliEnv, dir string, k store.KeySource) error {
	dirs, err := lkgStores(dir)
	if err != nil {
		return fmt.Errorf("last-known-good stores: %w (give their folder with --lkg-dir, the plugin's LKG_DIR)", err)
	}
	if len(dirs) == 0 {
		fmt.Fprintf(env.stderr, "no last-known-good stores under %s\n", dir)
		return nil
	}
	var errs []error
	for _, d := range dirs {
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		m, err := store.OpenDir(d)
		if err == nil {
			err = op.apply(ctx, env, "last-known-good store "+d, m, k)
		}
		switch {
		case errors.Is(err, backend.ErrNotFound):
			// A folder the plugin made but never wrote a keyring to.
		case errors.Is(err, store.ErrWrongKey):
			errs = append(errs, fmt.Errorf("%w: the plugin cannot open these copies either; remove the folder, and the plugin writes new ones from the backend", err))
		case err != nil:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lkgStores lists the folders under dir that hold a store: the plugin
// keeps one per backend instance, at dir/<instance>. Other entries are
// left alone (OpenDir would lay a store out in any folder). A missing dir
// holds none.
func lkgStores(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(dir, e.Name())
		if st, err := os.Lstat(filepath.Join(d, "objects")); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}
