package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// whyTimeout bounds the command: a handful of Docker API calls, one read
// of /health, one scan of the audit trail.
const whyTimeout = 30 * time.Second

func init() {
	register("why", command{
		summary: "explain why a service's tasks fail on a secret: the secret, the plugin's answer and the fix",
		usage: `Usage: swarmkeep why SERVICE|TASK [--audit-file FILE] [--format text|json]

docker service ps shows only "secret <id> not found" when a secret driver
failed, and nothing at all while a task waits. why maps the id to the secret
(Docker API), finds the plugin's answer for that task in the audit trail and
prints its cause and fix; when the plugin was never asked it says why: the
secret's driver names no plugin installed here, the plugin is disabled, or
it cannot serve (a broken setting: see swarmkeep status). Run it on the
swarm leader: only the leader's plugin is asked, and only its audit trail
holds the answers. Exits 1 when it found a problem.

  --audit-file FILE   the audit trail (default: the plugin's AUDIT_FILE under its
                      state mount, found through the Docker API)
  --format F          text (default) or json
`,
		run: runWhy,
	})
}

// whyAPI is the part of the Docker client why uses, so tests can stand in
// for the daemon.
type whyAPI interface {
	pluginAPI
	TaskInspectWithRaw(ctx context.Context, id string) (swarm.Task, []byte, error)
	TaskList(ctx context.Context, o swarm.TaskListOptions) ([]swarm.Task, error)
	ServiceInspectWithRaw(ctx context.Context, id string, o swarm.ServiceInspectOptions) (swarm.Service, []byte, error)
	SecretInspectWithRaw(ctx context.Context, id string) (swarm.Secret, []byte, error)
	NodeInspectWithRaw(ctx context.Context, id string) (swarm.Node, []byte, error)
	Info(ctx context.Context) (system.Info, error)
}

var newWhyAPI = func() (whyAPI, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// whyReport is what why found; --format json prints it.
type whyReport struct {
	Service   string `json:"service,omitempty"`
	ServiceID string `json:"service_id,omitempty"`
	// Note is about where the command ran (not the leader, no audit trail).
	Notes    []string     `json:"notes,omitempty"`
	Findings []whyFinding `json:"findings"`
}

// whyFinding is one explained task and secret.
type whyFinding struct {
	TaskID   string    `json:"task_id,omitempty"`
	Task     string    `json:"task,omitempty"`
	State    string    `json:"state,omitempty"`
	Since    time.Time `json:"since,omitempty"`
	TaskErr  string    `json:"task_error,omitempty"`
	Secret   string    `json:"secret,omitempty"`
	SecretID string    `json:"secret_id,omitempty"`
	Driver   string    `json:"driver,omitempty"`
	// Kind sorts the cause: plugin_error (the plugin answered an error),
	// plugin_missing, plugin_disabled, plugin_broken, not_asked_here,
	// secret_removed, not_a_secret (the task failed for another reason),
	// waiting, ok.
	Kind   string        `json:"kind"`
	Cause  string        `json:"cause"`
	Fix    string        `json:"fix,omitempty"`
	Answer *audit.Record `json:"answer,omitempty"`
	Plugin *driverPlugin `json:"plugin,omitempty"`
}

func (f whyFinding) problem() bool { return f.Kind != "ok" && f.Kind != "waiting_ok" }

// secretNotFound is the worker's error for a secret left out of a task's
// assignment (moby daemon/container_operations_unix.go setupSecretDir).
var secretNotFound = regexp.MustCompile(`secret ([a-z0-9]+)(?:\.[a-z0-9]+)? not found`)

// waitingStates are the states a task stays in while the leader's engine
// looks for its secrets' driver: the plugin was not asked yet, or cannot be.
var waitingStates = map[swarm.TaskState]bool{
	swarm.TaskStateNew: true, swarm.TaskStatePending: true, swarm.TaskStateAssigned: true,
	swarm.TaskStateAccepted: true, swarm.TaskStatePreparing: true,
}

func runWhy(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("why", flag.ContinueOnError)
	auditFile := fs.String("audit-file", "", "audit trail")
	format := fs.String("format", "text", "text or json")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := exactArgs(pos, 1, "one SERVICE or TASK"); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("%w: --format must be text or json", errUsage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), whyTimeout)
	defer cancel()
	api, err := newWhyAPI()
	if err != nil {
		return fmt.Errorf("docker client: %w; fix: check DOCKER_HOST", err)
	}
	defer api.Close()
	rep, err := explain(ctx, api, pos[0], *auditFile, time.Now())
	if err != nil {
		return err
	}
	if *format == "json" {
		out, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(env.stdout, "%s\n", out)
	} else {
		printWhy(env.stdout, rep)
	}
	for _, f := range rep.Findings {
		if f.problem() {
			return &exitError{code: 1, err: errors.New("found a problem (above)")}
		}
	}
	return nil
}

