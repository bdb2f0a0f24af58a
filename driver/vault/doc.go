// Package vault is swarmkeep's backend for the KV secrets engines of
// HashiCorp Vault and OpenBao, registered as backend type "vault".
//
// # Reading
//
// A request's KV path is the secret's swarmkeep.path label or, without one,
// the path_template setting rendered over the request (default {{.Name}}).
// The value is the whole KV document as compact JSON with sorted keys, or
// with swarmkeep.field one field: a string as its bytes, anything else as
// JSON. KV v2 honours swarmkeep.version; a deleted or destroyed version is
// not found. A template that reads .Service makes the answer vary by
// requester, so the driver asks the engine for a per-task copy.
//
// # Authentication
//
// Credentials come only from files: a token file (re-read when it changes),
// AppRole role and secret ID files, or a JWT file (re-read at each login).
// A background renewer renews the token at two thirds of its lease and logs
// in again when renewal is refused or the max TTL draws near; a read that
// gets a 403 logs in again once and retries once.
//
// # Errors
//
// Every error wraps one of the driver's sentinels: a 403 or a refused login
// is ErrDenied, a 404 ErrNotFound, no answer, a 5xx or a 429 ErrUnavailable
// (and context.DeadlineExceeded when the deadline ran out). What the server
// does not say is asked after the failure: lookup-self tells a revoked or
// expired token from a policy refusal (Vault words both the same), and a
// mount check (sys/internal/ui/mounts, cached a minute) tells a wrong mount
// or kv_version setting from a missing secret. Such settings errors, and an
// address with the wrong scheme, wrap ErrCannotOpen and name the setting.
// Error text is built here, one line, with every credential cut out; the
// package never logs.
//
// The client is the api module of OpenBao (github.com/openbao/openbao/api/v2),
// which speaks the same HTTP API as Vault's for every path used here. See
// README.md for the endpoints and what was tested.
package vault
