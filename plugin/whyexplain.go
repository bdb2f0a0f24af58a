package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// driverPlugin is what this manager's engine has under a secret's driver
// name.
type driverPlugin struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
	// State is missing, disabled, enabled, broken (cannot serve at all) or
	// degraded (a backend not ready).
	State     string `json:"state"`
	Swarmkeep bool   `json:"swarmkeep"`
	Problem   string `json:"problem,omitempty"`
	// Installed lists the secret providers here, for a name that matches none.
	Installed []string `json:"installed,omitempty"`
	auditFile string
}

// auditWait is how long a task may wait for its secrets before why calls it
// stuck: the engine's search for a missing plugin takes about 15 s.
const auditWait = 20 * time.Second

type explainer struct {
	ctx       context.Context
	api       whyAPI
	auditFile string // --audit-file
	now       time.Time
	service   string
	secrets   map[string]*swarm.Secret
	plugins   map[string]*driverPlugin
	// answers holds the trail's last record per task ID and secret name,
	// read once; trailErr why it could not be read.
	answers  map[[2]string]audit.Record
	trailErr error
	read     bool
	notes    []string
}

func newExplainer(ctx context.Context, api whyAPI, auditFile string, now time.Time) *explainer {
	return &explainer{ctx: ctx, api: api, auditFile: auditFile, now: now,
		secrets: map[string]*swarm.Secret{}, plugins: map[string]*driverPlugin{}}
}

// task explains one task: each driver secret it lacks, or its state.
func (ex *explainer) task(t swarm.Task) []whyFinding {
	base := whyFinding{TaskID: t.ID, Task: taskName(ex.service, t), State: string(t.Status.State),
		Since: t.Status.Timestamp, TaskErr: t.Status.Err}
	var refs []*swarm.SecretReference
	if t.Spec.ContainerSpec != nil {
		refs = t.Spec.ContainerSpec.Secrets
	}
	if m := secretNotFound.FindStringSubmatch(t.Status.Err); m != nil {
		f := base
		f.SecretID = m[1]
		for _, r := range refs {
			if r.SecretID == m[1] {
				f.Secret = r.SecretName
			}
		}
		return []whyFinding{ex.secretFailed(f)}
	}
	if t.Status.Err != "" {
		f := base
		f.Kind, f.Cause = "not_a_secret", "the task failed for a reason other than a secret"
		f.Fix = "see docker service ps --no-trunc and docker inspect " + cut(t.ID, 12)
		return []whyFinding{f}
	}
	if waitingStates[t.Status.State] {
		var out []whyFinding
		for _, r := range refs {
			if f, ok := ex.waiting(base, r); ok {
				out = append(out, f)
			}
		}
		if len(out) > 0 {
			return out
		}
		f := base
		f.Kind, f.Cause = "waiting_ok", "being scheduled; its secrets' plugins are enabled here"
		if ex.now.Sub(t.Status.Timestamp) > auditWait {
			f.Kind = "waiting"
			f.Cause = "waiting for " + ex.now.Sub(t.Status.Timestamp).Round(time.Second).String() +
				" with no error; its secrets' plugins are enabled here, so the wait is elsewhere (image, resources, constraints) or on the leader"
			f.Fix = "docker service ps --no-trunc " + ex.service + "; run swarmkeep why on the leader"
		}
		return []whyFinding{f}
	}
	f := base
	f.Kind, f.Cause = "ok", "no secret problem: the task is "+string(t.Status.State)
	if t.Status.State != swarm.TaskStateRunning && t.Status.State != swarm.TaskStateComplete {
		f.Kind = "waiting_ok"
		f.Cause = "the task is " + string(t.Status.State) + " and has not failed (yet)"
	}
	return []whyFinding{f}
}

// waiting explains a task that has no error yet while a driver secret's
// plugin is missing, disabled or broken here.
func (ex *explainer) waiting(base whyFinding, r *swarm.SecretReference) (whyFinding, bool) {
	sec := ex.secret(r.SecretID)
	if sec == nil || sec.Spec.Driver == nil {
		return whyFinding{}, false
	}
	f := base
	f.Secret, f.SecretID, f.Driver = r.SecretName, r.SecretID, sec.Spec.Driver.Name
	p := ex.plugin(f.Driver)
	f.Plugin = p
	switch p.State {
	case "missing", "disabled", "broken":
		f.Kind, f.Cause, f.Fix = pluginCause(p, ex.service)
		f.Cause = "the task waits with no error: " + f.Cause
		return f, true
	}
	return whyFinding{}, false
}

