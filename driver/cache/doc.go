// Package cache keeps a remote backend's answers fast when the backend is
// slow or down.
//
// Only the swarm leader calls the plugin: once per task, synchronously,
// and while it waits during a node's initial sync every store write on the
// leader is blocked. After a failover it asks again for every task of every
// node. A remote backend (etcd, Vault) that takes seconds to answer, or does
// not answer, would stall the whole cluster. A [Cache] wraps such a backend
// so that:
//
//   - a fresh answer (younger than TTL) comes from memory;
//   - a miss causes one backend call however many requests wait for it
//     (coalescing), each request still bounded by its own deadline;
//   - a backend failure, or a call slower than Timeout, is answered with
//     the newest last-known-good copy, from memory or from disk ([LKG]), if
//     it is at most MaxStale old, marked Secret.Stale with its Age;
//   - after a failure the backend is left alone for RetryAfter (an open
//     circuit), so a stopped backend costs no latency: requests are answered
//     from copies at once, and then one request probes the backend again.
//
// # What is never cached
//
// A reference with Reuse false (the engine gets a per-task copy) and an
// answer with Varies set (the value depends on the task) are never kept,
// never written to disk, never served stale and never shared between
// requests: each request makes its own backend call.
//
// # Real answers are not masked
//
// Not found, access denied, corrupt and invalid-reference answers come from
// a backend that works: they are passed on, never replaced by a stale copy.
// Not found is remembered for NegativeTTL and, since it is newer than any
// copy, also stops copies of that key from being served (and removes the
// disk copy, when the LKG supports [Forgetter]). Any other failure
// (backend.ErrUnavailable, a deadline, an error wrapping no sentinel, or the
// wrapped lazy backend failing to open) counts as unavailable.
//
// # Disk copies
//
// [NewStoreLKG] keeps last-known-good copies sealed in an encrypted store
// (see [OpenLKGStore]), so a restarted plugin can answer while its backend
// is down. A copy is written after a successful fetch only when the answer
// changed or the copy on disk was fetched more than MaxStale/2 earlier, so
// a busy key costs no disk write per request. Copies are written by one
// goroutine per cache, in the order they were queued, with the latest
// answer per key winning and a bound of its own per write; a failed write
// is tried again later. No request waits on the disk: the queue holds at
// most MaxEntries copies and drops the oldest when full. Until written, a
// queued copy is the one served. A copy keeps the time its answer was
// fetched, so its age is honest however late it is written. [Cache.Flush]
// writes the queue out; Close does so within a few seconds. LKG failures,
// and copies dropped unwritten, never fail a request; they are counted in
// [Stats].
//
// # Memory
//
// Entries, positive and negative, are bounded by MaxEntries with
// least-recently-used eviction. The cache zeroes the copies of values it
// holds when they are evicted or replaced, when they are found past
// MaxStale, and on Close; callers get their own copy of each value. The
// package never logs and never puts a value into an error.
package cache
