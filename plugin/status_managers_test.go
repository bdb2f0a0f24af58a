package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// fakeNodes is a pluginAPI that also lists nodes.
type fakeNodes struct {
	fakeDocker
	nodes []swarm.Node
}

func (f *fakeNodes) NodeList(context.Context, swarm.NodeListOptions) ([]swarm.Node, error) {
	return f.nodes, nil
}

func managerNode(host, addr string, labels map[string]string, down bool) swarm.Node {
	n := swarm.Node{ID: host + "-id", Description: swarm.NodeDescription{Hostname: host},
		ManagerStatus: &swarm.ManagerStatus{Addr: addr, Reachability: swarm.ReachabilityReachable},
		Status:        swarm.NodeStatus{State: swarm.NodeStateReady}}
	n.Spec.Labels = labels
	if down {
		n.Status.State = swarm.NodeStateDown
	}
	return n
}

func published(digest string) string {
	p := publishedPlugin{Enabled: true, Config: "cfg1", Status: "ok",
		Stores: map[string]backend.StoreDigest{"default": {ID: "0123456789abcdef", Names: 2, Digest: digest}}}
	b, _ := json.Marshal(p)
	return string(b)
}

// TestManagersReportFlagsTheStaleManager: three managers, one whose plugin
// answers other versions (another digest) and a mirror behind: status
// names it and only it; a down manager's old labels are not compared.
func TestManagersReportFlagsTheStaleManager(t *testing.T) {
	same := func(d, idx string) map[string]string {
		return map[string]string{pluginLabel: published(d), "swarmkeep.mirror.swarmkeep": idx}
	}
	f := &fakeNodes{nodes: []swarm.Node{
		managerNode("m1", "127.0.24.1:2377", same("aaaa", "40"), false),
		managerNode("m2", "127.0.24.2:2377", same("aaaa", "40"), false),
		managerNode("m4", "127.0.24.4:2377", same("cccc", "3"), true),
	}}
	prev := newPluginAPI
	newPluginAPI = func() (pluginAPI, error) { return f, nil }
	t.Cleanup(func() { newPluginAPI = prev })
	ms, ok, err := managersReport(context.Background())
	if !ok || err != nil {
		t.Fatalf("consistent managers: ok=%v err=%v", ok, err)
	}
	if len(ms) != 3 {
		t.Fatalf("got %d managers", len(ms))
	}
	f.nodes = append(f.nodes, managerNode("m3", "127.0.24.3:2377", same("bbbb", "12"), false))
	ms, _, err = managersReport(context.Background())
	if err == nil {
		t.Fatal("a manager with another digest: no problem reported")
	}
	msg := err.Error()
	if !strings.Contains(msg, "m3 (127.0.24.3:2377) store default") || !strings.Contains(msg, "m3 (127.0.24.3:2377) mirror swarmkeep: at index 12") {
		t.Fatalf("problem does not name m3's store and mirror: %s", msg)
	}
	if strings.Contains(msg, "m1 ") || strings.Contains(msg, "m2 ") || strings.Contains(msg, "m4 ") {
		t.Fatalf("problem names a consistent or down manager: %s", msg)
	}
	for _, m := range ms {
		if (m.Host == "m3") != (len(m.Differs) > 0) {
			t.Fatalf("%s differs = %q", m.Host, m.Differs)
		}
	}
	var b strings.Builder
	printManagers(&b, ms)
	if !strings.Contains(b.String(), "DIFFERS m3") {
		t.Fatalf("printed view does not flag m3:\n%s", b.String())
	}
	// A manager whose agent never published is named too.
	f.nodes = f.nodes[:3]
	f.nodes = append(f.nodes, managerNode("m5", "127.0.24.5:2377", nil, false))
	if _, _, err = managersReport(context.Background()); err == nil || !strings.Contains(err.Error(), "m5 (127.0.24.5:2377) plugin: not published") {
		t.Fatalf("unpublished manager: %v", err)
	}
}

