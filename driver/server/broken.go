package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"
	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// A plugin that exits at start leaves the operator with what the engine
// says: docker plugin enable waits about 13 s and fails with "dial unix
// /run/docker/plugins/<id>/swarmkeep.sock: connect: no such file or
// directory" (measured on 20.10.24). The plugin's own line naming the
// setting goes to the dockerd log only; enable never shows the plugin's
// output. So with broken settings, or an audit trail or policy that cannot
// be opened, serve --stay-up keeps its sockets instead: enable succeeds,
// every GetSecret is answered with the cause and the fix (in the log, the
// audit-less recent errors and the engine's error), /health says degraded
// with the cause, and swarmkeep status and why show it.

// BrokenFix is the fix of a broken setting: settings change only while the
// plugin is disabled.
const BrokenFix = "correct the setting named (docker plugin disable, docker plugin set NAME VAR=..., docker plugin enable), then let Swarm retry the task"

// Broken is a plugin that cannot serve and says why on every request.
type Broken struct {
	cause   string
	log     logrus.FieldLogger
	metrics *metrics.Metrics
	socket  string
	msocket string
	maddr   string
}

// NewBroken builds the plugin that answers each request with cause. The
// sockets are the ones the settings name where they can be read, else the
// defaults: the engine dials the default socket name anyway.
func NewBroken(getenv func(string) string, cause error, log logrus.FieldLogger, version string) *Broken {
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	msg := oneLine(cause.Error())
	b := &Broken{cause: msg, log: log}
	b.socket, b.msocket, b.maddr = brokenSockets(getenv)
	b.metrics = metrics.New(metrics.Options{Version: version, Problem: "plugin cannot serve: " + msg + "; fix: " + BrokenFix,
		ProblemSummary: BrokenSummary(cause)})
	return b
}

// BrokenSummary says what cause is about from names alone: the settings
// it names, or the part that failed, and the fix. It never repeats cause's
// text, which may quote what a setting holds; it is what leaves the
// root-only socket (the TCP /health, the agent's node label).
func BrokenSummary(cause error) string {
	msg := cause.Error()
	var what string
	switch {
	case strings.Contains(msg, "audit trail ("):
		what = "cannot open the audit trail (" + EnvAuditFile + ")"
	case strings.Contains(msg, "access policy ("):
		what = "cannot load the access policy (" + EnvPolicyFile + ")"
	default:
		var names []string
		for _, st := range Settings {
			if namesSetting(msg, st.Name) {
				names = append(names, st.Name)
			}
		}
		if len(names) == 0 {
			return "plugin cannot serve; the plugin socket's /health and the plugin log say why"
		}
		what = "bad setting " + strings.Join(names, ", ")
	}
	return "plugin cannot serve: " + what + "; fix: " + BrokenFix
}

// namesSetting tells whether msg names setting name as errors do: the
// name, then ':' or '=', not inside a longer name.
func namesSetting(msg, name string) bool {
	for i := 0; ; {
		j := strings.Index(msg[i:], name)
		if j < 0 {
			return false
		}
		at, end := i+j, i+j+len(name)
		before := at == 0 || !isNameByte(msg[at-1])
		if before && end < len(msg) && (msg[end] == ':' || msg[end] == '=') {
			return true
		}
		i = end
	}
}

func isNameByte(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' }

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// brokenSockets reads SOCKET, METRICS_SOCKET and METRICS_ADDR as Load does,
// falling back to the defaults (and no TCP port) where one is broken.
func brokenSockets(getenv func(string) string) (sock, msock, maddr string) {
	sock = strings.TrimSpace(getenv(EnvSocket))
	switch {
	case sock == "" || (!filepath.IsAbs(sock) && strings.ContainsAny(sock, "/\\")):
		sock = filepath.Join(PluginSockDir, DefaultSocket+".sock")
	case !filepath.IsAbs(sock):
		sock = filepath.Join(PluginSockDir, sock+".sock")
	}
	msock, err := metrics.ResolveSocket(strings.TrimSpace(getenv(EnvMetricsSocket)))
	if err != nil {
		msock = metrics.DefaultSocket
	}
	if maddr = strings.TrimSpace(getenv(EnvMetricsAddr)); maddr != "" && metrics.CheckAddr(maddr) != nil {
		maddr = ""
	}
	return sock, msock, maddr
}

// Line is the error answered for a secret: its name, the cause, the fix.
func (b *Broken) Line(secret string) string {
	line := fmt.Sprintf("swarmkeep: secret %s: plugin cannot serve: %s; fix: %s", strconv.Quote(secret), b.cause, BrokenFix)
	// As the driver's lines: no '%' (the engine may format it), one line.
	line = strings.ReplaceAll(line, "%", "?")
	if len(line) > 600 {
		line = line[:597] + "..."
	}
	return line
}

// Handler answers the plugin protocol: the handshake, and GetSecret with
// the cause.
func (b *Broken) Handler() http.Handler {
	h := http.NewServeMux()
	h.HandleFunc(driver.ActivatePath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		fmt.Fprintln(w, driver.Manifest)
	})
	h.HandleFunc(driver.GetSecretPath, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		req, err := driver.DecodeRequest(r.Body)
		if err != nil {
			req = driver.Request{}
		}
		line := b.Line(req.SecretName)
		f := logrus.Fields{"outcome": string(driver.ClassSettings)}
		for k, v := range map[string]string{"secret": req.SecretName, "service": req.ServiceName,
			"task": req.TaskName, "task_id": req.TaskID, "node": req.NodeID} {
			if v != "" {
				f[k] = v
			}
		}
		b.log.WithFields(f).Error(line)
		b.metrics.Observe(driver.Event{Request: &req, Class: driver.ClassSettings, Line: line, Latency: time.Since(start)})
		sdk.EncodeResponse(w, driver.Response{Err: line}, true)
	})
	return h
}

// Health is the /health document: degraded, with the cause.
func (b *Broken) Health() metrics.Health { return b.metrics.Health() }

// Serve listens on the plugin and metrics sockets until ctx is done.
func (b *Broken) Serve(ctx context.Context) error {
	l, err := ListenUnix(b.socket)
	if err != nil {
		return err
	}
	defer os.Remove(b.socket)
	stopMetrics, err := metrics.Serve(context.Background(), b.msocket, b.maddr, b.metrics.Handler())
	if err != nil {
		b.log.Warnf("metrics and health off: %v", err)
		stopMetrics = func() error { return nil }
	}
	b.log.WithFields(logrus.Fields{"socket": b.socket, "metrics": b.msocket}).
		Errorf("plugin cannot serve, answering every request with the cause: %s; fix: %s", b.cause, BrokenFix)
	hs, serveErr := serveUntil(ctx, b.Handler(), l, pluginSocketLimits(driver.DefaultTimeout), b.socket)
	_ = hs.Close()
	if err := stopMetrics(); err != nil {
		b.log.Warnf("metrics: %v", err)
	}
	return serveErr
}

// oneLine joins a multi-line error (Load joins one line per setting).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
