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
	"time"

	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

func init() {
	register("init", command{
		summary: "create the encrypted store (and a key file if none exists)",
		usage: `Usage: swarmkeep init [--max-versions N] [store flags]

Creates an empty store. With a key file (the default), a new random key is
written there first unless the file exists (mode 0400). Back the key up:
without it the store cannot be read. With --passphrase-file, the key is
derived from the passphrase with argon2id.

  --max-versions N   versions kept per name; older ones are pruned on put (default 10)
` + auditFileUsage + storeFlagsUsage,
		run: runInit,
	})
	register("put", command{
		summary: "store a new version of a value (from stdin or --file)",
		usage: `Usage: swarmkeep put NAME [--file FILE] [--keep-newline] [--rollout [rollout flags]] [store flags]

Stores the value as a new version of NAME. The value comes from FILE, from
stdin, or is typed at a hidden prompt; never from the command line. The bytes
are stored exactly (printf, not echo, avoids a trailing newline): a one-line
value that ends in a newline is stored with it, and put warns. A running
plugin serves the new version to the next task; running tasks keep theirs
until a rollout (--rollout, swarmkeep rollout NAME, or the agent for services
labelled swarmkeep.rollout=auto). The change is recorded in the audit trail,
with the OS user (never the value).

  --file FILE      read the value from FILE ("-" is stdin)
  --keep-newline   the value's trailing newline belongs to it: no warning
  --rollout        then roll out every service that uses NAME (see swarmkeep rollout --help)
` + rolloutFlagsUsage + storeFlagsUsage,
		run: runPut(),
	})
	register("get", command{
		summary: "write a stored value to stdout (with --format, its metadata only)",
		usage: `Usage: swarmkeep get NAME [--version N] [--format F] [store flags]

Writes the value of NAME to stdout, byte for byte. With --format, prints the
version's metadata instead and never reads the value: the struct has no
field for it.

  --version N    a pinned version (default the latest)
` + formatUsage("{{.Version}} {{.Size}}", ".Name .Version .Created .Size .Kept (versions kept);\n"+
			"                 JSON: name, version, created, size, kept") + storeFlagsUsage,
		run: runGet(),
	})
	register("ls", command{
		summary: "list names, versions, dates and sizes (never values)",
		usage: `Usage: swarmkeep ls [NAME] [--prefix P | --filter name=P]... [-q] [--format F] [store flags]

Without NAME, one line per name, sorted by name; with NAME, one line per kept
version of it, oldest first. Never a value.

  --prefix P           only names that start with P (app/ lists app/db and app/tls/key)
  -f, --filter name=P  the same, as docker ls writes it; repeat either for any of several
  -q, --quiet          names only (with NAME: version numbers only)
` + formatUsage("{{.Name}} {{.Latest}}", ".Name .Versions .Latest .Updated .Size\n"+
			"                 (with NAME: .Name .Version .Created .Size; JSON: snake_case keys)") + storeFlagsUsage,
		run: runLs(),
	})
	register("rm", command{
		summary: "remove a name, or one version of it",
		usage: `Usage: swarmkeep rm NAME [--version N] [--force] [store flags]

Refuses to remove a name that a service uses (see swarmkeep uses), or its
latest or a pinned version, unless --force: its next tasks would fail or get
another version. When the Docker API cannot be asked (no engine, not a
manager) it says so and removes anyway. The removal is recorded in the audit
trail, with the OS user.

  --version N   remove only this version (default: the name and all its versions)
  --force       remove even when services use it
` + usesFlagsUsage + storeFlagsUsage,
		run: runRm(),
	})
	register("verify", command{
		summary: "open every version of every record and report any that fail",
		usage:   "Usage: swarmkeep verify [store flags]\n\nExits 1 when a record is tampered, corrupt or sealed with another key.\n" + storeFlagsUsage,
		run:     storeCommand("verify", 0, "no arguments", nil, runVerify),
	})
}

