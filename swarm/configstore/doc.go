// Package configstore is the "swarm" store medium: swarmkeep's sealed records
// kept as Swarm config objects, so a swarm with several managers gets a
// replicated store with no cluster beyond the swarm itself.
//
// # Layout
//
// Each medium key (a record "r/NAME" or the store's "keyring") has one head
// config, named <prefix>.h.<sha256(key)[:40 hex]>, whose data is the key
// itself and whose labels name the data configs (chunks, < 1,000,000 bytes
// each, the engine refuses 1,024,000) holding the blob, its size and SHA-256.
// A blob is only ever a sealed record or the sealed keyring: never a value.
//
// # Why a head per key, and not one config per revision
//
// Config data is immutable but a config's labels can be updated, and an
// update carries the object's version: Raft (swarmkit's store) refuses an
// update at a stale version ("update out of sequence"). That is a real
// compare-and-swap on one object, so Write and Delete are one CAS on the
// head, the Revision is the head's version index (the Raft index of the
// commit, never reused), and a delete leaves a tombstone head (no chunks),
// so a writer holding a revision from before the delete fails its CAS. A
// design where a config name encodes key and revision gets exclusive
// creation from name uniqueness, but once a superseded config is removed a
// stale writer can create its name again; telling it apart needs ordering
// checks after the fact. Chunks also lift the engine's per-config size
// limit: a record keeps up to max-versions values of up to 500 KiB.
//
// Every write goes through the manager's control API, which forwards it to
// the Raft leader and returns after the commit: an acknowledged write is on
// a majority of managers. The plugin never talks to Docker: the agent's
// mirror loop ([Mirror]) copies the heads' blobs into each manager's store
// folder, which the plugin reads as a file store.
package configstore
