package driver

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Secret labels are the only per-secret settings that reach a plugin: Swarm
// stores a secret's driver options but never sends them. Every label under
// LabelPrefix must be one of these; an unknown or malformed one is an error,
// so a typo cannot silently change what a service receives.
const (
	LabelPrefix = "swarmkeep."
	// LabelName is the stored name to read. Default: the secret's name; for
	// a secret of stack S named "S_key" by docker stack deploy, "S/key".
	LabelName = backend.LabelName
	// LabelVersion pins a stored version (1, 2, ...). Default: the latest.
	LabelVersion = backend.LabelVersion
	// LabelReuse "false" asks the engine for a per-task copy (DoNotReuse).
	LabelReuse = LabelPrefix + "reuse"
	// LabelEncoding says how the stored bytes are turned into the value.
	LabelEncoding = LabelPrefix + "encoding"
	// LabelBackend picks a configured backend instance by name.
	LabelBackend = LabelPrefix + "backend"
	// LabelPath overrides a remote backend's path template (Vault).
	LabelPath = backend.LabelPath
	// LabelField picks one field of a structured value (Vault).
	LabelField = backend.LabelField
	// LabelServices narrows who may read the secret: comma-separated globs
	// of service names. It can only narrow what the access policy grants.
	LabelServices = LabelPrefix + "services"

	// StackNamespaceLabel is set by docker stack deploy on every secret and
	// service of a stack.
	StackNamespaceLabel = "com.docker.stack.namespace"
)

// Encoding turns stored bytes into the delivered value.
type Encoding string

const (
	// EncodingRaw delivers the stored bytes as they are.
	EncodingRaw Encoding = "raw"
	// EncodingBase64 treats the stored value as the text base64 or
	// base64 -w0 writes (see DecodeBase64) and delivers the decoded
	// bytes, so binary values can be stored from a text source.
	EncodingBase64 Encoding = "base64"
)

// Spec is what a secret's name and labels ask for.
type Spec struct {
	// Name is the stored name to read.
	Name string
	// Version is the pinned version, 0 for the latest.
	Version uint64
	// Reuse false means DoNotReuse: every task gets its own copy.
	Reuse bool
	// Encoding of the stored value.
	Encoding Encoding
	// Backend is the instance name; empty means the configured default.
	Backend string
	// Path and Field address a value in a remote backend.
	Path  string
	Field string
	// Services, when set, are the service-name globs allowed to read.
	Services []string
	// Stack is the stack namespace label, if any.
	Stack string
}

// LabelError is a bad swarmkeep label. Its text names the label and what a
// valid value looks like; the value is quoted, since labels are not secret.
type LabelError struct {
	Label, Value, Want string
}

func (e *LabelError) Error() string {
	if e.Value == "" && e.Want == "" {
		for _, k := range knownLabels() {
			if strings.EqualFold(k, e.Label) {
				return fmt.Sprintf("unknown label %s: labels are case-sensitive, did you mean %s", quoteShort(e.Label), k)
			}
		}
		// The key is the user's: quoted and cut, like a value.
		return fmt.Sprintf("unknown label %s (known: %s)", quoteShort(e.Label), strings.Join(knownLabels(), ", "))
	}
	return fmt.Sprintf("label %s=%s is invalid, want %s", e.Label, quoteShort(e.Value), e.Want)
}

