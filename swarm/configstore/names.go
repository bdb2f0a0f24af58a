package configstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// Labels on every config this package makes. Values are never secret: the
// data they describe is sealed.
const (
	LabelStore   = "swarmkeep.store"  // the store's prefix
	LabelKind    = "swarmkeep.kind"   // kindHead, kindData or kindLock
	LabelChunks  = "swarmkeep.chunks" // head: data config IDs, comma-separated; "" = deleted
	LabelSize    = "swarmkeep.size"   // head: blob length
	LabelSum     = "swarmkeep.sha256" // head: blob SHA-256, hex
	labelHolder  = "swarmkeep.holder" // lock: who holds it
	labelExpires = "swarmkeep.expires"

	kindHead = "head"
	kindData = "data"
	kindLock = "lock"
)

// Limits. chunkSize stays under what Debian's docker.io 20.10 accepts for one
// config (data must be "less than 1024000 bytes", measured); maxBlob bounds
// what a reader assembles from chunks a hostile label could list.
const (
	chunkSize     = 1_000_000
	maxBlob       = 16 << 20
	maxPrefix     = 20
	DefaultPrefix = "swarmkeep"
)

var prefixRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// checkPrefix keeps names valid Swarm object names (at most 64 characters).
func checkPrefix(p string) error {
	if len(p) > maxPrefix || !prefixRe.MatchString(p) {
		return fmt.Errorf("swarm store prefix %q: want 1 to %d of a-z, 0-9 and -, starting with a letter or digit", p, maxPrefix)
	}
	return nil
}

func headName(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + ".h." + hex.EncodeToString(sum[:20])
}

func dataName(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + ".d." + hex.EncodeToString(b[:])
}

func revisionOf(c swarm.Config) store.Revision {
	return store.Revision(strconv.FormatUint(c.Version.Index, 10))
}

// chunksOf returns a head's data config IDs; none for a tombstone.
func chunksOf(c swarm.Config) []string {
	v := c.Spec.Labels[LabelChunks]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func isTombstone(c swarm.Config) bool { return c.Spec.Labels[LabelChunks] == "" }

func blobSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
