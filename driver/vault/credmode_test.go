package vault

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// A credential file group or others may read is refused at open, naming the
// setting, the file and the chmod that fixes it, and never its content.
func TestCredentialFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		file := filepath.Join(dir, "token")
		os.Remove(file)
		if err := os.WriteFile(file, []byte("s.tokenvalue\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
		_, err := openBackend(backend.Settings{setAddress: "http://127.0.0.1:1", setTokenFile: file})
		if !errors.Is(err, backend.ErrExposed) || !errors.Is(err, backend.ErrDenied) {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, setTokenFile) || !strings.Contains(msg, "chmod 600 "+file) || strings.Contains(msg, "tokenvalue") {
			t.Fatalf("mode %04o: %q", mode, msg)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		file := filepath.Join(dir, "ok")
		os.Remove(file)
		if err := os.WriteFile(file, []byte("s.tokenvalue\n"), mode); err != nil {
			t.Fatal(err)
		}
		if _, err := readCredential(setTokenFile, file); err != nil {
			t.Fatalf("mode %04o refused: %v", mode, err)
		}
	}
}
