// Package api holds the wire types of writ's HTTP API: the request and
// response bodies that the server (package httpapi) decodes and encodes
// and the Go client (package client) sends and reads. Each is defined
// once, here, so the two sides cannot drift apart; docs/design.md §4.8
// lists the routes that carry them. A body that is one of the root
// package's types as it is (a lease, an approval request, a build result)
// is not repeated here.
//
// api imports only the standard library and the root package.
package api

// RFC 8693 identifiers used by delegation.
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// Status is the answer of GET /healthz ("ok") and GET /readyz ("ready").
type Status struct {
	Status string `json:"status"`
}
