package server

import (
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != logrus.InfoLevel || c.Timeout != 5*time.Second || c.Socket != "/run/docker/plugins/swarmkeep.sock" ||
		c.StoreDir != DefaultStoreDir || c.KeyFile != DefaultKeyFile || c.PassphraseFile != "" {
		t.Fatalf("%+v", c)
	}
	in := c.Backends
	if len(in) != 1 || in[0].Type != "file" || in[0].Settings["key_file"] != DefaultKeyFile || in[0].Settings["dir"] != DefaultStoreDir {
		t.Fatalf("%+v", in)
	}
}

func TestLoadConfigPassphraseWins(t *testing.T) {
	c, err := Load(envOf(map[string]string{EnvPassphraseFile: "/etc/swarmkeep/pass", EnvKeyFile: "/etc/swarmkeep/key"}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Backends[0].Settings
	if s["passphrase_file"] != "/etc/swarmkeep/pass" || s["key_file"] != "" {
		t.Fatalf("%+v", s)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	c, err := Load(envOf(map[string]string{
		EnvLogLevel:       "loud",
		EnvRequestTimeout: "1h",
		EnvStoreDir:       "relative/dir",
		EnvSocket:         "a/b",
	}))
	if err == nil {
		t.Fatalf("accepted: %+v", c)
	}
	for _, want := range []string{EnvLogLevel, EnvRequestTimeout, EnvStoreDir, EnvSocket} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := Load(envOf(map[string]string{EnvRequestTimeout: "soon"})); err == nil {
		t.Fatal("accepted a bad duration")
	}
	c, err = Load(envOf(map[string]string{EnvSocket: "/tmp/x.sock", EnvLogLevel: "debug"}))
	if err != nil || c.Socket != "/tmp/x.sock" || c.LogLevel != logrus.DebugLevel {
		t.Fatalf("%+v %v", c, err)
	}
}
