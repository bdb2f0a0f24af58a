//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Leak scan. Every value the suite stores (the put helper) or sees served (assertSecretInTasks,
// which also covers values seeded straight into Vault or etcd) is recorded. After all tests,
// TestMain scans every log and audit file the run produced (the private dockerd's log, which
// holds all plugin output, and any *.log or audit file under the run's temp dir, the plugin's
// state mount included) and the plugin's inspect JSON, and fails the run if any value shows
// up, raw or in a form a log line or encoder would give it (quoted, JSON-escaped, base64, hex,
// Go's []byte printing). The store's key file is looked for too.

// minLeakLen: shorter values (say "5432") turn up in logs by chance.
const minLeakLen = 6

// commonWords are values too ordinary to mean a leak when found in a log.
var commonWords = map[string]bool{
	"secret": true, "secrets": true, "password": true, "swarmkeep": true, "backend": true,
	"default": true, "latest": true, "value": true, "values": true, "true": true, "false": true,
	"null": true, "config": true, "plugin": true,
}

var recorded = struct {
	sync.Mutex
	values map[string]string // value -> where it was first recorded
}{values: map[string]string{}}

// recordValue notes a value the leak scan must not find. A JSON object (a Vault document
// served whole) is also recorded field by field, since a field may be served on its own.
func recordValue(origin string, v []byte) {
	recorded.Lock()
	defer recorded.Unlock()
	addValue(recorded.values, origin, v)
}

func addValue(into map[string]string, origin string, v []byte) {
	if trivialValue(v) {
		return
	}
	if _, ok := into[string(v)]; !ok {
		into[string(v)] = origin
	}
	var doc map[string]any
	if json.Unmarshal(v, &doc) == nil {
		for k, f := range doc {
			if s, ok := f.(string); ok {
				addValue(into, origin+" field "+k, []byte(s))
			}
		}
	}
}

// trivialValue: too short, one repeated byte, only digits, or a common word.
func trivialValue(v []byte) bool {
	if len(v) < minLeakLen || bytes.Count(v, v[:1]) == len(v) || commonWords[strings.ToLower(string(v))] {
		return true
	}
	return strings.Trim(string(v), "0123456789") == ""
}

// needle is one form of a value to look for.
type needle struct {
	b            []byte
	form, origin string
	size         int // the value's length
}

// leakFinding is one occurrence; it never holds the value, only where and in which form.
type leakFinding struct {
	where        string // file path, or what was scanned
	line         int
	form, origin string
	size         int    // the value's length
	context      string // the line around it, every value masked
}

type leakScanner struct{ needles []needle }

// newLeakScanner makes the needles for values (value -> origin): the raw bytes and the forms
// the value takes in a log line (Go-quoted as logrus and %q print it, JSON-escaped with and
// without HTML escaping), in an encoder's output (base64 std/url, with or without padding:
// the padded form contains the unpadded one), as hex, and as Go prints a []byte.
func newLeakScanner(values map[string]string) *leakScanner {
	s := &leakScanner{}
	for v, origin := range values {
		b := []byte(v)
		seen := map[string]bool{}
		add := func(form string, n []byte) {
			if len(n) >= minLeakLen && !seen[string(n)] {
				seen[string(n)] = true
				s.needles = append(s.needles, needle{b: n, form: form, origin: origin, size: len(b)})
			}
		}
		add("raw", b)
		q := strconv.Quote(v)
		add("Go-quoted", []byte(q[1:len(q)-1]))
		js, _ := json.Marshal(v)
		add("JSON-escaped", js[1:len(js)-1])
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		js = bytes.TrimSpace(buf.Bytes())
		add("JSON-escaped", js[1:len(js)-1])
		add("base64", []byte(base64.RawStdEncoding.EncodeToString(b)))
		add("base64url", []byte(base64.RawURLEncoding.EncodeToString(b)))
		add("hex", []byte(hex.EncodeToString(b)))
		add("Go []byte", []byte(fmt.Sprint(b)))
	}
	sort.Slice(s.needles, func(i, j int) bool { return s.needles[i].origin < s.needles[j].origin })
	return s
}

