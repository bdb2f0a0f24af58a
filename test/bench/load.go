package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
)

// versionMimetype is the Accept header the engine's plugin client sends
// (docker pkg/plugins/transport).
const versionMimetype = "application/vnd.docker.plugins.v1.2+json"

// newClient returns an HTTP client for a plugin socket, built like the
// engine's (pkg/plugins: a plain http.Transport dialling the unix socket,
// keep-alive, no compression). Unlike the engine's it keeps conns idle
// connections, so a load of conns workers measures the plugin's request
// path rather than connection set-up.
func newClient(sock string, conns int) *http.Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: conns,
		// Never more connections than the plugin was measured with;
		// requests beyond them wait for one, as a burst from the engine
		// waits on the plugin socket's cap.
		MaxConnsPerHost: conns,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Stored names are name(i) = "s-000123"; the engine asks for them as a
// secret of that name used by a service outside any stack, which the
// default access policy lets read top-level names.
const (
	namePlace  = "@NAME@"
	valueBytes = 32
)

func appendName(dst []byte, i int) []byte {
	var d [6]byte
	for k := len(d) - 1; k >= 0; k-- {
		d[k] = byte('0' + i%10)
		i /= 10
	}
	dst = append(dst, "s-"...)
	return append(dst, d[:]...)
}

func storedName(i int) string { return string(appendName(nil, i)) }

// appendValue appends the 32-byte value stored under name(i).
func appendValue(dst []byte, i int) []byte {
	dst = append(dst, "bench-value-"...)
	dst = appendName(dst, i)
	return append(dst, "-xxxxxxxxxxx"...)
}

// nullValue is what the null backend answers, as long as a stored value.
var nullValue = []byte("bench-null-value-xxxxxxxxxxxxxxx")

// bodyTemplate is an engine GetSecret request split around the secret name,
// so a worker builds each body with two appends.
type bodyTemplate struct{ pre, post []byte }

func newBodyTemplate() bodyTemplate {
	req := driver.Request{
		SecretName:   namePlace,
		SecretLabels: map[string]string{"com.example.team": "web"},
		ServiceName:  "web",
		ServiceID:    "kq1x9d0h3m2b7c5v8n4p6r0t2",
		TaskID:       "w3e5r7t9y1u3i5o7p9a1s3d5f",
		TaskName:     "web.1.w3e5r7t9y1u3i5o7p9a1s3d5f",
		TaskImage:    "nginx:1.27@sha256:6784fb0834aa7dbbe12e3d7471e69c290df3e6ba810dc38b34ae33d3c1c05f7d",
		NodeID:       "n8b6v4c2x0z9l7k5j3h1g9f7d",
	}
	var buf bytes.Buffer
	// json.Encoder, as the engine: it ends the body with a newline.
	if err := json.NewEncoder(&buf).Encode(req); err != nil {
		panic(err)
	}
	pre, post, ok := bytes.Cut(buf.Bytes(), []byte(namePlace))
	if !ok {
		panic("bench: name placeholder lost in the request body")
	}
	return bodyTemplate{pre: slices.Clone(pre), post: slices.Clone(post)}
}

func (t bodyTemplate) body(dst []byte, i int) []byte {
	dst = append(dst[:0], t.pre...)
	dst = appendName(dst, i)
	return append(dst, t.post...)
}

// appendDoc appends what the Vault backend answers for the KV v2 document
// {"value": value(i)} read without swarmkeep.field: the whole document as
// compact JSON.
func appendDoc(dst []byte, i int) []byte {
	dst = append(dst, `{"value":"`...)
	dst = appendValue(dst, i)
	return append(dst, `"}`...)
}

// target is one plugin socket to load: names 0..n-1 are stored there.
type target struct {
	client *http.Client
	n      int
	// pid is the plugin process, whose CPU time the slices measure.
	pid int
	// null: every answer is nullValue; doc: appendDoc(i); else
	// appendValue(i).
	null, doc bool
	// tally, when set, counts failed requests instead of ending the load,
	// for a measurement that must report how many answers failed; their
	// latencies count like the others'.
	tally *errTally
	// ok, when set, counts the requests answered with the right value.
	ok *atomic.Int64
}

// errTally counts failed requests and keeps the last error.
type errTally struct {
	mu   sync.Mutex
	n    int
	last error
}

func (e *errTally) note(err error) {
	e.mu.Lock()
	e.n++
	e.last = err
	e.mu.Unlock()
}

func (e *errTally) count() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n, e.last
}

type answer struct {
	Value      []byte
	Err        string
	DoNotReuse bool
}

// get sends one GetSecret for name(i) and checks the answer.
func (t target) get(ctx context.Context, i int, body, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin"+driver.GetSecretPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Add("Accept", versionMimetype)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("status %d, undecodable answer: %w", resp.StatusCode, err)
	}
	if a.Err != "" || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, a.Err)
	}
	switch {
	case t.null:
		want = nullValue
	case t.doc:
		want = appendDoc(want[:0], i)
	default:
		want = appendValue(want[:0], i)
	}
	if !bytes.Equal(a.Value, want) {
		return fmt.Errorf("%s: wrong value (%d bytes)", storedName(i), len(a.Value))
	}
	if t.ok != nil {
		t.ok.Add(1)
	}
	return nil
}

