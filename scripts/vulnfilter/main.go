// Command vulnfilter reads govulncheck's JSON stream (-format json) on stdin
// and fails on every finding that reaches vulnerable code (symbol level, the
// level govulncheck's own text mode fails on) unless the advisory is listed
// in the allow file with the reason it does not apply. A listed advisory that
// no longer matches a finding also fails, so the list is pruned when a fix
// lands. Findings at module or package level only (code that is imported
// but never called) are printed for information.
//
//	go run golang.org/x/vuln/cmd/govulncheck@vX -format json ./... | go run ./scripts/vulnfilter scripts/vulncheck.allow
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// message is the part of govulncheck's JSON stream this command reads.
type message struct {
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV   string `json:"osv"`
		Trace []struct {
			Module   string `json:"module"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: vulnfilter ALLOWFILE < govulncheck-json")
		os.Exit(2)
	}
	allowed, err := readAllow(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulnfilter: %v\n", err)
		os.Exit(2)
	}
	called, imported, summaries, err := readFindings(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vulnfilter: reading govulncheck output: %v\n", err)
		os.Exit(2)
	}
	failed := false
	for _, id := range sortedKeys(called) {
		if why, ok := allowed[id]; ok {
			fmt.Printf("govulncheck: %s (%s) reached through %s: allowed: %s\n", id, summaries[id], called[id], why)
			continue
		}
		fmt.Printf("govulncheck: VULNERABLE: %s (%s), reached through %s; see https://pkg.go.dev/vuln/%s\n", id, summaries[id], called[id], id)
		failed = true
	}
	for _, id := range sortedKeys(imported) {
		if _, ok := called[id]; !ok {
			fmt.Printf("govulncheck: %s (%s) in %s, imported but not called: no action\n", id, summaries[id], imported[id])
		}
	}
	for _, id := range sortedKeys(allowed) {
		if _, ok := called[id]; !ok {
			fmt.Printf("govulncheck: %s is in %s but no longer reached: remove it\n", id, os.Args[1])
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("govulncheck: no known vulnerability reached (%d allowed with a reason)\n", len(allowed))
}

// readAllow reads "ID MODULE reason" lines; # starts a comment.
func readAllow(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			return nil, fmt.Errorf("%s:%d: want ID MODULE REASON", path, n)
		}
		out[fields[0]] = fields[1] + ": " + strings.Join(fields[2:], " ")
	}
	return out, sc.Err()
}

// readFindings returns, per advisory, the module of a finding that reaches
// vulnerable code, and the module of one that is only imported or required.
func readFindings(r io.Reader) (called, imported, summaries map[string]string, err error) {
	called, imported, summaries = map[string]string{}, map[string]string{}, map[string]string{}
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return called, imported, summaries, nil
		} else if err != nil {
			return nil, nil, nil, err
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		if f := m.Finding; f != nil && len(f.Trace) > 0 {
			if f.Trace[0].Function != "" {
				called[f.OSV] = f.Trace[0].Module
			} else {
				imported[f.OSV] = f.Trace[0].Module
			}
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
