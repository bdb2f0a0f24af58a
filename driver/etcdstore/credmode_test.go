package etcdstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// A password file group or others may read is refused, naming the setting,
// the file and the chmod that fixes it, and never its content.
func TestPasswordFileMode(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, err := readPassword(file); err != nil || pw != "hunter2" {
		t.Fatalf("0600: %q %v", pw, err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readPassword(file)
	if !errors.Is(err, backend.ErrExposed) || !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("0644: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, SettingPasswordFile) || !strings.Contains(msg, "chmod 600 "+file) || strings.Contains(msg, "hunter2") {
		t.Fatalf("0644: %q", msg)
	}
}