func runInit(env *cliEnv, args []string) error {
	fset := flag.NewFlagSet("init", flag.ContinueOnError)
	var sf storeFlags
	sf.bind(fset, env)
	maxVersions := fset.Int("max-versions", 10, "versions kept per name")
	auditFile := auditFileFlag(fset, env)
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if *maxVersions < 1 {
		return fmt.Errorf("%w: --max-versions must be 1 or more", errUsage)
	}
	if sf.passFile == "" {
		// A new key for a new store; an etcd store shared by several
		// managers is initialised once, then the key copied to each.
		switch _, err := os.Stat(sf.keyFile); {
		case errors.Is(err, fs.ErrNotExist):
			if err := store.GenerateKeyFile(sf.keyFile); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "wrote a new key to %s: back it up, the store cannot be read without it\n", sf.keyFile)
		case err != nil:
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, k, err := sf.medium(ctx)
	if err != nil {
		return err
	}
	s, err := store.Init(ctx, m, k, store.InitOptions{MaxVersions: *maxVersions})
	if err != nil {
		m.Close()
		return err
	}
	defer s.Close()
	where := sf.dir
	if sf.backend != "" {
		where = "backend " + sf.backend
	}
	fmt.Fprintf(env.stdout, "initialised store %s in %s\n", s.ID(), where)
	recordAction(env, *auditFile, sf.backend, audit.Record{Action: audit.ActionInit})
	return sf.awaitMirrors(ctx, env)
}

func runPut() func(*cliEnv, []string) error {
	var file string
	var keepNewline bool
	var roll putRollout
	return changeCommand("put", 1, "NAME", func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "read the value from FILE")
		fs.BoolVar(&keepNewline, "keep-newline", false, "the trailing newline belongs to the value")
		roll.bind(fs)
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string, record func(...audit.Record)) error {
		if err := store.ValidateName(pos[0]); err != nil {
			return err
		}
		v, err := readValue(env, file)
		if err != nil {
			return err
		}
		if !keepNewline {
			warnNewline(env, v)
		}
		ver, err := s.Put(ctx, pos[0], v)
		clear(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "stored %s version %d\n", pos[0], ver)
		record(audit.Record{Action: audit.ActionPut, Stored: pos[0], Version: ver})
		return afterCopies(ctx, func(ctx context.Context) error { return roll.run(ctx, env, s, pos[0]) })
	})
}

// warnNewline warns about the echo trap: a one-line value that ends in a
// newline, as echo, a here-string or an editor's last line write it. The
// newline is stored and served as part of the value, and a password with
// one does not match. Multi-line values (PEM files, configs) end in one by
// convention and are not warned about. The value is stored as given.
func warnNewline(env *cliEnv, v []byte) {
	if len(v) < 2 || v[len(v)-1] != '\n' || bytes.IndexByte(v[:len(v)-1], '\n') >= 0 {
		return
	}
	fmt.Fprintln(env.stderr, "warning: the value ends in a newline, which is stored and served as part of it "+
		"(echo adds one: use printf, or pass --keep-newline when it belongs to the value)")
}

// getInfo is what get --format shows: metadata, never the value.
type getInfo struct {
	Name    string    `json:"name"`
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Size    int       `json:"size"`
	Kept    int       `json:"kept"`
}

func runGet() func(*cliEnv, []string) error {
	var version uint64
	var format string
	return storeCommand("get", 1, "NAME", func(fs *flag.FlagSet) {
		fs.Uint64Var(&version, "version", 0, "version")
		fs.StringVar(&format, "format", "", "metadata as table, json or a template")
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
		if format == "" {
			sec, err := s.Get(ctx, pos[0], version)
			if err != nil {
				return err
			}
			_, err = env.stdout.Write(sec.Value)
			clear(sec.Value)
			return err
		}
		f, err := parseFormat(format)
		if err != nil {
			return err
		}
		// Info reads the record's metadata and never decrypts a value.
		e, err := s.Info(ctx, pos[0])
		if err != nil {
			return err
		}
		info := getInfo{Name: e.Name, Kept: len(e.Versions)}
		for _, v := range e.Versions {
			if version == 0 || v.Version == version {
				info.Version, info.Created, info.Size = v.Version, v.Created.UTC(), v.Size
			}
		}
		if info.Version == 0 {
			return fmt.Errorf("record %q: version %d: %w", pos[0], version, backend.ErrNotFound)
		}
		return f.print(env.stdout, info, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "name:     %s\nversion:  %d (of %d kept)\ncreated:  %s\nsize:     %d bytes\n",
				info.Name, info.Version, info.Kept, info.Created.Format(time.RFC3339), info.Size)
			return err
		})
	})
}

func runRm() func(*cliEnv, []string) error {
	var version uint64
	var guard rmGuard
	return changeCommand("rm", 1, "NAME", func(fs *flag.FlagSet) {
		fs.Uint64Var(&version, "version", 0, "version")
		guard.bind(fs)
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string, record func(...audit.Record)) error {
		if err := guard.check(ctx, env, s, pos[0], version); err != nil {
			return err
		}
		if err := s.Remove(ctx, pos[0], version); err != nil {
			return err
		}
		if version == 0 {
			fmt.Fprintf(env.stderr, "removed %s\n", pos[0])
		} else {
			fmt.Fprintf(env.stderr, "removed %s version %d\n", pos[0], version)
		}
		record(audit.Record{Action: audit.ActionRemove, Stored: pos[0], Version: version})
		return nil
	})
}

func runVerify(ctx context.Context, env *cliEnv, s *store.Store, _ []string) error {
	ok, bad, err := s.Verify(ctx, func(name string, err error) {
		// Verify reports every record, the healthy ones with a nil error.
		if err != nil {
			fmt.Fprintf(env.stdout, "FAIL %s: %v\n", name, err)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d record(s) open, %d failed\n", ok, bad)
	if bad > 0 {
		return fmt.Errorf("%d record(s) cannot be opened: restore them from a backup or put them again", bad)
	}
	return nil
}
