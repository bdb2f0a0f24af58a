package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Verdicts of a figure.
const (
	pass = "pass"
	fail = "FAIL"
	info = "info"
	skip = "skip"
)

// figure is one line of the result table.
type figure struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Shown   string  `json:"shown"`
	Target  string  `json:"target,omitempty"`
	Verdict string  `json:"verdict"`
	// Noise is the same ratio between two processes running the same
	// code in the same slices (null2/null, warm2/warm, a second 10-name
	// store): how far the machine alone moves the figure.
	Noise string `json:"noise,omitempty"`
	Note  string `json:"note,omitempty"`
}

// report collects the figures of one run.
type report struct {
	Started  time.Time         `json:"started"`
	Quick    bool              `json:"quick"`
	GoArch   string            `json:"goarch"`
	CPUs     int               `json:"cpus"`
	Settings map[string]string `json:"settings"`
	Figures  []figure          `json:"figures"`
	Errors   []string          `json:"errors,omitempty"`
	Seconds  float64           `json:"seconds"`
	// LoadAvg is /proc/loadavg at the start and at the end: a run on a
	// busy machine is noisier, ratios included.
	LoadAvg [2]string `json:"loadavg"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func newReport(quick bool) *report {
	return &report{Started: time.Now(), Quick: quick, GoArch: runtime.GOOS + "/" + runtime.GOARCH,
		CPUs: runtime.NumCPU(), Settings: map[string]string{}, LoadAvg: [2]string{loadAvg()}}
}

// info adds a figure without a target.
func (r *report) info(name string, v float64, unit, shown string) {
	r.Figures = append(r.Figures, figure{Name: name, Value: v, Unit: unit, Shown: shown, Verdict: info})
}

// atMost adds a figure whose target is v <= limit.
func (r *report) atMost(name string, v, limit float64, unit, shown, target string) {
	r.judge(name, v, unit, shown, target, v <= limit)
}

// atLeast adds a figure whose target is v >= limit.
func (r *report) atLeast(name string, v, limit float64, unit, shown, target string) {
	r.judge(name, v, unit, shown, target, v >= limit)
}

func (r *report) judge(name string, v float64, unit, shown, target string, ok bool) {
	verdict := fail
	if ok {
		verdict = pass
	}
	r.Figures = append(r.Figures, figure{Name: name, Value: v, Unit: unit, Shown: shown, Target: target, Verdict: verdict})
}

// judgeNoise is judge with the noise floor of the ratio shown beside it.
func (r *report) judgeNoise(name string, v float64, unit, shown, target, noise string, ok bool) {
	r.judge(name, v, unit, shown, target, ok)
	r.Figures[len(r.Figures)-1].Noise = noise
}

// failed records a measurement that could not be made: it counts as a
// missed target.
func (r *report) failed(name, target string, err error) {
	r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", name, err))
	r.Figures = append(r.Figures, figure{Name: name, Shown: "error", Target: target, Verdict: fail, Note: err.Error()})
}

// skipped records a figure that cannot be measured on this machine, for
// reason: a failure when the environment has CI=true, where a skip would
// hide that nothing was measured.
func (r *report) skipped(name, target, reason string) {
	verdict := skip
	if os.Getenv("CI") == "true" {
		verdict = fail
		r.Errors = append(r.Errors, fmt.Sprintf("%s: %s and CI=true", name, reason))
	}
	r.Figures = append(r.Figures, figure{Name: name, Shown: reason, Target: target, Verdict: verdict, Note: reason})
}

func (r *report) counts() (passed, failed int) {
	for _, f := range r.Figures {
		switch f.Verdict {
		case pass:
			passed++
		case fail:
			failed++
		}
	}
	return passed, failed
}

// print writes the table and the summary line.
func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nswarmkeep bench (%s, %d CPUs, quick=%v, %.0fs, load average %s at start, %s at end)\n\n",
		r.GoArch, r.CPUs, r.Quick, r.Seconds, r.LoadAvg[0], r.LoadAvg[1])
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET\tVERDICT\tNOISE FLOOR (same code, 2 processes)")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, f.Shown, f.Target, f.Verdict, f.Noise)
	}
	tw.Flush()
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	p, f := r.counts()
	skips := 0
	for _, fig := range r.Figures {
		if fig.Verdict == skip {
			skips++
		}
	}
	if skips > 0 {
		fmt.Fprintf(w, "\nbench: %d passed, %d failed, %d skipped\n", p, f, skips)
		return
	}
	fmt.Fprintf(w, "\nbench: %d passed, %d failed\n", p, f)
}

func (r *report) writeJSON(path string) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Formatting helpers for the VALUE column.

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const mib = 1 << 20

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/mib) }

func fmtRatio(r float64) string { return fmt.Sprintf("%.2fx", r) }

// label writes a store size with thousands separators: 1000 -> "1,000".
func label(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	}
}
