package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/server"
	"github.com/swarmkeep/swarmkeep/swarm/rollout"
)

// vaultType is the backend type whose versions the rollout loop polls: a
// vault kv put happens outside swarmkeep and tells no one.
const vaultType = "vault"

// vaultWatch gives the rollout loop's RemotePoller the Vault instances of
// the installed plugin, configured as the plugin is: its BACKENDS and
// DEFAULT_BACKEND from docker plugin inspect, with the credential and
// certificate files (paths inside the plugin) mapped to the host folders
// its mounts bind. It asks the engine every round and reopens an instance
// only when the plugin's settings changed, so a plugin installed or
// reconfigured after the agent started is picked up.
type vaultWatch struct {
	docker pluginAPI
	// plugin is --rollout-plugin; "" means every installed swarmkeep plugin.
	plugin string
	log    logrus.FieldLogger
	open   func(ctx context.Context, s backend.Settings) (backend.Backend, error)

	cur map[string]*pluginWatch // by plugin name
}

type pluginWatch struct {
	fingerprint string
	view        rollout.PluginView
	opened      []backend.Backend
}

func newVaultWatch(docker pluginAPI, plugin string, log logrus.FieldLogger) *vaultWatch {
	return &vaultWatch{docker: docker, plugin: plugin, log: log, cur: map[string]*pluginWatch{},
		open: func(ctx context.Context, s backend.Settings) (backend.Backend, error) {
			t, err := backend.Lookup(vaultType)
			if err != nil {
				return nil, err
			}
			return t.Open(ctx, s)
		}}
}

// views implements RemotePoller.Views. The poller calls it from one
// goroutine.
func (w *vaultWatch) views(ctx context.Context) ([]rollout.PluginView, error) {
	names := []string{w.plugin}
	if w.plugin == "" {
		_, ours, err := installedPlugins(ctx, w.docker)
		if err != nil {
			return nil, fmt.Errorf("listing plugins: %w", err)
		}
		names = ours
	}
	seen := map[string]bool{}
	var out []rollout.PluginView
	for _, name := range names {
		p, _, err := w.docker.PluginInspectWithRaw(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("inspecting plugin %s: %w", name, err)
		}
		if !p.Enabled {
			continue // settings may be changing; the next round sees them
		}
		seen[name] = true
		fp, _ := json.Marshal(p.Settings)
		pw := w.cur[name]
		if pw == nil || pw.fingerprint != string(fp) {
			w.drop(name)
			pw = w.build(ctx, name, p)
			pw.fingerprint = string(fp)
			w.cur[name] = pw
		}
		if len(pw.view.Backends) > 0 {
			out = append(out, pw.view)
		}
	}
	for name := range w.cur {
		if !seen[name] {
			w.drop(name)
		}
	}
	return out, nil
}

// build opens the plugin's Vault instances. A problem with one (a
// credential file on no mount, a bad setting) is logged, once per change
// of the plugin's settings, and that instance is not watched.
func (w *vaultWatch) build(ctx context.Context, name string, p *types.Plugin) *pluginWatch {
	pw := &pluginWatch{view: rollout.PluginView{Plugins: []string{name}, Backends: map[string]rollout.RemoteBackend{}}}
	log := w.log.WithField("plugin", name)
	env := pluginEnv(p)
	// As the plugin reads them: an empty setting is its default.
	get := func(k string) string {
		if v := env[k]; v != "" {
			return v
		}
		return server.Lookup(k).Default
	}
	d := backend.Defaults{StoreDir: get(server.EnvStoreDir), KeyFile: get(server.EnvKeyFile), PassphraseFile: get(server.EnvPassphraseFile)}
	// The plugin's CACHE_TTL bounds how long it may answer from a copy:
	// a rollout sooner could hand new tasks the old value.
	o := server.BackendOptions{Timeout: driver.MaxTimeout, LKGDir: get(server.EnvLKGDir), NoPrefetch: true}
	ttl, err := time.ParseDuration(get(server.EnvCacheTTL))
	if err == nil {
		o.CacheTTL = ttl
	}
	var bs []server.BackendConfig
	if err == nil {
		bs, err = server.ParseBackendsWith(get(server.EnvBackends), d, o)
	}
	if err == nil {
		pw.view.Default, err = server.DefaultBackend(bs, env[server.EnvDefaultBackend])
	}
	if err != nil {
		log.WithError(err).Warn("auto-rollout: the plugin's settings cannot be read; its Vault backends are not watched")
		return pw
	}
	for _, b := range bs {
		if b.Type != vaultType {
			continue
		}
		blog := log.WithField("backend", b.Name)
		s, err := hostSettings(p, b.Settings)
		if err == nil {
			var be backend.Backend
			if be, err = w.open(ctx, s); err == nil {
				meta, ok := be.(rollout.Metadata)
				if !ok {
					be.Close()
					err = fmt.Errorf("this build's vault backend reads no metadata")
				} else {
					pw.opened = append(pw.opened, be)
					rb := rollout.RemoteBackend{Meta: meta}
					if b.Cache.Enabled {
						rb.Settle = b.Cache.TTL // the plugin may answer the old version that long
					}
					pw.view.Backends[b.Name] = rb
					blog.WithField("settle", rb.Settle).Info("auto-rollout: watching the versions of the Vault names opted-in services use")
					continue
				}
			}
		}
		blog.WithError(err).Warn("auto-rollout: Vault backend not watched")
	}
	return pw
}

func (w *vaultWatch) drop(name string) {
	if pw := w.cur[name]; pw != nil {
		for _, b := range pw.opened {
			b.Close()
		}
		delete(w.cur, name)
	}
}

// close closes every instance opened.
func (w *vaultWatch) close() {
	for name := range w.cur {
		w.drop(name)
	}
}

// hostSettings maps every file a backend's settings name (credentials and
// certificates, paths inside the plugin) to the host, through the mount
// that holds it. The same settings name the same files, so the agent logs
// in as the plugin does.
func hostSettings(p *types.Plugin, s backend.Settings) (backend.Settings, error) {
	out := backend.Settings{}
	for k, v := range s {
		out[k] = v
		if v == "" || !(strings.HasSuffix(k, "_file") || strings.HasPrefix(k, "tls_") && k != "tls_server_name") {
			continue
		}
		host, ok := hostPath(p, v)
		if !ok {
			return nil, fmt.Errorf("setting %s=%s is on none of the plugin's mounts, so the agent cannot read it; fix: keep it under the config mount (/etc/swarmkeep)", k, v)
		}
		out[k] = host
	}
	return out, nil
}
