// Package writ holds the domain vocabulary of writ, the control plane that
// governs autonomous coding agents: runs and their states, signed triggers
// and the scopes they fix, the patterns scopes are written in, audit events,
// principals and the one error type whose message is safe to show a caller.
//
// The package imports only the standard library and does no I/O. Adapters
// (sqlstore, httpapi, …) and engines (trigger, token, policy, …) depend on
// it; it depends on none of them.
//
// # Security properties
//
// Scope checks are pure functions here ([Scope.Outside]), so the same rule
// decides whether a trigger fits its signer, agent and profile and, later,
// whether a child run fits its parent. A pattern covers another only when
// every name the second matches is matched by the first; the check errs on
// the side of refusing.
package writ
