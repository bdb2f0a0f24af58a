package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// logEntry is one line of the engine's log about the plugin, as swarmkeep
// logs prints it.
type logEntry struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	// Engine marks the engine's own lines that name the plugin (enable
	// failures, dial errors), as opposed to the plugin's output.
	Engine bool   `json:"engine,omitempty"`
	Msg    string `json:"msg"`
}

// parseEngineLine reads one line of the dockerd log. The engine writes a
// plugin's output as logrus text whatever its own --log-format (moby
// makeLoggerStreams: a fresh logrus logger, stdout at info, stderr at
// error, tagged plugin=<id>); its own lines may be text or JSON. A prefix
// before time= (syslog, journalctl's short output) is skipped. ok is false
// for a line that is neither.
func parseEngineLine(line string) (e logEntry, plugin string, ok bool) {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "{") {
		var j struct {
			Time   time.Time `json:"time"`
			Level  string    `json:"level"`
			Msg    string    `json:"msg"`
			Plugin string    `json:"plugin"`
		}
		if json.Unmarshal([]byte(line), &j) != nil {
			return logEntry{}, "", false
		}
		return logEntry{Time: j.Time, Level: j.Level, Msg: j.Msg}, j.Plugin, true
	}
	if i := strings.Index(line, "time="); i > 0 {
		line = line[i:]
	}
	kvs := parseLogfmt(line)
	if len(kvs) == 0 || kvs[0].k != "time" {
		return logEntry{}, "", false
	}
	var rest []string
	for _, kv := range kvs {
		switch kv.k {
		case "time":
			e.Time, _ = time.Parse(time.RFC3339Nano, kv.v)
		case "level":
			e.Level = kv.v
		case "msg":
			e.Msg = kv.v
		case "plugin":
			plugin = kv.v
		default:
			rest = append(rest, kv.k+"="+quoteIfNeeded(kv.v))
		}
	}
	if len(rest) > 0 {
		e.Msg += " " + strings.Join(rest, " ")
	}
	return e, plugin, true
}

// pluginEntry turns the engine's record of a plugin line into the plugin's
// own level and message. The plugin writes info and debug to stdout (engine
// level info) and the rest to stderr (level error), with a word first where
// that level is not exact (driver/server/logformat.go). Older versions wrote
// logrus text lines of their own to stderr: those are read through.
func pluginEntry(e logEntry) logEntry {
	if strings.HasPrefix(e.Msg, "time=") {
		if inner, _, ok := parseEngineLine(e.Msg); ok && inner.Level != "" {
			inner.Time = e.Time // the engine's time: the inner one is the same or absent
			return inner
		}
	}
	for _, w := range []struct{ word, level string }{
		{"debug: ", "debug"}, {"warning: ", "warning"}, {"fatal: ", "fatal"},
	} {
		if m, ok := strings.CutPrefix(e.Msg, w.word); ok {
			e.Msg, e.Level = m, w.level
			return e
		}
	}
	return e
}

type logKV struct{ k, v string }

// parseLogfmt reads key=value pairs, values bare or Go-quoted (logrus'
// TextFormatter quotes with %q).
func parseLogfmt(s string) []logKV {
	var out []logKV
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return out
		}
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexByte(s, ' ')
		if eq <= 0 || (sp >= 0 && sp < eq) {
			// A bare word: not logfmt past this point.
			return out
		}
		k := s[:eq]
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return append(out, logKV{k, s})
			}
			v, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else if i := strings.IndexByte(s, ' '); i >= 0 {
			v, s = s[:i], s[i:]
		} else {
			v, s = s, ""
		}
		out = append(out, logKV{k, v})
	}
}

func quoteIfNeeded(v string) string {
	if v == "" || strings.ContainsAny(v, " \"=") {
		return strconv.Quote(v)
	}
	return v
}