// explain resolves target (a task, else a service) and explains its tasks.
func explain(ctx context.Context, api whyAPI, target, auditFile string, now time.Time) (whyReport, error) {
	var rep whyReport
	tasks, err := tasksOf(ctx, api, target, &rep)
	if err != nil {
		return rep, err
	}
	rep.Notes = append(rep.Notes, leaderNote(ctx, api)...)
	ex := newExplainer(ctx, api, auditFile, now)
	ex.service = rep.Service
	for _, t := range tasks {
		rep.Findings = append(rep.Findings, ex.task(t)...)
	}
	rep.Notes = append(rep.Notes, ex.notes...)
	return rep, nil
}

// tasksOf returns the task named by target, or the tasks worth explaining
// of the service it names: per slot (or node, for a global service) the
// newest task, and the newest one that failed if that is another.
func tasksOf(ctx context.Context, api whyAPI, target string, rep *whyReport) ([]swarm.Task, error) {
	if t, _, err := api.TaskInspectWithRaw(ctx, target); err == nil {
		rep.ServiceID = t.ServiceID
		if s, _, err := api.ServiceInspectWithRaw(ctx, t.ServiceID, swarm.ServiceInspectOptions{}); err == nil {
			rep.Service = s.Spec.Name
		}
		return []swarm.Task{t}, nil
	} else if !cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("cannot ask the Docker daemon: %w; fix: run on a manager as root or a docker group member, or set DOCKER_HOST", err)
	}
	s, _, err := api.ServiceInspectWithRaw(ctx, target, swarm.ServiceInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("no service or task %s; fix: give a name or ID from docker service ls or docker service ps", target)
		}
		return nil, fmt.Errorf("cannot ask the Docker daemon: %w", err)
	}
	rep.Service, rep.ServiceID = s.Spec.Name, s.ID
	all, err := api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", s.ID))})
	if err != nil {
		return nil, fmt.Errorf("listing the tasks of %s: %w", s.Spec.Name, err)
	}
	return pickTasks(all), nil
}

// pickTasks keeps, per slot, the newest task and the newest failed one.
func pickTasks(all []swarm.Task) []swarm.Task {
	sort.Slice(all, func(i, j int) bool { return all[i].Meta.CreatedAt.After(all[j].Meta.CreatedAt) })
	newest := map[string]bool{}
	failed := map[string]bool{}
	var out []swarm.Task
	for _, t := range all {
		slot := fmt.Sprintf("%d/%s", t.Slot, t.NodeID)
		if t.Slot != 0 {
			slot = fmt.Sprint(t.Slot)
		}
		switch {
		case !newest[slot]:
			newest[slot] = true
			failed[slot] = t.Status.Err != ""
			out = append(out, t)
		case !failed[slot] && t.Status.Err != "":
			failed[slot] = true
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out
}

// leaderNote says when this manager is not the leader: the plugin asked,
// and the audit trail that holds its answers, are the leader's.
func leaderNote(ctx context.Context, api whyAPI) []string {
	info, err := api.Info(ctx)
	if err != nil || info.Swarm.NodeID == "" {
		return nil
	}
	if !info.Swarm.ControlAvailable {
		return []string{"this node is a worker: run swarmkeep why on the swarm leader (docker node ls shows it)"}
	}
	n, _, err := api.NodeInspectWithRaw(ctx, info.Swarm.NodeID)
	if err != nil || n.ManagerStatus == nil || n.ManagerStatus.Leader {
		return nil
	}
	return []string{"this manager is not the leader: the plugin asked, and the audit trail with its answers, are the leader's; run swarmkeep why there (docker node ls shows it)"}
}

func printWhy(w io.Writer, rep whyReport) {
	if rep.Service != "" {
		fmt.Fprintf(w, "service %s (%s)\n", rep.Service, cut(rep.ServiceID, 12))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, f := range rep.Findings {
		head := "task " + f.Task
		if f.TaskID != "" {
			head += " (" + cut(f.TaskID, 12) + ")"
		}
		if f.State != "" {
			head += " " + f.State
			if !f.Since.IsZero() {
				head += " since " + f.Since.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintln(w, "\n"+head)
		if f.TaskErr != "" {
			fmt.Fprintf(w, "  error:  %s\n", f.TaskErr)
		}
		if f.Secret != "" || f.SecretID != "" {
			s := dash(f.Secret)
			if f.SecretID != "" {
				s += " (id " + cut(f.SecretID, 12) + ")"
			}
			if f.Driver != "" {
				s += ", driver " + f.Driver
			}
			fmt.Fprintf(w, "  secret: %s\n", s)
		}
		if a := f.Answer; a != nil {
			fmt.Fprintf(w, "  plugin: answered %s at %s (%s)\n", a.Decision, a.Time.UTC().Format(time.RFC3339), dash(a.Class))
		}
		fmt.Fprintf(w, "  cause:  %s\n", f.Cause)
		if f.Fix != "" {
			fmt.Fprintf(w, "  fix:    %s\n", f.Fix)
		}
	}
	if len(rep.Findings) == 0 {
		fmt.Fprintln(w, "no tasks")
	}
}