// scan returns every needle found in data, with the line it is on.
func (s *leakScanner) scan(where string, data []byte) []leakFinding {
	var out []leakFinding
	for _, n := range s.needles {
		for off := 0; ; {
			i := bytes.Index(data[off:], n.b)
			if i < 0 {
				break
			}
			i += off
			out = append(out, leakFinding{
				where: where, line: bytes.Count(data[:i], []byte("\n")) + 1, form: n.form, origin: n.origin,
				size: n.size, context: s.maskedLine(data, i),
			})
			off = i + len(n.b)
		}
	}
	return out
}

// maskedLine is the line holding data[i], every value form on it replaced by a marker, at
// most 300 bytes of it: the report shows where a value was without repeating any.
func (s *leakScanner) maskedLine(data []byte, i int) string {
	start := bytes.LastIndexByte(data[:i], '\n') + 1
	end := bytes.IndexByte(data[i:], '\n')
	if end < 0 {
		end = len(data)
	} else {
		end += i
	}
	line := bytes.Clone(data[start:end])
	for _, n := range s.needles {
		line = bytes.ReplaceAll(line, n.b, []byte("<<VALUE>>"))
	}
	if len(line) > 300 {
		line = append(line[:300], "..."...)
	}
	return strconv.Quote(string(line))
}

// logOrAudit selects the files the scan reads: *.log (rotated ones too), *.jsonl, and anything
// under a directory, or named, "audit" (where the plugin's audit trail is written).
var logOrAudit = regexp.MustCompile(`(?i)(\.log(\.[0-9]+)?|\.jsonl)$|(^|/)[^/]*audit[^/]*(/|$)`)

// skipDirs are not walked: image and container layers hold no file the run wrote.
var skipDirs = map[string]bool{"overlay2": true}

// scanTree scans every log or audit file under root; it returns the findings and the files read.
func (s *leakScanner) scanTree(root string) ([]leakFinding, []string, error) {
	var out []leakFinding
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while we walk (a task's files)
				return nil
			}
			return err
		}
		if d.IsDir() && skipDirs[d.Name()] {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		if !d.Type().IsRegular() || !logOrAudit.MatchString(filepath.ToSlash(rel)) {
			return nil
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files = append(files, p)
		out = append(out, s.scan(p, data)...)
		return nil
	})
	return out, files, err
}

// pluginInspectJSON is the plugin's inspect JSON (what `docker plugin inspect` prints), taken
// before the cleanup removes the plugin.
func (e *env) pluginInspectJSON() []byte {
	if e.cli == nil || e.pluginID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, raw, err := e.cli.PluginInspectWithRaw(ctx, e.plugin)
	if err != nil {
		logf("warning: leak scan: plugin inspect: %v", err)
		return nil
	}
	return raw
}

