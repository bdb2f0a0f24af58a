package rollout

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Change is a new latest version of a stored name.
type Change struct {
	Name    string
	Version uint64
	// Target, when set, is where the plugin reads Name (a source that
	// watches a backend of the plugin's own settings knows it); nil means
	// Auto's Target.
	Target *Target
	// Settle is how long the plugin may still answer the old version (its
	// cache of a remote backend): the rollout waits at least this long,
	// or the new tasks would be given what they replace.
	Settle time.Duration
}

// Source reports new versions of stored names. Run calls fn for each until
// ctx ends (then it returns nil) or the source fails. Backends plug in here:
// a [Poller] over any store's metadata, woken early by the store's own change
// notification where it has one (inotify on the file store, an etcd watch).
type Source interface {
	Run(ctx context.Context, fn func(Change)) error
}

// Poller is a Source that compares snapshots of the latest version of every
// name. The first snapshot is the baseline: what was put before the agent
// started is not reported.
type Poller struct {
	// Snapshot lists every name's latest version. It reads metadata
	// only, never a value.
	Snapshot func(ctx context.Context) (map[string]uint64, error)
	// Every is the interval between snapshots when nothing wakes the
	// poller earlier.
	Every time.Duration
	// Wake, when set, asks for a snapshot now: the store saw a change.
	Wake <-chan struct{}
}

// Run implements Source.
func (p *Poller) Run(ctx context.Context, fn func(Change)) error {
	if p.Every <= 0 {
		return fmt.Errorf("poll interval %s: want more than 0", p.Every)
	}
	last, err := p.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("first snapshot of the store: %w", err)
	}
	t := time.NewTicker(p.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.Wake:
		}
		now, err := p.Snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("snapshot of the store: %w", err)
		}
		for name, v := range now {
			if v > last[name] {
				fn(Change{Name: name, Version: v})
			}
		}
		last = now
	}
}

// Multi runs several sources as one. When one fails, the others are
// stopped and its error is returned.
type Multi []Source

// Run implements Source.
func (m Multi) Run(ctx context.Context, fn func(Change)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex // fn is called by one source at a time
	errs := make(chan error, len(m))
	for _, s := range m {
		go func() {
			errs <- s.Run(ctx, func(c Change) {
				mu.Lock()
				defer mu.Unlock()
				fn(c)
			})
		}()
	}
	var first error
	for range m {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}
