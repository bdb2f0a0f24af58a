package store

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// On a filesystem whose changes need not go through this kernel (NFS, SMB,
// FUSE), inotify misses other hosts' writes: the medium must refuse to
// watch, so the store checks each record's revision instead.
func TestWatchRefusesNetworkFilesystems(t *testing.T) {
	dm, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	defer func(f func(string, *unix.Statfs_t) error) { statfs = f }(statfs)
	for typ, local := range map[int64]bool{0x6969: false, 0xFF534D42: false, 0x65735546: false, 0xEF53: true, 0x58465342: true} {
		statfs = func(_ string, st *unix.Statfs_t) error { st.Type = typ; return nil }
		w, err := dm.Watch()
		switch {
		case local && err != nil:
			t.Errorf("type %#x: %v", typ, err)
		case !local && (err == nil || !strings.Contains(err.Error(), "not a local one")):
			t.Errorf("type %#x watched: %v", typ, err)
		}
		if w != nil {
			w.Close()
		}
	}
}