func TestManagersWithoutAgentsAreNotAProblem(t *testing.T) {
	f := &fakeNodes{nodes: []swarm.Node{managerNode("m1", "127.0.24.1:2377", nil, false)}}
	prev := newPluginAPI
	newPluginAPI = func() (pluginAPI, error) { return f, nil }
	t.Cleanup(func() { newPluginAPI = prev })
	// One manager, no agent: a single-manager file store needs none.
	if _, _, err := managersReport(context.Background()); err != nil {
		t.Fatalf("one manager without an agent: %v", err)
	}
	// Several managers, no agent anywhere: nothing to compare, said as such.
	f.nodes = append(f.nodes, managerNode("m2", "127.0.24.2:2377", nil, false))
	ms, _, err := managersReport(context.Background())
	if err != nil {
		t.Fatalf("no agent anywhere: %v", err)
	}
	var b strings.Builder
	printManagers(&b, ms)
	if !strings.Contains(b.String(), "nothing to compare") || strings.Contains(b.String(), "DIFFERS") {
		t.Fatalf("no agent anywhere, printed:\n%s", b.String())
	}
	// One agent publishes, the other manager's does not: that one is named.
	f.nodes[0] = managerNode("m1", "127.0.24.1:2377", map[string]string{pluginLabel: published("aaaa")}, false)
	ms, _, err = managersReport(context.Background())
	if err == nil || !strings.Contains(err.Error(), "m2 (127.0.24.2:2377) plugin: not published") || strings.Contains(err.Error(), "m1 ") {
		t.Fatalf("one agent missing: %v", err)
	}
	b.Reset()
	printManagers(&b, ms)
	if strings.Contains(b.String(), "(others: not published") {
		t.Fatalf("a manager is said to differ from itself:\n%s", b.String())
	}
}

// TestManagersReportSaysWhyAMirrorWaits: a manager whose mirror refuses its
// folder (a file store it did not fill) is named with the agent's reason,
// not only as "no mirror", and shown as waiting in the table.
func TestManagersReportSaysWhyAMirrorWaits(t *testing.T) {
	ok := map[string]string{pluginLabel: published("aaaa"), "swarmkeep.mirror.swarmkeep": "40"}
	waits := map[string]string{pluginLabel: published("bbbb"),
		"swarmkeep.mirror-refused.swarmkeep": "/var/lib/swarmkeep/store holds a store the mirror did not fill; fix: --mirror-adopt"}
	f := &fakeNodes{nodes: []swarm.Node{
		managerNode("m1", "127.0.24.1:2377", ok, false),
		managerNode("m2", "127.0.24.2:2377", ok, false),
		managerNode("m3", "127.0.24.3:2377", waits, false),
	}}
	prev := newPluginAPI
	newPluginAPI = func() (pluginAPI, error) { return f, nil }
	t.Cleanup(func() { newPluginAPI = prev })
	ms, _, err := managersReport(context.Background())
	if err == nil || !strings.Contains(err.Error(), "m3 (127.0.24.3:2377) mirror swarmkeep: waiting: /var/lib/swarmkeep/store holds a store the mirror did not fill") {
		t.Fatalf("a waiting mirror: %v", err)
	}
	var b strings.Builder
	printManagers(&b, ms)
	if !strings.Contains(b.String(), "swarmkeep waiting") || !strings.Contains(b.String(), "--mirror-adopt") {
		t.Fatalf("printed view does not show the waiting mirror and why:\n%s", b.String())
	}
}

// TestOneManagerWaitingMirrorIsShown: with one manager nothing differs, yet
// a mirror that refuses its folder is printed with its reason.
func TestOneManagerWaitingMirrorIsShown(t *testing.T) {
	f := &fakeNodes{nodes: []swarm.Node{managerNode("m1", "127.0.24.1:2377",
		map[string]string{pluginLabel: published("aaaa"), "swarmkeep.mirror-refused.swarmkeep": "holds another store; fix: --mirror-adopt"}, false)}}
	prev := newPluginAPI
	newPluginAPI = func() (pluginAPI, error) { return f, nil }
	t.Cleanup(func() { newPluginAPI = prev })
	ms, _, err := managersReport(context.Background())
	if err != nil {
		t.Fatalf("one manager: %v", err)
	}
	var b strings.Builder
	printManagers(&b, ms)
	if !strings.Contains(b.String(), "WAITING m1 (127.0.24.1:2377) mirror swarmkeep: holds another store; fix: --mirror-adopt") {
		t.Fatalf("printed:\n%s", b.String())
	}
}

// TestClipLabelKeepsTheFix: a long reason keeps its start and its fix, and
// stays valid UTF-8.
func TestClipLabelKeepsTheFix(t *testing.T) {
	long := "/srv/" + strings.Repeat("é", 200) + "/store holds another store; to replace it, run the agent with --mirror-adopt"
	got := clipLabel(long)
	if len(got) > maxLabelReason || !utf8.ValidString(got) || !strings.HasPrefix(got, "/srv/") || !strings.HasSuffix(got, "--mirror-adopt") {
		t.Fatalf("clipLabel = %q (%d bytes)", got, len(got))
	}
	if clipLabel("short") != "short" {
		t.Fatal("a short reason changed")
	}
}
