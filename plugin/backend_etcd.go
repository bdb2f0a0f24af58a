//go:build !noetcd

package main

import _ "github.com/swarmkeep/swarmkeep/driver/etcdstore" // the "etcd" type
