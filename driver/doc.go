// Package driver is swarmkeep's secretprovider logic: it turns the engine's
// GetSecret request into a reference to a stored value, asks a backend for it
// and answers the value or one short, actionable error line.
//
// # Flow
//
//	request (with NodeID) -> labels -> backend instance -> encoding -> size check -> response
//
// # Why it looks the way it does
//
// Only the swarm leader calls the plugin, once per task, synchronously, and
// while a node's initial sync waits on us the leader's store writes are
// blocked. So every request is bounded by a deadline the driver enforces
// itself (a backend that ignores its context still cannot hold a request),
// and backends are opened lazily and retried, so a store that is missing at
// start does not keep the plugin from starting or from serving other
// backends.
//
// Swarm hides driver errors at debug level; the user sees only "secret not
// found". Every answer is therefore also reported to an [Observer], which the
// binary uses to log the failure with the task's context. The driver itself
// never logs and never puts a value into an error.
package driver
