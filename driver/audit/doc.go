// Package audit is swarmkeep's audit trail: one structured record per
// GetSecret answer, and per change an operator command made (see Operator
// records), appended to a file that survives log rotation, and the reader
// behind swarmkeep audit.
//
// A record says who asked for which secret, what was decided and how fast;
// it never holds the value. The [driver.Event] it is built from carries no
// value to begin with, and the only free text copied, the error line, is the
// one already answered to the engine, which the driver builds without values.
//
// An answer leaves only after its record's write(2) has returned, as with
// Vault's audit devices; records queued while a write runs share the next
// one (group commit), so a burst costs fewer system calls than answers.
//
// The package never logs. Write failures are counted ([Writer.Errors],
// [Writer.LastError]) for the binary to log and report; they never fail or
// delay the request being answered.
//
// # Record format, version 1
//
// The file is JSON Lines: one JSON object per line, UTF-8, ending in "\n",
// in the order written (answers made at once may be microseconds out of time
// order). The encoder escapes control characters, so no field, not even
// the error line, can break a line or forge a record.
//
//	{"v":1,"time":"2025-01-02T03:04:05.123456789Z","secret":"app_db_password",
//	 "stored":"db_password","version":3,"backend":"local","service":"app_web",
//	 "service_id":"…","task":"app_web.1.…","task_id":"…","image":"nginx:1.27",
//	 "node":"…","decision":"allow","class":"ok","cached":true,"do_not_reuse":false,
//	 "size":24,"latency_ms":0.042}
//
// Always present:
//
//	v           format version: 1
//	time        when the answer was made, RFC 3339 with nanoseconds, UTC
//	secret      the Swarm secret's name ("" when the request could not be decoded)
//	decision    "allow" (a value was served), "deny" (a backend or policy
//	            refused the read: classes denied and policy_denied), "error",
//	            or "operator" for an operator action (see Operator records)
//	class       the outcome class: ok, bad_request, bad_label, unknown_backend,
//	            not_found, invalid_reference, corrupt, denied, unavailable,
//	            timeout, invalid_value (and policy_denied, reserved); and
//	            rollout: not an answer but an auto-rollout by swarmkeep agent
//	            (service, stored, version; allow when it converged, error
//	            with the reason when not), a record with no task
//	cached      a cache answered a fresh copy without asking the backend
//	do_not_reuse what the engine was told (false on failures)
//	latency_ms  time to answer, in milliseconds, microsecond precision
//
// Present when known (omitted when empty, zero or false):
//
//	stored      the stored name read
//	version     the stored version served; on a failure, the pinned version
//	            asked for (absent means the latest)
//	backend     the backend instance asked
//	service, service_id, task, task_id, image, node
//	            the requesting task, as the engine sent it (node is a node ID)
//	stale       a last-known-good copy was served because the backend failed
//	stale_age_ms the age of that copy
//	size        the served value's length in bytes
//	rule        the policy rule that decided (reserved for the policy)
//	error       the error line answered to the engine
//
// # Operator records
//
// The operator commands (swarmkeep init, put, rm, rekey, import) append a
// record to the same trail, with the same writer, after each change they
// made to a store, so the trail says who changed a value as well as who
// was served it. They are version 1 records told apart by their decision:
//
//	{"v":1,"time":"2025-01-02T03:04:05.123456789Z","secret":"",
//	 "stored":"db_password","version":4,"decision":"operator","class":"ok",
//	 "cached":false,"do_not_reuse":false,"latency_ms":0,
//	 "action":"put","user":"alice","uid":0}
//
//	decision    "operator": not an answer to the engine; readers that
//	            count answers skip it (a --decision allow filter never
//	            matches it)
//	class       "ok": only changes that were made are recorded
//	secret      "" (no Swarm secret is involved)
//	action      init, put, rm, rekey, import (or rollback)
//	user        who: the real user's name, or SUDO_USER when root runs the
//	            command through sudo
//	uid         the real user ID of the process (0 under sudo)
//	stored      the stored name (put, rm, import: one record per value);
//	version     the version written (put, import) or removed (rm; absent:
//	            the whole name)
//	backend     the --backend instance; absent for the host's local store
//
// Like every record, an operator record never holds a value.
//
// # Compatibility
//
// Readers must ignore fields they do not know: version 1 may gain optional
// fields. Removing a field or changing a field's meaning raises v, and
// [Scan] refuses records of a version it does not know rather than
// misreading them.
//
// # Rotation
//
// The file is opened with O_APPEND, so copytruncate rotation works as is.
// For rename rotation (logrotate's default create mode), the writer notices
// within [Options.CheckEvery] that the path names another file, or none, and
// opens the path again; [Writer.Reopen] (on SIGHUP) does it at once. Records
// written between the rename and the reopen land in the renamed file, so
// compress it one rotation late (logrotate delaycompress).
package audit