// scanForLeaks runs after all tests and the cleanup: it scans the engine log, every log and
// audit file under the run's temp dir and the plugin's inspect JSON for every recorded value
// and the store's key.
func (e *env) scanForLeaks(inspect []byte) error {
	recorded.Lock()
	values := make(map[string]string, len(recorded.values)+2)
	for v, o := range recorded.values {
		values[v] = o
	}
	recorded.Unlock()
	// The store key: its text as in the key file, and the key bytes.
	if key, err := os.ReadFile(e.keyFile); err == nil {
		text := bytes.TrimSpace(key)
		addValue(values, "the store key file", text)
		if raw, err := base64.StdEncoding.DecodeString(string(text)); err == nil {
			addValue(values, "the store key", raw)
		}
	}
	s := newLeakScanner(values)

	var findings []leakFinding
	var problems []string
	findings, files, err := s.scanTree(e.tmp)
	if err != nil {
		problems = append(problems, fmt.Sprintf("walking %s: %v", e.tmp, err))
	}
	switch {
	case e.dockerLog == "":
		msg := "the engine log is unknown (set SWARMKEEP_E2E_DOCKERD_LOG): plugin output not scanned"
		if e.ci {
			problems = append(problems, msg)
		} else {
			logf("NOTE: leak scan: %s", msg)
		}
	case !strings.HasPrefix(e.dockerLog, e.tmp+string(filepath.Separator)):
		data, err := os.ReadFile(e.dockerLog)
		if err != nil {
			problems = append(problems, fmt.Sprintf("engine log: %v", err))
			break
		}
		files = append(files, e.dockerLog)
		findings = append(findings, s.scan(e.dockerLog, data)...)
	default:
		if !contains(files, e.dockerLog) {
			problems = append(problems, fmt.Sprintf("the engine log %s was not scanned", e.dockerLog))
		}
	}
	if inspect == nil && e.pluginID != "" {
		problems = append(problems, "no plugin inspect JSON to scan")
	}
	findings = append(findings, s.scan("docker plugin inspect "+e.plugin, inspect)...)

	var size int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	for _, f := range findings {
		logf("LEAK: %s:%d: %s form of the %d-byte value from %s: %s", f.where, f.line, f.form, f.size, f.origin, f.context)
	}
	for _, p := range problems {
		logf("leak scan: %s", p)
	}
	logf("leak scan: %d values (%d forms) looked for in %d files (%.1f MiB) and the plugin inspect JSON: %d found",
		len(values), len(s.needles), len(files), float64(size)/(1<<20), len(findings))
	if len(findings) > 0 || len(problems) > 0 {
		return fmt.Errorf("leak scan: %d occurrences of stored values, %d problems (see above)", len(findings), len(problems))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The scanner must be able to fail: values planted in a log and an audit file, in the forms a
// leak would take, are found; a clean log, a trivial value and a non-log file are not reported.
// It needs no engine.
func TestLeakScannerFindsPlantedValues(t *testing.T) {
	dir := t.TempDir()
	quoted := "planted \"secret\"\t\x00\xff end\n"
	plain := "second-planted-value"
	values := map[string]string{}
	addValue(values, "quoted test value", []byte(quoted))
	addValue(values, "base64 test value", []byte(plain))
	addValue(values, "trivial", []byte("5432"))                                                // too short
	addValue(values, "vault doc", []byte(`{"username":"doc-user-name","port":5432,"x":"ab"}`)) // fields too
	if len(values) != 4 {
		t.Fatalf("recorded %d values, want the two planted ones, the document and its string field: %q", len(values), values)
	}
	s := newLeakScanner(values)

	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A logrus line quoting the value, as a careless log call would.
	write("engine/dockerd.log", "time=\"...\" level=info msg=\"ok\" plugin=abc\n"+
		"time=\"...\" level=debug msg=\"secret served\" value="+strconv.Quote(quoted)+" plugin=abc\n")
	// An audit record carrying the value base64-encoded, as a []byte field marshals.
	write("state/audit/2026-11-26.jsonl", `{"secret":"x","value":"`+base64.StdEncoding.EncodeToString([]byte(plain))+`"}`+"\n")
	// A rotated log with the document's field.
	write("state/plugin.log.1", "user doc-user-name logged\n")
	// Clean, or only the trivial value: nothing to report.
	write("state/clean.log", "port 5432 listening; secret served size=20\n")
	// Not a log: the scan does not read it.
	write("state/store/objects/ab/blob", plain)

	findings, files, err := s.scanTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Errorf("scanned %d files, want 4 (dockerd.log, the audit file, plugin.log.1, clean.log): %q", len(files), files)
	}
	inspect, _ := json.Marshal(map[string]any{"Settings": map[string]any{"Env": []string{"A=" + quoted, "B=" + plain}}})
	findings = append(findings, s.scan("docker plugin inspect", inspect)...)
	want := []string{
		"2026-11-26.jsonl:1 base64 base64 test value",
		"docker plugin inspect:1 JSON-escaped quoted test value",
		"docker plugin inspect:1 raw base64 test value",
		"dockerd.log:2 Go-quoted quoted test value",
		"plugin.log.1:1 raw vault doc field username",
	}
	var got []string
	for _, f := range findings {
		got = append(got, fmt.Sprintf("%s:%d %s %s", filepath.Base(f.where), f.line, f.form, f.origin))
		if strings.Contains(f.context, "planted") || strings.Contains(f.context, "doc-user-name") || !strings.Contains(f.context, "<<VALUE>>") {
			t.Errorf("finding %s shows a value, or not where: %s", got[len(got)-1], f.context)
		}
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
