package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/swarmkeep/swarmkeep/driver/audit"
)

// auditFollowEvery is how often audit --follow looks for new records: the
// writer appends whole lines, so a poll is one read(2) and one stat(2).
const auditFollowEvery = 250 * time.Millisecond

// oldFilePolls is how many polls a renamed trail is still read after the
// path names a new file: the plugin's writer notices a rename within a
// second (audit.DefaultCheckEvery) and appends to the old file until then.
const oldFilePolls = 12

// The follow loop's clock and stop, variables so tests drive them.
var (
	auditFollowTicks = func() (<-chan time.Time, func()) {
		t := time.NewTicker(auditFollowEvery)
		return t.C, t.Stop
	}
	auditFollowContext = func() (context.Context, context.CancelFunc) {
		return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	}
)

// trailFollower reads a trail as it grows, as tail -F does: it follows the
// path through a rename rotation (reading the old file to its end first) and
// starts over when the file is truncated (copytruncate). Only whole lines
// are passed on; a line still being written waits for its newline.
type trailFollower struct {
	path   string
	filter audit.Filter
	emit   func(audit.Record) error
	stderr io.Writer

	f       *os.File
	id      os.FileInfo
	off     int64
	partial []byte

	old      *os.File // the renamed file, read until oldLeft polls pass
	oldPart  []byte
	oldLeft  int
	checkBuf []byte
}

// open records what f is, so a rotation can be told from growth.
func (t *trailFollower) open() error {
	st, err := t.f.Stat()
	if err != nil {
		return err
	}
	t.id = st
	return nil
}

func (t *trailFollower) close() {
	if t.f != nil {
		t.f.Close()
	}
	if t.old != nil {
		t.old.Close()
	}
}

// poll passes on every whole record written since the last poll.
func (t *trailFollower) poll() error {
	if t.old != nil {
		if err := t.drain(t.old, &t.oldPart); err != nil {
			return err
		}
		if t.oldLeft--; t.oldLeft <= 0 {
			t.old.Close()
			t.old, t.oldPart = nil, nil
		}
	}
	if err := t.drain(t.f, &t.partial); err != nil {
		return err
	}
	st, err := os.Stat(t.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // rotated away and not created again yet: keep reading f
	case err != nil:
		return err
	case !os.SameFile(st, t.id):
		nf, err := os.Open(t.path)
		if err != nil {
			return trailError(t.path, err)
		}
		if t.old != nil {
			t.old.Close()
		}
		t.old, t.oldPart, t.oldLeft = t.f, t.partial, oldFilePolls
		t.f, t.partial, t.off = nf, nil, 0
		if err := t.open(); err != nil {
			return err
		}
		return t.drain(t.f, &t.partial)
	case st.Size() < t.off:
		// copytruncate: the file starts over.
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		t.off, t.partial = 0, nil
		return t.drain(t.f, &t.partial)
	}
	return nil
}

// drain reads f to its current end and passes on the whole lines; the
// rest waits in partial for its newline.
func (t *trailFollower) drain(f *os.File, partial *[]byte) error {
	if t.checkBuf == nil {
		t.checkBuf = make([]byte, 64<<10)
	}
	for {
		n, err := f.Read(t.checkBuf)
		if f == t.f {
			t.off += int64(n)
		}
		*partial = append(*partial, t.checkBuf[:n]...)
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.path, err)
		}
	}
	end := bytes.LastIndexByte(*partial, '\n')
	if end < 0 {
		return nil
	}
	whole := (*partial)[:end+1]
	st, err := audit.Scan(bytes.NewReader(whole), t.filter, t.emit)
	*partial = append((*partial)[:0], (*partial)[end+1:]...)
	if err != nil {
		return fmt.Errorf("%s: %w", t.path, err)
	}
	if st.Skipped > 0 {
		fmt.Fprintf(t.stderr, "swarmkeep audit: skipped %d damaged line(s) in %s (a torn or partial write)\n", st.Skipped, t.path)
	}
	return nil
}
