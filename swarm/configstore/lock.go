package configstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// The store-wide writer lock is one config, <prefix>.lock, whose labels name
// its holder and when the hold expires. The holder extends it every
// lockTTL/3 with a compare-and-swap on the config's version; a lock past its
// expiry (a writer killed while holding it) is taken over with a
// compare-and-swap too, so two writers never both hold it.
var (
	lockTTL        = 30 * time.Second
	lockPoll       = 100 * time.Millisecond
	cleanupTimeout = 10 * time.Second
)

func (m *Medium) lockName() string { return m.prefix + ".lock" }

// Lock takes the store-wide writer lock, waiting until ctx ends.
func (m *Medium) Lock(ctx context.Context) (context.Context, func(), error) {
	var b [16]byte
	rand.Read(b[:])
	holder := hex.EncodeToString(b[:])
	for {
		err := m.tryLock(ctx, holder)
		if err == nil {
			break
		}
		if err != errHeld {
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%s: writer lock: %w: held by another writer: %w", m, backend.ErrUnavailable, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	var once sync.Once
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				if err := m.extend(lctx, holder); err != nil && lctx.Err() == nil {
					cancel() // lost: the holder's writes fail instead of racing
					return
				}
			}
		}
	}()
	unlock := func() {
		once.Do(func() {
			cancel()
			<-done
			m.release(holder)
		})
	}
	return lctx, unlock, nil
}

var errHeld = fmt.Errorf("lock held")

func (m *Medium) lockSpec(holder string) swarm.ConfigSpec {
	exp := "0"
	if holder != "" {
		exp = strconv.FormatInt(time.Now().Add(lockTTL).Unix(), 10)
	}
	return swarm.ConfigSpec{
		Annotations: swarm.Annotations{Name: m.lockName(), Labels: map[string]string{
			LabelStore: m.prefix, LabelKind: kindLock, labelHolder: holder, labelExpires: exp}},
		Data: []byte("swarmkeep writer lock"),
	}
}

// tryLock takes the lock once, or returns errHeld.
func (m *Medium) tryLock(ctx context.Context, holder string) error {
	_, err := m.api.ConfigCreate(ctx, m.lockSpec(holder))
	if err == nil {
		return nil
	}
	if !exists(err) {
		return engineErr("writer lock", err)
	}
	c, _, err := m.api.ConfigInspectWithRaw(ctx, m.lockName())
	if cerrdefs.IsNotFound(err) {
		return errHeld // removed by hand meanwhile: try again after the poll
	}
	if err != nil {
		return engineErr("writer lock", err)
	}
	exp, _ := strconv.ParseInt(c.Spec.Labels[labelExpires], 10, 64)
	if c.Spec.Labels[labelHolder] != "" && time.Now().Unix() < exp {
		return errHeld
	}
	// Free (released but not yet removed) or expired: take it over.
	if err := m.api.ConfigUpdate(ctx, c.ID, c.Version, m.lockSpec(holder)); err != nil {
		if outOfSequence(err) || cerrdefs.IsNotFound(err) {
			return errHeld
		}
		return engineErr("writer lock", err)
	}
	return nil
}

// extend pushes the holder's expiry forward, failing if it no longer holds.
func (m *Medium) extend(ctx context.Context, holder string) error {
	c, _, err := m.api.ConfigInspectWithRaw(ctx, m.lockName())
	if err != nil {
		return err
	}
	if c.Spec.Labels[labelHolder] != holder {
		return errHeld
	}
	return m.api.ConfigUpdate(ctx, c.ID, c.Version, m.lockSpec(holder))
}

// release marks the lock free with a compare-and-swap, so a lock taken over
// meanwhile stays with its new holder. The config itself stays: removing it
// is not versioned and could drop the hold of a writer that just took it.
func (m *Medium) release(holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	c, _, err := m.api.ConfigInspectWithRaw(ctx, m.lockName())
	if err != nil || c.Spec.Labels[labelHolder] != holder {
		return
	}
	m.api.ConfigUpdate(ctx, c.ID, c.Version, m.lockSpec(""))
}
