// Package store is swarmkeep's encrypted, versioned record store, and the
// "file" backend built on it.
//
// A [Store] maps names (see [ValidateName]) to values of 1 byte to 1 MiB.
// Each [Store.Put] adds a version; [Store.Get] returns the latest or a
// pinned one. The store keeps up to MaxVersions versions of each name and
// never reuses a version number.
//
// The byte-level format is specified in FORMAT.md, next to this file.
//
// # Keys
//
// Values are sealed with XChaCha20-Poly1305 under a random data key (DEK).
// The associated data binds each ciphertext to its store ID, name,
// version, creation time and key ID, so it cannot be moved to another
// name, version or store. Each record also carries an HMAC over all of
// its bytes, so its version list and counter cannot be changed either.
//
// The data keys live in a keyring sealed under a key-encryption key (KEK)
// from a [KeySource]: a [KeyFile] (made by [GenerateKeyFile]) or a
// [PassphraseFile] stretched with argon2id. A source that does not open
// the keyring gives [ErrWrongKey].
//
// [Store.Rekey] replaces the data key and re-seals every record while
// other processes keep reading; [Store.ChangeKEK] re-wraps the keyring
// under another key file or passphrase.
//
// # Media
//
// A Store keeps its blobs on a [Medium], a small compare-and-swap key/blob
// interface. [DirMedium] is the local-directory medium: every write is a
// temp file, fsync, rename and directory fsync, so a crash leaves the old
// or the new record, never a torn one. Writers serialise on a store-wide
// flock; readers take no lock.
//
// # Errors
//
// Errors wrap the sentinels of package driver (ErrNotFound, ErrInvalidRef,
// ErrCorrupt, ErrUnavailable, ErrDenied) and name the record they concern.
// No error ever contains a value, and the package never logs.
//
// # Backend
//
// Importing the package registers the "file" backend.Backend, configured by
// the settings "dir" and exactly one of "key_file" or "passphrase_file".
package store
