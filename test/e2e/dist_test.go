//go:build e2e

package e2e

// The paths of users who do not build from source: a registry (make push, docker plugin
// install, the CLI copied out of the plugin, scripts/upgrade.sh) and docker-compose without
// a swarm (swarmkeep render).

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"golang.org/x/sys/unix"
)

// tool finds a program the test needs; in CI (.ci/run installs it) a missing one fails.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if E.ci {
			t.Fatalf("%s not found: .ci/run must install Debian's %s", name, pkg)
		}
		t.Skipf("%s not found (apt-get install %s)", name, pkg)
	}
	return p
}

func mustCmd(t *testing.T, stdin []byte, extraEnv []string, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(ctxFor(t, 3*time.Minute), E.tmp, extraEnv, stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestComposeRender: a compose file with a driver: secret runs under docker-compose (no
// stack) after swarmkeep render, the service reads the value from the tmpfs, and --clean
// leaves nothing behind.
func TestComposeRender(t *testing.T) {
	begin(t)
	compose := tool(t, "docker-compose", "docker-compose")
	if os.Geteuid() != 0 {
		if E.ci {
			t.Fatal("render's values are root's and the test mounts a tmpfs: run as root")
		}
		t.Skip("needs root (a tmpfs mount, root-only files)")
	}
	proj := stackPrefix(E) + "c"
	projDir := filepath.Join(E.tmp, "compose", proj)
	if err := os.MkdirAll(projDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(projDir, "compose.yml")
	// network_mode none: compose would otherwise create a bridge network on the host.
	yml := fmt.Sprintf(`version: "3.8"
services:
  web:
    image: %s
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
    secrets: [api_key]
secrets:
  api_key:
    driver: %s
    labels:
      team: edge
`, E.image, E.plugin)
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	value := []byte("compose-" + E.runID + "-value")
	put(t, proj+"/api_key", value)

	// A tmpfs of the test's own, so the check does not depend on the host's /run.
	rt := filepath.Join(E.tmp, "rt")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", rt, "tmpfs", 0, "mode=0700,size=1m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(rt, unix.MNT_DETACH) })
	out := dir(rt, proj)
	override := filepath.Join(out, "override.yml")
	cliRun(t, nil, "render", "-c", file, "--stack", proj, "--plugin", E.plugin, "--dir", out)

	cargs := []string{"-p", proj, "-f", file, "-f", override}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = runCmd(ctx, projDir, nil, nil, compose, append(cargs, "down", "-t", "1")...)
	})
	mustCmd(t, nil, nil, compose, append(cargs, "up", "-d")...)
	got := mustCmd(t, nil, nil, compose, append(cargs, "exec", "-T", "web", "cat", "/run/secrets/api_key")...)
	if got != string(value) {
		t.Fatalf("/run/secrets/api_key in the compose service = %q, want %q", got, value)
	}
	mustCmd(t, nil, nil, compose, append(cargs, "down", "-t", "1")...)
	cliRun(t, nil, "render", "-c", file, "--stack", proj, "--dir", out, "--clean")

	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Fatalf("%s is still there after --clean: %v", out, err)
	}
	if ents, err := os.ReadDir(rt); err != nil || len(ents) != 0 {
		t.Fatalf("the tmpfs still holds %v (%v)", ents, err)
	}
	// Nothing of the value anywhere in the project folder either.
	_ = filepath.WalkDir(projDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, value) {
				t.Errorf("%s holds the value", p)
			}
		}
		return nil
	})
}

func dir(parts ...string) string { return filepath.Join(parts...) }

