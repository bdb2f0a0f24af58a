package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/policy"
	"github.com/swarmkeep/swarmkeep/driver/server"
)

var checkUsage = `Usage: swarmkeep check -c COMPOSE_FILE [-c FILE]... --stack NAME [flags]

Resolves every secret of a compose file whose driver is this plugin the way
the plugin will once "docker stack deploy -c COMPOSE_FILE NAME" has created
it: the swarm secret name, the stored name and backend its labels select, the
access decision per service and whether the value is there (its size, never
the value). It also flags what Swarm drops without a word: driver_opts (never
sent to the plugin), driver changes on a redeploy, and the stack-name prefix.

As docker stack deploy does, it merges several -c files (a later file
overrides an earlier one's keys) and substitutes $VAR, ${VAR},
${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error},
${VAR:+alt}, ${VAR+alt} from the environment ($$ is a literal $).

Exit status: 0 when every secret of the plugin resolves; 1 when the deploy
would fail, a task could not get its secret, or no secret names the plugin
(nothing checked); 2 on a usage error.

Flags:
  -c, --compose-file FILE  compose file ("-" for stdin); repeat to merge files
  --stack NAME             the stack name given to docker stack deploy (required)
  --plugin NAME            the plugin's name as secrets' driver: spells it; NAME also
                           matches NAME:latest (default: the name the swarmkeep plugin is
                           installed under here, asked of Docker; else swarmkeep)
  --default-backend NAME   the plugin's DEFAULT_BACKEND (default: the first of --backends)
  --policy FILE            the managers' access policy file (default: the built-in default
                           policy, which the plugin applies when there is no file)
  --timeout DURATION       bound on each read (default 10s)
  --json                   the same as --format json
` + formatUsage("{{range .Secrets}}{{.SwarmName}} {{end}}", "of the report: .File .Stack .Plugin .OK .Errors .Warnings\n"+
	"                 .Notes .Secrets (each: .Key .SwarmName .Stored .Version .Backend .Services .Reads,\n"+
	"                 a read: .Service .Policy .Class .Size .Error); never a value") + storeFlagsUsage + `
--backends defaults to "local:file", the local store of --store and
--key-file, as the plugin's BACKENDS does; --backend is not used by check.
Backends are only read.
`

func init() {
	register("check", command{
		summary: "check a compose file's swarmkeep secrets before docker stack deploy",
		usage:   checkUsage,
		run:     runCheck,
	})
}

// checkRead is one read the engine will make: one per service using the
// secret (one without a service when none does).
type checkRead struct {
	Service string `json:"service,omitempty"`
	Policy  string `json:"policy"`
	Class   string `json:"class"`
	Size    int    `json:"size,omitempty"`
	Error   string `json:"error,omitempty"`
}

type checkedSecret struct {
	Key       string      `json:"key"`
	SwarmName string      `json:"swarm_name"`
	Stored    string      `json:"stored,omitempty"`
	Version   uint64      `json:"version,omitempty"`
	Backend   string      `json:"backend,omitempty"`
	Services  []string    `json:"services"`
	Reads     []checkRead `json:"reads,omitempty"`
}

type checkReport struct {
	File     string          `json:"file"`
	Stack    string          `json:"stack"`
	Plugin   string          `json:"plugin"`
	Secrets  []checkedSecret `json:"secrets"`
	Errors   []string        `json:"errors"`
	Warnings []string        `json:"warnings"`
	Notes    []string        `json:"notes"`
	OK       bool            `json:"ok"`
}

