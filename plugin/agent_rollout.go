package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/driver/store"
	"github.com/swarmkeep/swarmkeep/swarm/agent"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// agentRollout is the agent's rollout loop: services labelled
// swarmkeep.rollout=auto are rolled when a name they use gets a new version.
// Its flags carry a rollout- prefix: the agent's flag set is shared by
// every loop, and other loops have stores of their own.
type agentRollout struct {
	sf               storeFlags
	u                usesFlags
	poll, debounce   time.Duration
	timeout, backoff time.Duration
	vaultPoll        time.Duration
	watchEvery       time.Duration
}

func init() {
	var c agentRollout
	registerAgentLoop("rollout", agentLoopDef{
		summary: "roll services labelled swarmkeep.rollout=auto when a name they use changes (leader only)",
		flags:   c.bind,
		build:   c.loop,
	})
}

func (c *agentRollout) bind(fs *flag.FlagSet, env *cliEnv) {
	dflt := func(k, d string) string {
		if v := env.getenv(k); v != "" {
			return v
		}
		return d
	}
	fs.StringVar(&c.sf.dir, "rollout-store", dflt(EnvCLIStore, server.DefaultStoreDir), "store folder watched")
	fs.StringVar(&c.sf.keyFile, "rollout-key-file", dflt(EnvCLIKeyFile, server.DefaultKeyFile), "key file")
	fs.StringVar(&c.sf.passFile, "rollout-passphrase-file", env.getenv(EnvCLIPassphrase), "passphrase file")
	fs.StringVar(&c.sf.backend, "rollout-backend", env.getenv(EnvCLIBackend), "backend instance watched")
	fs.StringVar(&c.sf.backends, "rollout-backends", env.getenv(EnvCLIBackends), "backend instances")
	fs.StringVar(&c.u.plugin, "rollout-plugin", "", "plugin name")
	fs.StringVar(&c.u.dflt, "rollout-default-backend", "", "the plugin's DEFAULT_BACKEND")
	fs.StringVar(&c.u.auditFile, "rollout-audit-file", env.getenv(EnvCLIAuditFile), "audit trail")
	fs.DurationVar(&c.poll, "rollout-poll", 30*time.Second, "interval between looks at the store's versions")
	fs.DurationVar(&c.debounce, "rollout-debounce", 2*time.Second, "quiet time after a put before rolling")
	fs.DurationVar(&c.timeout, "rollout-timeout", 10*time.Minute, "bound on one service's rollout")
	fs.DurationVar(&c.backoff, "rollout-backoff", time.Second, "first wait after Docker failed; doubles each time, up to 30 times this")
	fs.DurationVar(&c.vaultPoll, "rollout-vault-poll", 30*time.Second, "interval between reads of the Vault metadata of the names opted-in services use (0: off)")
	c.watchEvery = 250 * time.Millisecond
}

func (c *agentRollout) loop() (agent.Loop, error) {
	if c.poll <= 0 || c.debounce < 0 || c.timeout <= 0 || c.backoff <= 0 {
		return agent.Loop{}, fmt.Errorf("%w: --rollout-poll, --rollout-timeout and --rollout-backoff must be more than 0", errUsage)
	}
	if c.vaultPoll < 0 {
		return agent.Loop{}, fmt.Errorf("%w: --rollout-vault-poll must be 0 (off) or more", errUsage)
	}
	return agent.Loop{Name: "rollout", Run: c.run}, nil
}

func (c *agentRollout) run(ctx context.Context, env *agent.Env) error {
	log := env.Log.WithField("loop", "rollout")
	if c.u.auditFile == "" {
		c.u.auditFile = operatorTrailDefault
		if f, ok := installedTrail(ctx, env.Docker); ok {
			c.u.auditFile = f
		}
	}
	var sources rollout.Multi
	s, err := c.sf.open(ctx)
	switch {
	case err == nil:
		defer s.Close()
		wake := make(chan struct{}, 1)
		if c.sf.backend == "" {
			go c.watchDir(ctx, log, wake)
		}
		sources = append(sources, &rollout.Poller{Every: c.poll, Wake: wake, Snapshot: func(ctx context.Context) (map[string]uint64, error) {
			return snapshot(ctx, s)
		}})
	case errors.Is(err, backend.ErrNotFound) && c.vaultPoll > 0:
		// A plugin that reads only Vault has no store of its own.
		log.WithError(err).Info("no store to watch; watching Vault only")
	default:
		return err
	}
	base, err := c.u.target(ctx, env.Docker, c.sf, "")
	if err != nil {
		return err
	}
	if c.vaultPoll > 0 {
		vw := newVaultWatch(env.Docker, c.u.plugin, log)
		defer vw.close()
		sources = append(sources, &rollout.RemotePoller{API: env.Docker, Views: vw.views, Every: c.vaultPoll, BackoffMin: c.backoff, Log: log})
	}
	a := &rollout.Auto{
		API:    env.Docker,
		Leader: env.Leader,
		Source: sources,
		Target: func(name string) rollout.Target {
			t := base
			t.Name = name
			return t
		},
		RollOptions: func(t rollout.Target, want uint64) rollout.Options {
			return rollout.Options{Checks: []rollout.Check{{Name: t.Name, Want: want, Served: func() (rollout.Served, error) { return c.u.served(t) }}}}
		},
		Timeout:    c.timeout,
		Debounce:   c.debounce,
		BackoffMin: c.backoff,
		BackoffMax: 30 * c.backoff,
		Log:        log,
		Record: func(ev rollout.Event) {
			if err := appendAudit(c.u.auditFile, ev.Record(time.Now())); err != nil {
				log.WithError(err).Warn("auto-rollout: the audit record was not written")
			}
		},
	}
	log.WithFields(logrus.Fields{"backend": base.Backend, "driver": base.Plugins, "poll": c.poll, "vault_poll": c.vaultPoll}).Info("watching for new versions")
	return a.Run(ctx)
}

// snapshot is every name's latest version: record metadata only, no value
// is opened.
func snapshot(ctx context.Context, s *store.Store) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.List(ctx, func(e store.Entry) error {
		if n := len(e.Versions); n > 0 {
			out[e.Name] = e.Versions[n-1].Version
		}
		return nil
	})
	return out, err
}

// watchDir wakes the poller when the store folder changes (inotify through
// the store's own watch); without it (a network filesystem) polling alone
// finds new versions.
func (c *agentRollout) watchDir(ctx context.Context, log logrus.FieldLogger, wake chan<- struct{}) {
	m, err := store.OpenDir(c.sf.dir)
	if err != nil {
		log.WithError(err).Warn("store folder not watched; polling only")
		return
	}
	defer m.Close()
	w, err := m.Watch()
	if err != nil {
		log.WithError(err).Warnf("store folder not watched; polling every %s", c.poll)
		return
	}
	defer w.Close()
	t := time.NewTicker(c.watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed := false
		err := w.Sync(func(string) { changed = true }, func() { changed = true })
		if err != nil {
			log.WithError(err).Warnf("store folder watch broke; polling every %s", c.poll)
			return
		}
		if changed {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
}

// appendAudit adds one record to the plugin's audit trail, in one write(2)
// with O_APPEND, so it never tears a line the plugin writes at the same
// time. The trail is root's only, as the plugin keeps it.
func appendAudit(path string, r any) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(b, '\n'))
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}
