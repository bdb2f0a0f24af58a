package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

// auditDefaultFile is where serve writes the trail by default: under the
// state mount, whose default host source is the same path, so the command
// finds it on the host without flags.
const auditDefaultFile = server.DefaultAuditFile

func init() {
	register("audit", command{
		summary: "show the audit trail: who was served which secret, who changed which value (never values)",
		usage: `Usage: swarmkeep audit [--file FILE] [--all] [filters] [--follow] [--format F]

Prints the plugin's audit trail, oldest first: one line per secret request
answered, with the task that asked and what was decided, and one per change
an operator command made (init, put, rm, rekey, import: decision operator,
with the OS user). It never holds a value. Only the swarm leader asks the
plugin: run this on the manager that was leader for the period, and after a
leader change on each manager.

  --file FILE      the trail (env ` + EnvCLIAuditFile + `; default: the installed plugin's
                   AUDIT_FILE on the host, through its state mount, else ` + auditDefaultFile + `)
  --all            read the rotated FILE.1 first (rotate with delaycompress)
  --follow         keep printing records as they are written, as tail -f does, through
                   a rotation (rename or copytruncate); stop with Ctrl-C
  --secret GLOB    the secret's name or its stored name; * and ? match as in shell patterns
  --service GLOB   the service's name or ID
  --decision D     allow (a value was served), deny (refused), error, or operator
  --backend NAME   the backend instance asked
  --since T        from T: RFC 3339 (2025-01-02T15:04:05Z), a date (2025-01-02, UTC),
                   or a duration ago (90m, 1h, 7d)
  --until T        before T, in the same forms
  --json           the same as --format json: JSON lines, the file's format
` + formatUsage("{{.Time}} {{.Secret}} {{.Decision}}", "of a record, as driver/audit/doc.go documents them:\n"+
			"                 .Time .Secret .Stored .Version .Backend .Service .ServiceID .Task .TaskID\n"+
			"                 .Image .Node .Decision .Class .Cached .Stale .StaleAgeMS .DoNotReuse .Size\n"+
			"                 .LatencyMS .Rule .Error .Action .User .UID"),
		run: runAudit,
	})
}

func runAudit(env *cliEnv, args []string) error {
	fset := flag.NewFlagSet("audit", flag.ContinueOnError)
	var file string
	fset.StringVar(&file, "file", "", "audit file")
	all := fset.Bool("all", false, "read FILE.1 first")
	follow := fset.Bool("follow", false, "follow the file")
	format, asJSON := formatFlag(fset, true)
	var f audit.Filter
	var since, until string
	fset.StringVar(&f.Secret, "secret", "", "secret glob")
	fset.StringVar(&f.Service, "service", "", "service glob")
	fset.StringVar(&f.Decision, "decision", "", "allow, deny, error or operator")
	fset.StringVar(&f.Backend, "backend", "", "backend instance")
	fset.StringVar(&since, "since", "", "start time")
	fset.StringVar(&until, "until", "", "end time")
	pos, err := parseArgs(fset, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments (filters are flags)"); err != nil {
		return err
	}
	out, err := resolveFormat(*format, *asJSON)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, t := range []struct {
		flag, val string
		dst       *time.Time
	}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
		if t.val == "" {
			continue
		}
		if *t.dst, err = parseWhen(t.val, now); err != nil {
			return fmt.Errorf("%w: --%s: %v", errUsage, t.flag, err)
		}
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	if file == "" {
		file = defaultTrail(context.Background(), env)
	}
	files, err := openTrail(file, *all)
	if err != nil {
		return err
	}
	defer func() {
		for _, fh := range files {
			fh.Close()
		}
	}()
	emit, flush := auditTable(env.stdout)
	if !out.table() {
		emit, flush = func(r audit.Record) error { return out.item(env.stdout, r) }, func() error { return nil }
	}
	last := len(files) - 1
	if *follow {
		last-- // the follower reads the current file, from its start
	}
	for _, fh := range files[:last+1] {
		st, err := audit.Scan(fh, f, emit)
		if err != nil {
			return fmt.Errorf("%s: %w", fh.Name(), err)
		}
		if st.Records == 0 && st.Skipped > 0 {
			return fmt.Errorf("%s is not an audit trail: none of its %d line(s) is a record", fh.Name(), st.Skipped)
		}
		if st.Skipped > 0 {
			fmt.Fprintf(env.stderr, "swarmkeep audit: skipped %d damaged line(s) in %s (a torn or partial write)\n", st.Skipped, fh.Name())
		}
	}
	if !*follow {
		return flush()
	}
	fl := &trailFollower{path: file, f: files[len(files)-1], filter: f, emit: emit, stderr: env.stderr}
	files = files[:len(files)-1] // the follower closes its own
	defer fl.close()
	if err := fl.open(); err != nil {
		return err
	}
	ctx, stop := auditFollowContext()
	defer stop()
	ticks, stopTicks := auditFollowTicks()
	defer stopTicks()
	for {
		if err := fl.poll(); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// openTrail opens the trail, after its rotated predecessor with all. Both are
// opened before anything is printed, so a missing file is one clear error.
func openTrail(file string, all bool) ([]*os.File, error) {
	var out []*os.File
	if all {
		switch fh, err := os.Open(file + ".1"); {
		case err == nil:
			out = append(out, fh)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, trailError(file+".1", err)
		}
	}
	fh, err := os.Open(file)
	if err != nil {
		for _, o := range out {
			o.Close()
		}
		return nil, trailError(file, err)
	}
	return append(out, fh), nil
}

func trailError(file string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no audit trail at %s: the plugin writes it on the swarm leader (setting AUDIT_FILE); "+
			"pass --file or set SWARMKEEP_AUDIT_FILE: %w", file, fs.ErrNotExist)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w (the trail is readable by root only: use sudo)", err)
	}
	return err
}