func runCheck(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var sf storeFlags
	sf.bind(fs, env)
	var files fileList
	var stack, pluginName, dflt, policyFile string
	fs.Var(&files, "c", "compose file")
	fs.Var(&files, "compose-file", "compose file")
	fs.StringVar(&stack, "stack", "", "stack name")
	fs.StringVar(&pluginName, "plugin", "", "plugin name")
	fs.StringVar(&dflt, "default-backend", "", "default backend")
	fs.StringVar(&policyFile, "policy", "", "access policy file")
	timeout := fs.Duration("timeout", 10*time.Second, "read timeout")
	format, jsonFlag := formatFlag(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	asJSON, err := resolveFormat(*format, *jsonFlag)
	if err != nil {
		return err
	}
	switch {
	case len(files) == 0:
		return fmt.Errorf("%w: -c COMPOSE_FILE is required", errUsage)
	case stack == "":
		return fmt.Errorf("%w: --stack NAME is required: the stack name decides every secret's swarm and stored name", errUsage)
	case strings.ContainsAny(stack, " \t\r\n"):
		return fmt.Errorf("%w: --stack holds white space: use the plain name given to docker stack deploy", errUsage)
	}
	file := strings.Join(files, ", ")
	rep := checkReport{File: file, Stack: stack, Errors: []string{}, Warnings: []string{}, Notes: []string{}}
	cf, err := loadComposeFiles(env, files, &rep)
	if err != nil {
		return err
	}
	if cf == nil {
		return finishCheck(env, &rep, asJSON)
	}
	plugins := resolvePluginNames(pluginName, &rep)
	rep.Plugin = strings.Join(plugins, ", ")
	p := planCheck(cf, stack, plugins)
	rep.Errors = append(rep.Errors, p.Errors...)
	rep.Warnings = append(rep.Warnings, p.Warnings...)
	rep.Notes = append(rep.Notes, p.Notes...)
	var ours []plannedSecret
	for _, s := range p.Secrets {
		if s.Ours {
			ours = append(ours, s)
		}
	}
	if len(ours) == 0 {
		// Nothing checked is no green light: usually the plugin is
		// installed under another name than the one looked for.
		msg := fmt.Sprintf("no secret of %s has driver: %s, so nothing was checked", file, rep.Plugin)
		if others := otherDrivers(p.Secrets); len(others) > 0 {
			msg += fmt.Sprintf(" (drivers in the file: %s); fix: swarmkeep check --plugin NAME with the name the plugin is installed under", strings.Join(others, ", "))
		}
		rep.Errors = append(rep.Errors, msg)
		return finishCheck(env, &rep, asJSON)
	}
	pol, err := loadCheckPolicy(policyFile)
	if err != nil {
		return err
	}
	d, err := checkDriver(&sf, dflt, pol, *timeout)
	if err != nil {
		return err // a bad --backends is the operator's command line, not the file
	}
	defer d.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, s := range ours {
		rep.Secrets = append(rep.Secrets, resolveSecret(ctx, d, cf, stack, s, &rep))
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("docker stack deploy names a secret without name: %s_<key> and adds label %s=%s; the plugin reads the STORED name, so put each value there (swarmkeep put STORED)", stack, driver.StackNamespaceLabel, stack),
		"on a redeploy Swarm updates only the labels of a secret that exists: a changed driver or driver_opts is silently ignored (give the secret a new name: to change them)")
	return finishCheck(env, &rep, asJSON)
}

// checkDriver builds the plugin's driver from the same BACKENDS syntax and
// defaults, without caches: a check must see the backend, not a copy, and
// must not write last-known-good copies.
func checkDriver(sf *storeFlags, dflt string, pol *policy.Policy, timeout time.Duration) (*checkingDriver, error) {
	spec := sf.backends
	if spec == "" {
		spec = server.DefaultBackends
	}
	bs, err := server.ParseBackends(spec, sf.defaults(), driver.MaxTimeout, server.DefaultLKGDir)
	if err != nil {
		return nil, fmt.Errorf("--backends: %w", err)
	}
	if dflt, err = server.DefaultBackend(bs, dflt); err != nil {
		return nil, err
	}
	routes := make([]driver.Route, len(bs))
	for i, b := range bs {
		routes[i] = driver.Route{Name: b.Name, Backend: backend.NewLazy(b.Type, b.Settings), Caps: b.Caps}
	}
	cd := &checkingDriver{dflt: dflt}
	cd.Driver, err = driver.New(driver.Options{
		Routes: routes, Default: dflt, Timeout: timeout, Policy: pol,
		// Get runs the observer before it returns, so last is this read's.
		Observer: func(ev driver.Event) { cd.last = ev },
	})
	if err != nil {
		return nil, err
	}
	return cd, nil
}

// checkingDriver keeps the event of the latest read: its class, backend and
// access decision say more than the answered line. Reads are sequential.
type checkingDriver struct {
	*driver.Driver
	dflt string
	last driver.Event
}

// resolveSecret resolves one planned secret and makes the reads the engine
// will make for it, one per service using it.
func resolveSecret(ctx context.Context, d *checkingDriver, cf *composeFile, stack string, s plannedSecret, rep *checkReport) checkedSecret {
	cs := checkedSecret{Key: s.Key, SwarmName: s.SwarmName, Services: []string{}}
	for _, svc := range s.Services {
		cs.Services = append(cs.Services, stack+"_"+svc)
	}
	spec, err := driver.ParseSpec(s.SwarmName, s.Labels)
	if err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("secret %s: %v", s.Key, err))
		return cs
	}
	cs.Stored, cs.Version, cs.Backend = spec.Name, spec.Version, firstNonEmpty(spec.Backend, d.dflt)
	services := s.Services
	if len(services) == 0 {
		services = []string{""} // nobody will read it; still say if the value is there
	}
	for _, svc := range services {
		req := composeRequest(cf, stack, svc, s)
		d.last = driver.Event{}
		resp := d.Get(ctx, req)
		ev := d.last
		if ev.Backend != "" {
			cs.Backend = ev.Backend
		}
		r := checkRead{Service: req.ServiceName, Class: string(ev.Class), Size: ev.Size, Policy: policyColumn(ev.Decision)}
		if resp.Err != "" {
			r.Size, r.Error = 0, resp.Err
			if ev.Class == driver.ClassPolicyDenied && ev.Decision.Reason != "" {
				// The engine never sees why; the operator running check should.
				resp.Err += " (policy: " + ev.Decision.Reason + ")"
			}
			if svc == "" {
				// No task will ask for it, so nothing fails: say so only.
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("secret %s (used by no service): %s", s.Key, resp.Err))
			} else {
				rep.Errors = append(rep.Errors, fmt.Sprintf("secret %s for service %s: %s", s.Key, req.ServiceName, resp.Err))
			}
		} else if s.Template && bytes.Contains(resp.Value, []byte("{{")) {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("secret %s: its value contains {{ and template_driver is set: the task gets it expanded, or fails", s.Key))
		}
		clear(resp.Value) // the size is all a check reports
		cs.Reads = append(cs.Reads, r)
	}
	return cs
}

