// Package etcdstore keeps swarmkeep's encrypted record store in an etcd
// v3 cluster, and registers it as the "etcd" backend.Backend.
//
// The records are exactly those of the file store (package store,
// FORMAT.md): the same keyring, the same record blobs, the same names and
// version numbers, sealed in the plugin before they are sent. etcd only
// ever sees ciphertext, under keys <prefix>keyring and <prefix>r/<name>.
// Managers that share a cluster and a prefix share one store, so the
// swarm leader can answer wherever leadership moves.
//
// # Medium
//
// [Medium] implements store.Medium: a key's revision is its etcd
// ModRevision, and every write or delete is a transaction that compares
// it, so concurrent writers never lose an update. A write whose result
// was lost with a member is read back before it is reported, so it is
// neither lost nor applied twice. Listing is paginated, keys only.
//
// It also provides the store's writer lock ([Medium.Lock]): an etcd
// mutex under <prefix>.lock/ on a lease, fenced into every write. Rekey
// relies on it, as it relies on flock(2) for the file store.
//
// # Replica
//
// The plugin's backend ([Replica], replicabackend.go) answers from a local
// copy of the whole store, kept current by a watch and saved to disk
// (FORMAT in replicafile.go), which is also its last-known-good copy while
// etcd is unreachable. Each plugin publishes the revision its copy has
// applied under <prefix>.plugins/ so a writer can wait for every copy
// ([Medium.WaitApplied], publish.go). The operator commands use the
// [Medium] directly.
//
// # Credentials
//
// TLS client certificates and the etcd password are read from files,
// and read again when they change: the certificate at the next TLS
// handshake once its files' identity, size or mtime moved, the password
// when etcd next rejects our token (which a password change causes).
//
// # Settings
//
// endpoints (required; comma-separated http:// or https:// URLs), prefix
// (default /swarmkeep/, must end with '/'), tls_ca, tls_cert, tls_key,
// username with password_file, dial_timeout (default 3s), and exactly
// one of key_file or passphrase_file for the store's keyring. Unknown
// settings are refused.
//
// # Errors
//
// Errors wrap the driver sentinels: backend.ErrNotFound for absent
// records, backend.ErrUnavailable when no member answers in time,
// backend.ErrDenied when etcd refuses the user, password or permission,
// backend.ErrInvalidRef for a record larger than etcd accepts. Calls
// honour their context's deadline; one without a deadline is bounded at
// 10 s. The package never logs, and no error carries a value.
package etcdstore
