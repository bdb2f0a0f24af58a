package backend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors a Backend wraps so the driver can tell the operator what
// went wrong and how to fix it. Backends add the detail with %w; the driver
// matches with errors.Is and never shows a backend's raw text alone.
var (
	// ErrNotFound: the stored name, or the pinned version, does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalidRef: the reference cannot be valid for this backend
	// (bad name, version, path or field).
	ErrInvalidRef = errors.New("invalid reference")
	// ErrCorrupt: a record failed to open: tampered, truncated, or sealed
	// with a key this plugin does not have.
	ErrCorrupt = errors.New("record cannot be opened")
	// ErrWrongKey: the key (a key file or passphrase) does not open the
	// store: it was sealed with another key. Putting values again cannot
	// help, unlike a damaged record; the key must change. It wraps
	// ErrCorrupt.
	ErrWrongKey = fmt.Errorf("%w: wrong key", ErrCorrupt)
	// ErrUnavailable: the backend cannot answer now (down, slow, locked).
	ErrUnavailable = errors.New("backend unavailable")
	// ErrDenied: the backend refused the read (credentials, permissions).
	ErrDenied = errors.New("access denied")
	// ErrCannotOpen wraps why a backend could not be opened at all. What it
	// wraps (say ErrNotFound for a store not yet initialised) is about the
	// backend, not the value, so a cache may still serve its copies.
	ErrCannotOpen = errors.New("cannot open")
	// ErrSettings: no read can succeed until one of the backend's
	// settings is changed (a wrong scheme, mount or version); the error
	// names the setting. It wraps ErrCannotOpen, so a cache still serves
	// its copies meanwhile.
	ErrSettings = fmt.Errorf("%w: wrong setting", ErrCannotOpen)
)

// The secret labels that fill a [Ref]. They are part of the contract because
// a backend's error names the label to fix; the driver parses them.
const (
	// LabelName sets Ref.Name.
	LabelName = "swarmkeep.name"
	// LabelVersion sets Ref.Version.
	LabelVersion = "swarmkeep.version"
	// LabelPath sets Ref.Path.
	LabelPath = "swarmkeep.path"
	// LabelField sets Ref.Field.
	LabelField = "swarmkeep.field"
)

// Ref says which stored value a request wants, with the request's context
// for backends that map names to paths through a template.
type Ref struct {
	// Name is the stored name, already resolved from labels and the
	// secret's name.
	Name string
	// Version pins a version; 0 means the latest.
	Version uint64
	// Path overrides a backend's path template (swarmkeep.path); empty
	// means the backend's default mapping of Name.
	Path string
	// Field picks one field of a structured value (swarmkeep.field);
	// empty means the whole value.
	Field string
	// Reuse false means the engine gets a per-task copy; caches must not
	// keep such a value.
	Reuse bool

	// Request context: the secret's full name, its stack namespace, the
	// requesting service and the secret's labels.
	Secret  string
	Stack   string
	Service string
	Labels  map[string]string
}

// Secret is what a backend answers.
type Secret struct {
	Value   []byte
	Version uint64
	Created time.Time
	// Varies is set when the value depends on the requesting service or
	// task (a path template over them): the driver then answers
	// DoNotReuse, since tasks on one node would otherwise share one copy.
	Varies bool
	// Stale is set when a cache answered a last-known-good copy because
	// the backend could not; Age is how old that copy is.
	Stale bool
	Age   time.Duration
	// Cached is set when a cache answered a fresh copy without asking
	// the backend (for the audit trail and metrics).
	Cached bool
}

// Backend reads stored values. Implementations must honour ctx's deadline,
// return errors that wrap one of the sentinels above, never log, and never
// put a value into an error.
type Backend interface {
	Get(ctx context.Context, ref Ref) (Secret, error)
	Close() error
}

// MemoryGetter is implemented by backends that can answer some references
// from what they hold in memory, found by type assertion. GetFromMemory must
// do no I/O and never wait on anything but a short lock: the driver calls it
// on the request goroutine, before it starts the bounded call (a goroutine
// and a timer) that guards a read which may hang. It answers only what Get
// would answer at that moment; false sends the request down the full path
// (a miss, an error, anything that needs a look at the backend).
type MemoryGetter interface {
	GetFromMemory(ref Ref) (Secret, bool)
}

// Counter is implemented by backends that can count their stored names
// cheaply (for the metrics); found by type assertion.
type Counter interface {
	// Count returns the number of stored names, removed ones that keep
	// their version counter included.
	Count(ctx context.Context) (int, error)
}

// Digester is implemented by backends that can say what they serve as a
// short fingerprint (swarmkeep's stores), so `swarmkeep status` can compare
// managers' plugins without seeing a value; found by type assertion.
type Digester interface {
	Digest(ctx context.Context) (StoreDigest, error)
}

// StoreDigest fingerprints what a store serves.
type StoreDigest struct {
	// ID is the store's identity (random at init): two plugins with the
	// same ID read copies of one store.
	ID string `json:"id"`
	// Names is the number of names.
	Names int `json:"names"`
	// Digest is a SHA-256 prefix over every name and its latest version:
	// equal digests mean every name answers the same version.
	Digest string `json:"digest"`
}

// Refresher is implemented by backends that keep copies of their own
// (etcd's replica); found by type assertion. Refresh makes them read the
// backend again now, for name or, when empty, for everything
// (swarmkeep refresh). It returns at once; the reading happens apart.
type Refresher interface {
	Refresh(name string)
}

// Prefetcher is implemented by backends that can list what they hold and
// answer a request from a copy of a whole stored document (Vault); found by
// type assertion. A cache in front of one keeps every document as a
// last-known-good copy, so a plugin serves through an outage names it was
// never asked for (only the swarm leader's plugin is asked).
type Prefetcher interface {
	// List returns the address of every stored document.
	List(ctx context.Context) ([]string, error)
	// Fetch reads the document at addr whole, at its latest version.
	Fetch(ctx context.Context, addr string) (Secret, error)
	// Address returns the address of the document ref reads, and false
	// when a copy of it cannot answer ref (the answer varies).
	Address(ref Ref) (string, bool)
	// FromDocument answers ref from doc, a copy Fetch read.
	FromDocument(ref Ref, doc Secret) (Secret, error)
}
