package store

import (
	"errors"
	"fmt"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// ErrExists is returned by [Init] when the medium already holds a store.
var ErrExists = errors.New("store already exists")

// ErrWrongKey means the key source does not open the store's keyring:
// another key file or passphrase, or (rarely: the AEAD cannot tell) a
// damaged keyring. It wraps backend.ErrWrongKey, and so backend.ErrCorrupt:
// errors.Is(err, backend.ErrCorrupt) also holds.
var ErrWrongKey error = wrongKeyError{}

// wrongKeyError names the key source; all values match ErrWrongKey.
type wrongKeyError struct {
	src string // "key file /run/k"
	why string // optional detail
}

func (e wrongKeyError) Error() string {
	src := e.src
	if src == "" {
		src = "key"
	}
	// Said as what it is, a key that is not the store's, not as a
	// corrupt record: the fix is the key, not putting values again.
	why := e.why
	if why == "" {
		why = "it was sealed with another key"
	}
	return src + " does not open this store: " + why
}

func (e wrongKeyError) Is(target error) bool {
	_, ok := target.(wrongKeyError)
	return ok
}

func (e wrongKeyError) Unwrap() error { return backend.ErrWrongKey }

// unknownKeyError: a record is sealed with a data key our keyring does
// not hold. While a rekey runs elsewhere that is expected and a keyring
// reload fixes it; otherwise the record is from another store or damaged.
type unknownKeyError struct{ id uint32 }

func (e unknownKeyError) Error() string {
	return fmt.Sprintf("%s: sealed with data key %d, which is not in the keyring", backend.ErrCorrupt, e.id)
}

func (e unknownKeyError) Unwrap() error { return backend.ErrCorrupt }

// corrupt builds a backend.ErrCorrupt error with a detail, never a value.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", backend.ErrCorrupt, fmt.Sprintf(format, args...))
}

// recordErr names the record in an error from any layer below.
func recordErr(name string, err error) error {
	return fmt.Errorf("record %q: %w", name, err)
}

// errClosed is returned by every call on a closed Store.
var errClosed = fmt.Errorf("store is closed: %w", backend.ErrUnavailable)

// Limits on names and values (see FORMAT.md).
const (
	maxNameLen   = 255
	maxValueSize = 1 << 20
)

// ValidateName reports whether name can be stored: 1 to 255 bytes of
// '/'-separated segments, each matching [A-Za-z0-9][A-Za-z0-9_.-]*. The
// error wraps backend.ErrInvalidRef.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > maxNameLen {
		return fmt.Errorf("%w: name must be 1 to %d bytes, not %d", backend.ErrInvalidRef, maxNameLen, len(name))
	}
	start := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		switch {
		case start && !alnum:
			return fmt.Errorf("%w: name %q: each '/'-separated segment must start with a letter or digit", backend.ErrInvalidRef, name)
		case c == '/':
			start = true
			continue
		case !alnum && c != '_' && c != '.' && c != '-':
			return fmt.Errorf("%w: name %q: byte %d is not a letter, digit, '_', '.', '-' or '/'", backend.ErrInvalidRef, name, i)
		}
		start = false
	}
	if start {
		return fmt.Errorf("%w: name %q ends with '/'", backend.ErrInvalidRef, name)
	}
	return nil
}

// checkValue bounds a value's size; it never looks at the bytes.
func checkValue(v []byte) error {
	if len(v) == 0 {
		return fmt.Errorf("%w: value is empty", backend.ErrInvalidRef)
	}
	if len(v) > maxValueSize {
		return fmt.Errorf("%w: value is %d bytes, more than the 1 MiB limit", backend.ErrInvalidRef, len(v))
	}
	return nil
}