// auditTable prints records as an aligned table. IDs are cut to 12
// characters and the task ID dropped from the task name, as docker service ps
// does; --format json has them whole. An operator record shows its action as
// the decision and its user in the service column. flush may be called more
// than once (--follow flushes after each read).
func auditTable(w io.Writer) (emit func(audit.Record) error, flush func() error) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSECRET\tSTORED@VERSION\tSERVICE\tTASK\tNODE\tDECISION\tCLASS\tCACHED\tLATENCY")
	emit = func(r audit.Record) error {
		stored := r.Stored
		if stored != "" && r.Version != 0 {
			stored += "@" + strconv.FormatUint(r.Version, 10)
		}
		when := r.Time.UTC().Format("2006-01-02T15:04:05.000Z")
		if r.Decision == audit.DecisionOperator {
			who := "user:" + dash(r.User)
			if r.User == "" && r.UID != nil {
				who = "uid:" + strconv.Itoa(*r.UID)
			}
			_, err := fmt.Fprintf(tw, "%s\t-\t%s\t%s\t-\t-\t%s\t%s\t-\t-\n", when, dash(stored), who, dash(r.Action), r.Decision)
			return err
		}
		task := r.Task
		if r.TaskID != "" {
			task = strings.TrimSuffix(task, "."+r.TaskID)
		}
		cached := "no"
		switch {
		case r.Stale:
			cached = "stale " + (time.Duration(r.StaleAgeMS) * time.Millisecond).Round(time.Second).String()
		case r.Cached:
			cached = "yes"
		}
		latency := time.Duration(math.Round(r.LatencyMS*1000)) * time.Microsecond
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			when, dash(r.Secret), dash(stored), dash(r.Service),
			dash(task), dash(cut(r.Node, 12)), r.Decision, dash(r.Class), cached, latency)
		return err
	}
	return emit, tw.Flush
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// parseWhen reads a --since or --until value: a time, a date (UTC midnight),
// or a duration before now, with d for days since time.ParseDuration has none.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days >= 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: want RFC 3339 (2025-01-02T15:04:05Z), a date (2025-01-02) or a duration ago (1h, 7d)", s)
}
