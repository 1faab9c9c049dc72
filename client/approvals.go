package client

import (
	"bytes"
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// ApprovalView is an approval as an approver is shown it.
type ApprovalView = api.ApprovalView

// ListApprovals lists approvals, newest first.
func (c *Client) ListApprovals(ctx context.Context, f writ.ApprovalFilter) ([]writ.ApprovalRequest, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Run != "" {
		q.Set("run", string(f.Run))
	}
	var out api.ApprovalList
	path := "/v1/approvals"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	var as []writ.ApprovalRequest
	if out.Approvals != nil {
		as = make([]writ.ApprovalRequest, 0, len(out.Approvals))
	}
	for _, a := range out.Approvals {
		if a != nil {
			as = append(as, *a)
		}
	}
	return as, err
}

// GetApproval returns what an approver is shown of approval id.
func (c *Client) GetApproval(ctx context.Context, id string) (*ApprovalView, error) {
	var v ApprovalView
	if err := c.do(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(id), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// ApprovalStatement returns the exact bytes the caller signs to give
// verdict (approve or deny) on approval id.
func (c *Client) ApprovalStatement(ctx context.Context, id, verdict string) ([]byte, error) {
	var raw rawBody
	err := c.do(ctx, http.MethodGet, "/v1/approvals/"+url.PathEscape(id)+"/statement?verdict="+url.QueryEscape(verdict), nil, &raw)
	return raw, err
}

// SubmitApproval posts a signed statement (a DSSE envelope, or payload +
// SSH signature) giving verdict on approval id.
func (c *Client) SubmitApproval(ctx context.Context, id, verdict string, signed []byte) (*writ.ApprovalRequest, error) {
	var a writ.ApprovalRequest
	if err := c.do(ctx, http.MethodPost, "/v1/approvals/"+url.PathEscape(id)+"/"+url.PathEscape(verdict), bytes.NewReader(signed), &a); err != nil {
		return nil, err
	}
	return &a, nil
}
