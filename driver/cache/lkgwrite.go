package cache

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Disk copies are written by one goroutine per cache, apart from requests.
// A store write takes the store's writer lock and costs a temp file, an
// fsync, a rename and a directory fsync. When each answer started its own
// write bounded by the backend Timeout, the first read of many names
// queued hundreds of writers on that lock and most gave up, so after a
// restart during an outage those names had no copy. One writer with its own
// generous bound writes them in turn, as fast as the disk allows, and
// tries a failed write again later; no request ever waits on it.
const (
	// lkgWriteTimeout bounds one write (or removal) of a copy.
	lkgWriteTimeout = 30 * time.Second
	// lkgMaxTries: a copy whose write failed this often is dropped, so a
	// record the store keeps refusing does not hold up the others.
	lkgMaxTries = 5
	// lkgRetryMin and lkgRetryMax bound the pause after a failed write.
	lkgRetryMin = 500 * time.Millisecond
	lkgRetryMax = 30 * time.Second
	// lkgCloseTimeout bounds how long Close waits for pending copies: a
	// stopping plugin is killed if it takes too long.
	lkgCloseTimeout = 5 * time.Second
)

// ErrStillWriting is in Close's error when a copy's write was still under
// way when Close gave up on it: the LKG must then not be closed, since
// closing it would wait for that write.
var ErrStillWriting = errors.New("a last-known-good write is still under way")

type opKind uint8

const (
	opSave   opKind = iota // write s as the copy
	opForget               // remove the copy
)

// lkgOp is the disk work pending for one key. There is at most one per
// key: a newer answer replaces it, since only the latest copy matters.
type lkgOp struct {
	k     key
	kind  opKind
	s     backend.Secret // opSave: the answer; s.Value is the op's own copy
	saved time.Time      // opSave: when the backend gave it
	tries int
	el    *list.Element
}

func (op *lkgOp) wipe() {
	clear(op.s.Value)
	op.s = backend.Secret{}
}

// lkgWriter is the queue of pending disk work and its goroutine. Lock
// order: Cache.mu before lkgWriter.mu, never the other way round.
type lkgWriter struct {
	ctx  context.Context // cancelled to abandon the write under way
	stop context.CancelFunc
	done chan struct{} // closed when the goroutine has returned
	wake chan struct{} // work was queued
	rush chan struct{} // a Flush is waiting: do not pause between retries

	mu      sync.Mutex
	pending map[key]*lkgOp
	queue   list.List // the pending ops, least recently queued first
	cur     *lkgOp    // taken from pending, being written
	max     int       // bound on pending ops
	urgent  int       // Flush calls waiting
	idle    chan struct{}
	closed  bool // after Close: queue nothing more
	lost    int  // ops abandoned by Close in the middle of their write
	// closeWait bounds Close's flush; tests shorten it.
	closeWait time.Duration
}

func newLKGWriter(max int) *lkgWriter {
	ctx, stop := context.WithCancel(context.Background())
	w := &lkgWriter{
		ctx: ctx, stop: stop, done: make(chan struct{}),
		wake: make(chan struct{}, 1), rush: make(chan struct{}, 1),
		pending: make(map[key]*lkgOp), max: max,
		idle: make(chan struct{}), closeWait: lkgCloseTimeout,
	}
	close(w.idle)
	return w
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// busyLocked reports whether anything is queued or being written.
func (w *lkgWriter) busyLocked() bool { return len(w.pending) > 0 || w.cur != nil }

// put queues op, replacing the op pending for the same key. When the
// queue is full it drops the least recently queued op rather than block:
// it returns how many it dropped, for the caller to count as errors.
func (w *lkgWriter) put(op *lkgOp) (dropped int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		op.wipe()
		return 1
	}
	if !w.busyLocked() {
		w.idle = make(chan struct{})
	}
	if old := w.pending[op.k]; old != nil {
		w.removeLocked(old)
		old.wipe()
	}
	for len(w.pending) >= w.max && w.queue.Len() > 0 {
		old := w.queue.Front().Value.(*lkgOp)
		w.removeLocked(old)
		old.wipe()
		dropped++
	}
	op.el = w.queue.PushBack(op)
	w.pending[op.k] = op
	signal(w.wake)
	return dropped
}

func (w *lkgWriter) removeLocked(op *lkgOp) {
	w.queue.Remove(op.el)
	delete(w.pending, op.k)
	op.el = nil
}

// drop removes the op pending for k, if any.
func (w *lkgWriter) drop(k key) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if op := w.pending[k]; op != nil {
		w.removeLocked(op)
		op.wipe()
		if !w.busyLocked() {
			close(w.idle)
		}
	}
}

// has reports whether work for k is queued or being written.
func (w *lkgWriter) has(k key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[k] != nil || (w.cur != nil && w.cur.k == k)
}

// peek returns the op queued or being written for k, if any, with a
// copy of its value that the caller owns.
func (w *lkgWriter) peek(k key) (s backend.Secret, saved time.Time, kind opKind, found bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	op := w.pending[k]
	if op == nil && w.cur != nil && w.cur.k == k {
		op = w.cur
	}
	if op == nil {
		return backend.Secret{}, time.Time{}, 0, false
	}
	s = op.s
	s.Value = bytes.Clone(op.s.Value)
	return s, op.saved, op.kind, true
}

