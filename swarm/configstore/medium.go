package configstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// API is the part of the Docker client the medium uses (a swarm manager's).
type API interface {
	ConfigCreate(ctx context.Context, spec swarm.ConfigSpec) (swarm.ConfigCreateResponse, error)
	ConfigInspectWithRaw(ctx context.Context, id string) (swarm.Config, []byte, error)
	ConfigList(ctx context.Context, opts swarm.ConfigListOptions) ([]swarm.Config, error)
	ConfigUpdate(ctx context.Context, id string, version swarm.Version, spec swarm.ConfigSpec) error
	ConfigRemove(ctx context.Context, id string) error
}

// Medium is a [store.Medium] and [store.Locker] on Swarm configs.
type Medium struct {
	api    API
	prefix string
	closer func() error
	// last is the highest revision (Raft index) this handle wrote, for
	// waiting on the managers' mirrors (see AwaitMirrors).
	mu   sync.Mutex
	last uint64
}

var (
	_ store.Medium = (*Medium)(nil)
	_ store.Locker = (*Medium)(nil)
)

// New returns the medium for the store named prefix on api. closer, when
// set, is called by Close (the Docker client's Close, say).
func New(api API, prefix string, closer func() error) (*Medium, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	return &Medium{api: api, prefix: prefix, closer: closer}, nil
}

// String names the medium in messages.
func (m *Medium) String() string { return "swarm configs " + m.prefix + ".*" }

// Prefix is the store's prefix.
func (m *Medium) Prefix() string { return m.prefix }

// Close closes the Docker client, if New was given its Close.
func (m *Medium) Close() error {
	if m.closer != nil {
		return m.closer()
	}
	return nil
}

// LastWrite is the Raft index of this handle's latest write or delete, 0 if none.
func (m *Medium) LastWrite() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

func (m *Medium) wrote(rev store.Revision) {
	n, err := strconv.ParseUint(string(rev), 10, 64)
	if err != nil {
		return
	}
	m.mu.Lock()
	m.last = max(m.last, n)
	m.mu.Unlock()
}

// engineErr maps a Docker API failure to the driver's sentinels.
func engineErr(op string, err error) error {
	switch {
	case cerrdefs.IsPermissionDenied(err) || cerrdefs.IsUnauthorized(err):
		return fmt.Errorf("%s: %w: %w", op, backend.ErrDenied, err)
	default:
		return fmt.Errorf("%s: %w: %w", op, backend.ErrUnavailable, err)
	}
}

func exists(err error) bool { return cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err) }

// outOfSequence is swarmkit's refusal of an update at a stale version; the
// engine passes it on as an unknown gRPC error (HTTP 500), so the text is
// all there is to go by.
func outOfSequence(err error) bool {
	return err != nil && strings.Contains(err.Error(), "update out of sequence")
}

// head returns key's head config, live or tombstone.
func (m *Medium) head(ctx context.Context, key string) (swarm.Config, error) {
	c, _, err := m.api.ConfigInspectWithRaw(ctx, headName(m.prefix, key))
	if cerrdefs.IsNotFound(err) {
		return swarm.Config{}, fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	if err != nil {
		return swarm.Config{}, engineErr("inspect "+key, err)
	}
	if string(c.Spec.Data) != key || c.Spec.Labels[LabelKind] != kindHead || c.Spec.Labels[LabelStore] != m.prefix {
		return swarm.Config{}, fmt.Errorf("config %s is not the head of %s: %w", c.Spec.Name, key, backend.ErrCorrupt)
	}
	return c, nil
}

// live is head, with a tombstone reported as absent.
func (m *Medium) live(ctx context.Context, key string) (swarm.Config, error) {
	c, err := m.head(ctx, key)
	if err == nil && isTombstone(c) {
		err = fmt.Errorf("%s: %w", key, backend.ErrNotFound)
	}
	return c, err
}

// Stat returns the revision of key's head.
func (m *Medium) Stat(ctx context.Context, key string) (store.Revision, error) {
	c, err := m.live(ctx, key)
	if err != nil {
		return "", err
	}
	return revisionOf(c), nil
}

// readAttempts bounds how often Read starts over when a write replaced the
// chunks it was reading (they are removed once the new head commits).
const readAttempts = 20

// Read returns key's blob and the head revision it belongs to.
func (m *Medium) Read(ctx context.Context, key string) ([]byte, store.Revision, error) {
	for range readAttempts {
		c, err := m.live(ctx, key)
		if err != nil {
			return nil, "", err
		}
		blob, err := m.assemble(ctx, c)
		if errors.Is(err, backend.ErrNotFound) {
			continue // superseded while we read; the head moved on
		}
		if err != nil {
			return nil, "", err
		}
		return blob, revisionOf(c), nil
	}
	return nil, "", fmt.Errorf("read %s: %w: rewritten %d times while being read", key, backend.ErrUnavailable, readAttempts)
}

// assemble fetches a live head's chunks and checks size and sum.
func (m *Medium) assemble(ctx context.Context, head swarm.Config) ([]byte, error) {
	return Assemble(head, func(id string) ([]byte, error) {
		c, _, err := m.api.ConfigInspectWithRaw(ctx, id)
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("chunk %s: %w", id, backend.ErrNotFound)
		}
		if err != nil {
			return nil, engineErr("inspect chunk", err)
		}
		return c.Spec.Data, nil
	})
}

