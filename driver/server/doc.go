// Package server assembles swarmkeep's plugin from its settings: backends
// (each behind [backend.Lazy], remote ones behind a cache with encrypted
// last-known-good copies), the access policy, the audit trail and the log,
// the driver, its protocol handler and the listeners.
//
// It is the one place that turns settings into a running plugin: the
// binary's serve command, the benchmark and the end-to-end suite all go
// through [New] and [Server.Serve], so what is measured and tested is what
// ships. Every setting is defined once, in [Settings]; config.json, serve
// --help and the README's settings table are checked against it.
//
// Backend types are not imported here: the binary imports the ones it is
// built with, so a build can leave etcd or Vault out.
package server
