package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// socketLimits bound what one client of the plugin socket can hold: a
// connection that never sends a request, sends its header byte by byte,
// or sits idle forever costs a goroutine and a file descriptor, and
// without limits a thousand of them stay until the plugin restarts.
//
// The timeouts are kept by the connection limiter's reaper (see reap), not
// by net/http's per-connection deadlines: those cost each request five
// deadline changes on the runtime's timers, about 5% of the plugin's CPU
// per request at the engine's concurrency. The reaper looks at every
// connection a few times per shortest timeout, so a limit holds within a
// quarter of it (at most a second) more.
type socketLimits struct {
	// ReadHeaderTimeout bounds a new connection's wait for its first
	// request and the read of each request's header.
	ReadHeaderTimeout time.Duration
	// WriteTimeout bounds the handler, from reading the body (the handler
	// reads it) to writing the answer.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection with no request for that long.
	IdleTimeout    time.Duration
	MaxHeaderBytes int
	// MaxConns caps open connections; past it the longest-quiet one (no
	// request in progress) is closed to make room, so a flood of idle
	// or slow connections cannot keep a good request out.
	MaxConns int
}

// pluginSocketLimits are the plugin socket's limits for a request
// deadline. They follow how the engine talks to a plugin (moby
// pkg/plugins/client.go): one POST with a header of a few hundred bytes
// written at once, over an http.Transport with no IdleConnTimeout that
// keeps up to two idle connections per plugin; callWithRetry resends a
// request whose connection failed after 1 s, 2 s, ... for 30 s.
//   - ReadHeaderTimeout 5 s: the engine's header arrives in one write; 5 s
//     only matters to a client that never sends or dribbles its header.
//   - WriteTimeout: the handler reads the body (a few KiB of labels at
//     most) and answers within the request deadline (getBounded), so the
//     deadline plus 10 s never cuts off an answer.
//   - IdleTimeout 90 s: the engine never closes its idle connections, so
//     the plugin must. When it does, the engine's transport sees the close
//     and drops the connection; a request racing the close fails its
//     first write (EPIPE on a unix socket, nothing sent) and Go's
//     transport resends it, body included, on a new connection. Only a
//     request written whole in the instant between the deadline and the
//     close is lost: callWithRetry resends it with an empty body (its
//     reader is spent), answered as a bad request, and the task restarts.
//     At most one close per 90 s quiet spell keeps that window
//     negligible; 90 s also keeps a connection through a burst of task
//     starts, as Go's DefaultTransport does on the client side.
//   - MaxHeaderBytes 16 KiB: the engine sends about 250 bytes.
//   - MaxConns 512: only the leader's dispatcher calls, once per task and
//     secret, so connections with a request in progress stay far below
//     it; quiet ones are closed to make room rather than counted against
//     it, and a connection over the cap with all 512 busy waits in the
//     accept queue for a slot instead of being refused. Each busy
//     connection may hold a thread on a hung disk, so the cap also
//     bounds those (with driver.DefaultMaxStuck per backend).
func pluginSocketLimits(requestTimeout time.Duration) socketLimits {
	return socketLimits{
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      requestTimeout + 10*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		MaxConns:          512,
	}
}

// newSocketServer returns the http.Server for h with lim, and l wrapped in
// the connection cap and its reaper; serve the one on the other. Closing
// the limiter stops the reaper.
func newSocketServer(h http.Handler, l net.Listener, lim socketLimits) (*http.Server, *connLimiter) {
	cl := &connLimiter{Listener: l, max: lim.MaxConns, conns: map[*trackedConn]struct{}{},
		wake: make(chan struct{}, 1), closed: make(chan struct{}), base: time.Now()}
	hs := &http.Server{Handler: h, MaxHeaderBytes: lim.MaxHeaderBytes, ConnState: cl.connState}
	go cl.reap(lim)
	return hs, cl
}

// serveUntil serves h on l with lim until ctx ends or serving fails. When
// it returns the listener is closed; the server still holds its open
// connections, for the caller to close once it has drained what it must.
func serveUntil(ctx context.Context, h http.Handler, l net.Listener, lim socketLimits, socket string) (*http.Server, error) {
	hs, cl := newSocketServer(h, l, lim)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(cl) }()
	var err error
	select {
	case <-ctx.Done():
	case e := <-served:
		if !errors.Is(e, net.ErrClosed) && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("serving %s: %w", socket, e)
		}
	}
	_ = cl.Close()
	return hs, err
}

// connLimiter is a listener that keeps at most max connections open. Over
// the cap it closes the connection that has been quiet (accepted or idle,
// no request being handled) the longest; when every connection is busy it
// waits for one to end.
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	seq   uint64 // orders quiet spells, oldest first

	wake      chan struct{} // a connection ended or went quiet
	closed    chan struct{}
	closeOnce sync.Once
	base      time.Time // the reaper's clock starts here (see now)
}

