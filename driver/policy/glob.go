package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxPattern bounds one glob. Real patterns are stored names and image
// references, far shorter; the bound keeps a hostile file from building
// huge regexps.
const maxPattern = 1024

// Glob is a compiled pattern. One rule for every field: "*" and "?" stay
// within a '/'-separated segment, "**" crosses segments. Stored names,
// images and node IDs thus read alike, and "payments/*" can never reach
// payments/admin/root by accident.
//
// Most patterns in real files are a literal or "prefix/**"; those match by
// string comparison, which keeps Decide free of regexp work. Every pattern
// is still compiled to a regexp at load, so the slow path and the fast path
// cannot disagree about what is valid.
type Glob struct {
	src  string
	kind globKind
	lit  string // the literal, or the prefix for globPrefix
	toks []tok  // for globTokens
	re   *regexp.Regexp
}

type globKind uint8

const (
	globExact  globKind = iota // no wildcard
	globPrefix                 // literal followed by one trailing "**"
	globTokens                 // anything else: see matchToks
)

// tok is one element of a pattern: a literal run or a wildcard.
type tok struct {
	op  byte // 'l' literal, '?', '*', 'D' for "**", 'S' for "**/"
	lit string
}

// errGlob is wrapped by every pattern error, so tests and callers can tell
// a bad pattern from a bad file structure.
var errGlob = errors.New("invalid pattern")

// CompileGlob compiles a pattern. Empty patterns, runs of three or more
// '*', control characters and the characters "[]{}\" are refused: the
// latter are reserved, so that a reader who expects a character class or
// alternation gets an error instead of a silent literal match.
func CompileGlob(pattern string) (*Glob, error) {
	switch {
	case pattern == "":
		return nil, fmt.Errorf("%w: empty", errGlob)
	case len(pattern) > maxPattern:
		return nil, fmt.Errorf("%w: longer than %d bytes", errGlob, maxPattern)
	case strings.Contains(pattern, "***"):
		return nil, fmt.Errorf("%w %q: more than two '*' in a row", errGlob, pattern)
	}
	for _, r := range pattern {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return nil, fmt.Errorf("%w %q: control character or invalid UTF-8", errGlob, pattern)
		}
		if strings.ContainsRune(`[]{}\`, r) {
			return nil, fmt.Errorf("%w %q: %q is reserved", errGlob, pattern, r)
		}
	}
	var b strings.Builder
	var toks []tok
	// (?s): . matches a newline too, as the fast path's ** does.
	b.WriteString(`(?s)^`)
	for i := 0; i < len(pattern); i++ {
		if c := pattern[i]; c != '*' && c != '?' {
			if n := len(toks); n > 0 && toks[n-1].op == 'l' {
				toks[n-1].lit += string(c)
			} else {
				toks = append(toks, tok{op: 'l', lit: string(c)})
			}
		}
		switch c := pattern[i]; {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			i++
			// "a/**/b" and "**/b" also match with no segment in between,
			// as in .gitignore, so "**/" reads "any number of segments".
			if (i == 1 || pattern[i-2] == '/') && i+1 < len(pattern) && pattern[i+1] == '/' {
				b.WriteString(`(?:.*/)?`)
				toks = append(toks, tok{op: 'S'})
				i++
			} else {
				b.WriteString(`.*`)
				toks = append(toks, tok{op: 'D'})
			}
		case c == '*':
			b.WriteString(`[^/]*`)
			toks = append(toks, tok{op: '*'})
		case c == '?':
			b.WriteString(`[^/]`)
			toks = append(toks, tok{op: '?'})
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", errGlob, pattern, err)
	}
	g := &Glob{src: pattern, kind: globTokens, toks: toks, re: re}
	if !strings.ContainsAny(pattern, "*?") {
		g.kind, g.lit = globExact, pattern
	} else if p, ok := strings.CutSuffix(pattern, "**"); ok && !strings.ContainsAny(p, "*?") {
		g.kind, g.lit = globPrefix, p
	}
	return g, nil
}

// String returns the pattern as written.
func (g *Glob) String() string { return g.src }

// Match reports whether s matches the whole pattern.
func (g *Glob) Match(s string) bool {
	switch g.kind {
	case globExact:
		return s == g.lit
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	}
	budget := matchBudget
	if m := matchToks(g.toks, s, &budget); budget > 0 {
		return m
	}
	// A pattern with many stars against a long input can backtrack for a
	// long time; the regexp engine is linear, so it takes over.
	return g.re.MatchString(s)
}

// matchBudget bounds matchToks' steps. Real patterns need a few dozen.
const matchBudget = 512

// matchToks matches by backtracking, which for the short patterns of a
// policy is several times faster than the regexp engine and allocates
// nothing. It gives up (budget <= 0) rather than run long.
func matchToks(toks []tok, s string, budget *int) bool {
	for len(toks) > 0 {
		if *budget--; *budget <= 0 {
			return false
		}
		t := toks[0]
		toks = toks[1:]
		switch t.op {
		case 'l':
			if !strings.HasPrefix(s, t.lit) {
				return false
			}
			s = s[len(t.lit):]
		case '?':
			r, n := utf8.DecodeRuneInString(s)
			if n == 0 || r == '/' {
				return false
			}
			s = s[n:]
		case '*', 'D':
			if len(toks) == 0 {
				return t.op == 'D' || !strings.Contains(s, "/")
			}
			for i := 0; i <= len(s); i++ {
				if matchToks(toks, s[i:], budget) {
					return true
				}
				if i < len(s) && s[i] == '/' && t.op == '*' || *budget <= 0 {
					return false
				}
			}
			return false
		case 'S':
			if matchToks(toks, s, budget) {
				return true
			}
			for i := 0; i < len(s) && *budget > 0; i++ {
				if s[i] == '/' && matchToks(toks, s[i+1:], budget) {
					return true
				}
			}
			return false
		}
	}
	return s == ""
}

// ServicesLabel is the secret label that narrows which services may read
// it: a comma-separated list of service-name globs. The secret's labels are
// set by whoever creates the secret, so this label can only take access
// away; the policy decides what may be granted.
const ServicesLabel = "swarmkeep.services"

// CheckServices validates a ServicesLabel value, for the label parser: an
// empty list or an invalid glob is an error.
func CheckServices(globs string) error {
	if strings.TrimSpace(globs) == "" {
		return fmt.Errorf("%w: empty service list", errGlob)
	}
	for g := range strings.SplitSeq(globs, ",") {
		if _, err := CompileGlob(strings.TrimSpace(g)); err != nil {
			return err
		}
	}
	return nil
}

// NarrowedByServices reports whether a ServicesLabel value excludes
// service, that is whether the request must be denied. An empty value does
// not narrow. A value that does not parse narrows everything: the label is
// checked when the secret is parsed, and failing closed here keeps a bad
// label from ever granting.
func NarrowedByServices(globs string, service string) bool {
	if globs == "" {
		return false
	}
	if CheckServices(globs) != nil {
		return true
	}
	for p := range strings.SplitSeq(globs, ",") {
		g, _ := CompileGlob(strings.TrimSpace(p))
		if g.Match(service) {
			return false
		}
	}
	return true
}
