// Package rollout brings a changed value to the services that use it.
//
// A swarmkeep secret stays a driver-backed Swarm secret: its value lives in
// the backend and every new task asks the plugin for it. So a changed value
// needs no new secret object, no repointed service and no value in Raft; it
// needs new tasks. This package finds which services use a stored name,
// resolving each secret object exactly as the plugin resolves a request
// ([driver.ParseSpec], [driver.Spec.Route]: labels, stack mapping, backend
// routing; exact names, never prefixes), starts the same rolling update as
// `docker service update --force` (TaskTemplate.ForceUpdate, the service's
// own UpdateConfig), waits for it to converge and checks in the audit trail
// that every new task was served the new version.
//
// [Auto] is the agent loop behind the swarmkeep.rollout=auto service label:
// it watches a [Source] of new versions and rolls the opted-in services, on
// the swarm leader only, one rollout per service at a time.
//
// The package talks to the Docker API only through [API], so tests stand a
// fake in for the engine. It never reads or holds a value.
package rollout
