package main

// The backend types this binary serves. Each registers itself with the
// backend registry when imported; the etcd and Vault types have their own
// files so a build tag can leave them out (make build-small).
import (
	_ "github.com/swarmkeep/swarmkeep/driver/store"      // the "file" type
	_ "github.com/swarmkeep/swarmkeep/swarm/configstore" // the "swarm" type: the replicated store
)
