package rollout

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/backend"
	_ "github.com/swarmkeep/swarmkeep/driver/vault" // the "vault" type, as the agent opens it
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// vaultRig is the auto-rollout harness with a RemotePoller over a vault
// backend on the fake server; the test steps the poller's rounds.
type vaultRig struct {
	*autoHarness
	fake  *vaulttest.Server
	poll  *RemotePoller
	hook  *logtest.Hook
	waits chan time.Duration // what the poller asks to wait after each round
	step  chan struct{}      // lets it go on
}

func newVaultRig(t *testing.T, settings backend.Settings, settle time.Duration) (*vaultRig, *Auto) {
	h, a := newAutoHarness(t)
	fake := vaulttest.New(t)
	tok := filepath.Join(t.TempDir(), "token")
	// A token that may read metadata and nothing else: any data read
	// would fail, besides being counted.
	if err := os.WriteFile(tok, []byte(fake.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/metadata/*", "kv/*"}})), 0o600); err != nil {
		t.Fatal(err)
	}
	settings["address"], settings["token_file"] = fake.URL, tok
	typ, err := backend.Lookup("vault")
	if err != nil {
		t.Fatal(err)
	}
	b, err := typ.Open(context.Background(), settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	meta, ok := b.(Metadata)
	if !ok {
		t.Fatalf("the vault backend %T reads no metadata", b)
	}
	log, hook := logtest.NewNullLogger()
	r := &vaultRig{autoHarness: h, fake: fake, hook: hook, waits: make(chan time.Duration), step: make(chan struct{})}
	r.poll = &RemotePoller{
		API: h.f,
		Views: func(context.Context) ([]PluginView, error) {
			return []PluginView{{Plugins: []string{"swarmkeep"}, Default: "local", Backends: map[string]RemoteBackend{"vault": {Meta: meta, Settle: settle}}}}, nil
		},
		Every:      time.Minute,
		BackoffMin: time.Second,
		Log:        log,
		sleep: func(ctx context.Context, d time.Duration) bool {
			select {
			case r.waits <- d:
			case <-ctx.Done():
				return false
			}
			select {
			case <-r.step:
				return true
			case <-ctx.Done():
				return false
			}
		},
	}
	a.Source = r.poll
	return r, a
}

// round lets the poller run one more round and returns the wait it asks
// for after it.
func (r *vaultRig) round(t *testing.T) time.Duration {
	t.Helper()
	r.step <- struct{}{}
	return r.firstWait(t)
}

func (r *vaultRig) firstWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-r.waits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the poller finished no round")
		return 0
	}
}

func (r *vaultRig) secret(name string) string {
	return r.f.addSecret(name, "swarmkeep", map[string]string{driver.LabelBackend: "vault"})
}

var auto = map[string]string{AutoLabel: AutoValue}

// TestVaultNewVersionRollsTheOptedInServiceOnce: a vault kv put of a name an
// opted-in service uses rolls that service, once, to the new version; a
// service without the label, one that uses api-prod and the versions there
// before the agent are left alone; no value is read.
func TestVaultNewVersionRollsTheOptedInServiceOnce(t *testing.T) {
	r, a := newVaultRig(t, backendSettings(), 0)
	r.fake.PutKV2("", "secret", "api", map[string]any{"v": "1"})
	r.fake.PutKV2("", "secret", "api-prod", map[string]any{"v": "1"})
	api, prod := r.secret("api"), r.secret("api-prod")
	local := r.f.addSecret("api", "swarmkeep", nil) // routes to the default backend, local
	r.f.addService("auto", 1, auto, nil, api)
	r.f.addService("manual", 1, nil, nil, api)
	r.f.addService("prod", 1, auto, nil, prod)
	r.f.addService("local", 1, auto, nil, local)
	r.start(t, a)
	if d := r.firstWait(t); d != time.Minute {
		t.Fatalf("after the baseline the poller waits %s, want the interval", d)
	}
	r.fake.PutKV2("", "secret", "api", map[string]any{"v": "2"})
	r.round(t)
	ev := r.waitRecord(t)
	if ev.Service != "auto" || ev.Name != "api" || ev.Version != 2 || ev.Backend != "vault" || ev.Err != nil {
		t.Fatalf("rollout %+v, want service auto to vault's api version 2", ev)
	}
	r.round(t) // nothing new: nothing rolled
	r.noRecord(t, 400*time.Millisecond)
	r.mu.Lock()
	rolls := strings.Join(r.rolls, " ")
	r.mu.Unlock()
	if rolls != "auto@2" {
		t.Fatalf("rolls %q, want auto@2 only", rolls)
	}
	if n := r.fake.CountPrefix("/v1/secret/data/"); n != 0 {
		t.Fatalf("the agent read %d value(s)", n)
	}
	if n := r.fake.Count("/v1/secret/metadata/api"); n != 3 {
		t.Fatalf("%d metadata reads of api in 3 rounds", n)
	}
}

// TestVaultDownBacksOffAndRollsNothing: while Vault is down each round
// fails, is logged once, waits twice as long as the one before up to the
// interval, and rolls nothing; the version put meanwhile rolls when Vault
// answers again.
func TestVaultDownBacksOffAndRollsNothing(t *testing.T) {
	r, a := newVaultRig(t, backendSettings(), 0)
	r.fake.PutKV2("", "secret", "api", map[string]any{"v": "1"})
	r.f.addService("auto", 1, auto, nil, r.secret("api"))
	r.start(t, a)
	r.firstWait(t)
	r.fake.Stop()
	r.fake.PutKV2("", "secret", "api", map[string]any{"v": "2"})
	var waits []time.Duration
	for range 7 {
		waits = append(waits, r.round(t))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits while Vault is down %v, want %v", waits, want)
	}
	r.noRecord(t, 300*time.Millisecond)
	if n := warnings(r.hook, "versions not read"); n != 1 {
		t.Fatalf("%d warnings for 7 failed rounds, want 1", n)
	}
	r.fake.Restart(t)
	if d := r.round(t); d != time.Minute {
		t.Fatalf("after Vault is back the poller waits %s", d)
	}
	if ev := r.waitRecord(t); ev.Version != 2 || ev.Service != "auto" {
		t.Fatalf("rollout after Vault came back: %+v", ev)
	}
}

// TestVaultKVv1IsNotWatched: a KV v1 mount keeps no versions; the agent
// says so once, naming the backend and the command to use, and rolls
// nothing.
func TestVaultKVv1IsNotWatched(t *testing.T) {
	s := backendSettings()
	s["mount"], s["kv_version"] = "kv", "1"
	r, a := newVaultRig(t, s, 0)
	r.fake.EnableKV("", "kv", 1)
	r.fake.PutKV1("", "kv", "api", map[string]any{"v": "1"})
	r.f.addService("auto", 1, auto, nil, r.secret("api"))
	r.start(t, a)
	r.firstWait(t)
	r.fake.PutKV1("", "kv", "api", map[string]any{"v": "2"})
	r.round(t)
	r.round(t)
	r.noRecord(t, 300*time.Millisecond)
	var said []string
	for _, e := range r.hook.AllEntries() {
		said = append(said, e.Message)
	}
	if len(said) != 1 || !strings.Contains(said[0], "does not watch backend vault") || !strings.Contains(said[0], "KV version 1") ||
		!strings.Contains(said[0], "swarmkeep rollout NAME") {
		t.Fatalf("logged %q, want one line saying KV v1 is not watched", said)
	}
	if n := r.fake.CountPrefix("/v1/kv/"); n != 0 {
		t.Fatalf("the KV v1 mount was asked %d time(s)", n)
	}
}

// TestVaultSettleWaitsForThePluginCache: the rollout starts no sooner than
// the backend's cache TTL after the change was seen, or the new tasks
// would get the old value from the plugin's cache.
func TestVaultSettleWaitsForThePluginCache(t *testing.T) {
	const settle = time.Second // well above the harness's 200ms debounce
	r, a := newVaultRig(t, backendSettings(), settle)
	r.fake.PutKV2("", "secret", "api", map[string]any{"v": "1"})
	r.f.addService("auto", 1, auto, nil, r.secret("api"))
	r.start(t, a)
	r.firstWait(t)
	r.fake.PutKV2("", "secret", "api", map[string]any{"v": "2"})
	put := time.Now()
	r.round(t)
	ev := r.waitRecord(t)
	if took := time.Since(put); took < settle || ev.Version != 2 {
		t.Fatalf("rollout %+v %s after the put, want version 2 no sooner than %s", ev, took, settle)
	}
}

func backendSettings() backend.Settings { return backend.Settings{} }

func warnings(h *logtest.Hook, substr string) int {
	n := 0
	for _, e := range h.AllEntries() {
		if e.Level == logrus.WarnLevel && strings.Contains(e.Message, substr) {
			n++
		}
	}
	return n
}

type failSource struct{ err error }

func (f failSource) Run(ctx context.Context, _ func(Change)) error { return f.err }

// TestMultiRunsEverySourceAndStopsOnAFailure: changes from each source
// reach fn; one source failing stops the others and is the error.
func TestMultiRunsEverySourceAndStopsOnAFailure(t *testing.T) {
	a, b := make(chanSource), make(chanSource)
	got := make(chan Change, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Multi{a, b}.Run(ctx, func(c Change) { got <- c }) }()
	a <- Change{Name: "x", Version: 1}
	b <- Change{Name: "y", Version: 2}
	for range 2 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("a change was lost")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}

	boom := errors.New("store gone")
	c := make(chanSource)
	select {
	case err := <-func() chan error {
		ch := make(chan error, 1)
		go func() { ch <- Multi{c, failSource{boom}}.Run(context.Background(), func(Change) {}) }()
		return ch
	}():
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the failing source's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a failed source did not stop the others")
	}
}
