package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// leak is what an operator pastes by mistake into a setting: a token.
const leak = "hvs.CAESIJleakedTokenValue0123"

// brokenCases are settings that fail to load and hold leak where a value
// goes (or where a value ends up by a typo); wantSetting is the setting
// the summary must name.
var brokenCases = []struct {
	env         map[string]string
	wantSetting string
}{
	{map[string]string{EnvBackends: "kv:vault&token=" + leak}, EnvBackends},         // '&' for '?': the type
	{map[string]string{EnvBackends: "local:file " + leak}, EnvBackends},             // an entry with no ':'
	{map[string]string{EnvBackends: leak + ":file"}, EnvBackends},                   // a bad name
	{map[string]string{EnvBackends: "kv:file?cache_ttl=" + leak}, EnvBackends},      // a knob's value
	{map[string]string{EnvBackends: "kv:file?cache=" + leak}, EnvBackends},          // a knob's value
	{map[string]string{EnvBackends: "kv:file?cache_size=" + leak}, EnvBackends},     // a knob's value
	{map[string]string{EnvBackends: "kv:file?dir=" + leak}, EnvBackends},            // a path's value
	{map[string]string{EnvBackends: "kv:file?" + leak + "&" + leak}, EnvBackends},   // a bare value, twice
	{map[string]string{EnvBackends: "kv:file?token=%zz" + leak}, EnvBackends},       // a bad escape
	{map[string]string{EnvMetricsAddr: leak}, EnvMetricsAddr},                       // not HOST:PORT
	{map[string]string{EnvMetricsAddr: leak + ":99999"}, EnvMetricsAddr},            // bad port
	{map[string]string{EnvMetricsAddr: leak + ":1"}, EnvMetricsAddr},                // not loopback
	{map[string]string{EnvMetricsSocket: "a/" + leak}, EnvMetricsSocket},            // neither name nor path
	{map[string]string{EnvStoreDir: leak}, EnvStoreDir},                             // relative path
	{map[string]string{EnvDefaultBackend: leak}, EnvDefaultBackend},                 // not listed
	{map[string]string{EnvDefaultBackend: "not/a name " + leak}, EnvDefaultBackend}, // not a name
}

// TestBrokenSettingsNeverRepeatAValue: a setting that fails to load may
// hold a token pasted by mistake. Its error goes to the log, the engine's
// error for every secret and /health; none may repeat the value, and the
// summary (what leaves the root-only socket) names the setting.
func TestBrokenSettingsNeverRepeatAValue(t *testing.T) {
	for _, tc := range brokenCases {
		env := map[string]string{EnvAudit: "off"}
		for k, v := range tc.env {
			env[k] = v
		}
		getenv := func(k string) string { return env[k] }
		_, cause := Load(getenv)
		if cause == nil {
			t.Errorf("%v: Load accepted it", tc.env)
			continue
		}
		if strings.Contains(cause.Error(), leak) {
			t.Errorf("%v: the error repeats the value: %v", tc.env, cause)
		}
		if !strings.Contains(cause.Error(), tc.wantSetting) {
			t.Errorf("%v: the error does not name %s: %v", tc.env, tc.wantSetting, cause)
		}
		b := NewBroken(getenv, cause, nil, "test")
		h := b.Health()
		doc, _ := json.Marshal(h)
		if strings.Contains(string(doc), leak) || strings.Contains(b.Line("db_pw"), leak) {
			t.Errorf("%v: /health or the engine's error repeats the value: %s", tc.env, doc)
		}
		if want := "plugin cannot serve: bad setting " + tc.wantSetting + "; fix: "; !strings.HasPrefix(h.ProblemSummary, want) {
			t.Errorf("%v: summary %q, want %q...", tc.env, h.ProblemSummary, want)
		}
	}
}

// TestBrokenSummaryOverSockets: over the root-only socket /health carries
// the problem and its summary; over the TCP port only the summary.
func TestBrokenSummaryOverSockets(t *testing.T) {
	dir, err := os.MkdirTemp("", "skb-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	sock, msock := filepath.Join(dir, "p.sock"), filepath.Join(dir, "m.sock")
	env := map[string]string{EnvSocket: sock, EnvMetricsSocket: msock, EnvMetricsAddr: addr,
		EnvBackends: "local:file kv:vault&token=" + leak}
	getenv := func(k string) string { return env[k] }
	_, cause := Load(getenv)
	if cause == nil {
		t.Fatal("Load accepted a bad BACKENDS")
	}
	b := NewBroken(getenv, cause, nil, "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	waitSocket(t, msock)

	read := func(c *http.Client, url string) (metrics.Health, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var h metrics.Health
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		return h, string(body)
	}
	h, body := read(engineClient(msock), "http://plugin/health")
	if strings.Contains(body, leak) || !strings.Contains(h.Problem, "BACKENDS: entry 2 (backend kv)") ||
		!strings.Contains(h.ProblemSummary, "bad setting BACKENDS;") {
		t.Fatalf("/health on the socket: %s", body)
	}
	var tcp *http.Client = &http.Client{Timeout: 5 * time.Second}
	h, body = read(tcp, "http://"+addr+"/health")
	if strings.Contains(body, leak) || h.Problem != "" || h.Status != metrics.StatusDegraded ||
		!strings.Contains(h.ProblemSummary, "bad setting BACKENDS;") {
		t.Fatalf("/health over TCP: %s", body)
	}
}
