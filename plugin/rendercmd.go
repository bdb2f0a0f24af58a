package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

const renderUsage = `Usage: swarmkeep render -c COMPOSE_FILE [-c FILE]... [--stack NAME] [--dir DIR] [flags]
       swarmkeep render -c COMPOSE_FILE [--stack NAME] [--dir DIR] --clean

For docker compose without a swarm: a secret with driver: swarmkeep only
works in swarm mode (docker-compose up says 'undefined secret file "None"',
docker compose up 'field Source must not be empty'). render resolves those
secrets as the plugin would for "docker stack deploy -c COMPOSE_FILE NAME"
(the same labels, stack-name mapping, access policy and backends as check),
writes each value to a root-only folder on a tmpfs (folder 0700, files 0400,
never on disk) and an override file whose file: secrets point there:

  docker-compose -f COMPOSE_FILE -f DIR/override.yml up -d

Nothing is written unless every secret resolves. After docker-compose down,
--clean removes the values and the override (only what render wrote). A
container keeps its copy of a file while it runs, but cannot start again
after --clean: render again first.

Flags:
  -c, --compose-file FILE  compose file; repeat to merge files as compose does
  --stack NAME             the name the stack would get from docker stack deploy
                           (default: COMPOSE_PROJECT_NAME, else the compose file's
                           folder name, as compose names its project)
  --dir DIR                folder for the values and the override (default
                           /run/swarmkeep/compose/NAME, or /dev/shm/swarmkeep/compose/NAME
                           when /run is no tmpfs); it must be on a tmpfs
  --clean                  remove what render wrote in DIR, and DIR
  --plugin NAME            the plugin's name as secrets' driver: spells it (as check)
  --default-backend NAME   the plugin's DEFAULT_BACKEND
  --policy FILE            the managers' access policy file (default: the built-in one)
  --timeout DURATION       bound on each read (default 10s)
` + storeFlagsUsage

func init() {
	register("render", command{
		summary: "write a compose file's swarmkeep secrets to a tmpfs for docker compose without a swarm",
		usage:   renderUsage,
		run:     runRender,
	})
}

// renderManifest lists, one a line, the files render wrote into its folder:
// --clean removes those and nothing else, so a wrong --dir cannot delete
// someone else's files.
const renderManifest = ".swarmkeep-render"

// renderOverride is the override file's name inside the folder.
const renderOverride = "override.yml"

// composeKeyRE: a secret key that is also a safe file name (compose keys are
// letters, digits, '.', '_' and '-').
var composeKeyRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func runRender(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	var sf storeFlags
	sf.bind(fs, env)
	var files fileList
	var stack, dir, pluginName, dflt, policyFile string
	fs.Var(&files, "c", "compose file")
	fs.Var(&files, "compose-file", "compose file")
	fs.StringVar(&stack, "stack", "", "stack name")
	fs.StringVar(&dir, "dir", "", "output folder")
	clean := fs.Bool("clean", false, "remove the rendered files")
	fs.StringVar(&pluginName, "plugin", "", "plugin name")
	fs.StringVar(&dflt, "default-backend", "", "default backend")
	fs.StringVar(&policyFile, "policy", "", "access policy file")
	timeout := fs.Duration("timeout", 10*time.Second, "read timeout")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: -c COMPOSE_FILE is required", errUsage)
	}
	if stack == "" {
		stack = projectName(env, files[0])
	}
	if !validSwarmName(stack) || strings.Contains(stack, "/") {
		return fmt.Errorf("%w: stack name %q is not a valid name; give --stack NAME", errUsage, stack)
	}
	if dir == "" {
		dir = filepath.Join(renderBase(), stack)
	}
	if *clean {
		return cleanRender(env, dir)
	}

	rep := checkReport{Errors: []string{}}
	cf, err := loadComposeFiles(env, files, &rep)
	if err != nil {
		return err
	}
	if cf == nil {
		return fmt.Errorf("%s", strings.Join(rep.Errors, "; "))
	}
	plugins := resolvePluginNames(pluginName, &rep)
	p := planCheck(cf, stack, plugins)
	var ours []plannedSecret
	for _, s := range p.Secrets {
		if s.Ours {
			ours = append(ours, s)
		}
	}
	if len(ours) == 0 {
		return fmt.Errorf("no secret of %s has driver: %s, so there is nothing to render; fix: --plugin NAME with the driver name the file uses", strings.Join(files, ", "), strings.Join(plugins, ", "))
	}
	for _, s := range ours {
		if !composeKeyRE.MatchString(s.Key) {
			return fmt.Errorf("secret key %q cannot be a file name; fix: rename the secret in the compose file", s.Key)
		}
		if s.Key == renderOverride || s.Key == renderManifest {
			// Its value would be overwritten by render's own file of that name.
			return fmt.Errorf("secret key %q is the name of a file render writes beside the values; fix: rename the secret in the compose file", s.Key)
		}
	}
	pol, err := loadCheckPolicy(policyFile)
	if err != nil {
		return err
	}
	d, err := checkDriver(&sf, dflt, pol, *timeout)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	values := map[string][]byte{}
	defer func() {
		for _, v := range values {
			clear(v)
		}
	}()
	var problems []string
	for _, s := range ours {
		v, err := renderValue(ctx, d, cf, stack, s)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		values[s.Key] = v
	}
	if len(problems) > 0 {
		return fmt.Errorf("nothing written, %d secret(s) do not resolve: %s", len(problems), strings.Join(problems, "; "))
	}
	if err := writeRender(dir, cf.Version, values); err != nil {
		return err
	}
	override := filepath.Join(dir, renderOverride)
	fmt.Fprintf(env.stdout, "wrote %d secret(s) for stack %s to %s (tmpfs, root only)\n", len(values), stack, dir)
	fmt.Fprintf(env.stdout, "run:      docker-compose %s -f %s up -d\n", fileArgs("-f", files), override)
	fmt.Fprintf(env.stdout, "clean up: docker-compose %s -f %s down && swarmkeep render %s --stack %s --dir %s --clean\n",
		fileArgs("-f", files), override, fileArgs("-c", files), stack, dir)
	return nil
}

// fileArgs repeats flag before each file: -f a.yml -f b.yml.
func fileArgs(flag string, files []string) string {
	parts := make([]string, 0, 2*len(files))
	for _, f := range files {
		parts = append(parts, flag, f)
	}
	return strings.Join(parts, " ")
}

// renderValue reads a secret once per service using it, as the engine
// would, so a policy that denies one of them fails render as it would fail
// that service's task. The first read's value is kept.
func renderValue(ctx context.Context, d *checkingDriver, cf *composeFile, stack string, s plannedSecret) ([]byte, error) {
	services := s.Services
	if len(services) == 0 {
		services = []string{""}
	}
	var value []byte
	for _, svc := range services {
		req := composeRequest(cf, stack, svc, s)
		resp := d.Get(ctx, req)
		if resp.Err != "" {
			clear(value)
			who := ""
			if svc != "" {
				who = " for service " + req.ServiceName
			}
			return nil, fmt.Errorf("secret %s%s: %s", s.Key, who, resp.Err)
		}
		if value == nil {
			value = resp.Value
		} else {
			clear(resp.Value)
		}
	}
	return value, nil
}

// projectName is the name docker-compose gives the project: the
// COMPOSE_PROJECT_NAME variable, else the compose file's folder name,
// lower case, with only letters, digits, '_' and '-' kept.
func projectName(env *cliEnv, file string) string {
	if v := env.getenv("COMPOSE_PROJECT_NAME"); v != "" {
		return v
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, r := range strings.ToLower(filepath.Base(filepath.Dir(abs))) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
