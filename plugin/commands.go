package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

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
` + storeFlagsUsage,
		run: runInit,
	})
	register("put", command{
		summary: "store a new version of a value (from stdin or --file)",
		usage: `Usage: swarmkeep put NAME [--file FILE] [--wait D] [store flags]

Stores the value as a new version of NAME. The value comes from FILE, from
stdin, or is typed at a hidden prompt; never from the command line. The bytes
are stored exactly (printf, not echo, avoids a trailing newline). A running
plugin serves the new version to the next task.

  --file FILE   read the value from FILE ("-" is stdin)
` + applyWaitUsage + storeFlagsUsage,
		run: runPut(),
	})
	register("get", command{
		summary: "write a stored value to stdout",
		usage:   "Usage: swarmkeep get NAME [--version N] [store flags]\n\n  --version N   a pinned version (default the latest)\n" + storeFlagsUsage,
		run:     runGet(),
	})
	register("ls", command{
		summary: "list names, versions, dates and sizes (never values)",
		usage:   "Usage: swarmkeep ls [NAME] [store flags]\n\nWithout NAME, one line per name; with NAME, one line per version.\n" + storeFlagsUsage,
		run:     storeCommand("ls", -1, "at most one NAME", nil, runLs),
	})
	register("rm", command{
		summary: "remove a name, or one version of it",
		usage:   "Usage: swarmkeep rm NAME [--version N] [--wait D] [store flags]\n\n  --version N   remove only this version (default: the name and all its versions)\n" + applyWaitUsage + storeFlagsUsage,
		run:     runRm(),
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
	return nil
}

func runPut() func(*cliEnv, []string) error {
	var file string
	var wait time.Duration
	return storeCommand("put", 1, "NAME", func(fs *flag.FlagSet) {
		fs.StringVar(&file, "file", "", "read the value from FILE")
		bindApplyWait(fs, &wait)
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
		if err := store.ValidateName(pos[0]); err != nil {
			return err
		}
		v, err := readValue(env, file)
		if err != nil {
			return err
		}
		ver, err := s.Put(ctx, pos[0], v)
		clear(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "stored %s version %d\n", pos[0], ver)
		return confirmApplied(ctx, env, s, wait)
	})
}

func runGet() func(*cliEnv, []string) error {
	var version uint64
	return storeCommand("get", 1, "NAME", func(fs *flag.FlagSet) {
		fs.Uint64Var(&version, "version", 0, "version")
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
		sec, err := s.Get(ctx, pos[0], version)
		if err != nil {
			return err
		}
		_, err = env.stdout.Write(sec.Value)
		clear(sec.Value)
		return err
	})
}

func runLs(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
	// tabwriter writes each cell on its own: one write(2) per cell to a
	// terminal or pipe was most of the time of a 100,000-name listing.
	bw := bufio.NewWriterSize(env.stdout, 64<<10)
	defer bw.Flush()
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if len(pos) == 1 {
		e, err := s.Info(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "VERSION\tCREATED\tSIZE")
		for _, v := range e.Versions {
			fmt.Fprintf(tw, "%d\t%s\t%d\n", v.Version, v.Created.UTC().Format(time.RFC3339), v.Size)
		}
		return nil
	}
	fmt.Fprintln(tw, "NAME\tVERSIONS\tLATEST\tUPDATED\tSIZE")
	return s.List(ctx, func(e store.Entry) error {
		if len(e.Versions) == 0 {
			return nil
		}
		last := e.Versions[len(e.Versions)-1]
		_, err := fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", e.Name, len(e.Versions), last.Version, last.Created.UTC().Format(time.RFC3339), last.Size)
		return err
	})
}

func runRm() func(*cliEnv, []string) error {
	var version uint64
	var wait time.Duration
	return storeCommand("rm", 1, "NAME", func(fs *flag.FlagSet) {
		fs.Uint64Var(&version, "version", 0, "version")
		bindApplyWait(fs, &wait)
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
		if err := s.Remove(ctx, pos[0], version); err != nil {
			return err
		}
		if version == 0 {
			fmt.Fprintf(env.stderr, "removed %s\n", pos[0])
		} else {
			fmt.Fprintf(env.stderr, "removed %s version %d\n", pos[0], version)
		}
		return confirmApplied(ctx, env, s, wait)
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
