// Package httpapi is writ's JSON HTTP API: one route table, authentication
// middleware, error-returning handlers and the single table that maps
// [writ.Kind] to an HTTP status. It is part of the writ server and has no
// API stability; the wire contract is docs/design.md §4.8.
//
// # Security properties
//
//   - Every route requires a credential except discovery, health, metrics
//     and POST /v1/runs, whose credential is the signed trigger itself.
//   - Human API tokens are looked up by their public id and their secret is
//     compared in constant time against a stored SHA-256; a human removed
//     from the config loses access on the next request.
//   - Bodies are capped (64 KiB for triggers, 1 MiB otherwise), nested at
//     most 32 deep, decoded strictly; form-encoded bodies are refused.
//   - Unauthenticated junk (bad envelopes, unknown keys, oversized bodies)
//     is counted in metrics and logged at most once a second; refusals of a
//     known signer's trigger are audit events, one per trigger and reason.
//   - Error bodies carry only [writ.Error] messages; anything else is a
//     generic "internal error" logged with the request id.
package httpapi
