package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/api"
)

// DelegateRequest asks a run to start a child run (RFC 8693 field names).
type DelegateRequest = api.DelegateRequest

// Delegated is the answer: the child run and its first token.
type Delegated = api.DelegateResponse

// Delegate starts a child of run parent. The client must be the parent's
// DPoP-bound holder; the subject token is the client's own token.
func (c *Client) Delegate(ctx context.Context, parent string, req *DelegateRequest) (*Delegated, error) {
	if req.SubjectToken == "" {
		req.SubjectToken = c.token
	}
	if req.GrantType == "" {
		req.GrantType = api.GrantTokenExchange
		req.SubjectTokenType = api.TokenTypeJWT
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