var labelParsers = map[string]func(*Spec, string) error{
	LabelName: func(s *Spec, v string) error {
		if v == "" || len(v) > 255 || strings.ContainsAny(v, " \t\r\n%") {
			return &LabelError{LabelName, v, "a stored name of 1 to 255 characters without spaces"}
		}
		s.Name = v
		return nil
	},
	LabelVersion: func(s *Spec, v string) error {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return &LabelError{LabelVersion, v, "a version number of 1 or more"}
		}
		s.Version = n
		return nil
	},
	LabelReuse: func(s *Spec, v string) error {
		switch v {
		case "true":
			s.Reuse = true
		case "false":
			s.Reuse = false
		default:
			return &LabelError{LabelReuse, v, "true or false"}
		}
		return nil
	},
	LabelEncoding: func(s *Spec, v string) error {
		switch Encoding(v) {
		case EncodingRaw, EncodingBase64:
			s.Encoding = Encoding(v)
		default:
			return &LabelError{LabelEncoding, v, "raw or base64"}
		}
		return nil
	},
	LabelPath: func(s *Spec, v string) error {
		if v == "" || len(v) > 512 || strings.ContainsAny(v, " \t\r\n%?#") || strings.Contains(v, "..") || strings.HasPrefix(v, "/") {
			return &LabelError{LabelPath, v, "a relative path without spaces, '..', '?', '#' or a leading '/'"}
		}
		s.Path = v
		return nil
	},
	LabelField: func(s *Spec, v string) error {
		if v == "" || len(v) > 255 || strings.ContainsAny(v, "\r\n%") {
			return &LabelError{LabelField, v, "a field name of 1 to 255 characters"}
		}
		s.Field = v
		return nil
	},
	LabelServices: func(s *Spec, v string) error {
		var globs []string
		for _, g := range strings.Split(v, ",") {
			g = strings.TrimSpace(g)
			// Only '*' and '?', like the access policy's globs.
			if g == "" || strings.ContainsAny(g, "%/[]{}\\") {
				return &LabelError{LabelServices, v, "comma-separated service name globs, like web,api_*"}
			}
			globs = append(globs, g)
		}
		s.Services = globs
		return nil
	},
	LabelBackend: func(s *Spec, v string) error {
		if !ValidInstanceName(v) {
			return &LabelError{LabelBackend, v, "a backend name of letters, digits, '-' and '_'"}
		}
		s.Backend = v
		return nil
	},
}

func knownLabels() []string {
	out := make([]string, 0, len(labelParsers))
	for k := range labelParsers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ParseSpec reads a secret's name and labels. Labels are checked in sorted
// order so the same bad secret always reports the same first error.
func ParseSpec(secretName string, labels map[string]string) (Spec, error) {
	spec := Spec{Reuse: true, Encoding: EncodingRaw, Stack: labels[StackNamespaceLabel]}
	// A few swarmkeep.* labels at most: their names sort on the stack.
	var buf [8]string
	keys := buf[:0]
	for k := range labels {
		// Any case of the prefix is ours: a Swarmkeep.name that is
		// ignored would silently read another value.
		if hasFoldPrefix(k, LabelPrefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		// The parsers get a pointer, which sends the spec to the heap:
		// only for a secret that has swarmkeep.* labels.
		sp := new(Spec)
		*sp = spec
		slices.Sort(keys)
		for _, k := range keys {
			parse, ok := labelParsers[k]
			if !ok {
				return Spec{}, &LabelError{Label: k}
			}
			if err := parse(sp, labels[k]); err != nil {
				return Spec{}, err
			}
		}
		spec = *sp
	}
	if spec.Name == "" {
		spec.Name = defaultStoredName(secretName, spec.Stack)
	}
	return spec, nil
}

// hasFoldPrefix reports whether s starts with prefix under Unicode case
// folding (so "SwarmKeep." and even "ſwarmkeep." count), rune by rune, as
// the folded forms may differ in length.
func hasFoldPrefix(s, prefix string) bool {
	for _, p := range prefix {
		if s == "" {
			return false
		}
		r, size := utf8.DecodeRuneInString(s)
		if r != p && !strings.EqualFold(string(r), string(p)) {
			return false
		}
		s = s[size:]
	}
	return true
}

// defaultStoredName maps the "<stack>_key" name docker stack deploy gives a
// stack's secret to "<stack>/key": one compose file works in any stack, each
// stack reading its own namespace of stored names, which is also what the
// default access policy lets a stack's services read.
func defaultStoredName(secretName, stack string) string {
	if stack != "" {
		if rest, ok := strings.CutPrefix(secretName, stack+"_"); ok && rest != "" {
			return stack + "/" + rest
		}
	}
	return secretName
}

// AllowsService reports whether the swarmkeep.services label, if any, lets
// service read the secret.
func (s Spec) AllowsService(service string) bool {
	if len(s.Services) == 0 {
		return true
	}
	for _, g := range s.Services {
		if ok, _ := path.Match(g, service); ok {
			return true
		}
	}
	return false
}

// Route names the backend instance that answers for the secret: its
// swarmkeep.backend label, else dflt, the plugin's default instance. Tools
// that must agree with the plugin on where a secret is read (swarmkeep uses,
// rollout) call this rather than repeat the rule.
func (s Spec) Route(dflt string) string {
	if s.Backend != "" {
		return s.Backend
	}
	return dflt
}

// ValidInstanceName reports whether s can name a backend instance: names appear in labels, settings and
// metrics, so they stay short and plain.
func ValidInstanceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// quoteShort quotes a user-supplied string for an error line: at most 64
// bytes, and never a '%', which the engine may pass through a format call.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.ReplaceAll(strconv.Quote(s), "%", "?")
}
