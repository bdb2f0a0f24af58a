package server

import "testing"

// serverFromEnv loads the settings env gives and assembles a Server with
// o, closed when the test ends.
func serverFromEnv(t testing.TB, env map[string]string, o Options) *Server {
	t.Helper()
	cfg, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
