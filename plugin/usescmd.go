package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/client"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// swarmAPI is the part of the Docker client that uses, rollout, rollback
// and rm need, so tests can stand in for the daemon.
type swarmAPI interface {
	rollout.API
	pluginAPI
}

// newSwarmAPI connects as the docker CLI does: DOCKER_HOST and friends.
var newSwarmAPI = func() (swarmAPI, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// usesFlags say how the plugin resolves names on this swarm: which driver
// name is the plugin's, its default backend, where its audit trail is.
type usesFlags struct {
	plugin, dflt, auditFile string
	// shared is the flag set whose --audit-file a changing command bound
	// first (put --rollout, rm, rollback): one trail, one flag.
	shared *flag.FlagSet
}

const usesFlagsUsage = `
  --plugin NAME            the plugin's name as secrets' driver: spells it (default: the
                           name the swarmkeep plugin is installed under here, else swarmkeep)
  --default-backend NAME   the plugin's DEFAULT_BACKEND (default: the first of --backends);
                           the name is looked for in --backend, else in this one
  --audit-file FILE        the plugin's audit trail, read for served versions (FILE.1 too)
                           and where a change is recorded (env SWARMKEEP_AUDIT_FILE; default:
                           the installed plugin's AUDIT_FILE on the host, through its state
                           mount, else ` + auditDefaultFile + `)
`

// bind binds the flags; commands call resolve once parsed.
func (u *usesFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&u.plugin, "plugin", "", "plugin name")
	fs.StringVar(&u.dflt, "default-backend", "", "default backend")
	if fs.Lookup("audit-file") != nil {
		u.shared = fs
		return
	}
	fs.StringVar(&u.auditFile, "audit-file", "", "audit trail")
}

// resolve fills in the defaults that come from the environment.
func (u *usesFlags) resolve(env *cliEnv) {
	if u.shared != nil {
		u.auditFile = u.shared.Lookup("audit-file").Value.String()
	}
	if u.auditFile == "" {
		u.auditFile = defaultTrail(context.Background(), env)
	}
}

// storeFlagsOf reads the store flags storeCommand bound in fs, for commands
// that need them beside the open store.
func storeFlagsOf(fs *flag.FlagSet) storeFlags {
	get := func(n string) string {
		if f := fs.Lookup(n); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return storeFlags{dir: get("store"), keyFile: get("key-file"), passFile: get("passphrase-file"), backend: get("backend"), backends: get("backends")}
}

// target is name as the plugin reaches it: in --backend, or in the
// plugin's default backend, through secret objects whose driver is one of
// the plugin's names.
func (u *usesFlags) target(ctx context.Context, api pluginAPI, sf storeFlags, name string) (rollout.Target, error) {
	spec := sf.backends
	if spec == "" {
		spec = server.DefaultBackends
	}
	bs, err := server.ParseBackends(spec, sf.defaults(), driver.MaxTimeout, server.DefaultLKGDir)
	if err != nil {
		return rollout.Target{}, fmt.Errorf("--backends: %w", err)
	}
	dflt, err := server.DefaultBackend(bs, u.dflt)
	if err != nil {
		return rollout.Target{}, err
	}
	t := rollout.Target{Name: name, Backend: sf.backend, Default: dflt, Plugins: []string{u.plugin}}
	if t.Backend == "" {
		t.Backend = dflt
	}
	if u.plugin == "" {
		t.Plugins = []string{"swarmkeep"}
		if _, ours, err := installedPlugins(ctx, api); err == nil && len(ours) > 0 {
			t.Plugins = ours
		}
	}
	return t, nil
}

// served reads what the plugin served of t's name from the audit trail and
// its rotated predecessor.
func (u *usesFlags) served(t rollout.Target) (rollout.Served, error) {
	files, err := openTrail(u.auditFile, true)
	if err != nil {
		return nil, err
	}
	readers := make([]io.Reader, len(files))
	for i, f := range files {
		defer f.Close()
		readers[i] = f
	}
	return rollout.ServedFrom(t, readers...)
}

// latestVersion is the newest version of name in s.
func latestVersion(ctx context.Context, s *store.Store, name string) (uint64, error) {
	e, err := s.Info(ctx, name)
	if err != nil {
		return 0, err
	}
	if len(e.Versions) == 0 {
		return 0, fmt.Errorf("%s: %w", name, backend.ErrNotFound)
	}
	return e.Versions[len(e.Versions)-1].Version, nil
}

func connectSwarm() (swarmAPI, error) {
	api, err := newSwarmAPI()
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return api, nil
}

func init() {
	register("uses", command{
		summary: "show the services a stored name reaches and the version each task got",
		usage: `Usage: swarmkeep uses NAME [--format text|json] [flags] [store flags]

Lists the plugin's Swarm secret objects whose requests resolve to the stored
NAME (the plugin's own rules: swarmkeep.name, the stack mapping, the
swarmkeep.backend route; exact names, never prefixes), the services that
mount them and where, and for every running task the version the plugin
served it, from the audit trail. A service whose tasks got different
versions is flagged MIXED: swarmkeep rollout NAME brings them together.
Needs the Docker API of a manager (DOCKER_HOST) and, for versions, the
audit trail of the manager that leads the swarm (root).

  --format FORMAT          text (default) or json
` + usesFlagsUsage + storeFlagsUsage,
		run: runUses,
	})
}

type usesReport struct {
	rollout.Report
	// Latest is the newest stored version, 0 when the store was not read.
	Latest uint64   `json:"latest,omitempty"`
	Notes  []string `json:"notes"`
}

func runUses(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("uses", flag.ContinueOnError)
	var sf storeFlags
	var u usesFlags
	sf.bind(fs, env)
	u.bind(fs)
	format := fs.String("format", "text", "text or json")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	u.resolve(env)
	if err := exactArgs(pos, 1, "NAME"); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("%w: --format: want text or json", errUsage)
	}
	if err := store.ValidateName(pos[0]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	api, err := connectSwarm()
	if err != nil {
		return err
	}
	defer api.Close()
	t, err := u.target(ctx, api, sf, pos[0])
	if err != nil {
		return err
	}
	rep := usesReport{Notes: []string{}}
	if rep.Report, err = rollout.Find(ctx, api, t); err != nil {
		return fmt.Errorf("%w (uses needs the Docker API of a swarm manager: set DOCKER_HOST)", err)
	}
	if len(rep.Services) > 0 {
		if served, err := u.served(t); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("served versions unknown: %v", err))
		} else {
			rep.Annotate(served)
		}
	}
	var latestErr error
	if s, err := sf.open(ctx); err != nil {
		latestErr = err
	} else {
		rep.Latest, latestErr = latestVersion(ctx, s, t.Name)
		s.Close()
	}
	if latestErr != nil {
		if len(rep.Secrets) == 0 {
			// Neither stored nor named by a secret: maybe a value typed
			// in the wrong place, so it is not echoed.
			const msg = "argument 1 is neither stored nor resolved to by a secret object of the plugin (not shown: it could be a value)"
			if errors.Is(latestErr, backend.ErrNotFound) {
				return errors.New(msg + "; swarmkeep ls lists the names")
			}
			return fmt.Errorf("%s; the store cannot be read to tell: %w", msg, latestErr)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("latest version unknown: %v", latestErr))
	}
	if *format == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printUses(env.stdout, rep, t)
	return nil
}

