package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/swarmkeep/swarmkeep/driver"
	"github.com/swarmkeep/swarmkeep/driver/audit"
	"github.com/swarmkeep/swarmkeep/driver/store"
)

// importValueLimit is the largest value Swarm can ever serve (the same
// limit put applies): storing a larger one would only fail later, at every
// task start.
const importValueLimit = driver.MaxValueBytes

// importLineLimit bounds one input line: the base64 of the largest value,
// its name and the JSON around them.
const importLineLimit = 1 << 20

func init() {
	register("import", command{
		summary: "store many values at once, from JSON Lines on stdin (all or nothing)",
		usage: `Usage: swarmkeep import [store flags] < FILE

Stores a new version of each name in the stream on stdin, all or nothing: a
bad line anywhere, or a failure, stores none of them, and on the local store
a crash leaves either all of them or none. Values never appear in argv or in
any message. A name given twice gets two versions, in order.

One JSON object per line, with "name" and exactly one of:
  "value"          the value as a JSON string (UTF-8 text, stored as its bytes)
  "value_base64"   the value in standard base64 (any bytes)
Empty lines are skipped. Values must be 1 to 511999 bytes (Swarm serves no
larger secret). For example:

  {"name":"db/password","value":"s3cr3t"}
  {"name":"tls/key","value_base64":"LS0tLS1CRUdJTi..."}

On an etcd or replicated (swarm) store (--backend) the records are written one
by one, so a failure part way leaves the earlier ones stored.

Each value stored is recorded in the audit trail (name and version, with the
OS user; never the value).

` + auditFileUsage + storeFlagsUsage,
		run: changeCommand("import", 0, "no arguments (the values come on stdin)", nil, runImport),
	})
}

func runImport(ctx context.Context, env *cliEnv, s *store.Store, _ []string, record func(...audit.Record)) error {
	pairs, err := readImport(env.stdin)
	defer func() {
		for _, p := range pairs {
			clear(p.Value)
		}
	}()
	if err != nil {
		return err
	}
	if len(pairs) == 0 {
		return errors.New("no values on stdin (one JSON object per line: see swarmkeep import --help)")
	}
	versions, err := s.PutMany(ctx, pairs)
	if err != nil {
		if errors.Is(err, store.ErrBatchCommitted) || errors.Is(err, store.ErrPartlyWritten) {
			return err
		}
		return fmt.Errorf("nothing imported: %w", err)
	}
	names := map[string]bool{}
	recs := make([]audit.Record, len(pairs))
	for i, p := range pairs {
		names[p.Name] = true
		recs[i] = audit.Record{Action: audit.ActionImport, Stored: p.Name}
		if i < len(versions) {
			recs[i].Version = versions[i]
		}
	}
	fmt.Fprintf(env.stderr, "imported %d value(s) for %d name(s)\n", len(pairs), len(names))
	record(recs...)
	return nil
}

// importLine is one line of the stream. Pointers tell an absent field from
// an empty one.
type importLine struct {
	Name   *string `json:"name"`
	Value  *string `json:"value"`
	Base64 *string `json:"value_base64"`
}

// readImport parses the whole stream before anything is stored, so a bad
// line rejects the import. Errors give the line number and, once it is
// known, the name; never a value or a piece of the line.
func readImport(r io.Reader) ([]store.Pair, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), importLineLimit)
	var pairs []store.Pair
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		p, err := parseImportLine(line)
		clear(sc.Bytes())
		if err != nil {
			return pairs, fmt.Errorf("line %d: %w; nothing imported", n, err)
		}
		pairs = append(pairs, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return pairs, fmt.Errorf("line %d: longer than %d bytes; nothing imported", n+1, importLineLimit)
		}
		return pairs, fmt.Errorf("read stdin: %w; nothing imported", err)
	}
	return pairs, nil
}

func parseImportLine(line []byte) (store.Pair, error) {
	// encoding/json would quietly turn bad UTF-8 into U+FFFD: a changed
	// value, stored without a word.
	if !utf8.Valid(line) {
		return store.Pair{}, errors.New("not valid UTF-8 (give binary values as value_base64)")
	}
	var l importLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return store.Pair{}, jsonLineError(err)
	}
	if dec.More() {
		return store.Pair{}, errors.New("more than one JSON value (one object per line)")
	}
	if l.Name == nil {
		return store.Pair{}, errors.New(`no "name"`)
	}
	name := *l.Name
	if err := store.ValidateName(name); err != nil {
		return store.Pair{}, err
	}
	var v []byte
	switch {
	case l.Value != nil && l.Base64 != nil:
		return store.Pair{}, fmt.Errorf(`%s: both "value" and "value_base64"; give one`, name)
	case l.Value != nil:
		v = []byte(*l.Value)
	case l.Base64 != nil:
		var err error
		if v, err = base64.StdEncoding.DecodeString(*l.Base64); err != nil {
			return store.Pair{}, fmt.Errorf(`%s: "value_base64" is not standard base64`, name)
		}
	default:
		return store.Pair{}, fmt.Errorf(`%s: no "value" or "value_base64"`, name)
	}
	switch {
	case len(v) == 0:
		return store.Pair{}, fmt.Errorf("%s: empty value (Swarm refuses empty secrets)", name)
	case len(v) > importValueLimit:
		n := len(v)
		clear(v)
		return store.Pair{}, fmt.Errorf("%s: value is %d bytes; Swarm serves secrets of at most %d bytes", name, n, importValueLimit)
	}
	return store.Pair{Name: name, Value: v}, nil
}

// jsonLineError describes a decoding failure by its kind and position
// only: encoding/json's own messages quote pieces of the input, which may
// be a value.
func jsonLineError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("not a valid JSON object (error at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errors.New(`not a JSON object (want {"name":...,"value":...})`)
		}
		return fmt.Errorf("field %q must be a string", typ.Field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON object")
	default:
		return errors.New(`unknown field (want "name" and "value" or "value_base64")`)
	}
}
