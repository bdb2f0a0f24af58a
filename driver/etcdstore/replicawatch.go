package etcdstore

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// The replica reports its changes to the store on top of it ([store.Watcher]),
// so the store keeps opened records in its cache and answers a warm read
// from memory, with no look at the copy: the watch stream applies each
// change to the copy (apply) and notes its key in the same critical
// section, before the applied revision is published, so a put that waited
// for this plugin's revision is seen by the store's next Sync. A new list
// replaces the whole copy and is reported as lost changes: the store drops
// its cache.
var _ store.Watcher = (*Replica)(nil)

// changeLog holds the keys changed since the store's last Sync.
type changeLog struct {
	pending atomic.Bool // something to hand on: Sync's fast path
	mu      sync.Mutex
	on      bool // a Watch is open
	keys    map[string]struct{}
	lost    bool
}

// note records key's change; the caller holds the replica's write lock.
func (c *changeLog) note(key string) {
	c.mu.Lock()
	if c.on {
		c.keys[key] = struct{}{}
		c.pending.Store(true)
	}
	c.mu.Unlock()
}

// reset reports that any key may have changed.
func (c *changeLog) reset() {
	c.mu.Lock()
	if c.on {
		clear(c.keys)
		c.lost = true
		c.pending.Store(true)
	}
	c.mu.Unlock()
}

// Watch is store.Watcher. One store reads a replica, so one watch at a time.
func (r *Replica) Watch() (store.Watch, error) {
	c := &r.changes
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		return nil, errors.New("the replica is already watched")
	}
	c.on, c.keys, c.lost = true, map[string]struct{}{}, false
	return replicaWatch{c}, nil
}

type replicaWatch struct{ c *changeLog }

// ID is the key itself: the copy is keyed by it.
func (replicaWatch) ID(key string) string { return key }

// Sync hands on the changes noted so far, and returns only once they are
// handed on, whichever Sync took them: the changes are passed while the log
// is held, and pending is cleared only after, so a Sync that finds nothing
// pending (or waits for the lock) cannot answer from a record another Sync
// is about to drop. Nothing noted costs one atomic load: the request path
// calls it on every read. Lock order: the replica's, the log's, the
// store's cache's; the callbacks take only the last.
func (w replicaWatch) Sync(changed func(id string), lost func()) error {
	c := w.c
	if !c.pending.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		lost()
	} else {
		for k := range c.keys {
			changed(k)
		}
	}
	clear(c.keys)
	c.lost = false
	c.pending.Store(false)
	return nil
}

func (w replicaWatch) Close() error {
	c := w.c
	c.mu.Lock()
	c.on, c.keys, c.lost = false, nil, false
	c.pending.Store(false)
	c.mu.Unlock()
	return nil
}
