package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// statusTimeout bounds the whole command: the Docker lookup and one small
// HTTP request on a local socket.
const statusTimeout = 10 * time.Second

// Plugin settings status reads to find the metrics endpoints. They are the
// serve command's METRICS_SOCKET and METRICS_ADDR.
const (
	envMetricsSocket = "METRICS_SOCKET"
	envMetricsAddr   = "METRICS_ADDR"
)

func init() {
	register("status", command{
		summary: "show the running plugin's health, configuration hash, backends and recent errors",
		usage: `Usage: swarmkeep status [--plugin NAME] [--socket PATH] [--format F]

Finds the plugin through the Docker API and reads its /health on the
metrics socket (/run/docker/plugins/<plugin-id>/swarmkeep-metrics.sock, root
only). On a swarm manager it also lists every manager's plugin as its
agent publishes it (enabled, settings hash, store identity, a digest of each
name's latest version, mirror index) and flags any manager that differs.
Exits 1 when the plugin is missing, disabled, unreachable or degraded, or when
managers differ.

  --plugin NAME   the plugin (default swarmkeep:latest; the tag may be left out)
  --socket PATH   read this metrics socket and skip the Docker lookup
  --json          the same as --format json: the plugin and its health
` + formatUsage("{{.Health.Status}} {{.Health.ConfigHash}}", ".Plugin (.Name .ID .Enabled .Socket .Addr) .Health\n"+
			"                 (/health's document: .Status .Version .ConfigHash .Backends ...) .Via .Problem"),
		run: runStatus,
	})
}

// pluginAPI is the part of the Docker client status uses, so tests can
// stand in for the daemon.
type pluginAPI interface {
	PluginInspectWithRaw(ctx context.Context, name string) (*types.Plugin, []byte, error)
	PluginList(ctx context.Context, filter filters.Args) (types.PluginsListResponse, error)
	Close() error
}

