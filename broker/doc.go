// Package broker issues just-in-time credentials as leases bound to a run,
// and revokes them when the run stops or the lease expires, through a
// durable queue.
//
// Part of the writ server; no API stability.
package broker