// startRegistry runs Debian's docker-registry on a free 127.0.0.1 port until the test ends.
func startRegistry(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	root := filepath.Join(E.tmp, "registry")
	cfg := filepath.Join(root, "config.yml")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(root, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(root, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if i > 100 {
			t.Fatalf("docker-registry does not answer on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func registryTags(t *testing.T, addr, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v.Tags
}

// TestRegistryInstallPath follows the README's registry path on a real engine: make push
// with PLATFORMS (one tag per architecture, no registry-named plugin left behind), docker
// plugin install of the amd64 tag before the host folders exist (fails, status names them),
// the folders, enable, the CLI copied out of the plugin's rootfs, init/put, a service that
// reads the value, then scripts/upgrade.sh to a new version: the plugin must still read the
// store of its state.source, which docker plugin upgrade alone resets to /var/lib/swarmkeep.
//
// PLATFORMS is linux/amd64 unless SWARMKEEP_E2E_ARM64=1: cross-compiling arm64 from a cold
// build cache costs minutes on CI's 2 cores.
func TestRegistryInstallPath(t *testing.T) {
	begin(t)
	start := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	defer step("done")
	reg := startRegistry(t, tool(t, "docker-registry", "docker-registry"))
	tag := "t" + strings.ToLower(E.runID)
	ref := reg + "/e2e/swarmkeep:" + tag
	platforms := "linux/amd64"
	arches := []string{"amd64"}
	if os.Getenv("SWARMKEEP_E2E_ARM64") == "1" {
		platforms += ",linux/arm64"
		arches = append(arches, "arm64")
	}
	push := filepath.Join(E.root, "scripts", "push.sh")
	// The build flags of the setup's bundle (make exports LDFLAGS): its build cache serves.
	// arm64 from a cold cache is a full cross-compile: minutes on a busy machine.
	if _, err := runCmd(ctxFor(t, 15*time.Minute), E.tmp, nil, nil, push, ref, platforms); err != nil {
		t.Fatal(err)
	}
	step("pushed " + platforms)
	tags := registryTags(t, reg, "e2e/swarmkeep")
	for _, a := range arches {
		if !contains(tags, tag+"-"+a) {
			t.Fatalf("registry tags %v lack %s-%s", tags, tag, a)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[a]
		f, err := elf.Open(filepath.Join(E.root, "build", "plugin-"+a, "rootfs", "swarmkeep"))
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != want {
			t.Errorf("%s bundle: binary for %v", a, f.Machine)
		}
		f.Close()
	}
	ps := mustCmd(t, nil, nil, "docker", "plugin", "ls", "--format", "{{.Name}}")
	if strings.Contains(ps, reg) {
		t.Fatalf("push left a registry-named plugin behind:\n%s", ps)
	}

	alias := "skreg" + strings.ToLower(E.runID) + ":latest"
	base := filepath.Join(E.tmp, "reg")
	state, config := filepath.Join(base, "state"), filepath.Join(base, "config")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = E.cli.PluginDisable(ctx, alias, pluginDisableForce)
		_ = E.cli.PluginRemove(ctx, alias, pluginRemoveForce)
	})
	_, err := runCmd(ctxFor(t, 2*time.Minute), E.tmp, nil, nil, "docker", "plugin", "install", "--grant-all-permissions",
		"--alias", alias, ref+"-amd64", "state.source="+state, "config.source="+config)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("install with missing host folders: want the OCI stat error, got %v", err)
	}

	step("install failed as expected")
	// The operator CLI, copied out of the installed (still disabled) plugin's rootfs.
	p, _, err := E.cli.PluginInspectWithRaw(ctxFor(t, 10*time.Second), alias)
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(mustCmd(t, nil, nil, "docker", "info", "--format", "{{.DockerRootDir}}"))
	cli := filepath.Join(base, "swarmkeep")
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(filepath.Join(root, "plugins", p.ID, "rootfs", "swarmkeep"))
	if err != nil {
		t.Fatalf("CLI from the plugin rootfs: %v", err)
	}
	if err := os.WriteFile(cli, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if v, want := mustCmd(t, nil, nil, cli, "version"), mustCmd(t, nil, nil, E.swarmkeep, "version"); v != want {
		t.Fatalf("copied CLI says %q, want %q", v, want)
	}
	_, err = runCmd(ctxFor(t, 20*time.Second), E.tmp, nil, nil, cli, "status", "--plugin", alias)
	if err == nil || !strings.Contains(err.Error(), "install -d -m 0700 "+state) {
		t.Fatalf("status of the plugin install left disabled: want the folders to create, got %v", err)
	}

	// The README's order: folders, enable, init, put.
	for _, d := range []string{state, config} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mustCmd(t, nil, nil, "docker", "plugin", "enable", alias)
	step("enabled")
	cliEnv := []string{"SWARMKEEP_STORE=" + filepath.Join(state, "store"), "SWARMKEEP_KEY_FILE=" + filepath.Join(config, "key")}
	mustCmd(t, nil, cliEnv, cli, "init")
	name := uniq("regval")
	value := []byte("registry-" + E.runID)
	recordValue("put "+name, value)
	mustCmd(t, value, cliEnv, cli, "put", name)

	ctx := ctxFor(t, 30*time.Second)
	sec, err := E.cli.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{runLabel: E.runID}},
		Driver:      &swarm.Driver{Name: alias},
	})
	if err != nil {
		t.Fatalf("SecretCreate with driver %s: %v", alias, err)
	}
	t.Cleanup(func() { removeSecret(t, sec.ID) })
	svc := createService(t, uniq("regsvc"), 1, secretRef(sec.ID, name, "v"))
	assertSecretInTasks(t, waitRunning(t, svc, 1, 60*time.Second, nil), "v", value)
	step("service read the value")

	// Upgrade to a new version: the same value must come from the same folders.
	mustCmd(t, nil, []string{"LDFLAGS=-X main.version=e2e-two"}, push, ref+"-two")
	step("pushed the new version")
	mustCmd(t, nil, nil, filepath.Join(E.root, "scripts", "upgrade.sh"), alias, ref+"-two")
	step("upgraded")
	p, _, err = E.cli.PluginInspectWithRaw(ctxFor(t, 10*time.Second), alias)
	if err != nil || !p.Enabled || p.PluginReference != ref+"-two" {
		t.Fatalf("after upgrade: %+v %v", p, err)
	}
	if st := mustCmd(t, nil, nil, cli, "status", "--plugin", alias); !strings.Contains(st, "e2e-two") {
		t.Fatalf("status after the upgrade does not show the new version:\n%s", st)
	}
	old := taskIDs(mustTasks(t, svc))
	updateService(t, svc, func(s *swarm.ServiceSpec) { s.TaskTemplate.ForceUpdate++ })
	tasks := waitRunning(t, svc, 1, 60*time.Second, func(tk swarm.Task) bool { return !old[tk.ID] })
	assertSecretInTasks(t, tasks, "v", value)
}

func mustTasks(t *testing.T, svc string) []swarm.Task {
	t.Helper()
	tasks, err := tasksOf(ctxFor(t, 10*time.Second), svc)
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}