// secretFailed explains a task that failed with "secret <id> not found".
func (ex *explainer) secretFailed(f whyFinding) whyFinding {
	sec := ex.secret(f.SecretID)
	if sec == nil {
		f.Kind = "secret_removed"
		f.Cause = "secret " + f.SecretID + " no longer exists in the swarm"
		f.Fix = "give the service a secret that exists: docker service update --secret-rm " + dash(f.Secret) + " --secret-add NAME " + ex.service
		return f
	}
	f.Secret = sec.Spec.Name
	if sec.Spec.Driver == nil {
		f.Kind = "not_a_driver_secret"
		f.Cause = "the secret has no driver: its value is in the swarm, yet the worker could not get it (a lost connection to the managers?)"
		f.Fix = "docker service update --force " + ex.service
		return f
	}
	f.Driver = sec.Spec.Driver.Name
	p := ex.plugin(f.Driver)
	f.Plugin = p
	if p.Swarmkeep {
		if rec, ok := ex.answer(p, f.TaskID, f.Secret); ok {
			f.Answer = &rec
			if rec.Decision == audit.DecisionAllow {
				f.Kind = "plugin_served"
				f.Cause = fmt.Sprintf("the plugin served %s version %d (%d bytes) for this task, yet the task did not get it", dash(rec.Stored), rec.Version, rec.Size)
				f.Fix = "a newer task asks again: docker service update --force " + ex.service + "; if it recurs, check the dockerd log (swarmkeep logs)"
				return f
			}
			f.Kind = "plugin_error"
			f.Cause, f.Fix = splitFix(rec.Error)
			return f
		}
	}
	switch p.State {
	case "missing", "disabled", "broken":
		f.Kind, f.Cause, f.Fix = pluginCause(p, ex.service)
		return f
	}
	if !p.Swarmkeep {
		f.Kind = "other_driver"
		f.Cause = "the driver " + f.Driver + " is not swarmkeep; its error is in that plugin's log"
		f.Fix = "read the plugin's lines in the dockerd log"
		return f
	}
	f.Kind = "not_asked_here"
	if ex.trailErr != nil {
		f.Cause = "the plugin's answer is in its audit trail, which cannot be read here: " + ex.trailErr.Error()
		f.Fix = "run swarmkeep why as root on the swarm leader, or pass --audit-file"
		return f
	}
	f.Cause = "this manager's plugin has no answer for this task in its audit trail: another manager was the leader when the task started"
	if p.State == "degraded" {
		f.Cause += "; and here the plugin is degraded: " + p.Problem
	}
	f.Fix = "run swarmkeep why " + cut(f.TaskID, 12) + " on the manager that was leader then, or swarmkeep logs there"
	return f
}

// pluginCause explains a plugin that was not asked, or cannot answer.
func pluginCause(p *driverPlugin, service string) (kind, cause, fix string) {
	retry := "; then let Swarm retry: docker service update --force " + service
	switch p.State {
	case "missing":
		cause = "no plugin named " + p.Name + " is installed on this manager: the leader's engine searches for it about 15 s per task (the task waits in Assigned with no error), then starts the task without the secret, which fails with secret not found"
		fix = "install and enable the plugin as " + p.Name + " on every manager"
		if len(p.Installed) > 0 {
			fix += ", or recreate the secret with --driver set to an installed secret provider (" + strings.Join(p.Installed, ", ") + ")"
		}
		return "plugin_missing", cause, fix + retry
	case "disabled":
		return "plugin_disabled", "plugin " + p.Name + " is disabled on this manager: the engine does not ask a disabled plugin, and starts the task without the secret",
			"docker plugin enable " + p.Name + " on every manager (swarmkeep status says why it stopped)" + retry
	default:
		c, f := splitFix(p.Problem)
		if f == "" {
			f = "swarmkeep status"
		}
		return "plugin_broken", "plugin " + p.Name + " cannot serve: " + c, f
	}
}

// splitFix splits an error line into its cause and the fix it names.
func splitFix(line string) (cause, fix string) {
	line = strings.TrimPrefix(line, "swarmkeep: ")
	if i := strings.LastIndex(line, "; fix: "); i >= 0 {
		return line[:i], line[i+len("; fix: "):]
	}
	return line, ""
}

