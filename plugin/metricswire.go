package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/cache"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// observers calls each observer in turn, metrics first: they cost a few
// hundred ns and must count even a request whose log or audit line is slow.
func observers(obs ...driver.Observer) driver.Observer {
	return func(ev driver.Event) {
		for _, o := range obs {
			o(ev)
		}
	}
}

func backendNames(cfg Config) []string {
	out := make([]string, len(cfg.Backends))
	for i, b := range cfg.Backends {
		out[i] = b.Name
	}
	return out
}

// withCacheStats wraps each instance's Wrap to remember the cache it
// makes. driver.New calls every Wrap before it returns, so the map is
// complete, and no longer written, before the first scrape.
func withCacheStats(instances []driver.Instance) ([]driver.Instance, map[string]*cache.Cache) {
	caches := map[string]*cache.Cache{}
	for i := range instances {
		wrap, name := instances[i].Wrap, instances[i].Name
		if wrap == nil {
			continue
		}
		instances[i].Wrap = func(b driver.Backend) driver.Backend {
			wb := wrap(b)
			if cb, ok := wb.(*cachedBackend); ok {
				caches[name] = cb.Cache
			}
			return wb
		}
	}
	return instances, caches
}

// hashedBackend is what of an instance decides its answers; Wrap (a func)
// is not configuration and cannot be encoded.
type hashedBackend struct {
	Name, Type string
	Settings   driver.Settings
	Cache      CacheConfig
}

// configHash hashes the settings that decide what is served and audited,
// so managers that would behave differently show different hashes.
// LOG_LEVEL and socket paths are left out: they differ harmlessly. The
// settings hold knobs and file paths only (see BACKENDS), never
// credentials.
func configHash(cfg Config) string {
	bs := make([]hashedBackend, len(cfg.Backends))
	for i, b := range cfg.Backends {
		bs[i] = hashedBackend{Name: b.Name, Type: b.Type, Settings: b.Settings, Cache: b.Cache}
	}
	return metrics.ConfigHash(struct {
		Timeout                                              time.Duration
		StoreDir, KeyFile, PassphraseFile, LKGDir, AuditFile string
		Default                                              string
		Backends                                             []hashedBackend
	}{cfg.Timeout, cfg.StoreDir, cfg.KeyFile, cfg.PassphraseFile, cfg.LKGDir, cfg.AuditFile, cfg.Default, bs})
}

// storeRecords counts the record objects of file backends (FORMAT.md: keys
// r/<name>): one small read per record, no key, no decryption. Names
// removed but kept for their version counter count too. Other backend
// types have no count.
func storeRecords(cfg Config) func(string) (int, bool) {
	dirs := map[string]string{}
	for _, b := range cfg.Backends {
		if b.Type == "file" {
			dirs[b.Name] = b.Settings["dir"]
		}
	}
	return func(name string) (int, bool) {
		dir, ok := dirs[name]
		if !ok {
			return 0, false
		}
		// OpenDir creates a missing store; counting must not.
		if _, err := os.Stat(filepath.Join(dir, "objects")); err != nil {
			return 0, false
		}
		md, err := store.OpenDir(dir)
		if err != nil {
			return 0, false
		}
		defer md.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := 0
		err = md.List(ctx, "r/", func(string) error { n++; return nil })
		if err != nil && !errors.Is(err, driver.ErrCorrupt) {
			return 0, false // damaged objects are skipped, not fatal
		}
		return n, true
	}
}
