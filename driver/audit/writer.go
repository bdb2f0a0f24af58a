package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
)

// DefaultCheckEvery is how often, at most, the writer checks that its path
// still names the open file.
const DefaultCheckEvery = time.Second

// ErrClosed is counted when a record arrives after Close.
var ErrClosed = errors.New("audit writer closed")

// Options configure a Writer.
type Options struct {
	// Stderr, when set, also gets every record (a copy for the plugin
	// log; the file stays the trail). Its write errors are ignored.
	Stderr io.Writer
	// CheckEvery bounds how often Observe stats the path to notice a
	// rename rotation; 0 means DefaultCheckEvery.
	CheckEvery time.Duration
}

// Writer appends records to a file. It is safe for concurrent use.
type Writer struct {
	path   string
	stderr io.Writer
	every  time.Duration

	mu      sync.Mutex
	done    sync.Cond // signalled, with mu, when a batch's write returns
	f       *os.File
	id      os.FileInfo // what f is, to compare with stat(path)
	checked time.Time   // last stat(path)
	torn    bool        // the last write stopped mid-line
	closed  bool

	// Group commit: records queue in pending while a batch is being
	// written; the next writer takes them all in one write(2).
	pending []byte // whole lines, queued, not yet written
	spare   []byte // the last batch's buffer, reused for the next
	writing bool   // a batch is being written, outside mu
	queued  uint64 // records queued since Open
	written uint64 // records whose write has returned (well or not)

	errs    atomic.Uint64
	lastErr atomic.Pointer[error]
}

// Open opens (or creates, with its folders) the trail at path for appending.
// New folders are 0700 and a new file 0600: the trail names every secret and
// service. An existing file keeps its mode, which may be logrotate's choice.
func Open(path string, o Options) (*Writer, error) {
	if path == "" {
		return nil, errors.New("audit file: empty path")
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = DefaultCheckEvery
	}
	w := &Writer{path: path, stderr: o.Stderr, every: o.CheckEvery}
	w.done.L = &w.mu
	f, id, err := openFile(path)
	if err != nil {
		return nil, err
	}
	w.f, w.id, w.checked = f, id, time.Now()
	w.pending = append(make([]byte, 0, 4096), 0)
	return w, nil
}

func openFile(path string) (*os.File, os.FileInfo, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("audit folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit file: %w", err)
	}
	id, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("audit file: %w", err)
	}
	return f, id, nil
}

// linePool holds record buffers: one is built per answer.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxKeptBatch bounds the batch buffer kept for reuse, so a burst does not
// pin a large buffer for the life of the plugin.
const maxKeptBatch = 64 << 10

// Observe writes the event's record and returns once the write has returned.
// It is a driver.Observer: it runs on the request path, so it never waits on
// anything but the trail's writes, and a failure is counted, not returned.
//
// Records queued while a write runs share the next write(2) (group
// commit): the caller that finds no write running writes at once, callers
// arriving meanwhile queue their records, and the first of them to wake
// writes the whole queue and lets the others go. So an answer leaves only
// after its record is written, and a burst costs fewer system calls than
// records. The first caller does not yield to gather more records: on the
// request path a yield runs the goroutine net/http starts to watch the
// connection once the body is read, which then costs a read(2) that finds
// nothing and a wake-up through the poller. Measured at c=8 on 2 cores:
// with the yield 1.45 writes and 2.98 reads per request, without it 2.0 and
// 2.0 (the null plugin's reads), and about 6% less CPU per request.
//
// There is no fsync per record: it would cost the swarm leader milliseconds
// per task while it holds up task assignment. A written record is in the page
// cache and survives a plugin or daemon crash; only a host crash can lose the
// last few seconds, as it would the daemon's own logs.
func (w *Writer) Observe(ev driver.Event) {
	now := time.Now()
	r := FromEvent(ev, now)
	w.write(&r, now)
}

// Append writes one record made elsewhere, such as an operator action's,
// and returns once it is written. Its V is set to FormatVersion and an
// unset Time to now. It reports the write's failure, which is counted by
// Errors as well; with several goroutines writing, the error returned may
// be another record's.
func (w *Writer) Append(r Record) error {
	now := time.Now()
	r.V = FormatVersion
	if r.Time.IsZero() {
		r.Time = now.UTC()
	}
	before := w.errs.Load()
	w.write(&r, now)
	if w.errs.Load() != before {
		return w.LastError()
	}
	return nil
}

