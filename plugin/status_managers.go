package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/swarmkeep/swarmkeep/swarm/configstore"
)

// managerState is one manager as its agent published it (node labels).
type managerState struct {
	Host   string `json:"host"`
	Addr   string `json:"addr"`
	Node   string `json:"node"`
	Leader bool   `json:"leader,omitempty"`
	Down   bool   `json:"down,omitempty"`
	// Plugin is nil when no agent published this manager's plugin.
	Plugin *publishedPlugin `json:"plugin"`
	// Mirrors are the replicated stores' mirror indexes, by prefix.
	Mirrors map[string]uint64 `json:"mirrors,omitempty"`
	// MirrorsRefused say why a mirror leaves this manager's folder
	// alone, by prefix.
	MirrorsRefused map[string]string `json:"mirrors_refused,omitempty"`
	// Differs says how this manager differs from the others.
	Differs []string `json:"differs,omitempty"`
}

func (m managerState) name() string { return m.Host + " (" + m.Addr + ")" }

// nodeAPI lists nodes (the daemon; tests stand in).
type nodeAPI interface {
	NodeList(ctx context.Context, opts swarm.NodeListOptions) ([]swarm.Node, error)
}

// managersReport reads every manager's published state and flags any that
// differs from the others. ok is false when this engine is no swarm
// manager (status then shows only the local plugin).
func managersReport(ctx context.Context) (ms []managerState, ok bool, problem error) {
	papi, err := newPluginAPI()
	if err != nil {
		return nil, false, nil
	}
	defer papi.Close()
	api, ok := papi.(nodeAPI)
	if !ok {
		return nil, false, nil
	}
	nodes, err := api.NodeList(ctx, swarm.NodeListOptions{Filters: filters.NewArgs(filters.Arg("role", "manager"))})
	if err != nil {
		return nil, false, nil // not a manager, or no swarm: nothing to compare
	}
	for _, n := range nodes {
		m := managerState{Host: n.Description.Hostname, Node: n.ID, Mirrors: map[string]uint64{}, MirrorsRefused: map[string]string{}}
		if s := n.ManagerStatus; s != nil {
			m.Addr, m.Leader = s.Addr, s.Leader
			m.Down = s.Reachability == swarm.ReachabilityUnreachable
		}
		m.Down = m.Down || n.Status.State == swarm.NodeStateDown
		if v, ok := n.Spec.Labels[pluginLabel]; ok {
			var p publishedPlugin
			if json.Unmarshal([]byte(v), &p) == nil {
				m.Plugin = &p
			}
		}
		for k, v := range n.Spec.Labels {
			if prefix, ok := strings.CutPrefix(k, configstore.MirrorLabel("")); ok {
				m.Mirrors[prefix], _ = configstore.IndexOf(v)
			}
			if prefix, ok := strings.CutPrefix(k, configstore.MirrorRefusedLabel("")); ok {
				m.MirrorsRefused[prefix] = v
			}
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Addr < ms[j].Addr })
	return ms, true, compareManagers(ms)
}

