package metrics

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/swarmkeep/swarmkeep/driver/cache"
)

func goVersion() string { return runtime.Version() }

// recordsEvery bounds how often store sizes are counted: listing a store of
// 100k records reads 100k files, far too much for every 15 s scrape.
const recordsEvery = 60 * time.Second

// recordsFirstWait is how long the first scrape waits for the first count
// before answering without it; later scrapes never wait.
const recordsFirstWait = 2 * time.Second

// recordsCollector exports store_records from a slow callback. Counting runs
// in the background, one count at a time, and scrapes read the latest
// result, so a slow store never delays a scrape past the first one and
// concurrent scrapes never count twice.
type recordsCollector struct {
	desc     *prometheus.Desc
	backends []string
	count    func(string) (int, bool)
	now      func() time.Time
	every    time.Duration
	wait     time.Duration

	mu      sync.Mutex
	vals    map[string]int // latest counts; a missing backend has none
	at      time.Time      // when vals were counted; zero before the first
	running chan struct{}  // closed when the count in progress ends
}

func newRecordsCollector(backends []string, count func(string) (int, bool)) *recordsCollector {
	return &recordsCollector{
		desc: prometheus.NewDesc("swarmkeep_store_records",
			"Records in the backend's store, counted at most once a minute.", []string{"backend"}, nil),
		backends: backends, count: count, now: time.Now, every: recordsEvery, wait: recordsFirstWait,
	}
}

func (c *recordsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *recordsCollector) Collect(ch chan<- prometheus.Metric) {
	if c.count == nil {
		return
	}
	c.mu.Lock()
	if c.running == nil && (c.at.IsZero() || c.now().Sub(c.at) >= c.every) {
		c.running = make(chan struct{})
		go c.refresh(c.running)
	}
	first, running := c.at.IsZero(), c.running
	c.mu.Unlock()
	if first && running != nil {
		t := time.NewTimer(c.wait)
		select {
		case <-running:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.backends {
		if n, ok := c.vals[b]; ok {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), b)
		}
	}
}

func (c *recordsCollector) refresh(done chan struct{}) {
	vals := make(map[string]int, len(c.backends))
	for _, b := range c.backends {
		if n, ok := c.count(b); ok {
			vals[b] = n
		}
	}
	c.mu.Lock()
	c.vals, c.at, c.running = vals, c.now(), nil
	c.mu.Unlock()
	close(done)
}

// cacheCollector exports remote backends' cache counters, read at scrape:
// Stats is a handful of atomic loads. Hits and stale answers are left out,
// as cache_hits_total and stale_served_total already count them per answer.
type cacheCollector struct {
	backends []string
	stats    func(string) (cache.Stats, bool)
	descs    []cacheDesc
}

type cacheDesc struct {
	desc *prometheus.Desc
	get  func(cache.Stats) uint64
}

func newCacheCollector(backends []string, stats func(string) (cache.Stats, bool)) *cacheCollector {
	d := func(name, help string, get func(cache.Stats) uint64) cacheDesc {
		return cacheDesc{prometheus.NewDesc("swarmkeep_cache_"+name, help, []string{"backend"}, nil), get}
	}
	return &cacheCollector{backends: backends, stats: stats, descs: []cacheDesc{
		d("misses_total", "Cacheable requests no fresh entry answered.", func(s cache.Stats) uint64 { return s.Misses }),
		d("coalesced_total", "Misses that joined a backend call already in flight.", func(s cache.Stats) uint64 { return s.Coalesced }),
		d("backend_calls_total", "Calls the cache made to the backend.", func(s cache.Stats) uint64 { return s.BackendCalls }),
		d("backend_call_errors_total", "Backend calls that failed, other than not found.", func(s cache.Stats) uint64 { return s.BackendErrors }),
		d("negative_hits_total", "Not-found answers served from memory.", func(s cache.Stats) uint64 { return s.NegativeHits }),
		d("evictions_total", "Entries evicted to stay within the cache size.", func(s cache.Stats) uint64 { return s.Evictions }),
		d("lkg_writes_total", "Last-known-good copies written to disk.", func(s cache.Stats) uint64 { return s.LKGWrites }),
		d("lkg_errors_total", "Last-known-good loads, writes or removals that failed, and copies dropped from a full write queue.", func(s cache.Stats) uint64 { return s.LKGErrors }),
	}}
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	for _, b := range c.backends {
		s, ok := c.stats(b)
		if !ok {
			continue
		}
		for _, d := range c.descs {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.get(s)), b)
		}
	}
}
