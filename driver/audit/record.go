package audit

import (
	"strconv"
	"time"

	"github.com/swarmkeep/swarmkeep/driver"
)

// FormatVersion is the record format this package writes and reads (the
// "v" field). See the package documentation for what each version means.
const FormatVersion = 1

// Decision sums up an answer for people reading the trail.
type Decision string

// Decisions. A stale last-known-good copy is still DecisionAllow: a value
// was served.
const (
	DecisionAllow Decision = "allow"
	DecisionDeny  Decision = "deny"
	DecisionError Decision = "error"
	// DecisionOperator marks an operator action (put, rm, rekey, ...),
	// not an answer to the engine: see Action.
	DecisionOperator Decision = "operator"
)

// Operator actions, the Action of a DecisionOperator record.
const (
	ActionInit   = "init"
	ActionPut    = "put"
	ActionRemove = "rm"
	ActionRekey  = "rekey"
	ActionImport = "import"
	// ActionRollback is for swarmkeep rollback: the stored name and the
	// version it puts back.
	ActionRollback = "rollback"
)

// Record is one line of the trail. It has no field that could hold a value;
// keep it that way.
type Record struct {
	V          int       `json:"v"`
	Time       time.Time `json:"time"`
	Secret     string    `json:"secret"`
	Stored     string    `json:"stored,omitempty"`
	Version    uint64    `json:"version,omitempty"`
	Backend    string    `json:"backend,omitempty"`
	Service    string    `json:"service,omitempty"`
	ServiceID  string    `json:"service_id,omitempty"`
	Task       string    `json:"task,omitempty"`
	TaskID     string    `json:"task_id,omitempty"`
	Image      string    `json:"image,omitempty"`
	Node       string    `json:"node,omitempty"`
	Decision   Decision  `json:"decision"`
	Class      string    `json:"class"`
	Cached     bool      `json:"cached"`
	Stale      bool      `json:"stale,omitempty"`
	StaleAgeMS int64     `json:"stale_age_ms,omitempty"`
	DoNotReuse bool      `json:"do_not_reuse"`
	Size       int       `json:"size,omitempty"`
	LatencyMS  float64   `json:"latency_ms"`
	// Rule names the access-policy rule that decided, when one did.
	Rule string `json:"rule,omitempty"`
	// Error is the line answered to the engine. It is the only free text
	// in a record, and the driver builds it without values.
	Error string `json:"error,omitempty"`

	// Operator actions (Decision DecisionOperator) only.
	//
	// Action is what was done to the store: one of the Action constants.
	Action string `json:"action,omitempty"`
	// User is who did it: the name of the real user ID, or SUDO_USER
	// when root runs the command for a sudo user.
	User string `json:"user,omitempty"`
	// UID is the real user ID of the process (0 under sudo).
	UID *int `json:"uid,omitempty"`
}

// DecisionOf files a class under allow, deny or error.
func DecisionOf(c driver.Class) Decision {
	switch c {
	case driver.ClassOK:
		return DecisionAllow
	case driver.ClassDenied, driver.ClassPolicyDenied:
		return DecisionDeny
	default:
		return DecisionError
	}
}

// FromEvent builds the record of one answer made at the given time. It copies
// selected fields only: never the request's labels or endpoint spec, which
// are not part of the format, and never the Go error, whose text has not been
// through the driver's line cleaning; the answered line has.
func FromEvent(ev driver.Event, at time.Time) Record {
	class := ev.Class
	if class == "" && ev.Err == nil && ev.Line == "" {
		class = driver.ClassOK
	}
	r := Record{
		V:          FormatVersion,
		Time:       at.UTC(),
		Stored:     ev.Spec.Name,
		Rule:       ev.Decision.Rule,
		Version:    ev.Version,
		Backend:    ev.Backend,
		Decision:   DecisionOf(class),
		Class:      string(class),
		Cached:     ev.Cached,
		Stale:      ev.Stale,
		DoNotReuse: ev.DoNotReuse,
		// Microseconds, as the log has it: finer is noise, and a float
		// keeps sub-millisecond cache hits readable.
		LatencyMS: float64(ev.Latency.Microseconds()) / 1000,
		Error:     ev.Line,
	}
	if r.Version == 0 {
		// Nothing served: record the version the labels pinned, if any.
		r.Version = ev.Spec.Version
	}
	if r.Backend == "" {
		r.Backend = ev.Spec.Backend
	}
	if ev.Stale {
		r.StaleAgeMS = ev.Age.Milliseconds()
	}
	if r.Decision == DecisionAllow {
		r.Size = ev.Size
	}
	if q := ev.Request; q != nil {
		r.Secret, r.Service, r.ServiceID = q.SecretName, q.ServiceName, q.ServiceID
		r.Task, r.TaskID, r.Image, r.Node = q.TaskName, q.TaskID, q.TaskImage, q.NodeID
	}
	return r
}

// appendLine appends the record's JSON and a newline to b: the bytes
// json.Marshal writes for a Record (field order, omitempty, escaping), built
// without reflection or allocation since it runs once per answer (see
// encode.go; TestAppendLineMatchesMarshal holds it to json.Marshal). Strings
// are escaped as encoding/json escapes them, control characters and
// invalid UTF-8 included, so the line is always one line.
func (r *Record) appendLine(b []byte) ([]byte, error) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(r.V), 10)
	b = append(b, `,"time":`...)
	var err error
	if b, err = appendTime(b, r.Time); err != nil {
		return b, err
	}
	b = appendField(b, "secret", r.Secret, false)
	b = appendField(b, "stored", r.Stored, true)
	if r.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, r.Version, 10)
	}
	b = appendField(b, "backend", r.Backend, true)
	b = appendField(b, "service", r.Service, true)
	b = appendField(b, "service_id", r.ServiceID, true)
	b = appendField(b, "task", r.Task, true)
	b = appendField(b, "task_id", r.TaskID, true)
	b = appendField(b, "image", r.Image, true)
	b = appendField(b, "node", r.Node, true)
	b = appendField(b, "decision", string(r.Decision), false)
	b = appendField(b, "class", r.Class, false)
	b = append(b, `,"cached":`...)
	b = strconv.AppendBool(b, r.Cached)
	if r.Stale {
		b = append(b, `,"stale":true`...)
	}
	if r.StaleAgeMS != 0 {
		b = append(b, `,"stale_age_ms":`...)
		b = strconv.AppendInt(b, r.StaleAgeMS, 10)
	}
	b = append(b, `,"do_not_reuse":`...)
	b = strconv.AppendBool(b, r.DoNotReuse)
	if r.Size != 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, int64(r.Size), 10)
	}
	b = append(b, `,"latency_ms":`...)
	if b, err = appendFloat(b, r.LatencyMS); err != nil {
		return b, err
	}
	b = appendField(b, "rule", r.Rule, true)
	b = appendField(b, "error", r.Error, true)
	b = appendField(b, "action", r.Action, true)
	b = appendField(b, "user", r.User, true)
	if r.UID != nil {
		b = append(b, `,"uid":`...)
		b = strconv.AppendInt(b, int64(*r.UID), 10)
	}
	return append(b, '}', '\n'), nil
}
