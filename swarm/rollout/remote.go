package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Metadata is a backend that tells the latest version of what a request
// reads from its metadata, never reading a value (the vault backend: KV v2
// metadata's current_version).
type Metadata interface {
	// MetadataPath is where a request for ref reads: requests with the
	// same path see the same versions.
	MetadataPath(ref backend.Ref) (string, error)
	// LatestVersion is the latest version at path; ErrNotFound when there
	// is none, errors.ErrUnsupported when the backend keeps no versions.
	LatestVersion(ctx context.Context, path string) (uint64, error)
}

// RemoteBackend is one backend instance a [RemotePoller] watches.
type RemoteBackend struct {
	Meta Metadata
	// Settle is how long the plugin may still answer an old version from
	// its cache (the instance's cache TTL); see [Change.Settle].
	Settle time.Duration
}

// PluginView is an installed plugin as the poller needs it: the driver
// names its secrets use, its DEFAULT_BACKEND and its remote instances.
type PluginView struct {
	Plugins  []string
	Default  string
	Backends map[string]RemoteBackend
}

// RemotePoller is a Source for backends changed outside swarmkeep (vault
// kv put), which tell no one. At every interval it reads the latest version
// of only the names that services labelled swarmkeep.rollout=auto use,
// resolved as the plugin resolves their secrets (labels, stack mapping,
// route, the backend's path), and reports the ones that grew. A name is
// compared only with what this poller read of it before: a service that
// opts in, or a poller that starts, sets a baseline and rolls nothing.
type RemotePoller struct {
	API API
	// Views lists the plugins' settings; it is called every round, so
	// that a plugin installed or reconfigured later is seen.
	Views func(ctx context.Context) ([]PluginView, error)
	// Every is the interval between rounds.
	Every time.Duration
	// BackoffMin is the first wait after a failed round (a backend or
	// Docker unreachable); it doubles up to Every.
	BackoffMin time.Duration
	// ReadTimeout bounds one version read (default 10s).
	ReadTimeout time.Duration
	Log         logrus.FieldLogger

	// sleep waits d or until ctx ends (false); tests step rounds with it.
	sleep func(ctx context.Context, d time.Duration) bool

	last map[watchKey]uint64 // what was read of each watched path: 0 when absent
	said map[string]bool     // messages logged once
	off  map[Metadata]bool   // backends that keep no versions
}

type watchKey struct{ plugins, backend, path string }

type watched struct {
	rb      RemoteBackend
	targets []Target
}

// Run implements Source. It returns only when ctx ends: a failed round is
// logged and retried, and rolls nothing.
func (p *RemotePoller) Run(ctx context.Context, fn func(Change)) error {
	if p.Every <= 0 {
		return fmt.Errorf("poll interval %s: want more than 0", p.Every)
	}
	if p.BackoffMin <= 0 || p.BackoffMin > p.Every {
		p.BackoffMin = min(time.Second, p.Every)
	}
	if p.ReadTimeout <= 0 {
		p.ReadTimeout = 10 * time.Second
	}
	if p.sleep == nil {
		p.sleep = sleep
	}
	p.last, p.said, p.off = map[watchKey]uint64{}, map[string]bool{}, map[Metadata]bool{}
	wait, lastErr := p.BackoffMin, ""
	for {
		next := p.Every
		if err := p.round(ctx, fn); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err.Error() != lastErr {
				p.Log.WithError(err).Warnf("auto-rollout: versions not read, nothing rolled; retrying with a backoff up to every %s", p.Every)
			}
			lastErr, next, wait = err.Error(), wait, min(2*wait, p.Every)
		} else {
			if lastErr != "" {
				p.Log.Info("auto-rollout: versions read again")
			}
			lastErr, wait = "", p.BackoffMin
		}
		if !p.sleep(ctx, next) {
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// round reads every watched path once and reports what grew.
func (p *RemotePoller) round(ctx context.Context, fn func(Change)) error {
	watch, err := p.watchList(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for k, w := range watch {
		if p.off[w.rb.Meta] {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, p.ReadTimeout)
		v, err := w.rb.Meta.LatestVersion(rctx, k.path)
		cancel()
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			p.off[w.rb.Meta] = true
			p.Log.WithField("backend", k.backend).Warnf("auto-rollout does not watch backend %s: %v; after a change there, run swarmkeep rollout NAME", k.backend, err)
			continue
		case errors.Is(err, backend.ErrNotFound):
			v = 0 // absent: its first version is a change
		case err != nil:
			errs = append(errs, fmt.Errorf("backend %s: %w", k.backend, err))
			continue
		}
		if prev, ok := p.last[k]; ok && v > prev {
			for _, t := range w.targets {
				fn(Change{Name: t.Name, Version: v, Target: &t, Settle: w.rb.Settle})
			}
		}
		p.last[k] = v
	}
	for k := range p.last {
		if _, ok := watch[k]; !ok {
			delete(p.last, k) // no longer used: a later opt-in is a new baseline
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more failed reads)", errs[0], len(errs)-1)
}

// watchList resolves the secrets of every opted-in service that route to a
// watched backend, exactly as the plugin resolves a request for them.
func (p *RemotePoller) watchList(ctx context.Context) (map[watchKey]*watched, error) {
	views, err := p.Views(ctx)
	if err != nil {
		return nil, err
	}
	watch := map[watchKey]*watched{}
	if len(views) == 0 {
		return watch, nil
	}
	secrets, err := p.API.SecretList(ctx, swarm.SecretListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing secrets: %w", err)
	}
	services, err := p.API.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	for _, v := range views {
		if len(v.Backends) == 0 {
			continue
		}
		base := Target{Default: v.Default, Plugins: v.Plugins}
		ours := map[string]swarm.Secret{}
		for _, s := range secrets {
			if base.ours(s.Spec.Driver) {
				ours[s.ID] = s
			}
		}
		for _, svc := range services {
			cs := svc.Spec.TaskTemplate.ContainerSpec
			if svc.Spec.Labels[AutoLabel] != AutoValue || cs == nil {
				continue
			}
			for _, ref := range cs.Secrets {
				sec, ok := ours[ref.SecretID]
				if !ok {
					continue
				}
				spec, err := driver.ParseSpec(sec.Spec.Name, sec.Spec.Labels)
				if err != nil || spec.Version != 0 {
					continue // resolves to nothing (uses warns), or pinned: nothing to roll
				}
				be := spec.Route(v.Default)
				rb, ok := v.Backends[be]
				if !ok {
					continue
				}
				r := backend.Ref{Name: spec.Name, Path: spec.Path, Field: spec.Field, Reuse: spec.Reuse,
					Secret: sec.Spec.Name, Stack: spec.Stack, Service: svc.Spec.Name, Labels: sec.Spec.Labels}
				path, err := rb.Meta.MetadataPath(r)
				if err != nil {
					p.once(fmt.Sprintf("auto-rollout: secret %s of service %s is not watched: %v", sec.Spec.Name, svc.Spec.Name, err))
					continue
				}
				k := watchKey{plugins: strings.Join(v.Plugins, ","), backend: be, path: path}
				w := watch[k]
				if w == nil {
					w = &watched{rb: rb}
					watch[k] = w
				}
				t := base
				t.Name, t.Backend = spec.Name, be
				if !slices.ContainsFunc(w.targets, func(o Target) bool { return o.Name == t.Name }) {
					w.targets = append(w.targets, t)
				}
			}
		}
	}
	return watch, nil
}

func (p *RemotePoller) once(msg string) {
	if !p.said[msg] {
		p.said[msg] = true
		p.Log.Warn(msg)
	}
}
