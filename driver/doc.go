// Package driver is swarmkeep's engine protocol: it turns the engine's
// GetSecret request into a reference to a stored value, asks the backend
// route the secret's labels name, and answers the value or one short,
// actionable error line. It knows the backend contract ([backend.Backend])
// but no backend type, no setting and no listener.
//
// # Request path
//
// One GetSecret, hop by hop; each hop names the package that owns it.
//
//	dockerd (swarm leader) POST /SecretProvider.GetSecret, JSON
//	 -> plugin socket       /run/docker/plugins/<id>/swarmkeep.sock      driver/server (ListenUnix)
//	 -> http.Server         serves the handler, drains requests on stop  driver/server
//	 -> handler             POST only, JSON in and out                   driver (handler.go)
//	 -> decode              Request: secret, labels, service, NodeID     driver (request.go)
//	 -> labels              swarmkeep.* labels -> Spec; bad label: error driver (labels.go)
//	 -> policy              services label, then the access policy       driver, driver/policy
//	 -> route               swarmkeep.backend, else the default instance driver (driver.go)
//	 -> deadline            answers within REQUEST_TIMEOUT, bounds stuck driver (bound.go)
//	 -> cache               TTL, coalescing, circuit, last-known-good    driver/cache
//	 -> backend.Lazy        opens the backend on first use, retries      driver/backend
//	 -> backend             file, etcd or vault                          driver/store, etcdstore, vault
//	<-  {Value, DoNotReuse} or {Err: one line: secret, cause, fix}       driver (errors.go)
//
// Every answer is also an [Event] to the [Observer]; driver/server turns it
// into the log line, the audit record (driver/audit) and the metrics
// (driver/metrics). The cache sits only in front of remote instances: the
// local store is already on this host.
//
// # Who owns what
//
//   - driver: the protocol (handler, request, labels, routing, deadline,
//     error line and its classes). Never logs, never opens a backend.
//   - driver/backend: the contract every backend implements (Backend, Ref,
//     Secret, the error values), the type registry with each type's
//     capabilities, and the lazy opener. Imports nothing of the protocol.
//   - driver/server: assembly. The settings table (server.Settings, from
//     which config.json, serve --help and the README's table come), Load,
//     BACKENDS parsing, caches, audit, log, listeners. The only place
//     besides the binary that logs.
//   - driver/store (type "file"), driver/etcdstore ("etcd"), driver/vault
//     ("vault"): backends; each registers its type when imported.
//   - driver/cache, driver/policy, driver/audit, driver/metrics: one concern
//     each, used by driver or driver/server.
//   - plugin: the binary. The command table, the operator commands, and the
//     backend types it is built with (one file each, so the build tags
//     noetcd and novault can leave etcd and Vault out).
//
// # Why it looks the way it does
//
// Only the swarm leader calls the plugin, once per task, synchronously, and
// while a node's initial sync waits on us the leader's store writes are
// blocked. So every request is bounded by a deadline the driver enforces
// itself (a backend that ignores its context still cannot hold a request),
// and backends are opened lazily and retried, so a store that is missing at
// start does not keep the plugin from starting or from serving other
// backends.
//
// Swarm hides driver errors at debug level; the user sees only "secret not
// found". Every answer is therefore also reported to an [Observer], which the
// binary uses to log the failure with the task's context. The driver itself
// never logs and never puts a value into an error.
package driver