// newPluginAPI connects as the docker CLI does: DOCKER_HOST and friends.
var newPluginAPI = func() (pluginAPI, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// pluginInfo is what status learns from the daemon.
type pluginInfo struct {
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
	// Enabled is unknown (nil) with --socket, which skips the daemon.
	Enabled *bool  `json:"enabled,omitempty"`
	Socket  string `json:"socket,omitempty"` // metrics socket, host path
	Addr    string `json:"addr,omitempty"`   // METRICS_ADDR, when set
}

// statusReport is the --json document.
type statusReport struct {
	Plugin  pluginInfo      `json:"plugin"`
	Health  *metrics.Health `json:"health"`
	Via     string          `json:"via,omitempty"`
	Problem string          `json:"problem,omitempty"`
	// Managers are every manager's plugin as its agent published it.
	Managers []managerState `json:"managers,omitempty"`
}

func runStatus(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	name := fs.String("plugin", "swarmkeep:latest", "plugin name")
	socket := fs.String("socket", "", "metrics socket")
	format, asJSON := formatFlag(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 0, "no arguments"); err != nil {
		return err
	}
	out, err := resolveFormat(*format, *asJSON)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()

	rep := statusReport{Plugin: pluginInfo{Socket: *socket}}
	var problem error
	if *socket == "" {
		rep.Plugin, problem = lookupPlugin(ctx, *name)
	}
	if problem == nil {
		var h metrics.Health
		h, rep.Via, problem = fetchHealth(ctx, rep.Plugin)
		if problem == nil {
			rep.Health = &h
			problem = healthProblem(h)
		}
	}
	var managers bool
	if *socket == "" {
		var mproblem error
		rep.Managers, managers, mproblem = managersReport(ctx)
		problem = errors.Join(problem, mproblem)
	}
	if problem != nil {
		rep.Problem = problem.Error()
	}
	if err := out.print(env.stdout, rep, func(w io.Writer) error {
		if rep.Plugin.ID != "" || rep.Health != nil {
			printStatus(w, rep)
		}
		if managers {
			printManagers(w, rep.Managers)
		}
		return nil
	}); err != nil {
		return err
	}
	return problem
}

// lookupPlugin asks the daemon for the plugin and where its socket is.
func lookupPlugin(ctx context.Context, name string) (pluginInfo, error) {
	api, err := newPluginAPI()
	if err != nil {
		return pluginInfo{}, fmt.Errorf("docker client: %w; fix: check DOCKER_HOST", err)
	}
	defer api.Close()
	return findPlugin(ctx, api, name)
}

// findPlugin inspects name (the daemon adds :latest and takes ID prefixes)
// and maps its metrics socket to the host.
func findPlugin(ctx context.Context, api pluginAPI, name string) (pluginInfo, error) {
	p, _, err := api.PluginInspectWithRaw(ctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
		return pluginInfo{}, notFound(ctx, api, name)
	case err != nil:
		return pluginInfo{}, fmt.Errorf("cannot ask the Docker daemon: %w; fix: run on a manager as root or a docker group member, or set DOCKER_HOST", err)
	}
	info := pluginInfo{Name: p.Name, ID: p.ID, Enabled: &p.Enabled}
	if !p.Enabled {
		if err := mountProblem(p, osStat); err != nil {
			return info, err
		}
		return info, fmt.Errorf("plugin %s is disabled; fix: docker plugin enable %s", p.Name, p.Name)
	}
	settings := pluginEnv(p)
	info.Addr = settings[envMetricsAddr]
	// Settings change only while the plugin is disabled.
	reset := fmt.Sprintf("docker plugin disable %s && docker plugin set %s %s= && docker plugin enable %s", p.Name, p.Name, envMetricsSocket, p.Name)
	inside, err := metrics.ResolveSocket(settings[envMetricsSocket])
	if err != nil {
		return info, fmt.Errorf("the plugin's %s: %w; fix: %s", envMetricsSocket, err, reset)
	}
	rel, err := filepath.Rel(metrics.PluginSocketDir, inside)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return info, fmt.Errorf("the plugin's %s=%s is outside %s, the only plugin folder the host sees; fix: pass --socket with its host path, or %s",
			envMetricsSocket, inside, metrics.PluginSocketDir, reset)
	}
	// The daemon mounts the host's /run/docker/plugins/<id> there.
	info.Socket = filepath.Join(metrics.PluginSocketDir, p.ID, rel)
	return info, nil
}

// notFound names the secret providers that are installed, since a plugin
// installed under an alias is the usual reason.
func notFound(ctx context.Context, api pluginAPI, name string) error {
	list, err := api.PluginList(ctx, filters.NewArgs(filters.Arg("capability", "secretprovider")))
	if err != nil || len(list) == 0 {
		return fmt.Errorf("plugin %s is not installed; fix: install it on this manager (docker plugin install or create, then enable; see the README)", name)
	}
	names := make([]string, 0, len(list))
	for _, p := range list {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return fmt.Errorf("plugin %s is not installed (secret providers here: %s); fix: swarmkeep status --plugin %s", name, strings.Join(names, ", "), names[0])
}

// fetchHealth reads /health on the socket, falling back to METRICS_ADDR,
// which a non-root docker user can reach (with fewer details).
func fetchHealth(ctx context.Context, p pluginInfo) (metrics.Health, string, error) {
	h, err := getHealth(ctx, "unix", p.Socket)
	if err == nil {
		return h, p.Socket, nil
	}
	if p.Addr != "" {
		if h, terr := getHealth(ctx, "tcp", p.Addr); terr == nil {
			return h, p.Addr, nil
		}
	}
	return metrics.Health{}, "", err
}

func getHealth(ctx context.Context, network, addr string) (metrics.Health, error) {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://swarmkeep/health", nil)
	if err != nil {
		return metrics.Health{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return metrics.Health{}, unreachable(addr, err)
	}
	defer resp.Body.Close()
	var h metrics.Health
	// 503 still carries the document: it means degraded.
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h); err != nil || h.Status == "" {
		return metrics.Health{}, fmt.Errorf("%s answered /health with HTTP %d and no health document; fix: check that it is swarmkeep's metrics socket", addr, resp.StatusCode)
	}
	return h, nil
}

// unreachable says why the socket did not answer and what to do.
func unreachable(addr string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("no metrics socket at %s; fix: upgrade the plugin to a version that serves metrics, or pass --socket", addr)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("no permission to open %s; fix: run as root (sudo swarmkeep status)", addr)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing answers on %s; fix: the plugin may be restarting: check docker plugin ls and the dockerd log", addr)
	default:
		return fmt.Errorf("cannot read health from %s: %w; fix: check the dockerd log for the plugin's errors", addr, err)
	}
}

