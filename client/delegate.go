package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ"
)

// DelegateRequest asks a run to start a child run (RFC 8693 field names).
type DelegateRequest struct {
	GrantType        string        `json:"grant_type"`
	SubjectToken     string        `json:"subject_token"`
	SubjectTokenType string        `json:"subject_token_type"`
	Scope            *writ.Scope   `json:"scope"`
	Agent            string        `json:"agent"`
	Profile          string        `json:"profile"`
	Task             string        `json:"task,omitempty"`
	MaxDuration      writ.Duration `json:"maxDuration,omitempty"`
	DPoPJKT          string        `json:"dpop_jkt,omitempty"`
}

// Delegated is the answer: the child run and its first token.
type Delegated struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Run             Run    `json:"run"`
}

// Delegate starts a child of run parent. The client must be the parent's
// DPoP-bound holder; the subject token is the client's own token.
func (c *Client) Delegate(ctx context.Context, parent string, req *DelegateRequest) (*Delegated, error) {
	if req.SubjectToken == "" {
		req.SubjectToken = c.token
	}
	if req.GrantType == "" {
		req.GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
		req.SubjectTokenType = "urn:ietf:params:oauth:token-type:jwt"
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var d Delegated
	if err := c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(parent)+"/delegate", bytes.NewReader(body), &d); err != nil {
		return nil, err
	}
	return &d, nil
}
