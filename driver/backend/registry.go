package backend

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Settings are one backend instance's knobs, as read and validated by the
// server's configuration. Keys are lower-case.
type Settings map[string]string

// Factory opens one backend instance.
type Factory func(ctx context.Context, s Settings) (Backend, error)

// Capabilities say what a backend type can do, so that the server, the
// operator commands and the error lines decide by capability and never by
// a type's name.
type Capabilities struct {
	// Writable: swarmkeep's operator commands (init, put, rm, rekey,
	// verify) manage its values; other types are written with their own
	// tools.
	Writable bool
	// Sealed: its records are sealed with the plugin's key, so an
	// instance without key settings gets the plugin's (see Defaults).
	Sealed bool
	// Local: its records live on this host and answer at disk speed, so
	// the server puts no cache in front of it.
	Local bool
	// Versioned: it keeps numbered versions (swarmkeep.version pins one).
	Versioned bool
	// Paths: it reads swarmkeep.path and swarmkeep.field.
	Paths bool
	// Replica: it keeps a local copy of all its records, kept current by
	// a watch, that answers reads and is its own last-known-good copy, so
	// the server puts no cache in front of it (a TTL would only add
	// staleness). Defaults gives it ReplicaDir and MaxStale.
	Replica bool
}

// Defaults are the plugin-wide settings an instance may inherit.
type Defaults struct {
	// StoreDir is the plugin's local store folder (STORE_DIR).
	StoreDir string
	// KeyFile or PassphraseFile is the plugin's key; exactly one is set.
	KeyFile, PassphraseFile string
	// ReplicaDir is this instance's folder for a Replica type's copy
	// (REPLICA_DIR/<instance>); empty keeps the copy in memory only (the
	// operator commands, which read the backend directly).
	ReplicaDir string
	// MaxStale is the instance's max_stale: how old a copy a Replica type
	// may answer while its backend is unreachable; 0 means none. It
	// applies only when MaxStaleSet (the plugin sets it; the operator
	// commands leave the type's default).
	MaxStale    time.Duration
	MaxStaleSet bool
}

// Type is one registered backend type.
type Type struct {
	// Name is what BACKENDS entries say (NAME:TYPE); lower-case.
	Name string
	// Open opens one instance.
	Open Factory
	Caps Capabilities
	// Defaults, when set, fills settings an instance left out from the
	// plugin-wide ones (say the store folder and the key), in place.
	Defaults func(s Settings, d Defaults)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Type{}
)

// Register makes a backend type available under t.Name (case-insensitive).
// It panics on a duplicate or an incomplete type, which are programming
// errors.
func Register(t Type) {
	registryMu.Lock()
	defer registryMu.Unlock()
	key := strings.ToLower(t.Name)
	if key == "" || t.Open == nil {
		panic("backend: type registered without a name or an Open func")
	}
	if _, dup := registry[key]; dup {
		panic("backend: type registered twice: " + key)
	}
	t.Name = key
	registry[key] = t
}

// Lookup returns the registered type of that name, or an error that lists
// the known ones.
func Lookup(name string) (Type, error) {
	registryMu.RLock()
	t, ok := registry[strings.ToLower(name)]
	registryMu.RUnlock()
	if !ok {
		known := strings.Join(Types(), ", ")
		if known == "" {
			known = "none; this build has no backends"
		}
		return Type{}, fmt.Errorf("unknown backend type %q (known: %s)", name, known)
	}
	return t, nil
}

// Open opens a backend of the named type.
func Open(ctx context.Context, typ string, s Settings) (Backend, error) {
	t, err := Lookup(typ)
	if err != nil {
		return nil, err
	}
	return t.Open(ctx, s)
}

// Types lists the registered backend type names, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