type trackedConn struct {
	net.Conn
	l       *connLimiter
	quiet   bool   // guarded by l.mu
	quietAt uint64 // guarded by l.mu
	once    sync.Once
	// phase is the connection's phase and when it began, for the
	// reaper: the limiter's clock (ms) << 2 | phase, one word so that the
	// two are always read together.
	phase atomic.Int64
	// readDL and writeDL: a deadline is set. net/http clears deadlines
	// that were never set on every request; those calls are dropped.
	readDL, writeDL atomic.Bool
}

// A connection's phases, each with its bound (see socketLimits).
const (
	phaseNew     = iota // accepted, no byte yet: ReadHeaderTimeout
	phaseHeader         // a request's first bytes came: ReadHeaderTimeout
	phaseHandler        // the handler runs: WriteTimeout
	phaseIdle           // between requests: IdleTimeout
)

func (c *trackedConn) enter(phase int64) {
	c.phase.Store(c.l.now()<<2 | phase)
}

// now is the limiter's clock: milliseconds on the monotonic clock since it
// was made, so a step of the wall clock neither closes every connection
// nor lets one outlive its bound.
func (l *connLimiter) now() int64 { return time.Since(l.base).Milliseconds() }

// Read notes the first bytes of a request: a header that arrives on a new
// or idle connection is bounded by ReadHeaderTimeout from then on (net/http
// reports the connection active only once the header is read).
func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		if p := c.phase.Load() & 3; p == phaseNew || p == phaseIdle {
			c.enter(phaseHeader)
		}
	}
	return n, err
}

// SetReadDeadline passes a deadline on, and a clearing one only if a
// deadline is set.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	if t.IsZero() && !c.readDL.Load() {
		return nil
	}
	c.readDL.Store(!t.IsZero())
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline is SetReadDeadline's twin for writes.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && !c.writeDL.Load() {
		return nil
	}
	c.writeDL.Store(!t.IsZero())
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both.
func (c *trackedConn) SetDeadline(t time.Time) error {
	c.readDL.Store(!t.IsZero())
	c.writeDL.Store(!t.IsZero())
	return c.Conn.SetDeadline(t)
}

// Accept returns the next connection once there is room for it.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.seq++
			tc := &trackedConn{Conn: c, l: l, quiet: true, quietAt: l.seq}
			tc.enter(phaseNew)
			l.conns[tc] = struct{}{}
			l.mu.Unlock()
			return tc, nil
		}
		victim := l.oldestQuiet()
		l.mu.Unlock()
		if victim != nil {
			victim.Close() // releases its slot before returning
			continue
		}
		select {
		case <-l.wake:
		case <-l.closed:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// oldestQuiet is the connection quiet the longest, or nil; l.mu is held.
func (l *connLimiter) oldestQuiet() *trackedConn {
	var v *trackedConn
	for c := range l.conns {
		if c.quiet && (v == nil || c.quietAt < v.quietAt) {
			v = c
		}
	}
	return v
}

// connState follows the http.Server's view of each connection.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateActive:
		// net/http reports a connection active once it has read a
		// request's header, right before it runs the handler.
		tc.enter(phaseHandler)
		l.mu.Lock()
		tc.quiet = false
		l.mu.Unlock()
	case http.StateIdle:
		tc.enter(phaseIdle)
		l.mu.Lock()
		l.seq++
		tc.quiet, tc.quietAt = true, l.seq
		l.mu.Unlock()
		l.signal()
	case http.StateHijacked, http.StateClosed:
		tc.release()
	}
}

// reap closes, until the limiter is closed, every connection that stayed
// in a phase longer than lim allows.
func (l *connLimiter) reap(lim socketLimits) {
	bounds := [4]time.Duration{
		phaseNew: lim.ReadHeaderTimeout, phaseHeader: lim.ReadHeaderTimeout,
		phaseHandler: lim.WriteTimeout, phaseIdle: lim.IdleTimeout,
	}
	every := time.Second
	for _, b := range bounds {
		if b > 0 {
			every = min(every, b/4)
		}
	}
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	var over []*trackedConn
	for {
		select {
		case <-l.closed:
			return
		case <-tick.C:
		}
		now := l.now()
		over = over[:0]
		l.mu.Lock()
		for c := range l.conns {
			st := c.phase.Load()
			if b := bounds[st&3]; b > 0 && now-st>>2 > b.Milliseconds() {
				over = append(over, c)
			}
		}
		l.mu.Unlock()
		for _, c := range over {
			c.Close()
		}
		clear(over)
	}
}

func (l *connLimiter) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Open returns the number of connections open now.
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Close stops accepting; open connections are the http.Server's to close.
func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (c *trackedConn) release() {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.signal()
	})
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