// compareManagers marks each reachable manager that differs from the most
// common value of each attribute, and returns one error naming them: a
// manager with a stale copy is named before it leads.
func compareManagers(ms []managerState) error {
	if len(ms) < 2 || !anyPublished(ms) {
		// One manager has nothing to differ from, and with no agent
		// anywhere (a single-manager file store needs none) there is
		// nothing to compare: printManagers says so.
		return nil
	}
	attrs := map[string]func(m managerState) string{}
	keys := map[string]bool{}
	for _, m := range ms {
		if m.Plugin != nil {
			for b := range m.Plugin.Stores {
				keys["store "+b] = true
			}
		}
		for p := range m.Mirrors {
			keys["mirror "+p] = true
		}
		for p := range m.MirrorsRefused {
			keys["mirror "+p] = true
		}
	}
	attrs["plugin"] = func(m managerState) string {
		switch {
		case m.Plugin == nil:
			return "not published (is swarmkeep-agent running there?)"
		case !m.Plugin.Enabled:
			return "disabled"
		case m.Plugin.Problem != "":
			return "unhealthy: " + m.Plugin.Problem
		}
		return "enabled"
	}
	attrs["settings hash"] = func(m managerState) string {
		if m.Plugin == nil {
			return ""
		}
		return m.Plugin.Config
	}
	for k := range keys {
		if b, ok := strings.CutPrefix(k, "store "); ok {
			attrs[k] = func(m managerState) string {
				if m.Plugin == nil {
					return "unknown"
				}
				d, ok := m.Plugin.Stores[b]
				if !ok {
					return "not open"
				}
				return fmt.Sprintf("store %s, %d names, digest %s", shortID(d.ID), d.Names, d.Digest)
			}
		} else {
			p := strings.TrimPrefix(k, "mirror ")
			attrs[k] = func(m managerState) string {
				if why, ok := m.MirrorsRefused[p]; ok {
					return "waiting: " + why
				}
				i, ok := m.Mirrors[p]
				if !ok {
					return "no mirror"
				}
				return fmt.Sprintf("at index %d", i)
			}
		}
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var problems []string
	for _, a := range names {
		get := attrs[a]
		count := map[string]int{}
		// A manager that publishes nothing is named once, under
		// "plugin"; every other attribute compares those that publish.
		skip := func(m managerState) bool { return m.Down || a != "plugin" && m.Plugin == nil }
		for _, m := range ms {
			if !skip(m) {
				count[get(m)]++
			}
		}
		common, best := "", 0
		for v, n := range count {
			if n > best || n == best && v < common {
				common, best = v, n
			}
		}
		for i, m := range ms {
			if skip(m) {
				continue
			}
			if v := get(m); v != common || a == "plugin" && v != "enabled" {
				d := fmt.Sprintf("%s: %s", a, v)
				if v != common {
					d += fmt.Sprintf(" (others: %s)", common)
				}
				ms[i].Differs = append(ms[i].Differs, d)
				problems = append(problems, fmt.Sprintf("%s %s: %s", m.name(), a, v))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("managers differ: " + strings.Join(problems, "; ") +
		"; fix: a manager whose store differs serves other values if it leads: start or restart its swarmkeep-agent (replicated store), " +
		"or give every manager the same store (see the README's multi-manager section)")
}

// anyPublished tells whether some manager's agent publishes anything.
func anyPublished(ms []managerState) bool {
	for _, m := range ms {
		if m.Plugin != nil || len(m.Mirrors) > 0 || len(m.MirrorsRefused) > 0 {
			return true
		}
	}
	return false
}

func shortID(id string) string { return id[:min(len(id), 12)] }

func printManagers(w io.Writer, ms []managerState) {
	fmt.Fprintln(w, "managers (as their agents publish them):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tADDR\tROLE\tPLUGIN\tSETTINGS\tSTORES\tMIRROR\t")
	for _, m := range ms {
		role := "manager"
		if m.Leader {
			role = "leader"
		}
		if m.Down {
			role += " (down)"
		}
		plugin, cfg, stores := "not published", "-", "-"
		if p := m.Plugin; p != nil {
			plugin = "disabled"
			if p.Enabled {
				plugin = "enabled " + p.Status
			}
			cfg = p.Config
			var ss []string
			for _, b := range sortedNames(p.Stores) {
				d := p.Stores[b]
				ss = append(ss, fmt.Sprintf("%s=%s/%d/%s", b, shortID(d.ID), d.Names, d.Digest))
			}
			if len(ss) > 0 {
				stores = strings.Join(ss, " ")
			}
		}
		var mirrors []string
		for _, p := range sortedNames(m.Mirrors) {
			if _, waits := m.MirrorsRefused[p]; !waits {
				mirrors = append(mirrors, fmt.Sprintf("%s@%d", p, m.Mirrors[p]))
			}
		}
		for _, p := range sortedNames(m.MirrorsRefused) {
			mirrors = append(mirrors, p+" waiting") // why: in DIFFERS below
		}
		mirror := "-"
		if len(mirrors) > 0 {
			mirror = strings.Join(mirrors, " ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Host, m.Addr, role, plugin, cfg, stores, mirror)
	}
	tw.Flush()
	if !anyPublished(ms) {
		fmt.Fprintln(w, "  no manager's swarmkeep-agent publishes its plugin: nothing to compare (with several managers, run the agent on each; see the README)")
	}
	for _, m := range ms {
		for _, d := range m.Differs {
			fmt.Fprintf(w, "  DIFFERS %s: %s\n", m.name(), d)
		}
		// A waiting mirror that no comparison flagged (one manager, or
		// every manager waits): its reason is still worth a line.
		for _, p := range sortedNames(m.MirrorsRefused) {
			if !slices.ContainsFunc(m.Differs, func(d string) bool { return strings.HasPrefix(d, "mirror "+p+":") }) {
				fmt.Fprintf(w, "  WAITING %s mirror %s: %s\n", m.name(), p, m.MirrorsRefused[p])
			}
		}
	}
}
