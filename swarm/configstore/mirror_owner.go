package configstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// markerFile, in the store folder, names the swarm store the mirror keeps
// there. It is how the mirror tells a folder it filled (and may follow
// through a new store under its prefix) from a manager's own file store,
// which it must never replace unless told to (Mirror.Adopt). DirMedium
// only looks at its objects folder and its own dot files, so the plugin
// never reads it.
const markerFile = ".swarmkeep-mirror"

// storeIDOf returns the store ID of a keyring blob, from its clear header
// (driver/store/FORMAT.md: magic "swkK", format version, then 16 bytes of
// store ID). A blob that is no keyring is named by its digest, so it only
// ever matches itself.
func storeIDOf(keyring []byte) string {
	if len(keyring) >= 21 && string(keyring[:4]) == "swkK" {
		return hex.EncodeToString(keyring[5:21])
	}
	sum := sha256.Sum256(keyring)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// marker is what the marker file says: the prefix and store ID mirrored.
type marker struct{ prefix, store string }

func (m marker) String() string { return "prefix " + m.prefix + "\nstore " + m.store + "\n" }

func readMarker(dir string) (marker, error) {
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return marker{}, nil
	}
	if err != nil {
		return marker{}, fmt.Errorf("reading the mirror marker in %s: %w", dir, err)
	}
	var mk marker
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "prefix":
			mk.prefix = v
		case "store":
			mk.store = v
		}
	}
	return mk, nil
}

// writeMarker replaces the marker atomically and durably: a marker lost in
// a crash would make the mirror refuse its own folder.
func writeMarker(dir string, mk marker) error {
	p := filepath.Join(dir, markerFile)
	f, err := os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing the mirror marker in %s: %w", dir, err)
	}
	_, err = f.WriteString(mk.String())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p+".tmp", p)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		os.Remove(p + ".tmp")
		return fmt.Errorf("writing the mirror marker in %s: %w", dir, err)
	}
	return nil
}

// claim decides whether the folder may be made a copy of the swarm store
// whose keyring has store ID swarmID, and marks it as such before any
// write. The folder is the mirror's if it holds no keyring (empty, or a
// fill that crashed before the keyring), holds the swarm's own store, or
// holds the store its marker names for this prefix (the swarm store it
// mirrored, replaced since under the same prefix). Any other store is
// refused unless Adopt is set.
func (m *Mirror) claim(ctx context.Context, local *store.DirMedium, swarmID string) error {
	want := marker{prefix: m.Prefix, store: swarmID}
	mk, err := readMarker(m.Dir)
	if err != nil {
		return err
	}
	ring, _, err := local.Read(ctx, "keyring")
	switch {
	case errors.Is(err, backend.ErrNotFound):
	case err != nil:
		return fmt.Errorf("reading the keyring in %s: %w", m.Dir, err)
	default:
		localID := storeIDOf(ring)
		ours := localID == swarmID || (mk.prefix == m.Prefix && mk.store == localID)
		if !ours && !m.Adopt {
			return fmt.Errorf("%s %w %q and no mirror marker for it (a file store?): left as it is; "+
				"to replace it with the swarm's, run the agent with --mirror-adopt", m.Dir, ErrForeignStore, m.Prefix)
		}
	}
	if mk == want {
		return nil
	}
	return writeMarker(m.Dir, want)
}

// refused tells Refused why the folder is left alone, once per reason.
func (m *Mirror) refused(err error) {
	if m.Refused == nil || err.Error() == m.lastDeny {
		return
	}
	if m.Refused(err) == nil {
		m.lastDeny = err.Error()
	}
}
