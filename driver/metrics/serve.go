package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PluginSocketDir is where a managed plugin's sockets live inside the
// plugin; the host sees it as /run/docker/plugins/<plugin-id>.
const PluginSocketDir = "/run/docker/plugins"

// DefaultSocket sits next to the plugin socket, so on the host it is
// /run/docker/plugins/<plugin-id>/swarmkeep-metrics.sock. The engine looks
// only for <id>/<id>.sock there, so it never mistakes it for a plugin.
const DefaultSocket = PluginSocketDir + "/swarmkeep-metrics.sock"

// Timeouts of the metrics server: a scrape is one small request, so a
// client slower than this is stuck or hostile.
const (
	readTimeout  = 10 * time.Second
	writeTimeout = 30 * time.Second
	idleTimeout  = 60 * time.Second
	stopTimeout  = 5 * time.Second
)

// ResolveSocket turns a METRICS_SOCKET setting into a path: empty means
// DefaultSocket, a plain name means NAME.sock in PluginSocketDir (like the
// plugin's SOCKET setting), anything else must be absolute.
func ResolveSocket(v string) (string, error) {
	switch {
	case v == "":
		return DefaultSocket, nil
	case filepath.IsAbs(v):
		return filepath.Clean(v), nil
	case strings.ContainsAny(v, "/\\"):
		return "", errors.New("metrics socket: want a plain name or an absolute path")
	default:
		return filepath.Join(PluginSocketDir, v+".sock"), nil
	}
}

// CheckAddr and ResolveSocket do not repeat what they were given: their
// errors reach /health and the log, and a setting may hold anything.

// CheckAddr accepts a loopback HOST:PORT: 127.0.0.0/8, ::1 or localhost.
// The plugin runs in the host's network namespace, so any other address
// would publish secret names (in recent errors) and backend names to the
// network without authentication.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// Not wrapped: net's error quotes the address.
		return errors.New("metrics address: want HOST:PORT, like 127.0.0.1:9714")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return errors.New("metrics address: port must be a number from 0 to 65535")
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errors.New("metrics address: not a loopback address; use 127.0.0.1:PORT or [::1]:PORT (metrics are never served beyond this host)")
	}
	return nil
}

// Serve serves h on the unix socket at socketPath (mode 0660, owned by the
// process: root in the plugin), and also on tcpAddr when it is not empty,
// which must be a loopback address. Servers stop when ctx ends or stop is
// called; stop waits up to a few seconds for requests in flight, removes
// the socket and returns the first serving error, if any.
func Serve(ctx context.Context, socketPath, tcpAddr string, h http.Handler) (stop func() error, err error) {
	if socketPath == "" {
		return nil, errors.New("metrics: no socket path")
	}
	if tcpAddr != "" {
		if err := CheckAddr(tcpAddr); err != nil {
			return nil, err
		}
	}
	ul, err := listenSocket(socketPath)
	if err != nil {
		return nil, err
	}
	// Remembered so stop removes only this socket, not one a newer
	// process put at the same path meanwhile.
	ours, _ := os.Stat(socketPath)
	listeners := map[string]net.Listener{socketPath: ul}
	if tcpAddr != "" {
		tl, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			ul.Close()
			os.Remove(socketPath)
			return nil, fmt.Errorf("metrics: listen on %s: %w", tcpAddr, err)
		}
		listeners[tcpAddr] = tl
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		// The plugin's stderr is the dockerd log; a scanner poking the
		// port must not fill it.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	var (
		mu       sync.Mutex
		serveErr error
		wg       sync.WaitGroup
	)
	for name, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				mu.Lock()
				serveErr = errors.Join(serveErr, fmt.Errorf("metrics: serving %s: %w", name, err))
				mu.Unlock()
			}
		}()
	}
	var (
		once    sync.Once
		stopErr error
	)
	halt := func() error {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			err := srv.Shutdown(sctx)
			if errors.Is(err, context.DeadlineExceeded) {
				err = srv.Close() // cut the slow clients off
			}
			wg.Wait()
			if now, serr := os.Stat(socketPath); serr == nil && ours != nil && os.SameFile(ours, now) {
				if rerr := os.Remove(socketPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
					err = errors.Join(err, rerr)
				}
			}
			mu.Lock()
			stopErr = errors.Join(serveErr, err)
			mu.Unlock()
		})
		return stopErr
	}
	unwatch := context.AfterFunc(ctx, func() { halt() })
	return func() error {
		unwatch()
		return halt()
	}, nil
}

// listenSocket listens on path with mode 0660. The socket is made in a
// private folder next to path, chmodded there and renamed into place, so it
// is never reachable with looser permissions, and without touching the
// process-wide umask while backends may be creating files. The rename also
// replaces a stale socket left by a crash in one step; a socket that still
// answers belongs to a running server and is refused.
func listenSocket(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("metrics: socket folder: %w", err)
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket == 0 {
		// The rename below would replace it: never clobber a file that a
		// mistyped METRICS_SOCKET happens to name.
		return nil, fmt.Errorf("metrics: %s exists and is not a socket; set METRICS_SOCKET to a free path", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("metrics: %s is in use by another process; stop it or set another METRICS_SOCKET", path)
	}
	tmp, err := os.MkdirTemp(dir, ".metrics-")
	if err != nil {
		return nil, fmt.Errorf("metrics: socket folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpSock := filepath.Join(tmp, "s")
	l, err := net.Listen("unix", tmpSock)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", path, err)
	}
	// The listener would unlink its original, temporary name on close; the
	// socket now lives at path, which stop removes.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmpSock, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("metrics: socket mode: %w", err)
	}
	if err := os.Rename(tmpSock, path); err != nil {
		l.Close()
		return nil, fmt.Errorf("metrics: place socket at %s: %w", path, err)
	}
	return l, nil
}
