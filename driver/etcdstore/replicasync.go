package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Why a watch ended, when it did not fail on its own.
var (
	errRefresh = errors.New("refresh asked")
	errSilent  = errors.New("etcd has not confirmed the watch")
)

// run keeps the copy current: list, watch from the list's revision, and
// list again whenever the watch ends (compaction, a closed stream, etcd
// gone quiet, a refresh), pausing with backoff while lists fail. listed
// says the first list already succeeded.
func (r *Replica) run(ctx context.Context, listed bool) {
	backoff := r.t.minBackoff
	for ctx.Err() == nil {
		if !listed {
			lctx, cancel := context.WithTimeout(ctx, r.m.dialTimeout)
			err := r.relist(lctx)
			cancel()
			if err != nil {
				r.setStale(err)
				if !sleep(ctx, backoff, r.refresh) {
					return
				}
				backoff = min(2*backoff, r.t.maxBackoff)
				continue
			}
		}
		backoff = r.t.minBackoff
		if r.gate != nil {
			select {
			case <-r.gate:
			case <-ctx.Done():
				return
			}
		}
		err := r.watch(ctx)
		listed = false
		if ctx.Err() != nil {
			return
		}
		if !errors.Is(err, errRefresh) {
			// The copy is last-known-good until a list confirms it.
			r.setStale(err)
		}
	}
}

// sleep waits d, or less if a refresh is asked; false when ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

// relist reads the whole store range at one revision, in pages, and
// replaces the copy with it.
func (r *Replica) relist(ctx context.Context) error {
	lo, hi := r.storeRange()
	kv := map[string]item{}
	var at int64
	for from := lo; ; {
		opts := []clientv3.OpOption{clientv3.WithRange(hi), clientv3.WithLimit(listPage)}
		if at != 0 {
			opts = append(opts, clientv3.WithRev(at))
		}
		resp, err := r.m.cli.Get(ctx, from, opts...)
		if err != nil {
			return r.m.fail(ctx, "list the store", err)
		}
		if at == 0 {
			at = resp.Header.Revision
		}
		for _, e := range resp.Kvs {
			kv[strings.TrimPrefix(string(e.Key), r.m.prefix)] = item{blob: e.Value, rev: e.ModRevision}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	r.lists.Add(1)
	r.mu.Lock()
	r.kv, r.rev = kv, at
	r.live, r.confirmed, r.lastErr = true, r.now(), nil
	r.changes.reset()
	r.mu.Unlock()
	r.changed()
	return nil
}

// watch applies changes from the copy's revision on, until the watch
// fails or etcd stops confirming it.
func (r *Replica) watch(ctx context.Context) error {
	lo, hi := r.storeRange()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// Watch blocks until etcd opens the stream: it runs apart, so a
	// cluster that is down is noticed by the ticks below meanwhile.
	opened := make(chan clientv3.WatchChan, 1)
	from := r.Applied() + 1
	go func() {
		opened <- r.m.cli.Watch(wctx, lo, clientv3.WithRange(hi), clientv3.WithRev(from), clientv3.WithProgressNotify())
	}()
	var wch clientv3.WatchChan // nil, so never ready, until opened
	tick := time.NewTicker(r.t.progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.refresh:
			return errRefresh
		case wch = <-opened:
		case resp, ok := <-wch:
			if !ok {
				return fmt.Errorf("etcd watch: %w", errSilent)
			}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return fmt.Errorf("etcd watch: compacted past revision %d", r.Applied())
				}
				return fmt.Errorf("etcd watch: %w", err)
			}
			r.apply(resp)
		case <-tick.C:
			r.mu.RLock()
			quiet := r.now().Sub(r.confirmed)
			r.mu.RUnlock()
			if quiet > r.t.staleAfter {
				return fmt.Errorf("etcd unreachable: no answer for %s: %w", quiet.Round(time.Millisecond), errSilent)
			}
			pctx, pcancel := context.WithTimeout(wctx, r.t.progressEvery)
			_ = r.m.cli.RequestProgress(pctx) // its answer, or its absence, is what counts
			pcancel()
		}
	}
}

// apply puts one watch response into the copy. A progress notification
// only confirms the copy up to its revision.
func (r *Replica) apply(resp clientv3.WatchResponse) {
	r.mu.Lock()
	for _, ev := range resp.Events {
		key := strings.TrimPrefix(string(ev.Kv.Key), r.m.prefix)
		switch ev.Type {
		case mvccpb.PUT:
			r.kv[key] = item{blob: ev.Kv.Value, rev: ev.Kv.ModRevision}
		case mvccpb.DELETE:
			delete(r.kv, key)
		}
		r.changes.note(key)
		r.rev = max(r.rev, ev.Kv.ModRevision)
	}
	if resp.IsProgressNotify() {
		r.rev = max(r.rev, resp.Header.Revision)
	}
	r.live, r.confirmed, r.lastErr = true, r.now(), nil
	r.mu.Unlock()
	if len(resp.Events) > 0 {
		r.changed()
	}
}

// setStale marks the copy last-known-good, with the reason.
func (r *Replica) setStale(err error) {
	r.mu.Lock()
	r.live, r.lastErr = false, err
	r.mu.Unlock()
}

// changed schedules a save and a publication of the applied revision.
func (r *Replica) changed() {
	r.markDirty()
	if r.pub != nil {
		r.pub.kick()
	}
}

func (r *Replica) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// persist saves the copy after changes, coalescing bursts.
func (r *Replica) persist(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.dirty:
		}
		if !sleep(ctx, r.t.persistDelay, nil) {
			return
		}
		// A failed save leaves the previous file; the next change retries.
		_ = r.save()
		select {
		case r.saved <- struct{}{}:
		default:
		}
	}
}
