//go:build !novault

package main

import _ "github.com/swarmkeep/swarmkeep/driver/vault" // the "vault" type
