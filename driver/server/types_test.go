package server

// The server imports no backend type; its tests use the ones the binary
// ships with.
import (
	_ "github.com/swarmkeep/swarmkeep/driver/etcdstore"
	_ "github.com/swarmkeep/swarmkeep/driver/store"
	_ "github.com/swarmkeep/swarmkeep/driver/vault"
)
