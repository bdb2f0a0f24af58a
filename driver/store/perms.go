package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"golang.org/x/sys/unix"
)

// ErrUnsafePermissions means a store folder, its lock file, or a key or
// passphrase file could be read or changed by someone other than its
// owner. The plugin runs as root: a folder another user can write lets that
// user swap files under it (a link at .lock made root truncate the link's
// target), and a key readable by others is no longer a secret. So we refuse
// to start, as ssh refuses a private key with loose permissions, and the
// error says the command that fixes it.
var ErrUnsafePermissions = backend.ErrExposed

// checkDirSafe refuses a folder that group or others may write, or that is
// owned by someone other than root or this process's user.
func checkDirSafe(what, dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return unavailable("check "+what, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s %s: %w: mode %04o lets group or others write to it (run chmod 700 %s)",
			what, dir, ErrUnsafePermissions, perm, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return checkOwner(what, dir, st.Uid)
	}
	return nil
}

// checkOwner accepts root and this process's user: anyone else who owns a
// folder can rewrite it whatever its mode.
func checkOwner(what, path string, uid uint32) error {
	me := os.Geteuid()
	if uid == 0 || int(uid) == me {
		return nil
	}
	return fmt.Errorf("%s %s: %w: it is owned by uid %d, not by root or by the user running swarmkeep, uid %d (run chown -R %d %s)",
		what, path, ErrUnsafePermissions, uid, me, me, path)
}

// openLockFile opens (creating it if missing) the store's lock file. The
// store truncates and rewrites that file, so it must be the plain file we
// made: never a symbolic link (O_NOFOLLOW) or a hard link to another file.
// O_NONBLOCK only keeps a device planted there from blocking the open; it
// is then refused as not a regular file.
func openLockFile(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("lock file %s: %w: it is a symbolic link (run rm %s; swarmkeep recreates it)",
			p, ErrUnsafePermissions, p)
	}
	if err != nil {
		return nil, unavailable("open lock file", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, unavailable("open lock file", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("lock file %s: %w: it is not a regular file (run rm %s; swarmkeep recreates it)",
			p, ErrUnsafePermissions, p)
	case st.Nlink != 1:
		err = fmt.Errorf("lock file %s: %w: it has %d hard links (run rm %s; swarmkeep recreates it)",
			p, ErrUnsafePermissions, st.Nlink, p)
	default:
		err = checkOwner("lock file", p, st.Uid)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkKeyFileMode refuses a key or passphrase file that group or others
// may read or write, by the rule every credential file follows
// (backend.CheckPrivate). The plugin reads the file through a read-only
// bind mount, which keeps the host's modes.
func checkKeyFileMode(path string, f *os.File) error { return backend.CheckPrivate(path, f) }