// write encodes r and writes it with group commit (see Observe).
func (w *Writer) write(r *Record, now time.Time) {
	bp := linePool.Get().(*[]byte)
	line, err := r.appendLine((*bp)[:0])
	if err != nil {
		*bp = line[:0]
		linePool.Put(bp)
		w.fail(fmt.Errorf("encode record: %w", err))
		return
	}

	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		*bp = line[:0]
		linePool.Put(bp)
		w.fail(ErrClosed)
		return
	}
	w.pending = append(w.pending, line...)
	*bp = line[:0]
	linePool.Put(bp)
	w.queued++
	mine := w.queued
	for w.written < mine {
		if w.writing {
			w.done.Wait()
			continue
		}
		w.writeBatch(now)
	}
	w.mu.Unlock()
}

// writeBatch writes every queued record in one write(2). Called with mu
// held, no batch being written and records queued; it releases mu during
// the write, so more records can queue, and holds it again on return.
func (w *Writer) writeBatch(now time.Time) {
	if now.Sub(w.checked) >= w.every {
		w.checked = now
		w.followRename()
	}
	batch, last := w.pending, w.queued
	// One leading byte is reserved for the newline that closes a torn line.
	w.pending = append(w.spare[:0], 0)
	w.spare = nil
	out := batch[1:]
	if w.torn {
		// A failed write left half a line: end it, so the garbage stays
		// on a line of its own and these records are readable.
		batch[0] = '\n'
		out = batch
	}
	w.writing = true
	f := w.f
	w.mu.Unlock()

	// One write(2) of whole lines on an O_APPEND file: concurrent readers
	// and copytruncate see whole records, and only the writer writes.
	n, err := f.Write(out)
	if w.stderr != nil {
		// Best effort: the file is the trail, stderr a convenience.
		_, _ = w.stderr.Write(batch[1:])
	}

	w.mu.Lock()
	if n > 0 {
		w.torn = n < len(out)
	}
	if err != nil {
		// Every record not written whole counts: each has its newline in
		// what was not written.
		lost := bytes.Count(out[max(n, len(out)-len(batch[1:])):], []byte{'\n'})
		w.failN(uint64(max(lost, 1)), fmt.Errorf("write %s: %w", w.path, err))
	}
	w.writing = false
	w.written = last
	if cap(batch) <= maxKeptBatch {
		w.spare = batch[:0]
	}
	w.done.Broadcast()
}

// followRename reopens the path when it no longer names the open file: moved
// away or deleted by a rotation. Called with mu held. If the reopen fails,
// records keep going to the old file, where they are still kept.
func (w *Writer) followRename() {
	st, err := os.Stat(w.path)
	if err == nil && os.SameFile(st, w.id) {
		return
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.fail(fmt.Errorf("check %s: %w", w.path, err))
		return
	}
	if err := w.reopenLocked(); err != nil {
		w.fail(err)
	}
}

// Reopen opens the path again, for the binary to call on SIGHUP after a
// rotation. On error the writer keeps the file it had.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.writing {
		w.done.Wait()
	}
	if w.closed {
		return ErrClosed
	}
	w.checked = time.Now()
	return w.reopenLocked()
}

func (w *Writer) reopenLocked() error {
	f, id, err := openFile(w.path)
	if err != nil {
		return err
	}
	// No Sync of the old file: the page cache keeps its records, and an
	// fsync here would stall the request that noticed the rotation.
	_ = w.f.Close()
	w.f, w.id, w.torn = f, id, false
	return nil
}

// Close syncs and closes the file. Records observed later are counted as
// errors (ErrClosed).
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Records queued before Close are written first: their requests
	// are waiting for them.
	for w.writing || len(w.pending) > 1 {
		if w.writing {
			w.done.Wait()
			continue
		}
		w.writeBatch(time.Now())
	}
	if w.closed {
		return nil
	}
	w.closed = true
	// Here, off the request path, the records are worth an fsync.
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", w.path, err)
	}
	return nil
}

// Errors counts failures since Open: records not written (or only partly),
// and checks or reopens that failed. Poll it to log and report the trail's
// health.
func (w *Writer) Errors() uint64 { return w.errs.Load() }

// LastError is the latest failure counted by Errors, or nil.
func (w *Writer) LastError() error {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Path is the file the writer appends to.
func (w *Writer) Path() string { return w.path }

func (w *Writer) fail(err error) { w.failN(1, err) }

func (w *Writer) failN(n uint64, err error) {
	w.lastErr.Store(&err)
	w.errs.Add(n)
}
