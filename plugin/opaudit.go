package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// The commands that change a store (init, put, rm, rekey, import) add an
// operator record to the plugin's audit trail on this host, with the same
// writer and format (driver/audit, "Operator records"), so swarmkeep audit
// shows who changed a value next to who was served it.

// EnvCLIAuditFile is the trail both swarmkeep audit reads and the operator
// commands append to.
const EnvCLIAuditFile = "SWARMKEEP_AUDIT_FILE"

// operatorTrailDefault is the plugin's trail on the host: AUDIT_FILE's
// default, under the state mount whose default source is the same path.
// A variable so tests keep away from the host's trail.
var operatorTrailDefault = server.DefaultAuditFile

// realUID is the real user ID; a variable for tests.
var realUID = os.Getuid

const auditFileUsage = `  --audit-file FILE  the audit trail this change is recorded in (env ` + EnvCLIAuditFile + `;
                     default: the installed plugin's AUDIT_FILE on the host, through its state
                     mount, else ` + server.DefaultAuditFile + `; off: none). Recorded only
                     where the trail's state folder exists, as on a host that runs the plugin
`

// auditFileFlag adds --audit-file to a changing command.
func auditFileFlag(fs *flag.FlagSet, env *cliEnv) *string {
	// "" is resolved when a record is written (defaultTrail), so that
	// --help and failed commands ask no engine.
	return fs.String("audit-file", env.getenv(EnvCLIAuditFile), "audit trail")
}

// osUser names who runs the command: the sudo user when root runs it for
// one (SUDO_USER is only believed from root, who could write the trail
// anyway), else the real user ID's name.
func osUser(env *cliEnv) (string, int) {
	uid := realUID()
	if uid == 0 {
		if su := env.getenv("SUDO_USER"); su != "" {
			return su, uid
		}
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username, uid
	}
	return "", uid
}

// recordAction appends operator records for a change already made. The
// change stands whatever happens here, so a failure is a warning on stderr,
// never the command's error (running it again would change the store
// twice). backendName is the --backend instance, "" for the local store.
func recordAction(env *cliEnv, file, backendName string, recs ...audit.Record) {
	if file == "off" || len(recs) == 0 {
		return
	}
	if file == "" {
		file = defaultTrail(context.Background(), env)
	}
	// The state folder (/var/lib/swarmkeep): where it does not exist, no
	// plugin runs on this host and there is no trail to add to.
	if _, err := os.Stat(filepath.Dir(filepath.Dir(file))); errors.Is(err, fs.ErrNotExist) {
		return
	}
	name, uid := osUser(env)
	w, err := audit.Open(file, audit.Options{})
	if err == nil {
		for _, r := range recs {
			r.Decision, r.Class, r.Backend = audit.DecisionOperator, "ok", backendName
			r.User, r.UID = name, &uid
			if err = w.Append(r); err != nil {
				break
			}
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "warning: done, but not recorded in the audit trail: %v (fix: run as root, or pass --audit-file)\n", err)
	}
}

// changeCommand is storeCommand for a command that changes the store: it
// adds --audit-file, and body gets record, which appends operator records
// (Decision, Class, Backend, User and UID filled in) once a change is made.
func changeCommand(name string, nargs int, what string, extra func(fs *flag.FlagSet),
	body func(ctx context.Context, env *cliEnv, s *store.Store, pos []string, record func(...audit.Record)) error,
) func(*cliEnv, []string) error {
	return func(env *cliEnv, args []string) error {
		var fset *flag.FlagSet
		var file *string
		return storeCommand(name, nargs, what, func(fs *flag.FlagSet) {
			fset, file = fs, auditFileFlag(fs, env)
			if extra != nil {
				extra(fs)
			}
		}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
			record := func(recs ...audit.Record) {
				recordAction(env, *file, fset.Lookup("backend").Value.String(), recs...)
			}
			return body(ctx, env, s, pos, record)
		})(env, args)
	}
}