// loadCheckPolicy reads the policy the managers' plugin applies. Unlike
// the plugin, a named file that is missing is an error: here it is a typo.
func loadCheckPolicy(path string) (*policy.Policy, error) {
	if path == "" {
		return policy.Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	return policy.Parse(data, path)
}

// policyAuthorizer puts the policy in the driver, so Get denies exactly
// where the plugin will, before any backend is asked.
// policyColumn shows the access decision the driver made for a read; none
// is made when the request fails before (a bad label).
func policyColumn(dec policy.Decision) string {
	switch {
	case dec.Allow:
		return "allow (" + dec.Rule + ")"
	case dec.Rule != "":
		return "deny (" + dec.Rule + ")"
	case dec.Reason != "":
		return "deny"
	}
	return ""
}

// finishCheck prints the report and fails the command when a deploy would.
func finishCheck(env *cliEnv, rep *checkReport, out outFormat) error {
	rep.OK = len(rep.Errors) == 0
	if err := out.print(env.stdout, rep, func(w io.Writer) error { printCheck(w, rep); return nil }); err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%d error(s): docker stack deploy %s would fail or its tasks could not get their secrets", len(rep.Errors), rep.Stack)
	}
	return nil
}

func printCheck(w io.Writer, rep *checkReport) {
	if len(rep.Secrets) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SECRET\tSWARM NAME\tSTORED\tBACKEND\tSERVICES\tPOLICY\tVALUE")
		for _, s := range rep.Secrets {
			stored := orDash(s.Stored)
			if s.Version > 0 {
				stored = fmt.Sprintf("%s@%d", stored, s.Version)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Key, s.SwarmName, stored, orDash(s.Backend),
				orDash(strings.Join(s.Services, ",")), orDash(summarize(s.Reads, func(r checkRead) string { return r.Policy })),
				orDash(summarize(s.Reads, valueColumn)))
		}
		tw.Flush()
	}
	for _, l := range [][2]any{{"error", rep.Errors}, {"warning", rep.Warnings}, {"note", rep.Notes}} {
		for _, m := range l[1].([]string) {
			fmt.Fprintf(w, "%s: %s\n", l[0], m)
		}
	}
	if rep.OK {
		fmt.Fprintf(w, "ok: %d secret(s) resolved, %d warning(s)\n", len(rep.Secrets), len(rep.Warnings))
	}
}

func valueColumn(r checkRead) string {
	if r.Class == string(driver.ClassOK) {
		return fmt.Sprintf("ok %d B", r.Size)
	}
	return r.Class
}

// summarize joins the distinct per-service answers: usually there is one.
func summarize(reads []checkRead, f func(checkRead) string) string {
	var out []string
	seen := map[string]bool{}
	for _, r := range reads {
		if v := f(r); !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return strings.Join(out, "; ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// composeRequest is the request the engine would send for secret s when a
// task of compose service svc of stack starts ("" for no service). A read for
// no service still speaks for the stack, so the default policy judges it as
// it will judge the stack's services.
func composeRequest(cf *composeFile, stack, svc string, s plannedSecret) driver.Request {
	req := driver.Request{SecretName: s.SwarmName, SecretLabels: s.Labels,
		ServiceLabels: map[string]string{driver.StackNamespaceLabel: stack}}
	if svc != "" {
		cfs := cf.Services[svc]
		req.ServiceName, req.TaskImage = stack+"_"+svc, cfs.Image
		for k, v := range cfs.Deploy.Labels {
			req.ServiceLabels[k] = v
		}
		req.ServiceLabels[driver.StackNamespaceLabel] = stack
	}
	return req
}
