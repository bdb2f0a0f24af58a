package server

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
)

// How the engine records a managed plugin's output (moby
// daemon/pkg/plugin/manager.go makeLoggerStreams, the same in 20.10 and
// 28.x): each line the plugin writes becomes the msg of a line of a fresh
// logrus logger of the engine's, stdout at level info and stderr at level
// error, tagged plugin=<id>, in logrus' text format whatever dockerd's own
// --log-format and --log-level say:
//
//	time="2026-12-04T20:11:22Z" level=error msg="..." plugin=7ff18a16...
//
// The engine quotes msg with Go's %q, so a '"' or '\' the plugin writes
// comes out escaped once more, and a plugin that writes logrus text lines of
// its own to stderr reads level=error msg="time=\"...\" level=info msg=\"...\"".
// So the plugin writes plain lines: no time (the engine adds it), the level
// by the stream (info and debug to stdout, warnings and errors to stderr),
// and a word for the level only where the engine's is not exact ("debug: ",
// "warning: "), then the message and its fields as key=value. Double quotes
// are written as single quotes, so the engine's quoting adds no backslash.
//
// swarmkeep logs reads these lines back (plugin/logscmd.go).

// maxLogLine bounds one line. Engines up to 20.10 read the plugin's output
// with a bufio.Scanner of 64 KiB (logrus 1.7 writerScanner): a longer line
// stops the copy, and the plugin then blocks on a full pipe. Ours are a few
// hundred bytes; this keeps any line far below that limit.
const maxLogLine = 8 << 10

// Level words in a line where the engine's level is not exact: the engine
// logs stdout at info and stderr at error.
const (
	debugWord   = "debug: "
	warningWord = "warning: "
	fatalWord   = "fatal: "
)

// NewEngineLogger is the plugin log as the engine should receive it: plain
// lines (see above), info and debug to stdout, the rest to stderr.
func NewEngineLogger(stdout, stderr io.Writer, lvl logrus.Level) *logrus.Logger {
	l := logrus.New()
	l.SetLevel(lvl)
	// The hook writes each line; logrus' own output is switched off.
	l.SetOutput(io.Discard)
	l.SetFormatter(discardFormatter{})
	l.AddHook(&streamHook{stdout: stdout, stderr: stderr})
	return l
}

// discardFormatter spares logrus formatting a line nobody reads.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// streamHook writes each entry as one plain line to the stream of its level.
// logrus fires hooks without its lock, so the hook has its own: lines from
// concurrent requests never interleave.
type streamHook struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
	line           []byte
}

func (*streamHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *streamHook) Fire(e *logrus.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.stderr
	if e.Level >= logrus.InfoLevel {
		out = h.stdout
	}
	h.line = appendPlainLine(h.line[:0], e.Level, e.Message, e.Data)
	_, err := out.Write(h.line)
	return err
}

// appendPlainLine appends one line: the level word where the stream does not
// tell it, the message, the fields sorted by key, a newline.
func appendPlainLine(b []byte, lvl logrus.Level, msg string, data logrus.Fields) []byte {
	switch lvl {
	case logrus.DebugLevel, logrus.TraceLevel:
		b = append(b, debugWord...)
	case logrus.WarnLevel:
		b = append(b, warningWord...)
	case logrus.FatalLevel, logrus.PanicLevel:
		b = append(b, fatalWord...)
	}
	b = appendClean(b, msg)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b = append(b, ' ')
		b = appendClean(b, k)
		b = append(b, '=')
		b = appendValue(b, data[k])
	}
	if len(b) > maxLogLine {
		b = append(b[:maxLogLine-3], "..."...)
	}
	return append(b, '\n')
}

// appendValue writes a field value as is when it is one word, else between
// single quotes (a policy reason, an error).
func appendValue(b []byte, v any) []byte {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case error:
		s = x.Error()
	default:
		s = fmt.Sprint(x)
	}
	if s != "" && !strings.ContainsAny(s, " =\t'\"") {
		return appendClean(b, s)
	}
	b = append(b, '\'')
	b = appendClean(b, s)
	return append(b, '\'')
}

// appendClean writes s on one line, with each double quote as a single
// quote (the engine would escape it), and control characters and invalid
// UTF-8 as '?'.
func appendClean(b []byte, s string) []byte {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && isInvalidAt(s, i):
			b = append(b, '?')
		case r == '"':
			b = append(b, '\'')
		case r < 0x20 || r == 0x7f:
			if r == '\t' {
				b = append(b, ' ')
			} else {
				b = append(b, '?')
			}
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

func isInvalidAt(s string, i int) bool {
	_, n := utf8.DecodeRuneInString(s[i:])
	return n <= 1
}
