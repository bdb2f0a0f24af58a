package vault

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// mountTTL is how long an answer about the mount setting is trusted. The
// check runs only after a read failed in a way a wrong mount or kv_version
// would explain (a plain 404, or a 403 for a token the server still
// accepts), so a healthy backend never makes it; a flood of such failures
// makes it once per period, and a mount created or upgraded on the server
// is seen within it.
const mountTTL = time.Minute

// uiMountsPath is what the Vault CLI asks before every kv command to learn
// a mount's KV version. It is unauthenticated, so any live token may ask,
// whatever its policies (vault/logical_system.go, pathInternalUIMountRead).
const uiMountsPath = "sys/internal/ui/mounts/"

// mountState is what the server said of the mount setting.
type mountState struct {
	answered bool // false: the server gave no usable answer
	// absent: the server answered 403. It does so both when no mount holds
	// the path and when the token's policies grant nothing under the mount
	// that does, so that the endpoint cannot be used to list mounts.
	absent  bool
	path    string // the mount holding the setting's path, without slashes
	typ     string // engine type: "kv" (or "generic", its old name)
	version int    // KV version from options.version: 1 when unset, as the CLI reads it
}

// mountCheck caches the last mountState per backend.
type mountCheck struct {
	mu    sync.Mutex
	at    time.Time
	state mountState
	valid bool
}

// mount returns what the server says of the mount setting, asking it at
// most once per mountTTL. An answer that did not come (no connection, a
// deadline, a sealed server) is not cached.
func (b *kvBackend) mount(ctx context.Context, s *session) mountState {
	now := b.now()
	b.mounts.mu.Lock()
	if b.mounts.valid && now.Sub(b.mounts.at) < mountTTL {
		st := b.mounts.state
		b.mounts.mu.Unlock()
		return st
	}
	b.mounts.mu.Unlock()
	st, keep := b.askMount(ctx, s)
	if keep {
		b.mounts.mu.Lock()
		b.mounts.at, b.mounts.state, b.mounts.valid = now, st, true
		b.mounts.mu.Unlock()
	}
	return st
}

// askMount asks sys/internal/ui/mounts/{mount}; keep says whether the
// answer would be the same if asked again soon.
func (b *kvBackend) askMount(ctx context.Context, s *session) (st mountState, keep bool) {
	sec, err := s.client.Logical().ReadWithContext(ctx, uiMountsPath+b.cfg.mount)
	if err != nil {
		switch statusOf(readError(ctx, "mount check", err, s.token)) {
		case http.StatusForbidden:
			return mountState{answered: true, absent: true}, true
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
			return mountState{}, true // a server without the endpoint
		}
		return mountState{}, false
	}
	if sec == nil || sec.Data == nil {
		return mountState{}, true // 404: a server without the endpoint
	}
	st = mountState{answered: true, version: 1}
	st.path, _ = sec.Data["path"].(string)
	st.path = strings.Trim(st.path, "/")
	st.typ, _ = sec.Data["type"].(string)
	if opts, ok := sec.Data["options"].(map[string]any); ok && fmt.Sprint(opts["version"]) == "2" {
		st.version = 2
	}
	return st, true
}

// mountProblem says which setting the server's description of the mount
// contradicts, or "" if none does (or the server did not say).
func (b *kvBackend) mountProblem(st mountState) string {
	switch {
	case !st.answered || st.absent:
		return ""
	case st.typ != "kv" && st.typ != "generic":
		return fmt.Sprintf("mount %s is a %q engine, not KV (check the %q setting)", b.mountName(st.path), st.typ, setMount)
	case st.version != b.cfg.kvVersion:
		return fmt.Sprintf("mount %s is KV version %d (set %s=%d)", b.mountName(st.path), st.version, setKVVersion, st.version)
	case st.version == 2 && st.path != "" && st.path != b.cfg.mount:
		// KV v1 takes any path under its mount; KV v2 needs the mount
		// itself, since it inserts data/ right after it.
		return fmt.Sprintf("%q is a path inside KV v2 mount %s (set %s=%s and put the rest in %s or the %s label)",
			b.cfg.mount, b.mountName(st.path), setMount, st.path, setPathTemplate, backend.LabelPath)
	}
	return ""
}

// mountName quotes a mount path, with the namespace when one is set.
func (b *kvBackend) mountName(p string) string {
	if b.cfg.namespace != "" {
		return fmt.Sprintf("%q (namespace %q)", p, b.cfg.namespace)
	}
	return fmt.Sprintf("%q", p)
}

// absentError is a plain 404 on a KV read: no secret there, or a mount or
// kv_version setting that points the read somewhere else. Get tells them
// apart with a mount check.
type absentError struct {
	where string // the API path read
	err   error
}

func (e *absentError) Error() string { return e.err.Error() }
func (e *absentError) Unwrap() error { return e.err }

// absent is the error for a 404 at where; format says what is missing.
func absent(where, format string, args ...any) error {
	return &absentError{where: where, err: fmt.Errorf("%w: "+format, append([]any{backend.ErrNotFound}, args...)...)}
}

// settingsError is the error of a call that failed because of the
// backend's settings; msg says what happened and which setting to change. It
// wraps ErrSettings (an ErrCannotOpen) instead of the sentinel the server's answer would
// map to, since no read can succeed until the setting is fixed, whatever
// secret is asked; the cache serves its copies meanwhile, as for any
// backend that cannot be opened.
func settingsError(status int, msg string) error {
	return &callError{sentinel: backend.ErrSettings, status: status, msg: msg}
}