// Assemble joins a live head's chunks, fetched by get, and checks them
// against the head's size and SHA-256.
func Assemble(head swarm.Config, get func(id string) ([]byte, error)) ([]byte, error) {
	key := string(head.Spec.Data)
	size, err := strconv.Atoi(head.Spec.Labels[LabelSize])
	if err != nil || size < 1 || size > maxBlob {
		return nil, fmt.Errorf("head of %s: size %q: %w", key, head.Spec.Labels[LabelSize], backend.ErrCorrupt)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	for _, id := range chunksOf(head) {
		b, err := get(id)
		if err != nil {
			return nil, err
		}
		if buf.Len()+len(b) > size {
			return nil, fmt.Errorf("head of %s: chunks exceed %d bytes: %w", key, size, backend.ErrCorrupt)
		}
		buf.Write(b)
	}
	if buf.Len() != size || blobSum(buf.Bytes()) != head.Spec.Labels[LabelSum] {
		return nil, fmt.Errorf("head of %s: chunks do not match its size and sum: %w", key, backend.ErrCorrupt)
	}
	return buf.Bytes(), nil
}

// createChunks stores blob as data configs and returns their IDs.
func (m *Medium) createChunks(ctx context.Context, blob []byte) ([]string, error) {
	if len(blob) == 0 || len(blob) > maxBlob {
		return nil, fmt.Errorf("blob of %d bytes: the swarm store holds 1 byte to %d MiB per record", len(blob), maxBlob>>20)
	}
	var ids []string
	for off := 0; off < len(blob); off += chunkSize {
		part := blob[off:min(off+chunkSize, len(blob))]
		r, err := m.api.ConfigCreate(ctx, swarm.ConfigSpec{
			Annotations: swarm.Annotations{Name: dataName(m.prefix), Labels: map[string]string{LabelStore: m.prefix, LabelKind: kindData}},
			Data:        part,
		})
		if err != nil {
			m.removeChunks(ids)
			return nil, engineErr("create data config", err)
		}
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// removeChunks removes data configs nobody points at any more. It is best
// effort, with its own deadline so a cancelled caller still cleans up: a
// chunk left behind (the engine failed here) is only garbage, never read;
// nothing sweeps it yet (docker config rm removes it).
func (m *Medium) removeChunks(ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for _, id := range ids {
		m.api.ConfigRemove(ctx, id)
	}
}

func (m *Medium) headSpec(key string, chunks []string, blob []byte) swarm.ConfigSpec {
	labels := map[string]string{LabelStore: m.prefix, LabelKind: kindHead, LabelChunks: strings.Join(chunks, ",")}
	if len(chunks) > 0 {
		labels[LabelSize] = strconv.Itoa(len(blob))
		labels[LabelSum] = blobSum(blob)
	}
	return swarm.ConfigSpec{Annotations: swarm.Annotations{Name: headName(m.prefix, key), Labels: labels}, Data: []byte(key)}
}

// Write stores blob under key if key's head is at prev ("" = absent or
// deleted): the chunks first, then one compare-and-swap on the head.
func (m *Medium) Write(ctx context.Context, key string, blob []byte, prev store.Revision) (store.Revision, error) {
	if key == "" {
		return "", errors.New("empty key")
	}
	ids, err := m.createChunks(ctx, blob)
	if err != nil {
		return "", err
	}
	old, err := m.swapHead(ctx, key, prev, m.headSpec(key, ids, blob))
	if err != nil {
		if !m.headHolds(key, ids) {
			m.removeChunks(ids)
		}
		return "", err
	}
	rev := m.afterSwap(ctx, key, ids)
	m.removeChunks(old)
	return rev, nil
}

// Delete turns key's head into a tombstone if it is at prev.
func (m *Medium) Delete(ctx context.Context, key string, prev store.Revision) error {
	c, err := m.live(ctx, key)
	if err != nil {
		return err
	}
	if prev == "" || revisionOf(c) != prev {
		return fmt.Errorf("delete %s: %w", key, store.ErrConflict)
	}
	old, err := m.swapHead(ctx, key, prev, m.headSpec(key, nil, nil))
	if err != nil {
		return err
	}
	m.afterSwap(ctx, key, nil)
	m.removeChunks(old)
	return nil
}

// swapHead replaces key's head with spec if it is at prev, and returns the
// chunks the replaced head pointed at.
func (m *Medium) swapHead(ctx context.Context, key string, prev store.Revision, spec swarm.ConfigSpec) ([]string, error) {
	conflict := fmt.Errorf("write %s: %w", key, store.ErrConflict)
	if prev == "" {
		_, err := m.api.ConfigCreate(ctx, spec)
		if err == nil {
			return nil, nil
		}
		if !exists(err) {
			return nil, engineErr("create head of "+key, err)
		}
	}
	c, err := m.head(ctx, key)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return nil, conflict
	case err != nil:
		return nil, err
	case prev == "" && !isTombstone(c), prev != "" && (isTombstone(c) || revisionOf(c) != prev):
		return nil, conflict
	}
	if err := m.api.ConfigUpdate(ctx, c.ID, c.Version, spec); err != nil {
		if outOfSequence(err) || cerrdefs.IsNotFound(err) {
			return nil, conflict
		}
		return nil, engineErr("update head of "+key, err)
	}
	return chunksOf(c), nil
}

// afterSwap returns the revision of the head just written (whose chunks are
// ids, none for a tombstone). When another writer already replaced it, the
// revision is one nobody else holds, so a CAS with it fails, as it should.
func (m *Medium) afterSwap(ctx context.Context, key string, ids []string) store.Revision {
	c, err := m.head(ctx, key)
	if err == nil && c.Spec.Labels[LabelChunks] == strings.Join(ids, ",") {
		rev := revisionOf(c)
		m.wrote(rev)
		return rev
	}
	return store.Revision("superseded-" + dataName(m.prefix))
}

// headHolds tells whether key's head points at ids after a failed write,
// whose failure may have been the reply's and not the update's: then the
// chunks are live and must stay. Unknown counts as yes (garbage at worst).
func (m *Medium) headHolds(key string, ids []string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	c, err := m.head(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return false
	}
	return err != nil || c.Spec.Labels[LabelChunks] == strings.Join(ids, ",")
}

// List calls fn with every live key under prefix.
func (m *Medium) List(ctx context.Context, prefix string, fn func(key string) error) error {
	heads, err := ListHeads(ctx, m.api, m.prefix)
	if err != nil {
		return err
	}
	var bad []string
	for _, c := range heads {
		key := string(c.Spec.Data)
		if headName(m.prefix, key) != c.Spec.Name {
			bad = append(bad, c.Spec.Name)
			continue
		}
		if isTombstone(c) || !strings.HasPrefix(key, prefix) {
			continue
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("configs %s: data is not the key their name says: %w", strings.Join(bad, ", "), backend.ErrCorrupt)
	}
	return nil
}

// ListHeads returns every head config (live and tombstones) of the store.
func ListHeads(ctx context.Context, api API, prefix string) ([]swarm.Config, error) {
	cs, err := api.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(
		filters.Arg("label", LabelStore+"="+prefix), filters.Arg("label", LabelKind+"="+kindHead))})
	if err != nil {
		return nil, engineErr("list configs", err)
	}
	return cs, nil
}
