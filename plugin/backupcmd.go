package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

func init() {
	register("backup", command{
		summary: "write the whole store, sealed as stored, to a backup file",
		usage: `Usage: swarmkeep backup --out FILE [store flags]

Writes every record and the keyring exactly as stored (sealed: no value is
ever decrypted into the file) to FILE, mode 0600 ("-" for stdout). The
store is read under its writer lock, so the copy is consistent, and every
record is opened with the key before the file is written: a backup that
restore would refuse is never made. FILE must not exist.

The backup is as secret as the store and as useless without the key: keep
the key (or passphrase) too, apart from it. Format: README, Backup.

  --out FILE   the backup file
` + storeFlagsUsage,
		run: runBackup,
	})
	register("restore", command{
		summary: "restore a store from a backup file, all or nothing",
		usage: `Usage: swarmkeep restore FILE [--store DIR] [--key-file FILE | --passphrase-file FILE]

Restores the store saved by swarmkeep backup into DIR (default the plugin's
store, /var/lib/swarmkeep/store). Before anything is written the file's
checksum is checked and every record is opened with the key (its MAC and
every value's AEAD): a damaged file or the wrong key writes nothing. The
records are then written to a new folder next to DIR, flushed, and renamed
to DIR in one step.

DIR must not hold a store: disable the plugin, move the old store away
(mv DIR DIR.old), restore, enable the plugin. "-" reads stdin.
` + storeFlagsUsage,
		run: runRestore,
	})
}

func runBackup(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	var sf storeFlags
	sf.bind(fs, env)
	out := fs.String("out", "", "backup file")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out FILE is required", errUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, k, err := sf.medium(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	objs, err := readObjects(ctx, m)
	if err != nil {
		return err
	}
	n, err := verifyObjects(ctx, objs, k)
	if err != nil {
		return fmt.Errorf("no backup written: %w", err)
	}
	var buf bytes.Buffer
	if err := encodeBackup(&buf, objs); err != nil {
		return err
	}
	if *out == "-" {
		_, err = env.stdout.Write(buf.Bytes())
		return err
	}
	if err := writeNew(*out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "backed up %d record(s) (%d bytes, format %d) to %s; keep the key apart from it\n", n, buf.Len(), backupVersion, *out)
	return nil
}

// readObjects reads the keyring and every record as stored, under the
// writer lock when the medium has one, so no write lands half way.
func readObjects(ctx context.Context, m store.Medium) ([]backupObject, error) {
	if l, ok := m.(store.Locker); ok {
		lctx, unlock, err := l.Lock(ctx)
		if err != nil {
			return nil, err
		}
		defer unlock()
		ctx = lctx
	}
	kr, _, err := m.Read(ctx, backupKeyring)
	if err != nil {
		return nil, fmt.Errorf("no store to back up in %v: %w", m, err)
	}
	objs := []backupObject{{key: backupKeyring, blob: kr}}
	var keys []string
	if err := m.List(ctx, backupRecPrefx, func(key string) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return nil, err
	}
	sort.Strings(keys)
	for _, key := range keys {
		b, _, err := m.Read(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", strings.TrimPrefix(key, backupRecPrefx), err)
		}
		objs = append(objs, backupObject{key: key, blob: b})
	}
	return objs, nil
}

// verifyObjects opens the keyring and every record of objs with k, in
// memory, and returns the number of names with values.
func verifyObjects(ctx context.Context, objs []backupObject, k store.KeySource) (int, error) {
	s, err := store.Open(ctx, newMemMedium(objs), k)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	var failed []string
	ok, bad, err := s.Verify(ctx, func(name string, err error) {
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	})
	if err != nil {
		return 0, err
	}
	if bad > 0 {
		return 0, fmt.Errorf("%d record(s) do not open with this key: %s", bad, strings.Join(failed, "; "))
	}
	return ok, nil
}

func runRestore(env *cliEnv, args []string) error {
	fset := flag.NewFlagSet("restore", flag.ContinueOnError)
	var sf storeFlags
	sf.bind(fset, env)
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 1, "FILE"); err != nil {
		return err
	}
	if sf.backend != "" {
		return fmt.Errorf("%w: restore writes a local store folder (--store), not --backend", errUsage)
	}
	var data []byte
	if pos[0] == "-" {
		data, err = io.ReadAll(env.stdin)
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		// Not echoed: FILE is an argument, and a value pasted in the
		// wrong place lands there.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot read the backup file (argument 1, not shown): %w", err)
	}
	objs, err := decodeBackup(data)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := verifyObjects(ctx, objs, sf.keySource())
	if err != nil {
		return fmt.Errorf("nothing restored: %w", err)
	}
	dir, err := filepath.Abs(sf.dir)
	if err != nil {
		return err
	}
	if err := restoreInto(ctx, dir, objs); err != nil {
		return fmt.Errorf("nothing restored: %w", err)
	}
	fmt.Fprintf(env.stderr, "restored %d record(s) into %s; enable the plugin (or restart it) to serve them\n", n, dir)
	return nil
}

// restoreInto writes objs into a new store folder next to dir and renames
// it to dir: a crash or an error leaves dir as it was (absent or empty),
// and the temp folder, named .DIR.restore-*, is removed on error.
func restoreInto(ctx context.Context, dir string, objs []backupObject) error {
	switch ents, err := os.ReadDir(dir); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("%s is not empty; fix: disable the plugin, move the old store away (mv %s %s.old), then restore again", dir, dir, dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	m, err := store.OpenDir(tmp)
	if err != nil {
		return err
	}
	writes := make([]store.BatchWrite, len(objs))
	for i, o := range objs {
		writes[i] = store.BatchWrite{Key: o.key, Blob: o.blob}
	}
	if bw, ok := store.Medium(m).(store.BatchWriter); ok {
		err = bw.WriteBatch(ctx, writes)
	} else {
		for _, w := range writes {
			if _, err = m.Write(ctx, w.Key, w.Blob, ""); err != nil {
				break
			}
		}
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// rename(2) replaces an empty folder, and only an empty one.
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	done = true
	return syncDirPath(parent)
}

func syncDirPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// writeNew writes data to a file that must not exist, mode 0600, through a
// temp file in the same folder that is synced and linked in place.
func writeNew(path string, data []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists; give a new file name (a backup is never overwritten)", path)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// link(2) fails if path appeared meanwhile: never overwrite.
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDirPath(dir)
}