func taskName(service string, t swarm.Task) string {
	if t.Slot != 0 {
		return fmt.Sprintf("%s.%d", service, t.Slot)
	}
	return service + "." + cut(t.NodeID, 12)
}

// secret inspects a secret once; nil when it is gone.
func (ex *explainer) secret(id string) *swarm.Secret {
	if s, ok := ex.secrets[id]; ok {
		return s
	}
	var sp *swarm.Secret
	if s, _, err := ex.api.SecretInspectWithRaw(ex.ctx, id); err == nil {
		sp = &s
	}
	ex.secrets[id] = sp
	return sp
}

// plugin finds what the engine has under a driver name, as the engine
// resolves it (":latest" implied), and for swarmkeep reads its /health.
func (ex *explainer) plugin(name string) *driverPlugin {
	if p, ok := ex.plugins[name]; ok {
		return p
	}
	p := &driverPlugin{Name: name}
	ex.plugins[name] = p
	pl, _, err := ex.api.PluginInspectWithRaw(ex.ctx, name)
	if err != nil {
		if !cerrdefs.IsNotFound(err) {
			p.State, p.Problem = "unknown", err.Error()
			return p
		}
		p.State = "missing"
		if list, err := ex.api.PluginList(ex.ctx, filters.NewArgs(filters.Arg("capability", "secretprovider"))); err == nil {
			for _, q := range list {
				p.Installed = append(p.Installed, strings.TrimSuffix(q.Name, ":latest"))
			}
			sort.Strings(p.Installed)
		}
		return p
	}
	p.ID, p.Swarmkeep = pl.ID, isSwarmkeep(pl)
	p.auditFile = hostAuditFile(pl)
	if !pl.Enabled {
		p.State = "disabled"
		return p
	}
	p.State = "enabled"
	if !p.Swarmkeep {
		return p
	}
	h, err := whyHealth(ex.ctx, ex.api, name)
	switch {
	case err != nil:
		ex.notes = append(ex.notes, "cannot read the plugin's health: "+err.Error())
	case h.Problem != "":
		p.State, p.Problem = "broken", h.Problem
	case h.Status != metrics.StatusOK:
		p.State = "degraded"
		if err := healthProblem(h); err != nil {
			p.Problem = err.Error()
		}
	}
	return p
}

// whyHealth reads the plugin's /health as status does (a hook for tests).
var whyHealth = func(ctx context.Context, api pluginAPI, name string) (metrics.Health, error) {
	info, err := findPlugin(ctx, api, name)
	if err != nil {
		return metrics.Health{}, err
	}
	h, _, err := fetchHealth(ctx, info)
	return h, err
}

// answer returns the plugin's last answer for a task's secret from the
// audit trail (and the rotated one before it).
func (ex *explainer) answer(p *driverPlugin, taskID, secret string) (audit.Record, bool) {
	if !ex.read {
		ex.read = true
		ex.answers = map[[2]string]audit.Record{}
		file := ex.auditFile
		if file == "" {
			file = p.auditFile
		}
		if file == "" {
			ex.trailErr = fmt.Errorf("the plugin's AUDIT is off, or its AUDIT_FILE is on no mount")
		} else {
			ex.trailErr = readAnswers(file, ex.service, ex.answers)
		}
		if ex.trailErr != nil {
			ex.notes = append(ex.notes, "audit trail: "+ex.trailErr.Error())
		}
	}
	r, ok := ex.answers[[2]string{taskID, secret}]
	return r, ok
}

// readAnswers keeps the last record per task and secret of service.
func readAnswers(file, service string, into map[[2]string]audit.Record) error {
	files, err := openTrail(file, true)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	f := audit.Filter{}
	if service != "" {
		f.Service = globLiteral(service)
	}
	for _, fh := range files {
		if _, err := audit.Scan(fh, f, func(r audit.Record) error {
			into[[2]string{r.TaskID, r.Secret}] = r
			return nil
		}); err != nil {
			return fmt.Errorf("%s: %w", fh.Name(), err)
		}
	}
	return nil
}

// globLiteral escapes a name for path.Match. Service names hold none of
// its special characters; this keeps that an assumption no one relies on.
func globLiteral(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}
