package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"
)

// maxLine bounds one line. Records are well under 4 KiB (the error line is
// at most 400 bytes); a longer line means this is not an audit file.
const maxLine = 1 << 20

// Filter selects records. Zero fields match everything.
type Filter struct {
	// Secret matches the secret's name or its stored name; Service the
	// service's name or ID. Both accept path.Match globs ("app_*").
	Secret, Service string
	// Decision and Backend match exactly.
	Decision, Backend string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
}

// Validate checks the globs and the decision, so a typo is an error rather
// than an empty answer.
func (f Filter) Validate() error {
	for _, g := range []string{f.Secret, f.Service} {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("bad pattern %q: %w", g, err)
		}
	}
	switch Decision(f.Decision) {
	case "", DecisionAllow, DecisionDeny, DecisionError, DecisionOperator:
	default:
		return fmt.Errorf("unknown decision %q: want allow, deny, error or operator", f.Decision)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return errors.New("the time range is empty: until is not after since")
	}
	return nil
}

// Match reports whether r passes the filter. Call Validate first: a bad
// pattern matches nothing.
func (f Filter) Match(r Record) bool {
	switch {
	case f.Secret != "" && !glob(f.Secret, r.Secret) && !glob(f.Secret, r.Stored),
		f.Service != "" && !glob(f.Service, r.Service) && !glob(f.Service, r.ServiceID),
		f.Decision != "" && string(r.Decision) != f.Decision,
		f.Backend != "" && r.Backend != f.Backend,
		!f.Since.IsZero() && r.Time.Before(f.Since),
		!f.Until.IsZero() && !r.Time.Before(f.Until):
		return false
	}
	return true
}

func glob(pattern, s string) bool {
	ok, _ := path.Match(pattern, s)
	return ok
}

// Stats says what a Scan read.
type Stats struct {
	// Records is the number of valid records, Matched those passed to fn.
	Records, Matched int
	// Skipped counts lines that are not JSON: a torn last line while the
	// plugin writes, or half a record a failed write left behind.
	Skipped int
}

// ErrFormat marks a record this reader cannot read: not a swarmkeep audit
// record, or one written in a newer format.
var ErrFormat = errors.New("unknown audit record format")

// Scan reads records from r, in file order, and calls fn with each one that
// passes f; an error from fn stops the scan and is returned. Lines that are
// not JSON are skipped and counted: the last may be torn while the plugin
// writes, and a failed write can leave half a record. A JSON line with a
// format version other than FormatVersion stops the scan with ErrFormat,
// since guessing at it could misreport what was served.
func Scan(r io.Reader, f Filter, fn func(Record) error) (Stats, error) {
	var st Stats
	if err := f.Validate(); err != nil {
		return st, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			st.Skipped++
			continue
		}
		if rec.V != FormatVersion {
			return st, fmt.Errorf("line %d: %w: v=%d, this swarmkeep reads v=%d", n, ErrFormat, rec.V, FormatVersion)
		}
		st.Records++
		if !f.Match(rec) {
			continue
		}
		st.Matched++
		if err := fn(rec); err != nil {
			return st, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return st, fmt.Errorf("%w: a line is longer than %d bytes", ErrFormat, maxLine)
		}
		return st, err
	}
	return st, nil
}
