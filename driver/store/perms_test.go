package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openAndLock opens the medium and takes and drops the writer lock once,
// as the first write would: that is when a stale journal in .lock is read
// and the file truncated.
func openAndLock(t *testing.T, dir string) error {
	t.Helper()
	m, err := OpenDir(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	_, unlock, err := m.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	return nil
}

// A link at .lock must not make the store truncate (or write) its target.
func TestOpenDir_LockFileLink(t *testing.T) {
	for _, kind := range []string{"symlink", "hardlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(t.TempDir(), "victim")
			const content = "ab must survive"
			if err := os.WriteFile(victim, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(dir, ".lock")
			link := os.Symlink
			if kind == "hardlink" {
				link = os.Link
			}
			if err := link(victim, lock); err != nil {
				t.Fatal(err)
			}
			err := openAndLock(t, dir)
			if !errors.Is(err, ErrUnsafePermissions) {
				t.Errorf("OpenDir with a %s at .lock = %v, want ErrUnsafePermissions", kind, err)
			} else if !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "(run rm "+lock) {
				t.Errorf("error does not name the file and the fix: %v", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != content {
				t.Fatalf("link target changed to %q", b)
			}
		})
	}
}

func TestOpenDir_Modes(t *testing.T) {
	for _, tt := range []struct {
		mode    os.FileMode
		objects bool // set the mode on objects/ instead of the root
		ok      bool
	}{
		{0o700, false, true},
		{0o755, false, true}, // readable is fine: records are sealed
		{0o750, true, true},
		{0o777, false, false},
		{0o770, false, false},
		{0o702, false, false},
		{0o1777, false, false},
		{0o777, true, false},
		{0o720, true, false},
	} {
		dir := filepath.Join(t.TempDir(), "store")
		m, err := OpenDir(dir) // creates the layout
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		target := dir
		if tt.objects {
			target = filepath.Join(dir, "objects")
		}
		// Chmod, not Mkdir: the umask would hide the mode under test.
		if err := os.Chmod(target, tt.mode); err != nil {
			t.Fatal(err)
		}
		err = openAndLock(t, dir)
		if tt.ok {
			if err != nil {
				t.Errorf("%s mode %o: %v", target, tt.mode, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsafePermissions) {
			t.Errorf("%s mode %o: OpenDir = %v, want ErrUnsafePermissions", target, tt.mode, err)
			continue
		}
		if !strings.Contains(err.Error(), "(run chmod 700 "+target) {
			t.Errorf("error does not name the folder and the fix: %v", err)
		}
	}
}

// A folder owned by another user is refused whatever its mode: its owner
// could swap files under the plugin (which runs as root).
func TestOpenDir_Owner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a folder to another user")
	}
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	err := openAndLock(t, dir)
	if !errors.Is(err, ErrUnsafePermissions) {
		t.Fatalf("OpenDir on a folder of uid 4242 = %v, want ErrUnsafePermissions", err)
	}
	if !strings.Contains(err.Error(), "uid 4242") || !strings.Contains(err.Error(), "(run chown -R 0 "+dir) {
		t.Fatalf("error does not name the owner and the fix: %v", err)
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := openAndLock(t, dir); err != nil {
		t.Fatalf("after chown: %v", err)
	}
}

// Key and passphrase files that group or others can access are refused,
// as ssh refuses such a private key, and the error names the file and the
// chmod that fixes it, never the key.
func TestKeySource_Modes(t *testing.T) {
	ctx := context.Background()
	keyDir := filepath.Join(t.TempDir(), "s")
	key := newKeyFile(t)
	m, _ := OpenDir(keyDir)
	s, err := Init(ctx, m, KeyFile(key), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	passDir := filepath.Join(t.TempDir(), "p")
	pass := writePassphrase(t, "correct horse")
	m, _ = OpenDir(passDir)
	if s, err = Init(ctx, m, cheapPassphrase(pass), InitOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	keyText, _ := os.ReadFile(key)

	for _, tt := range []struct {
		name string
		dir  string
		path string
		src  KeySource
	}{
		{"key file", keyDir, key, KeyFile(key)},
		{"passphrase file", passDir, pass, PassphraseFile(pass)},
	} {
		for _, mode := range []os.FileMode{0o400, 0o600, 0o644, 0o640, 0o604, 0o620, 0o602, 0o660} {
			if err := os.Chmod(tt.path, mode); err != nil {
				t.Fatal(err)
			}
			m, _ := OpenDir(tt.dir)
			s, err := Open(ctx, m, tt.src)
			if s != nil {
				s.Close()
			} else {
				m.Close()
			}
			if mode&0o077 == 0 {
				if err != nil {
					t.Errorf("%s mode %o: %v", tt.name, mode, err)
				}
				continue
			}
			if !errors.Is(err, ErrUnsafePermissions) {
				t.Errorf("%s mode %o: Open = %v, want ErrUnsafePermissions", tt.name, mode, err)
				continue
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.name+" "+tt.path+": ") || !strings.Contains(msg, "(run chmod 600 "+tt.path) {
				t.Errorf("error does not name the file and the fix: %v", err)
			}
			if strings.Contains(msg, strings.TrimSpace(string(keyText))[:8]) || strings.Contains(msg, "horse") {
				t.Errorf("error quotes the file: %v", err)
			}
		}
	}
}