// next takes the least recently queued op, or nil.
func (w *lkgWriter) next() *lkgOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	front := w.queue.Front()
	if front == nil {
		return nil
	}
	op := front.Value.(*lkgOp)
	w.removeLocked(op)
	w.cur = op
	return op
}

// finish ends the write of op. A failed op is queued again, last, unless
// a newer op for its key was queued meanwhile, it has failed too often or
// the cache is closing.
func (w *lkgWriter) finish(op *lkgOp, err error, abandoned bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = nil
	op.tries++
	if abandoned {
		w.lost++
	}
	switch {
	case err == nil, abandoned, w.pending[op.k] != nil, op.tries >= lkgMaxTries, w.closed:
		op.wipe()
	default:
		op.el = w.queue.PushBack(op)
		w.pending[op.k] = op
	}
	if !w.busyLocked() {
		close(w.idle)
	}
}

// hurried reports whether a Flush is waiting.
func (w *lkgWriter) hurried() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.urgent > 0
}

// writeLoop is the writer's goroutine.
func (c *Cache) writeLoop() {
	w := c.w
	defer close(w.done)
	var pause time.Duration
	for w.ctx.Err() == nil {
		op := w.next()
		if op == nil {
			select {
			case <-w.wake:
				continue
			case <-w.ctx.Done():
				return
			}
		}
		err := c.writeOp(w.ctx, op)
		abandoned := err != nil && w.ctx.Err() != nil // by Close, which counts it
		if err != nil && !abandoned {
			c.n.lkgErrors.Add(1) // each failed try
		}
		w.finish(op, err, abandoned)
		if err == nil {
			pause = 0
			continue
		}
		// The disk is failing, or the store locked by someone else: give
		// it a moment, unless Close or Flush is waiting.
		pause = min(max(2*pause, lkgRetryMin), lkgRetryMax)
		if w.hurried() {
			continue
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-w.rush:
		case <-w.ctx.Done():
		}
		t.Stop()
	}
}

// writeOp brings k's disk copy up to op. A copy is written only when the
// disk holds a different answer, or the same one fetched more than
// MaxStale/2 earlier, so a refresh every TTL costs no disk write.
func (c *Cache) writeOp(ctx context.Context, op *lkgOp) error {
	ctx, cancel := context.WithTimeout(ctx, lkgWriteTimeout)
	defer cancel()
	if op.kind == opForget {
		if err := c.lkg.(Forgetter).Forget(ctx, op.k.String()); err != nil {
			return err
		}
		c.setLKGState(op.k, lkgState{known: true})
		return nil
	}
	if c.o.Now().Sub(op.saved) > c.o.MaxStale {
		return nil // could never be served
	}
	sum := c.sum(op.s)
	st := c.lkgStateOf(op.k)
	if !st.known {
		st = c.inspectLKG(ctx, op.k)
	}
	if st.known && st.has && st.sum == sum && op.saved.Sub(st.saved) <= c.o.MaxStale/2 {
		c.setLKGState(op.k, st)
		return nil
	}
	if err := c.lkg.Save(ctx, op.k.String(), op.s, op.saved); err != nil {
		return err
	}
	c.n.lkgWrites.Add(1)
	c.setLKGState(op.k, lkgState{known: true, has: true, sum: sum, saved: op.saved})
	return nil
}

// Flush writes the pending last-known-good copies now, without pausing
// between retries, and returns when none is left or ctx ends. A copy
// whose write keeps failing is dropped after a few tries; Stats counts
// every failure.
func (c *Cache) Flush(ctx context.Context) error {
	w := c.w
	if w == nil {
		return nil
	}
	w.mu.Lock()
	if !w.busyLocked() {
		w.mu.Unlock()
		return nil
	}
	w.urgent++
	idle := w.idle
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.urgent--
		w.mu.Unlock()
	}()
	signal(w.rush)
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("last-known-good copies not all written: %w", ctx.Err())
	}
}

// closeWriter flushes within closeWait, then abandons what is left,
// counting each copy not written as an error. A write stuck in the kernel
// (a dead disk ignores contexts) holds Close up for closeWait/5 more at
// most.
func (c *Cache) closeWriter() error {
	w := c.w
	if w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.closeWait)
	defer cancel()
	c.Flush(ctx)
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.stop()
	t := time.NewTimer(w.closeWait / 5)
	defer t.Stop()
	var stuck error
	select {
	case <-w.done:
	case <-t.C:
		stuck = ErrStillWriting
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	lost := w.lost + len(w.pending)
	if w.cur != nil {
		lost++ // its end is no longer awaited
	}
	if len(w.pending) > 0 {
		for _, op := range w.pending {
			w.removeLocked(op)
			op.wipe()
		}
		if !w.busyLocked() {
			close(w.idle)
		}
	}
	if lost == 0 {
		return nil
	}
	c.n.lkgErrors.Add(uint64(lost))
	err := fmt.Errorf("%d last-known-good copies not written within %s of closing", lost, short(w.closeWait))
	if stuck != nil {
		err = fmt.Errorf("%w: %w", err, stuck)
	}
	return err
}
