// Package backend is swarmkeep's backend contract: what a backend reads
// ([Ref]), what it answers ([Secret]), the errors it wraps, what it can do
// ([Capabilities]) and the registry of backend types by name.
//
// It imports nothing of the engine protocol (see package driver) and nothing
// of any backend, so a storage library (the encrypted store, etcd, Vault)
// depends only on this small package, and a new backend type is added by
// registering it here without touching any other code:
//
//	func init() {
//		backend.Register(backend.Type{Name: "vault", Open: open, Caps: backend.Capabilities{...}})
//	}
//
// # Errors
//
// Every error a backend returns wraps one of the sentinels ([ErrNotFound],
// [ErrInvalidRef], [ErrCorrupt], [ErrUnavailable], [ErrDenied],
// [ErrCannotOpen]); the driver sorts answers by them with errors.Is and
// tells the operator the fix. A backend never logs and never puts a value
// into an error.
//
// # Opening
//
// [Lazy] opens a backend on first use and again after a failure, so a
// store created after the plugin started, or a remote backend that comes
// back, is picked up without a restart.
package backend
