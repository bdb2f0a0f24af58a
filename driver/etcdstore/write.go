package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// maxResolve bounds how often one Write or Delete re-sends after an
// ambiguous failure (see resolve).
const maxResolve = 8

// compareRev is the compare-and-swap condition: the key is absent (""),
// or still at the revision the caller read.
func compareRev(k string, prev store.Revision) (clientv3.Cmp, bool) {
	if prev == "" {
		return clientv3.Compare(clientv3.CreateRevision(k), "=", 0), true
	}
	n, err := strconv.ParseInt(string(prev), 10, 64)
	if err != nil || n <= 0 {
		return clientv3.Cmp{}, false // not one of ours: can match nothing
	}
	return clientv3.Compare(clientv3.ModRevision(k), "=", n), true
}

// conditions are the compare-and-swap plus, when ctx holds this medium's
// writer lock, a check that we still own it. Our lock key lives on a
// lease; if the lease expired (a long pause, a partition) another writer
// may hold the lock now, and this write must not land.
func (m *Medium) conditions(ctx context.Context, k string, prev store.Revision) ([]clientv3.Cmp, bool) {
	c, ok := compareRev(k, prev)
	if !ok {
		return nil, false
	}
	cmps := []clientv3.Cmp{c}
	if mu := m.heldLock(ctx); mu != nil {
		cmps = append(cmps, mu.IsOwner())
	}
	return cmps, true
}

// Write puts blob under key if key is still at prev, in one transaction.
// The new revision is the transaction's: etcd gives the put the revision
// the whole transaction created.
func (m *Medium) Write(ctx context.Context, key string, blob []byte, prev store.Revision) (store.Revision, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	k := m.prefix + key
	cmps, ok := m.conditions(ctx, k, prev)
	if !ok {
		return "", conflict("write", key)
	}
	for attempt := 0; ; attempt++ {
		resp, err := m.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(k, string(blob))).Commit()
		if err == nil {
			if !resp.Succeeded {
				return "", conflict("write", key)
			}
			m.noteWrite(resp.Header.Revision)
			return revision(resp.Header.Revision), nil
		}
		if !ambiguous(err) || attempt == maxResolve || ctx.Err() != nil {
			return "", m.fail(ctx, "write "+key, err)
		}
		state, rev, rerr := m.resolve(ctx, k, prev, blob)
		switch {
		case rerr != nil:
			return "", m.fail(ctx, "write "+key, err)
		case state == applied:
			if n, err := strconv.ParseInt(string(rev), 10, 64); err == nil {
				m.noteWrite(n)
			}
			return rev, nil
		case state == moved:
			return "", conflict("write", key)
		}
		if err := pause(ctx, attempt); err != nil {
			return "", m.fail(ctx, "write "+key, err)
		}
	}
}

// Delete removes key if it is still at prev. The else branch reads the
// key, so a failed comparison tells absent (not found) from changed.
func (m *Medium) Delete(ctx context.Context, key string, prev store.Revision) error {
	if err := checkKey(key); err != nil {
		return err
	}
	ctx, cancel := m.opCtx(ctx)
	defer cancel()
	k := m.prefix + key
	cmps, ok := m.conditions(ctx, k, prev)
	if !ok || prev == "" {
		// No revision of ours can match: report what the key is.
		if _, err := m.Stat(ctx, key); err != nil {
			return err
		}
		return conflict("delete", key)
	}
	for attempt := 0; ; attempt++ {
		resp, err := m.cli.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(k)).
			Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).Commit()
		if err == nil {
			if resp.Succeeded {
				m.noteWrite(resp.Header.Revision)
				return nil
			}
			if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().GetKvs()) == 0 {
				return notFound(key)
			}
			return conflict("delete", key)
		}
		if !ambiguous(err) || attempt == maxResolve || ctx.Err() != nil {
			return m.fail(ctx, "delete "+key, err)
		}
		state, _, rerr := m.resolve(ctx, k, prev, nil)
		resolvedAt := m.lastResolve.Load()
		switch {
		case rerr != nil:
			return m.fail(ctx, "delete "+key, err)
		case state == applied:
			// The delete's revision is lost; the read that saw it is later.
			m.noteWrite(resolvedAt)
			return nil
		case state == moved:
			return conflict("delete", key)
		}
		if err := pause(ctx, attempt); err != nil {
			return m.fail(ctx, "delete "+key, err)
		}
	}
}

type outcome int

const (
	unchanged outcome = iota // the key is still at prev: send again
	applied                  // our write or delete took effect
	moved                    // someone else changed the key
)

// resolve finds out whether a write (blob != nil) or delete whose result
// was lost took effect, by reading the key back. Sealed blobs carry
// random nonces, so finding our exact bytes means our write landed. This
// is what keeps a put acknowledged when the member we talked to died or
// lost leadership mid-request, rather than failing it.
func (m *Medium) resolve(ctx context.Context, k string, prev store.Revision, blob []byte) (outcome, store.Revision, error) {
	resp, err := m.cli.Get(ctx, k)
	if err != nil {
		return 0, "", err
	}
	m.lastResolve.Store(resp.Header.Revision)
	if len(resp.Kvs) == 0 {
		switch {
		case blob == nil:
			return applied, "", nil
		case prev == "":
			return unchanged, "", nil
		}
		return moved, "", nil
	}
	kv := resp.Kvs[0]
	rev := revision(kv.ModRevision)
	switch {
	case blob != nil && bytes.Equal(kv.Value, blob):
		return applied, rev, nil
	case rev == prev:
		return unchanged, "", nil
	}
	return moved, "", nil
}

// pause waits a little before sending again, so a cluster electing a
// leader is not hammered.
func pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(attempt+1) * 50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled)
}
