package configstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/docker/docker/client"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// BackendType is the name the replicated store is registered under.
const BackendType = "swarm"

// Settings of a "swarm" instance. dir is the manager's store folder the
// mirror writes and the plugin reads; prefix names the store among the
// swarm's configs; docker_host overrides DOCKER_HOST for the operator
// commands (the plugin never uses it).
const (
	settingDir            = "dir"
	settingKeyFile        = "key_file"
	settingPassphraseFile = "passphrase_file"
	settingPrefix         = "prefix"
	settingDockerHost     = "docker_host"
)

var known = []string{settingDir, settingKeyFile, settingPassphraseFile, settingPrefix, settingDockerHost}

func init() {
	backend.Register(backend.Type{
		Name: BackendType, Open: openBackend, Defaults: defaults,
		Caps: backend.Capabilities{Writable: true, Sealed: true, Local: true, Versioned: true},
	})
	store.RegisterMedium(BackendType, OpenMedium)
}

func defaults(s backend.Settings, d backend.Defaults) {
	if s[settingDir] == "" {
		s[settingDir] = d.StoreDir
	}
	store.SealedDefaults(s, d)
}

func check(s backend.Settings) error {
	for k := range s {
		if !slices.Contains(known, k) {
			return fmt.Errorf("swarm backend: unknown setting %q (known: dir, key_file, passphrase_file, prefix, docker_host)", k)
		}
	}
	if s[settingKeyFile] != "" && s[settingPassphraseFile] != "" {
		return fmt.Errorf("swarm backend: set %q or %q, not both", settingKeyFile, settingPassphraseFile)
	}
	if s[settingKeyFile] == "" && s[settingPassphraseFile] == "" {
		return fmt.Errorf("swarm backend: one of %q or %q is required", settingKeyFile, settingPassphraseFile)
	}
	return checkPrefix(prefixOf(s))
}

func prefixOf(s backend.Settings) string {
	if p := s[settingPrefix]; p != "" {
		return p
	}
	return DefaultPrefix
}

func keySource(s backend.Settings) store.KeySource {
	if p := s[settingPassphraseFile]; p != "" {
		return store.PassphraseFile(p)
	}
	return store.KeyFile(s[settingKeyFile])
}

// openBackend is the plugin's side: the store folder this manager's agent
// mirrors the swarm's configs into, read as a file store (with inotify), so
// the plugin answers at disk speed and never needs the Docker socket.
func openBackend(ctx context.Context, s backend.Settings) (backend.Backend, error) {
	if err := check(s); err != nil {
		return nil, err
	}
	if s[settingDir] == "" {
		return nil, fmt.Errorf("swarm backend: setting %q is required", settingDir)
	}
	m, err := store.OpenDir(s[settingDir])
	if err != nil {
		return nil, fmt.Errorf("swarm backend: %w", err)
	}
	st, err := store.Open(ctx, m, keySource(s))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("swarm backend: %w (is this manager's swarmkeep agent running? it mirrors the store into %s)", err, s[settingDir])
	}
	return store.NewBackend(st, BackendType), nil
}

// OpenMedium is the operator commands' side: the configs themselves,
// through this manager's Docker API (DOCKER_HOST or docker_host).
func OpenMedium(ctx context.Context, s backend.Settings) (store.Medium, store.KeySource, error) {
	if err := check(s); err != nil {
		return nil, nil, err
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if h := s[settingDockerHost]; h != "" {
		opts = append(opts, client.WithHost(h))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("swarm backend: docker client: %w", err)
	}
	m, err := New(c, prefixOf(s), c.Close)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return m, keySource(s), nil
}
