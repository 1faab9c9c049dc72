package api

import (
	"time"

	"github.com/writ-dev/writ"
)

// RunView is a run as the API shows it: the run and its SPIFFE ID. GET
// /v1/runs/{id} and the transitions answer one.
type RunView struct {
	writ.Run
	SPIFFEID string `json:"spiffeId"`
}

// RunList is the answer of GET /v1/runs, newest first.
type RunList struct {
	Runs []RunView `json:"runs"`
}

// StartedRun is the answer to POST /v1/runs: the run, its SPIFFE ID and
// its first API token (DPoP-bound when the request carried a DPoP proof).
//
// It is flat rather than a RunView and a token so that a holder of a run
// and a token from elsewhere (a delegation's child and its access token)
// builds one field by field; the token fields are omitted when empty, as
// in a StartedRun a client filled from a RunView.
type StartedRun struct {
	writ.Run
	SPIFFEID       string    `json:"spiffeId"`
	Token          string    `json:"token,omitempty"`
	TokenType      string    `json:"tokenType,omitempty"`
	TokenExpiresAt time.Time `json:"tokenExpiresAt,omitzero"`
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

// HeartbeatResponse answers POST /v1/runs/{id}/heartbeat: the run's state
// and when the next heartbeat is due.
type HeartbeatResponse struct {
	Run      writ.RunID    `json:"run"`
	State    writ.RunState `json:"state"`
	At       time.Time     `json:"at"`
	Interval writ.Duration `json:"interval"`
	Missed   int           `json:"missed"`
}

// KillSwitchRequest is the optional body of agent disable and freeze.
type KillSwitchRequest struct {
	Reason string `json:"reason,omitempty"`
}

// KillSwitchResponse says what a kill switch did (agent disable and
// enable, freeze and unfreeze), or, for GET /v1/freeze, how they stand.
type KillSwitchResponse struct {
	Agent     string                `json:"agent,omitempty"`
	Disabled  bool                  `json:"disabled,omitempty"`
	Frozen    bool                  `json:"frozen"`
	Killed    []writ.RunID          `json:"killed,omitempty"`
	Suspended []writ.RunID          `json:"suspended,omitempty"`
	Resumed   []writ.RunID          `json:"resumed,omitempty"`
	Changed   bool                  `json:"changed"`
	State     *writ.KillSwitchState `json:"state,omitempty"`
}
