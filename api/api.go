// Package api holds the wire types of writ's HTTP API: the request and
// response bodies that the server (package httpapi) decodes and encodes
// and the Go client (package client) sends and reads. Each is defined
// once, here, so the two sides cannot drift apart; docs/design.md §4.8
// lists the routes that carry them.
//
// api imports only the standard library and the root package.
package api

import (
	"time"

	"github.com/writ-dev/writ"
)

// RFC 8693 identifiers used by delegation.
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// RunView is a run as the API shows it: the run and its SPIFFE ID.
type RunView struct {
	*writ.Run
	SPIFFEID string `json:"spiffeId"`
}

// StartedRun is the answer to POST /v1/runs: the run and its first API
// token (DPoP-bound when the request carried a DPoP proof).
type StartedRun struct {
	RunView
	Token          string    `json:"token"`
	TokenType      string    `json:"tokenType"`
	TokenExpiresAt time.Time `json:"tokenExpiresAt"`
}

// TransitionRequest is the optional body of end, kill, suspend and resume.
type TransitionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// DelegateRequest is the body of POST /v1/runs/{id}/delegate: RFC 8693
// token exchange field names, with the requested scope as a JSON object
// and the child's agent, profile and task.
type DelegateRequest struct {
	GrantType          string        `json:"grant_type"`
	SubjectToken       string        `json:"subject_token"`
	SubjectTokenType   string        `json:"subject_token_type"`
	RequestedTokenType string        `json:"requested_token_type,omitempty"`
	Audience           string        `json:"audience,omitempty"`
	Scope              *writ.Scope   `json:"scope"`
	Agent              string        `json:"agent"`
	Profile            string        `json:"profile"`
	Task               string        `json:"task,omitempty"`
	MaxDuration        writ.Duration `json:"maxDuration,omitempty"`
	// DPoPJKT binds the child's first token to the key of the launcher
	// that will hold it (RFC 9449 §10); empty gives an unbound ≤ 5-minute
	// token.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// DelegateResponse is the RFC 8693 answer, with the child run.
type DelegateResponse struct {
	AccessToken     string  `json:"access_token"`
	IssuedTokenType string  `json:"issued_token_type"`
	TokenType       string  `json:"token_type"`
	ExpiresIn       int64   `json:"expires_in"`
	Run             RunView `json:"run"`
}

// RunTokenRequest asks for a token of the calling run for another audience.
type RunTokenRequest struct {
	Audience string `json:"audience,omitempty"`
	// Bind asks for a DPoP-bound API token (a refresh of the caller's own);
	// otherwise the token is an unbound ≤ 5-minute bearer token.
	Bind bool `json:"bind,omitempty"`
}

// RunTokenResponse carries a minted token.
type RunTokenResponse struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"`
	Audience  string    `json:"audience"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// TokenRequest asks for a human API token. Human defaults to the caller;
// a token for someone else needs an admin.
type TokenRequest struct {
	Human string        `json:"human,omitempty"`
	TTL   writ.Duration `json:"ttl,omitempty"`
}

// TokenResponse carries a new human API token. Token is shown once and
// never stored.
type TokenResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	Human     string    `json:"human"`
	ExpiresAt time.Time `json:"expiresAt"`
}
