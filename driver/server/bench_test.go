package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/store"
	_ "github.com/swarmkeep/swarmkeep/driver/vault"
	"github.com/swarmkeep/swarmkeep/driver/vault/vaulttest"
)

// benchNames is the store size of make bench's request-path measurement.
const benchNames = 1000

// benchServer assembles the server as `swarmkeep serve` does with every
// setting at its default (audit on, built-in policy, log level info, its log
// in a file), on a file store of n names; only the paths are moved.
func benchServer(b *testing.B, n int, extra map[string]string) *Server {
	b.Helper()
	dir := b.TempDir()
	storeDir, key := filepath.Join(dir, "store"), filepath.Join(dir, "key")
	if err := store.GenerateKeyFile(key); err != nil {
		b.Fatal(err)
	}
	m, err := store.OpenDir(storeDir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Init(context.Background(), m, store.KeyFile(key), store.InitOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if _, err := st.Put(context.Background(), "bench_"+strconv.Itoa(i), []byte(benchValue(i))); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	env := map[string]string{
		EnvStoreDir: storeDir, EnvKeyFile: key, EnvLKGDir: filepath.Join(dir, "lkg"),
		EnvAuditFile: filepath.Join(dir, "audit", "audit.log"), EnvPolicyFile: filepath.Join(dir, "policy.yaml"),
	}
	maps.Copy(env, extra)
	cfg, err := Load(func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "plugin.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logFile.Close() })
	s, err := New(cfg, Options{Log: NewLogger(logFile, cfg.LogLevel), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchValue(i int) string { return fmt.Sprintf("bench-value-%08d-xxxxxxxxxxx", i) }

// benchBody is the engine's request for name i, as make bench sends it.
func benchBody(i int) []byte {
	var buf bytes.Buffer
	// json.Encoder, as the engine: it ends the body with a newline.
	err := json.NewEncoder(&buf).Encode(driver.Request{
		SecretName:   "bench_" + strconv.Itoa(i),
		SecretLabels: map[string]string{"com.example.team": "web"},
		ServiceName:  "web",
		ServiceID:    "kq1x9d0h3m2b7c5v8n4p6r0t2",
		TaskID:       "w3e5r7t9y1u3i5o7p9a1s3d5f",
		TaskName:     "web.1.w3e5r7t9y1u3i5o7p9a1s3d5f",
		TaskImage:    "nginx:1.27@sha256:6784fb0834aa7dbbe12e3d7471e69c290df3e6ba810dc38b34ae33d3c1c05f7d",
		NodeID:       "n8b6v4c2x0z9l7k5j3h1g9f7d",
	})
	if err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// BenchmarkServeDefault is what the shipped binary with default settings
// adds around the HTTP server for each GetSecret request, from 8
// goroutines as make bench's load: decode, policy, backend read, audit
// record, log and metrics, answer. file is the local store; vault the
// fake Vault behind the default cache, warm. Profile with -cpuprofile.
func BenchmarkServeDefault(b *testing.B) {
	b.Run("file", func(b *testing.B) {
		s := benchServer(b, benchNames, nil)
		runServeBench(b, s.Handler(), func(i int) string { return benchValue(i) })
	})
	b.Run("vault", func(b *testing.B) {
		v := vaulttest.New(b)
		for i := range benchNames {
			v.PutKV2("", "secret", "bench_"+strconv.Itoa(i), map[string]any{"value": benchValue(i)})
		}
		tok := filepath.Join(b.TempDir(), "token")
		if err := os.WriteFile(tok, []byte(v.CreateToken(vaulttest.TokenOptions{Paths: []string{"secret/data/*"}})+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		q := url.Values{"address": {v.URL}, "token_file": {tok}}
		s := benchServer(b, 0, map[string]string{EnvBackends: "vault:vault?" + q.Encode()})
		// Without swarmkeep.field the backend answers the whole document.
		runServeBench(b, s.Handler(), func(i int) string { return `{"value":"` + benchValue(i) + `"}` })
	})
}

func runServeBench(b *testing.B, h http.Handler, want func(int) string) {
	bodies := make([][]byte, benchNames)
	wants := make([]string, benchNames)
	for i := range bodies {
		bodies[i], wants[i] = benchBody(i), want(i)
	}
	// Warm the caches, as a running plugin's would be.
	for i := range bodies {
		benchGet(b, h, bodies[i], wants[i])
	}
	var next atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 goroutines, as c=8
	b.ReportAllocs()
	cpu0 := processCPU()
	r0, w0 := processSyscalls()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) % benchNames
			benchGet(b, h, bodies[i], wants[i])
		}
	})
	b.StopTimer()
	// CPU time rather than wall time: on a shared machine it is what
	// changes least with the load from elsewhere.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	// System calls are what the request path's design decides (a drain of
	// the change queue, an audit write), and they do not vary with load.
	r1, w1 := processSyscalls()
	b.ReportMetric(float64(r1-r0)/float64(b.N), "read-calls/op")
	b.ReportMetric(float64(w1-w0)/float64(b.N), "write-calls/op")
}

// processSyscalls returns the process's read and write system call counts
// (/proc/self/io: syscr, syscw); 0 where there is no /proc.
func processSyscalls() (reads, writes int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchGet(b *testing.B, h http.Handler, body []byte, want string) {
	req := httptest.NewRequest(http.MethodPost, driver.GetSecretPath, bytes.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp driver.Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.Err != "" || string(resp.Value) != want {
		b.Errorf("want %q: %v %q", want, err, resp.Err)
	}
}