func printUses(w io.Writer, rep usesReport, t rollout.Target) {
	latest := "unknown"
	if rep.Latest != 0 {
		latest = fmt.Sprint(rep.Latest)
	}
	fmt.Fprintf(w, "stored %s in backend %s (latest version %s; driver %s)\n", rep.Name, rep.Backend, latest, strings.Join(t.Plugins, ", "))
	if len(rep.Secrets) == 0 {
		fmt.Fprintf(w, "no secret object of the plugin resolves to %s\n", rep.Name)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nSECRET\tPINNED\tSERVICES")
		for _, s := range rep.Secrets {
			pinned := "-"
			if s.Pinned != 0 {
				pinned = fmt.Sprint(s.Pinned)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, pinned, orDash(strings.Join(s.Services, ", ")))
		}
		tw.Flush()
	}
	if len(rep.Services) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nSERVICE\tMOUNTS\tAUTO-ROLLOUT\tRUNNING\tVERSIONS")
		for _, s := range rep.Services {
			var mounts []string
			for _, m := range s.Mounts {
				mounts = append(mounts, m.Secret+" at /run/secrets/"+m.Target)
			}
			auto := "no"
			if s.Auto {
				auto = "yes"
			}
			versions := make([]string, len(s.Versions))
			for i, v := range s.Versions {
				versions[i] = fmt.Sprint(v)
			}
			vs := orDash(strings.Join(versions, ", "))
			if s.Mixed {
				vs += "  MIXED"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.Name, strings.Join(mounts, ", "), auto, len(s.Tasks), vs)
		}
		tw.Flush()
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nTASK\tSERVICE\tSLOT\tNODE\tVERSION")
		for _, s := range rep.Services {
			for _, tk := range s.Tasks {
				v := "?"
				if tk.Version != 0 {
					v = fmt.Sprint(tk.Version)
					if rep.Latest != 0 && tk.Version < rep.Latest {
						v += " (behind)"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cut(tk.ID, 12), s.Name, tk.Slot, cut(tk.Node, 12), v)
			}
		}
		tw.Flush()
	}
	for _, s := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, s := range rep.Services {
		if s.Mixed {
			fmt.Fprintf(w, "service %s runs tasks served different versions of %s: swarmkeep rollout %s\n", s.Name, rep.Name, rep.Name)
		}
	}
}
