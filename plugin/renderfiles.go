package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
)

// renderBase is where render puts its folders by default: /run, a tmpfs on
// systemd hosts, else /dev/shm (a tmpfs almost everywhere, containers
// included).
func renderBase() string {
	for _, base := range []string{"/run", "/dev/shm"} {
		if onTmpfs(base) == nil {
			return filepath.Join(base, "swarmkeep", "compose")
		}
	}
	return "/run/swarmkeep/compose"
}

// onTmpfs refuses a folder whose files would reach a disk (or swap-backed
// storage is all the host has: tmpfs and ramfs are the memory filesystems).
// Tests replace it to write into a temp dir.
var onTmpfs = func(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	switch int64(st.Type) {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return nil
	}
	return fmt.Errorf("%s is not on a tmpfs: the values would be written to disk; fix: --dir on a tmpfs (/run or /dev/shm), or mount one: mount -t tmpfs -o mode=0700,size=16m tmpfs DIR", dir)
}

// ownFolder checks that dir is a real folder owned by this user that nobody
// else can enter.
func ownFolder(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a folder (a symbolic link or a file); fix: remove it or give another --dir", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s can be entered by other users (mode %o); fix: chmod 700 %s, or give another --dir", dir, fi.Mode().Perm(), dir)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to this user; fix: give another --dir", dir, st.Uid)
	}
	return nil
}

// readManifest returns the names render wrote into dir (nil if none).
func readManifest(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, renderManifest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		if l == renderOverride || composeKeyRE.MatchString(l) {
			names = append(names, l)
		}
	}
	return names, nil
}

// writeRender writes the values (one 0400 file per secret key), the
// override file and the manifest into dir, a 0700 folder on a tmpfs. The
// manifest is written first, listing every file that may exist, so that
// --clean finds them even after a crash half way.
func writeRender(dir, version string, values map[string][]byte) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := onTmpfs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := ownFolder(dir); err != nil {
		return err
	}
	if err := onTmpfs(dir); err != nil {
		return err
	}
	old, err := readManifest(dir)
	if err != nil {
		return err
	}
	if old == nil {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
			return fmt.Errorf("%s holds files render did not write; fix: give another --dir", dir)
		}
	}
	keys := sortedNames(values)
	all := map[string]bool{renderOverride: true}
	for _, n := range append(old, keys...) {
		all[n] = true
	}
	if err := writeFileAtomic(dir, renderManifest, []byte(strings.Join(sortedNames(all), "\n")+"\n"), 0o600); err != nil {
		return err
	}
	type fileSecret struct {
		File string `yaml:"file"`
	}
	ov := struct {
		Version string                `yaml:"version,omitempty"`
		Secrets map[string]fileSecret `yaml:"secrets"`
	}{Version: version, Secrets: map[string]fileSecret{}}
	for _, k := range keys {
		if err := writeFileAtomic(dir, k, values[k], 0o400); err != nil {
			return err
		}
		ov.Secrets[k] = fileSecret{File: filepath.Join(dir, k)}
	}
	body, err := yaml.Marshal(ov)
	if err != nil {
		return err
	}
	head := "# Written by swarmkeep render: the driver secrets of the compose file as file: secrets\n" +
		"# on a tmpfs. Remove with swarmkeep render --clean, after docker-compose down.\n"
	if err := writeFileAtomic(dir, renderOverride, append([]byte(head), body...), 0o600); err != nil {
		return err
	}
	// Values of secrets a previous render wrote that the file no longer has.
	for _, n := range old {
		if n != renderOverride && values[n] == nil {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return writeFileAtomic(dir, renderManifest, []byte(strings.Join(append(keys, renderOverride), "\n")+"\n"), 0o600)
}

// writeFileAtomic writes data to dir/name through a temp file created
// O_EXCL|O_NOFOLLOW with its final mode, then renamed: a reader sees the
// old file or the new one, and the value never sits in a file more open
// than mode.
func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// cleanRender removes what render wrote in dir, then dir. It touches only
// the files the manifest names (and their temp files), and fails, naming
// them, when other files remain.
func cleanRender(env *cliEnv, dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(env.stdout, "nothing to clean: %s does not exist\n", dir)
		return nil
	}
	if err := ownFolder(dir); err != nil {
		return err
	}
	names, err := readManifest(dir)
	if err != nil {
		return err
	}
	n := 0
	for _, name := range names {
		for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "."+name+".tmp")} {
			switch err := os.Remove(p); {
			case err == nil:
				if !strings.HasSuffix(p, ".tmp") {
					n++
				}
			case !errors.Is(err, fs.ErrNotExist):
				return err
			}
		}
	}
	if err := os.Remove(filepath.Join(dir, renderManifest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(dir); err != nil {
		var left []string
		if ents, rerr := os.ReadDir(dir); rerr == nil {
			for _, e := range ents {
				left = append(left, e.Name())
			}
		}
		sort.Strings(left)
		return fmt.Errorf("removed %d file(s) but %s still holds files render did not write (%s); remove them yourself", n, dir, strings.Join(left, ", "))
	}
	fmt.Fprintf(env.stdout, "removed %d file(s) and %s\n", n, dir)
	return nil
}
