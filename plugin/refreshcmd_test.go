package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/metrics"
)

// TestRefreshCommand: swarmkeep refresh posts NAME and --backend to the
// metrics socket and prints what each backend did; a refusal is an error.
func TestRefreshCommand(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "rc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "m.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.String())
		if r.URL.Query().Get("backend") == "nosuch" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(metrics.RefreshReply{Error: `no backend "nosuch"`})
			return
		}
		json.NewEncoder(w).Encode(metrics.RefreshReply{Refreshed: []metrics.Refreshed{{Backend: "vault", Action: "dropped 1 cached copies"}}})
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	out := mustRun(t, nil, "", "refresh", "--socket", sock, "--backend", "vault", "app/db")
	if out != "vault: dropped 1 cached copies\n" {
		t.Fatalf("output %q", out)
	}
	if len(got) != 1 || got[0] != "POST /refresh?backend=vault&name=app%2Fdb" {
		t.Fatalf("requests %q", got)
	}
	code, _, errOut := runCLI(t, nil, "", "refresh", "--socket", sock, "--backend", "nosuch")
	if code != 1 || !strings.Contains(errOut, `no backend "nosuch"`) {
		t.Fatalf("refused: exit %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t, nil, "", "refresh", "a", "b"); code != 2 {
		t.Fatalf("two names: exit %d, want 2", code)
	}
}
