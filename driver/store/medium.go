package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Revision identifies one stored state of one key. It is opaque to the
// store, which only compares revisions for equality. The empty Revision
// means "absent".
//
// A Medium must never hand out the same Revision for two different
// contents of a key that a reader may still hold: the record cache and
// every compare-and-swap rely on it.
type Revision string

// ErrConflict is returned by [Medium.Write] and [Medium.Delete] when the
// key's current revision is not the one the caller read (compare-and-swap
// failed). The store retries the whole read-modify-write.
var ErrConflict = errors.New("concurrent update")

// Medium stores opaque blobs under string keys. It knows nothing about
// encryption or records; the store puts everything it needs into the blob.
//
// Implementations must be safe for concurrent use by several goroutines
// and several processes, and every Write must be atomic and durable: after
// a crash a reader sees either the previous blob or the new one, whole.
type Medium interface {
	// Read returns the blob stored under key and its revision. An absent
	// key is an error wrapping backend.ErrNotFound; a blob that cannot be
	// attributed to key is an error wrapping backend.ErrCorrupt.
	Read(ctx context.Context, key string) ([]byte, Revision, error)
	// Stat returns key's current revision without reading the blob. It
	// must be cheap: the store calls it on every Get, unless the medium is
	// a [Watcher]. An absent key is an error wrapping backend.ErrNotFound.
	Stat(ctx context.Context, key string) (Revision, error)
	// Write stores blob under key if the key's current revision is prev
	// ("" meaning the key must not exist), else it returns an error
	// wrapping ErrConflict. It returns the new revision.
	Write(ctx context.Context, key string, blob []byte, prev Revision) (Revision, error)
	// Delete removes key if its current revision is prev, else it returns
	// an error wrapping ErrConflict (or backend.ErrNotFound if absent).
	Delete(ctx context.Context, key string, prev Revision) error
	// List calls fn with every key that starts with prefix, in no
	// particular order. An error from fn stops the listing and is
	// returned. Stored objects whose key cannot be recovered do not stop
	// the listing; they are reported together at the end, in an error
	// wrapping backend.ErrCorrupt.
	List(ctx context.Context, prefix string, fn func(key string) error) error
	// Close releases the medium's resources.
	Close() error
}

// Locker is implemented by media that can hold a store-wide writer lock
// (DirMedium, with flock; etcdstore.Medium, with an etcd mutex). The
// store holds it around every read-modify-write so that a writer always
// seals with the keyring's active key, which is what makes Rekey safe
// against concurrent writers in other processes. The returned context
// marks the lock as held, so the medium's own Write and Delete do not try
// to take it again (and can check it is still held); the store passes it
// to every call it makes under the lock. Media without a lock rely on
// compare-and-swap alone, which does not make Rekey safe against writers
// in other processes.
type Locker interface {
	Lock(ctx context.Context) (context.Context, func(), error)
}

// Medium keys. Records live under their own prefix, so no stored name can
// collide with the keyring.
const (
	keyringKey   = "keyring"
	recordPrefix = "r/"
)

func recordKey(name string) string { return recordPrefix + name }

func nameOfKey(key string) string { return strings.TrimPrefix(key, recordPrefix) }

// where describes a medium for messages, e.g. "no store at /var/lib/x".
func where(m Medium) string {
	if s, ok := m.(fmt.Stringer); ok {
		return s.String()
	}
	return "this medium"
}

// badObjects is what List returns for stored objects whose key cannot be
// recovered (damaged header, file copied to the wrong path). Each element
// names where the object is, since there is no name to give.
type badObjects []badObject

type badObject struct {
	where string
	err   error
}

func (b badObjects) Error() string {
	msgs := make([]string, len(b))
	for i, o := range b {
		msgs[i] = o.where + ": " + o.err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (b badObjects) Unwrap() error { return backend.ErrCorrupt }

// unavailable wraps an I/O failure of the medium with the driver sentinel
// that best tells the operator what to do.
func unavailable(op string, err error) error {
	kind := backend.ErrUnavailable
	if errors.Is(err, fs.ErrPermission) {
		kind = backend.ErrDenied
	}
	return fmt.Errorf("%s: %w: %w", op, kind, err)
}
