package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// lockedBuffer is the log's writer: the policy watcher logs from its own
// goroutine while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPolicyReloadLoggedAndInHealth: a policy file that appears after
// start is logged at info with its hash, and /health names it from then on.
func TestPolicyReloadLoggedAndInHealth(t *testing.T) {
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policy.yaml")
	env := map[string]string{
		EnvStoreDir: filepath.Join(dir, "store"), EnvKeyFile: filepath.Join(dir, "key"),
		EnvAudit: "off", EnvPolicyFile: policyFile, EnvLKGDir: filepath.Join(dir, "lkg"),
	}
	cfg, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	s, err := New(cfg, Options{Log: NewLogger(&logs, logrus.InfoLevel), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h := s.metrics.Health(); h.Policy != "built-in default" || h.PolicyHash != "builtin" {
		t.Fatalf("/health at start names policy %q %q, want the built-in default", h.Policy, h.PolicyHash)
	}

	data := []byte("version: 1\nrules:\n- name: no-web\n  match: {stack: web}\n  deny: [web/**]\n")
	sum := sha256.Sum256(data)
	hash := "sha256:" + hex.EncodeToString(sum[:])
	if err := os.WriteFile(policyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The watcher polls every 2 s; the line is the event to wait for.
	var line string
	for deadline := time.Now().Add(15 * time.Second); line == ""; time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "access policy reloaded") {
				line = l
			}
		}
		if line == "" && time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", logs.String())
		}
	}
	// An info line: no level word (the engine logs stdout at info).
	if !strings.HasPrefix(line, "access policy reloaded ") || !strings.Contains(line, " policy_hash="+hash) ||
		!strings.Contains(line, " policy="+policyFile) {
		t.Fatalf("reload line %q, want info with policy=%s policy_hash=%s", line, policyFile, hash)
	}
	if h := s.metrics.Health(); h.Policy != policyFile || h.PolicyHash != hash {
		t.Fatalf("/health after reload names policy %q %q, want %s %s", h.Policy, h.PolicyHash, policyFile, hash)
	}
}
