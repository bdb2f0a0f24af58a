package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/swarmkeep/swarmkeep/driver/backend"
)

// Class sorts a failed request for logs, metrics and the audit trail.
type Class string

// Classes of outcome. ClassOK is a served value.
const (
	ClassOK           Class = "ok"
	ClassBadRequest   Class = "bad_request"
	ClassBadLabel     Class = "bad_label"
	ClassNoBackend    Class = "unknown_backend"
	ClassNotFound     Class = "not_found"
	ClassInvalidRef   Class = "invalid_reference"
	ClassCorrupt      Class = "corrupt"
	ClassDenied       Class = "denied"
	ClassPolicyDenied Class = "policy_denied"
	ClassUnavailable  Class = "unavailable"
	ClassTimeout      Class = "timeout"
	ClassInvalidValue Class = "invalid_value"
	ClassSettings     Class = "backend_settings"
)

// Limits Swarm puts on a value (ValidateSecretPayload): 1 byte to under
// 500 KiB. A value outside them is dropped by the engine without a word, so
// the driver refuses it with an explanation instead.
const (
	MinValueBytes = 1
	MaxValueBytes = 500*1024 - 1
)

// errInvalidValue marks a value the backend answered but Swarm would refuse.
var errInvalidValue = errors.New("invalid value")

// classify maps an error to its class by the sentinel it wraps.
func classify(err error) Class {
	if err == nil {
		// Before the *LabelError below, which escapes to the heap: an
		// answer served allocates nothing here.
		return ClassOK
	}
	var le *LabelError
	switch {
	case errors.As(err, &le):
		return ClassBadLabel
	case errors.Is(err, errUnknownBackend):
		return ClassNoBackend
	case errors.Is(err, ErrPolicyDenied):
		return ClassPolicyDenied
	case errors.Is(err, backend.ErrSettings):
		return ClassSettings
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, backend.ErrNotFound):
		return ClassNotFound
	case errors.Is(err, backend.ErrInvalidRef):
		return ClassInvalidRef
	case errors.Is(err, backend.ErrCorrupt):
		return ClassCorrupt
	case errors.Is(err, backend.ErrDenied):
		return ClassDenied
	case errors.Is(err, errInvalidValue):
		return ClassInvalidValue
	default:
		return ClassUnavailable
	}
}

// fixes says, per class, what the operator does next. Kept next to the
// classes so every class has one.
var fixes = map[Class]string{
	ClassBadLabel:     "recreate the secret with valid swarmkeep.* labels (see README, Labels)",
	ClassNoBackend:    "use a backend named in the plugin settings, or drop the swarmkeep.backend label",
	ClassNotFound:     "store the value, or fix the swarmkeep.name/swarmkeep.version labels",
	ClassInvalidRef:   "fix the secret's swarmkeep.name or swarmkeep.version label",
	ClassCorrupt:      "run swarmkeep verify on the manager, check the key file, then put the value again",
	ClassDenied:       "check the backend credentials in the plugin's config mount",
	ClassPolicyDenied: "grant it in the policy file on the managers (see swarmkeep policy explain), or store it under this stack's namespace",
	ClassUnavailable:  "check the plugin log and the backend, then restart the task",
	ClassTimeout:      "check the backend's health, or raise the plugin's REQUEST_TIMEOUT",
	ClassSettings:     "change that setting in the plugin's BACKENDS (docker plugin disable, docker plugin set, docker plugin enable); Swarm retries the task",
	ClassInvalidValue: "store a value Swarm accepts (1 byte to 511999 bytes), or fix swarmkeep.encoding",
}

// fixWrongKey is the fix for a corrupt class that is a wrong key: the
// records are fine, so verify and putting values again cannot help.
const fixWrongKey = "give the plugin the key the store was created with (KEY_FILE or PASSPHRASE_FILE on the config mount: docker plugin disable, set, enable)"

// errorLine is the Err answered to the engine: one short line naming the
// secret, the cause and the fix. The engine shows it as the task error and may
// pass it through a format call, so it carries no '%' and no newline.
func errorLine(secret string, class Class, err error) string {
	fix := fixes[class]
	var re *refError
	switch {
	case class == ClassNotFound && errors.As(err, &re):
		fix = re.notFoundFix()
	case class == ClassCorrupt && errors.Is(err, backend.ErrWrongKey):
		fix = fixWrongKey
	}
	return quoteFree(fmt.Sprintf("swarmkeep: secret %s: %v; fix: %s", quoteShort(secret), err, fix))
}

// quoteFree makes a line safe to hand to the engine: one line, no '%', at
// most maxLine bytes.
func quoteFree(line string) string {
	const maxLine = 400
	line = strings.NewReplacer("%", "?", "\n", " ", "\r", " ").Replace(line)
	if len(line) > maxLine {
		line = line[:maxLine-3] + "..."
	}
	return line
}

// refError carries what a backend error is about, so the fix can name the
// exact command to run.
type refError struct {
	name    string // stored name
	backend string // instance name
	caps    backend.Capabilities
	deflt   bool // the default instance
	err     error
}

func (e *refError) Error() string { return e.err.Error() }
func (e *refError) Unwrap() error { return e.err }

func (e *refError) notFoundFix() string {
	if !e.caps.Writable {
		return "write the value to backend " + e.backend + ", or fix the swarmkeep.name/path/field/version labels"
	}
	cmd := "swarmkeep put " + e.name
	// The operator commands default to the host's local store.
	if !e.deflt || !e.caps.Local {
		cmd += " --backend " + e.backend
	}
	return "store it on a manager with: " + cmd + ", or fix the swarmkeep.name/swarmkeep.version labels"
}
