package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
)

// socketServer serves an answering handler on a real unix socket with lim.
func socketServer(t *testing.T, lim socketLimits) (path string, cl *connLimiter) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "p.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"Value":"b2s="}`)
	})
	hs, cl := newSocketServer(h, l, lim)
	done := make(chan struct{})
	go func() { hs.Serve(cl); close(done) }()
	t.Cleanup(func() { hs.Close(); <-done })
	return path, cl
}

// engineClient talks to the socket as the engine does (moby
// pkg/plugins/client.go: a plain http.Transport dialling the socket).
func engineClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableCompression: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

func getSecret(t *testing.T, c *http.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin.moby.localhost/SecretProvider.GetSecret",
		strings.NewReader(`{"SecretName":"db"}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("a well-formed request got no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "Value") {
		t.Fatalf("answer %d %q", resp.StatusCode, b)
	}
}

// flood opens idle connections that never send a byte and slow ones that
// send a header one byte at a time; stop closes them all.
func flood(t *testing.T, path string, idle, slow int) (stop func()) {
	t.Helper()
	var conns []net.Conn
	for i := 0; i < idle; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	header := "POST /SecretProvider.GetSecret HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 4096)
	for i := 0; i < slow; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("slow connection %d: %v", i, err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for j := 0; j < len(header); j++ {
				if _, err := c.Write([]byte{header[j]}); err != nil {
					return // the server hung up
				}
				select {
				case <-tick.C:
				case <-quit:
					return
				}
			}
		}()
	}
	return func() {
		close(quit)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Under a flood of 1,000 idle and 100 slow-header connections the
// connection cap holds (quiet connections make room), a well-formed
// request is answered, and the timeouts release every flooding
// connection's goroutine. Before the limits the server held one goroutine
// per flooding connection for as long as the client kept it.
func TestSocketFloodTimeouts(t *testing.T) {
	lim := socketLimits{
		ReadHeaderTimeout: time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: time.Second, MaxHeaderBytes: 1 << 10, MaxConns: 2000,
	}
	path, cl := socketServer(t, lim)
	client := engineClient(path)
	getSecret(t, client) // leaves a kept-alive connection, idle
	base := runtime.NumGoroutine()
	stop := flood(t, path, 1000, 100)
	defer stop()
	t.Logf("during the flood: %d connections open, %d goroutines (%d before)", cl.Open(), runtime.NumGoroutine(), base)
	getSecret(t, client)
	// The slow writers' goroutines end when the server hangs up on them;
	// idle connections have no goroutine on the client side.
	waitFor(t, "the timeouts close every flooding connection", func() bool { return cl.Open() == 0 })
	waitFor(t, "the server's goroutines released", func() bool { return runtime.NumGoroutine() <= base })
	t.Logf("after the timeouts: %d connections open, %d goroutines", cl.Open(), runtime.NumGoroutine())
	getSecret(t, client)
}

// With the timeouts too long to help, the connection cap alone keeps
// well-formed requests answering during the flood: the longest-quiet
// connections are closed to make room, and the server never holds more
// than the cap.
func TestSocketFloodCap(t *testing.T) {
	lim := socketLimits{
		ReadHeaderTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: time.Minute, MaxHeaderBytes: 1 << 10, MaxConns: 64,
	}
	path, cl := socketServer(t, lim)
	base := runtime.NumGoroutine()
	stop := flood(t, path, 1000, 100)
	defer stop()
	for i := 0; i < 5; i++ {
		getSecret(t, engineClient(path))
	}
	if n := cl.Open(); n > lim.MaxConns {
		t.Fatalf("%d connections open, over the cap %d", n, lim.MaxConns)
	}
	// Server goroutines: one per open connection at most; the client's:
	// the slow writers still running (at most 100).
	if g := runtime.NumGoroutine(); g > base+lim.MaxConns+100+16 {
		t.Fatalf("%d goroutines with %d connections open (base %d)", g, cl.Open(), base)
	}
	t.Logf("during the flood: %d connections open, %d goroutines (base %d)", cl.Open(), runtime.NumGoroutine(), base)
}

// A header over the cap is refused, not read into memory.
func TestSocketHeaderCap(t *testing.T) {
	path, _ := socketServer(t, pluginSocketLimits(time.Second))
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.WriteString(c, "POST /SecretProvider.GetSecret HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// The engine's kept-alive connection is reused across requests: the limits
// do not make it dial for each one.
func TestSocketKeepAlive(t *testing.T) {
	path, cl := socketServer(t, pluginSocketLimits(time.Second))
	client := engineClient(path)
	for i := 0; i < 20; i++ {
		getSecret(t, client)
	}
	if n := cl.Open(); n != 1 {
		t.Fatalf("%d connections for 20 sequential requests, want 1 kept alive", n)
	}
}

// A request whose answer takes longer than the header timeout (a backend at
// the edge of REQUEST_TIMEOUT) is neither cancelled nor cut off: the header
// timeout bounds reading the header, the write timeout the handler.
func TestSocketSlowAnswerOutlivesHeaderTimeout(t *testing.T) {
	lim := socketLimits{ReadHeaderTimeout: 100 * time.Millisecond,
		WriteTimeout: 5 * time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 1 << 10, MaxConns: 8}
	path := filepath.Join(t.TempDir(), "p.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
			cancelled <- r.Context().Err()
		case <-time.After(4 * lim.ReadHeaderTimeout):
		}
		io.WriteString(w, `{"Value":"b2s="}`)
	})
	hs, cl := newSocketServer(h, l, lim)
	go hs.Serve(cl)
	defer hs.Close()
	getSecret(t, engineClient(path))
	select {
	case err := <-cancelled:
		t.Fatalf("the request's context ended at the read timeout: %v", err)
	default:
	}
}

// The write timeout leaves room for the longest request deadline, or the
// answer to a slow backend would be cut off after it was computed.
func TestPluginSocketLimitsFitTheDeadline(t *testing.T) {
	for _, d := range []time.Duration{driver.MinTimeout, driver.DefaultTimeout, driver.MaxTimeout} {
		lim := pluginSocketLimits(d)
		if lim.WriteTimeout <= d || lim.ReadHeaderTimeout <= 0 || lim.WriteTimeout < lim.ReadHeaderTimeout ||
			lim.IdleTimeout <= 0 || lim.MaxHeaderBytes <= 0 || lim.MaxConns <= 0 {
			t.Errorf("timeout %s: %+v", d, lim)
		}
	}
}

// The reaper keeps the bounds net/http's deadlines kept before: a handler
// that never answers has its connection closed after the write timeout,
// and a connection idle past the idle timeout is closed while the client
// dials again for its next request.
func TestSocketReaperBounds(t *testing.T) {
	lim := socketLimits{ReadHeaderTimeout: time.Second,
		WriteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond, MaxHeaderBytes: 1 << 10, MaxConns: 8}
	path := filepath.Join(t.TempDir(), "p.sock")
	l, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-Hang") != "" {
			<-release
		}
		io.WriteString(w, `{"Value":"b2s="}`)
	})
	hs, cl := newSocketServer(h, l, lim)
	go hs.Serve(cl)
	defer hs.Close()
	defer close(release)

	client := engineClient(path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/SecretProvider.GetSecret", strings.NewReader(`{"SecretName":"db"}`))
	req.Header.Set("X-Hang", "1")
	start := time.Now()
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a hung handler answered %d", resp.StatusCode)
	}
	if took := time.Since(start); took < lim.WriteTimeout || took > lim.WriteTimeout+time.Second {
		t.Fatalf("hung handler's connection closed after %s, want about %s", took, lim.WriteTimeout)
	}

	getSecret(t, client)
	if n := cl.Open(); n != 1 {
		t.Fatalf("%d connections open after a request, want 1 kept alive", n)
	}
	waitFor(t, "the idle connection closed", func() bool { return cl.Open() == 0 })
	getSecret(t, client)
}

// A kept-alive connection that dribbles its next request's header is held
// to the header timeout from its first byte, not to the idle timeout.
func TestSocketReaperDribbleAfterKeepAlive(t *testing.T) {
	lim := socketLimits{ReadHeaderTimeout: 300 * time.Millisecond,
		WriteTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 1 << 10, MaxConns: 8}
	path, cl := socketServer(t, lim)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"SecretName":"db"}`
	io.WriteString(c, "POST /SecretProvider.GetSecret HTTP/1.1\r\nHost: x\r\nContent-Length: 19\r\n\r\n"+body)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	header := "POST /SecretProvider.GetSecret HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 200)
	for i := 0; i < len(header) && cl.Open() > 0; i++ {
		c.Write([]byte{header[i]})
		time.Sleep(20 * time.Millisecond)
	}
	if cl.Open() > 0 {
		t.Fatalf("a dribbled header was still being read after %s", time.Since(start))
	}
	if took := time.Since(start); took > lim.ReadHeaderTimeout+time.Second {
		t.Fatalf("dribbling connection closed after %s, want about %s", took, lim.ReadHeaderTimeout)
	}
}
