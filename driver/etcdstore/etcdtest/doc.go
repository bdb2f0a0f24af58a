// Package etcdtest starts real etcd servers for tests: one member or a
// cluster of several, optionally serving clients over TLS with client
// certificates, optionally with user authentication.
//
// Members run /usr/bin/etcd (Debian's etcd-server) on free 127.0.0.1
// ports, in a private temporary directory (on /dev/shm when it exists,
// since etcd fsyncs every write and the tests only need a throwaway
// store). Tests can stop, kill and restart members to exercise failover.
//
// When the binary is missing, [Require] and [Start] skip the test with a
// message saying which package to install, unless the environment has
// CI=true: a CI run that silently skipped every etcd test would prove
// nothing, so there it fails instead.
//
// Every wait is bounded; a member that does not come up in time fails the
// test with the tail of its log.
package etcdtest