// loadResult is one measurement.
type loadResult struct {
	Requests int
	// Total counts every request answered, the warm-up's too: the
	// plugin's CPU time over the whole run is divided by it.
	Total    int
	Elapsed  time.Duration
	RPS      float64
	P50, P99 time.Duration
	lats     []time.Duration // sorted
}

// pool merges results measured one after the other.
func pool(rs []loadResult) loadResult {
	var out loadResult
	for _, r := range rs {
		out.Requests += r.Requests
		out.Total += r.Total
		out.Elapsed += r.Elapsed
		out.lats = append(out.lats, r.lats...)
	}
	slices.Sort(out.lats)
	out.RPS = float64(out.Requests) / out.Elapsed.Seconds()
	out.P50, out.P99 = percentile(out.lats, 50), percentile(out.lats, 99)
	return out
}

func (r loadResult) String() string {
	return fmt.Sprintf("%7.0f req/s  p50 %s  p99 %s  (%d requests)", r.RPS, fmtDur(r.P50), fmtDur(r.P99), r.Requests)
}

// runLoad runs conc workers against t for warm+dur, each sending requests
// back to back for uniformly random names; only requests started after the
// warm-up are counted. Any failed request fails the measurement.
func runLoad(ctx context.Context, t target, tmpl bodyTemplate, conc int, warm, dur time.Duration, seed uint64) (loadResult, error) {
	rs, err := runMixed(ctx, []target{t}, tmpl, conc, warm, dur, seed)
	if err != nil {
		return loadResult{}, err
	}
	return rs[0], nil
}

// runMixed is runLoad over several targets at once: each request goes to
// a target drawn at random, so whatever else runs on the machine weighs on
// every target alike and their latencies compare directly, and no target
// always follows the same other one. A result's RPS is its share of the
// mixed load.
func runMixed(ctx context.Context, ts []target, tmpl bodyTemplate, conc int, warm, dur time.Duration, seed uint64) ([]loadResult, error) {
	start := time.Now()
	warmEnd := start.Add(warm)
	end := warmEnd.Add(dur)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	lats := make([][][]time.Duration, conc) // worker, target
	totals := make([][]int, conc)           // worker, target
	lastDone := make([]time.Time, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			body := make([]byte, 0, 1024)
			want := make([]byte, 0, 2*valueBytes)
			lat := make([][]time.Duration, len(ts))
			tot := make([]int, len(ts))
			for k := range lat {
				lat[k] = make([]time.Duration, 0, 1<<14)
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				k := rng.IntN(len(ts))
				i := rng.IntN(ts[k].n)
				body = tmpl.body(body, i)
				if err := ts[k].get(ctx, i, body, want); err != nil {
					if ts[k].tally == nil {
						errs[w] = err
						cancel()
						break
					}
					ts[k].tally.note(err)
				}
				t1 := time.Now()
				tot[k]++
				if !t0.Before(warmEnd) {
					lat[k] = append(lat[k], t1.Sub(t0))
					lastDone[w] = t1
				}
			}
			lats[w], totals[w] = lat, tot
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var last time.Time
	for _, t := range lastDone {
		if t.After(last) {
			last = t
		}
	}
	elapsed := last.Sub(warmEnd)
	out := make([]loadResult, len(ts))
	for k := range ts {
		var all []time.Duration
		total := 0
		for w := range conc {
			all = append(all, lats[w][k]...)
			total += totals[w][k]
		}
		if len(all) == 0 {
			return nil, errStalled
		}
		slices.Sort(all)
		out[k] = loadResult{
			Requests: len(all),
			Total:    total,
			Elapsed:  elapsed,
			RPS:      float64(len(all)) / elapsed.Seconds(),
			P50:      percentile(all, 50),
			P99:      percentile(all, 99),
			lats:     all,
		}
	}
	return out, nil
}

// errStalled: no request started after the warm-up, because every worker
// was still waiting for an answer when the load ended. On a busy machine
// a short slice can stall so.
var errStalled = errors.New("no request completed after the warm-up")

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// sweep sends one request for each name in order, spread over conc
// workers, then extra requests for random names. It returns the sorted
// latencies of the first pass: the first read of each name.
func sweep(ctx context.Context, t target, tmpl bodyTemplate, conc, extra int) ([]time.Duration, error) {
	next := make(chan int)
	errc := make(chan error, conc)
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, 0, 1024)
			want := make([]byte, 0, 2*valueBytes)
			for k := range next {
				i, first := k, k < t.n
				if !first {
					i = k - t.n
				}
				body = tmpl.body(body, i)
				t0 := time.Now()
				if err := t.get(ctx, i, body, want); err != nil {
					errc <- err
					return
				}
				if first {
					lats[w] = append(lats[w], time.Since(t0))
				}
			}
		}()
	}
	// Extra requests are sent as t.n+i for name i.
	rng := rand.New(rand.NewPCG(1, 2))
	var err error
feed:
	for k := range t.n + extra {
		if k >= t.n {
			k = t.n + rng.IntN(t.n)
		}
		select {
		case next <- k:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	return all, err
}
