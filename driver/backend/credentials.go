package backend

import (
	"errors"
	"fmt"
	"os"
)

// ErrExposed marks a credential file (a token, a password, a secret ID) that
// group or others may read or change. Backends refuse such a file, as ssh
// refuses a private key anyone can read: the plugin runs as root and the
// file unlocks every value the backend holds.
var ErrExposed = errors.New("unsafe permissions")

// CheckPrivate refuses an open credential or key file whose mode gives
// group or others any access; the fix it names carries the path, so a
// caller adds only which setting or file it is. f is the file as opened,
// so a swap between the check and the read is not possible; a pipe or a
// process substitution reports 0600 and passes.
func CheckPrivate(path string, f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: mode %04o lets group or others read or change it (run chmod 600 %s)",
			ErrExposed, perm, path)
	}
	return nil
}
