// Command vulnindex turns a folder of OSV advisories (the data/osv folder of
// the golang.org/x/vulndb module) into the file database govulncheck reads
// with -db file://DIR: DIR/index/db.json, DIR/index/modules.json and
// DIR/ID/<id>.json. It does what the vulndb module's own indexer does for
// govulncheck, without building that module's command and its large
// dependency graph; the "fixed" hint of modules.json is left out, which
// only makes govulncheck read an advisory it could have skipped.
//
//	go run ./scripts/vulnindex OSVDIR OUTDIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// entry is the part of an OSV advisory the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
	Affected []struct {
		Module struct {
			Path string `json:"name"`
		} `json:"package"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
}

type module struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type vuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases,omitempty"`
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: vulnindex OSVDIR OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "vulnindex: %v\n", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	files, err := filepath.Glob(filepath.Join(in, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no advisories in %s", in)
	}
	if err := os.MkdirAll(filepath.Join(out, "ID"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return err
	}
	mods := map[string][]moduleVuln{}
	var vulns []vuln
	var latest time.Time
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if e.ID == "" || strings.ContainsAny(e.ID, "/\\") {
			return fmt.Errorf("%s: bad advisory id %q", f, e.ID)
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), b, 0o644); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, a := range e.Affected {
			if p := a.Module.Path; p != "" && !seen[p] {
				seen[p] = true
				mods[p] = append(mods[p], moduleVuln{ID: e.ID, Modified: e.Modified})
			}
		}
		vulns = append(vulns, vuln{ID: e.ID, Modified: e.Modified, Aliases: e.Aliases})
		if e.Modified.After(latest) {
			latest = e.Modified
		}
	}
	paths := make([]string, 0, len(mods))
	for p := range mods {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	index := make([]module, 0, len(paths))
	for _, p := range paths {
		index = append(index, module{Path: p, Vulns: mods[p]})
	}
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	for name, v := range map[string]any{
		"db.json": struct {
			Modified time.Time `json:"modified"`
		}{latest},
		"modules.json": index,
		"vulns.json":   vulns,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, "index", name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("vulnindex: %d advisories, %d modules\n", len(vulns), len(index))
	return nil
}