// healthProblem turns a degraded health into the command's error.
func healthProblem(h metrics.Health) error {
	if h.Status == metrics.StatusOK {
		return nil
	}
	if h.Problem != "" {
		// The plugin cannot serve at all (serve --stay-up): the cause
		// carries its fix.
		return errors.New(h.Problem)
	}
	if h.ProblemSummary != "" {
		// The same over the TCP port, which carries only the summary.
		return errors.New(h.ProblemSummary)
	}
	var bad []string
	for _, name := range sortedNames(h.Backends) {
		if b := h.Backends[name]; !b.Ready {
			bad = append(bad, name+" ("+strings.Join(strings.Fields(b.Error), " ")+")")
		}
	}
	return fmt.Errorf("degraded: backend not ready: %s; fix: check the backend and the plugin's lines in the dockerd log; the plugin keeps retrying in the background", strings.Join(bad, ", "))
}

func printStatus(w io.Writer, r statusReport) {
	kv := func(k, format string, args ...any) {
		fmt.Fprintf(w, "%-14s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	if r.Plugin.ID != "" {
		kv("plugin", "%s", r.Plugin.Name)
		kv("id", "%s", r.Plugin.ID)
		kv("enabled", "%t", r.Plugin.Enabled != nil && *r.Plugin.Enabled)
	}
	h := r.Health
	if h == nil {
		return
	}
	kv("health from", "%s", r.Via)
	kv("version", "%s (%s; this command: %s)", h.Version, h.GoVersion, version)
	kv("config hash", "%s", h.ConfigHash)
	if h.Policy != "" {
		kv("policy", "%s (%s)", h.Policy, h.PolicyHash)
	}
	kv("status", "%s", h.Status)
	if h.Problem != "" {
		kv("problem", "%s", h.Problem)
	}
	kv("uptime", "%s", time.Duration(h.UptimeS)*time.Second)
	var outcomes []string
	for _, o := range sortedNames(h.Requests.Outcomes) {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", o, h.Requests.Outcomes[o]))
	}
	if len(outcomes) == 0 {
		kv("requests", "none yet")
	} else {
		kv("requests", "%d (%s); %d cached, %d stale", h.Requests.Total, strings.Join(outcomes, ", "), h.Requests.Cached, h.Requests.Stale)
	}
	fmt.Fprintln(w, "backends:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, name := range sortedNames(h.Backends) {
		b := h.Backends[name]
		state := "ready"
		if !b.Ready {
			state = "NOT READY: " + b.Error
		}
		fmt.Fprintf(tw, "  %s\t%s (since %s)\n", name, state, b.Since.Format(time.RFC3339))
	}
	tw.Flush()
	if len(h.RecentErrors) == 0 {
		fmt.Fprintln(w, "recent errors: none")
		return
	}
	fmt.Fprintln(w, "recent errors (newest first):")
	for _, e := range h.RecentErrors {
		what := e.Line
		if what == "" {
			what = "(details on the root-only socket)"
		}
		who := e.Backend
		if e.Service != "" {
			who += " service=" + e.Service
		}
		fmt.Fprintf(w, "  %s %s %s: %s\n", e.Time.Format(time.RFC3339), e.Class, who, what)
	}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
