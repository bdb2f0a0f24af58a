//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

var (
	pluginDisableForce = types.PluginDisableOptions{Force: true}
	pluginRemoveForce  = types.PluginRemoveOptions{Force: true}
)

func pluginCreateOptions(name string) types.PluginCreateOptions {
	return types.PluginCreateOptions{RepoName: name}
}

func pluginEnableTimeout(sec int) types.PluginEnableOptions {
	return types.PluginEnableOptions{Timeout: sec}
}

// runCmd runs a command in dir with optional extra env and stdin; it returns stdout, and an
// error carrying stderr when the command fails.
func runCmd(ctx context.Context, dir string, extraEnv []string, stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// tarDir makes an uncompressed tar of dir (relative paths), as `docker plugin create` does.
func tarDir(dir string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// tarFiles makes a tar of in-memory files.
func tarFiles(files map[string][]byte, modes map[string]int64) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if m, ok := modes[n]; ok {
			mode = m
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// buildTestImage builds test/testbox (FROM scratch + static busybox) with the legacy
// builder through the API; nothing is pulled.
func buildTestImage(ctx context.Context, cli *client.Client, root, tag string) error {
	dockerfile, err := os.ReadFile(filepath.Join(root, "test", "testbox", "Dockerfile"))
	if err != nil {
		return err
	}
	bbPath := os.Getenv("BUSYBOX")
	if bbPath == "" {
		bbPath = "/bin/busybox"
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil || !bytes.HasPrefix(bb, []byte("\x7fELF")) {
		if os.Geteuid() == 0 {
			logf("installing busybox-static (apt-get)")
			if _, err := runCmd(ctx, "/", []string{"DEBIAN_FRONTEND=noninteractive"}, nil, "apt-get", "update"); err != nil {
				return err
			}
			if _, err := runCmd(ctx, "/", []string{"DEBIAN_FRONTEND=noninteractive"}, nil, "apt-get", "install", "-y", "busybox-static"); err != nil {
				return err
			}
			bb, err = os.ReadFile("/bin/busybox")
		}
		if err != nil {
			return fmt.Errorf("need a static busybox at %s (apt-get install -y busybox-static): %w", bbPath, err)
		}
	}
	tarball, err := tarFiles(map[string][]byte{"Dockerfile": dockerfile, "busybox": bb}, map[string]int64{"busybox": 0o755})
	if err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, tarball, build.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The body is a JSON message stream; an error arrives as {"error": …}.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("reading build output: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build: %s", msg.Error)
		}
	}
	if _, err := cli.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("image %s missing after build: %w", tag, err)
	}
	return nil
}

// ---- per-test helpers ----

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uniq makes a name unique to this run (secret and stored names are global in a store/swarm).
func uniq(base string) string { return base + "_" + E.runID }

// cliRun runs the operator CLI against the run's store and key.
func cliRun(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	// The store and key come from the environment the CLI documents (SWARMKEEP_STORE,
	// SWARMKEEP_KEY_FILE), so the flags' position does not matter.
	out, err := runCmd(ctx, E.tmp, E.cliEnv(), stdin, E.swarmkeep, args...)
	if err != nil {
		t.Fatalf("swarmkeep %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cliEnv points the operator commands at the test plugin's store, key and
// audit trail (put and rm add operator records to it), never the host's.
func (e *env) cliEnv() []string {
	return []string{"SWARMKEEP_STORE=" + e.storeDir, "SWARMKEEP_KEY_FILE=" + e.keyFile,
		"SWARMKEEP_AUDIT_FILE=" + filepath.Join(e.stateDir, "audit", "audit.log")}
}

// put stores value under name with `swarmkeep put NAME` reading stdin; the value is recorded
// for the leak scan (leak_test.go).
func put(t *testing.T, name string, value []byte) {
	t.Helper()
	recordValue("put "+name, value)
	cliRun(t, value, "put", name)
}

// createSecret creates a driver secret named name with labels (plus the run label) and
// removes it when the test ends (after the test's services, which are cleaned up first).
func createSecret(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	l := map[string]string{runLabel: E.runID}
	for k, v := range labels {
		l[k] = v
	}
	resp, err := E.cli.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: name, Labels: l},
		Driver:      &swarm.Driver{Name: E.plugin},
	})
	if err != nil {
		t.Fatalf("SecretCreate %s (driver %s): %v", name, E.plugin, err)
	}
	t.Cleanup(func() { removeSecret(t, resp.ID) })
	return resp.ID
}

func removeSecret(t *testing.T, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = E.cli.SecretRemove(ctx, id); err == nil || cerrdefs.IsNotFound(err) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("warning: removing secret %s: %v", id, err)
}

// secretRef mounts secret (id, name) at /run/secrets/<target>.
func secretRef(id, name, target string) *swarm.SecretReference {
	return &swarm.SecretReference{
		SecretID:   id,
		SecretName: name,
		File:       &swarm.SecretReferenceFileTarget{Name: target, UID: "0", GID: "0", Mode: 0o444},
	}
}
