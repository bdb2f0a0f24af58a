package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/store"
)

// lsEntry is one line of ls: what --format json and templates see. It
// holds no value, so no format can print one.
type lsEntry struct {
	Name     string    `json:"name"`
	Versions int       `json:"versions"`
	Latest   uint64    `json:"latest"`
	Updated  time.Time `json:"updated"`
	Size     int       `json:"size"`
}

// lsVersion is one line of ls NAME.
type lsVersion struct {
	Name    string    `json:"name"`
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Size    int       `json:"size"`
}

// prefixFilter collects --prefix P and --filter name=P: a name matches
// when it starts with any of them (docker ORs the filters of one key, and
// its name filters match a prefix).
type prefixFilter []string

func (p *prefixFilter) String() string { return "" }

func (p *prefixFilter) Set(v string) error {
	*p = append(*p, v)
	return nil
}

func (p prefixFilter) match(name string) bool {
	if len(p) == 0 {
		return true
	}
	for _, x := range p {
		if strings.HasPrefix(name, x) {
			return true
		}
	}
	return false
}

// nameFilter is --filter: docker's KEY=VALUE, of which ls knows name.
type nameFilter struct{ p *prefixFilter }

func (n nameFilter) String() string { return "" }

func (n nameFilter) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k != "name" {
		return errors.New("want name=PREFIX, the only filter ls has")
	}
	return n.p.Set(val)
}

func runLs() func(*cliEnv, []string) error {
	var prefixes prefixFilter
	var quiet bool
	var format string
	return storeCommand("ls", -1, "at most one NAME", func(fs *flag.FlagSet) {
		prefixes = nil
		fs.Var(&prefixes, "prefix", "name prefix")
		fs.Var(nameFilter{&prefixes}, "filter", "name=PREFIX")
		fs.Var(nameFilter{&prefixes}, "f", "name=PREFIX")
		fs.BoolVar(&quiet, "q", false, "names only")
		fs.BoolVar(&quiet, "quiet", false, "names only")
		fs.StringVar(&format, "format", "", "table, json or a template")
	}, func(ctx context.Context, env *cliEnv, s *store.Store, pos []string) error {
		f, err := parseFormat(format)
		if err != nil {
			return err
		}
		if quiet && !f.table() {
			return fmt.Errorf("%w: -q and --format contradict each other: give one", errUsage)
		}
		if len(pos) == 1 && len(prefixes) > 0 {
			return fmt.Errorf("%w: NAME lists one name's versions, --prefix and --filter list names: give one", errUsage)
		}
		return listStore(ctx, env, s, pos, prefixes, quiet, f)
	})
}

func listStore(ctx context.Context, env *cliEnv, s *store.Store, pos []string, prefixes prefixFilter, quiet bool, f outFormat) error {
	// tabwriter writes each cell on its own: one write(2) per cell to a
	// terminal or pipe was most of the time of a 100,000-name listing.
	bw := bufio.NewWriterSize(env.stdout, 64<<10)
	defer bw.Flush()
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if len(pos) == 1 {
		e, err := s.Info(ctx, pos[0])
		if err != nil {
			return err
		}
		if f.table() && !quiet {
			fmt.Fprintln(tw, "VERSION\tCREATED\tSIZE")
		}
		for _, v := range e.Versions {
			var err error
			switch {
			case quiet:
				_, err = fmt.Fprintf(bw, "%d\n", v.Version)
			case f.table():
				_, err = fmt.Fprintf(tw, "%d\t%s\t%d\n", v.Version, v.Created.UTC().Format(time.RFC3339), v.Size)
			default:
				err = f.item(bw, lsVersion{Name: e.Name, Version: v.Version, Created: v.Created.UTC(), Size: v.Size})
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var rows []lsEntry
	// The store lists in name order.
	err := s.List(ctx, func(e store.Entry) error {
		if len(e.Versions) == 0 || !prefixes.match(e.Name) {
			return nil
		}
		last := e.Versions[len(e.Versions)-1]
		row := lsEntry{Name: e.Name, Versions: len(e.Versions), Latest: last.Version, Updated: last.Created.UTC(), Size: last.Size}
		switch {
		case quiet:
			_, err := fmt.Fprintln(bw, e.Name)
			return err
		case f.table():
			rows = append(rows, row)
			return nil
		}
		return f.item(bw, row)
	})
	if err != nil || quiet || !f.table() {
		return err
	}
	return writeLsTable(bw, rows)
}

// writeLsTable writes the name listing as tabwriter would (columns two
// spaces apart, the last one unpadded) in one pass over preformatted
// cells: tabwriter's per-cell work was a tenth of a 100,000-name ls.
func writeLsTable(w *bufio.Writer, rows []lsEntry) error {
	head := [5]string{"NAME", "VERSIONS", "LATEST", "UPDATED", "SIZE"}
	var width [4]int
	for i := range width {
		width[i] = len(head[i])
	}
	digits := func(n uint64) int { return len(strconv.FormatUint(n, 10)) }
	for _, r := range rows {
		width[0] = max(width[0], len(r.Name))
		width[1] = max(width[1], digits(uint64(r.Versions)))
		width[2] = max(width[2], digits(r.Latest))
		width[3] = max(width[3], len(time.RFC3339)-5) // 2006-01-02T15:04:05Z in UTC
	}
	line := make([]byte, 0, 128)
	pad := func(cell []byte, start, w int) []byte {
		for n := len(cell) - start; n < w+2; n++ {
			cell = append(cell, ' ')
		}
		return cell
	}
	line = append(line, head[0]...)
	for i := 1; i < 5; i++ {
		line = pad(line, len(line)-len(head[i-1]), width[i-1])
		line = append(line, head[i]...)
	}
	line = append(line, '\n')
	if _, err := w.Write(line); err != nil {
		return err
	}
	for _, r := range rows {
		line = append(line[:0], r.Name...)
		line = pad(line, 0, width[0])
		s := len(line)
		line = strconv.AppendInt(line, int64(r.Versions), 10)
		line = pad(line, s, width[1])
		s = len(line)
		line = strconv.AppendUint(line, r.Latest, 10)
		line = pad(line, s, width[2])
		s = len(line)
		line = r.Updated.AppendFormat(line, time.RFC3339)
		line = pad(line, s, width[3])
		line = strconv.AppendInt(line, int64(r.Size), 10)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}
