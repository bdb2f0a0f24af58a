// Package agent runs swarmkeep's manager agent: long-lived loops that need the
// Docker API of the manager they run on, which the plugin itself never gets.
// Examples are mirroring the replicated store into this manager's store folder,
// publishing this manager's plugin state for `swarmkeep status`, and rolling
// services out when a value changes.
//
// One agent runs beside each manager's engine (a systemd unit; see the README).
// Each loop decides for itself whether it acts on every manager (mirroring) or
// only on the leader (rollouts): [Env.Leader] tells, at the moment it is asked.
//
// The agent holds no value in memory longer than one copy needs and logs none;
// loops return errors and [Run] logs them, restarting the loop with a backoff so
// that one failing concern (a backend down) does not stop the others.
package agent
