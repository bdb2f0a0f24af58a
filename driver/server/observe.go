package server

import (
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
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

// hashedBackend is what of an instance decides its answers.
type hashedBackend struct {
	Name, Type string
	Settings   backend.Settings
	Cache      CacheConfig
}

// ConfigHash hashes the settings that decide what is served and audited,
// so managers that would behave differently show different hashes.
// LOG_LEVEL and socket paths are left out: they differ harmlessly. The
// settings hold knobs and file paths only (see BACKENDS), never
// credentials.
func ConfigHash(cfg Config) string {
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
