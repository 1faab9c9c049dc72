package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// RequestCredential asks POST /v1/runs/{run}/credentials (a run, for
// itself).
func (c *Client) RequestCredential(ctx context.Context, run string, req *writ.CredentialRequest) (*writ.IssuedCredential, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out writ.IssuedCredential
	if err := c.do(ctx, "POST", "/v1/runs/"+url.PathEscape(run)+"/credentials", bytes.NewReader(body), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListLeases lists run's leases (GET /v1/runs/{run}/credentials); state
// may be empty.
func (c *Client) ListLeases(ctx context.Context, run, state string) ([]*writ.Lease, error) {
	p := "/v1/runs/" + url.PathEscape(run) + "/credentials"
	if state != "" {
		p += "?state=" + url.QueryEscape(state)
	}
	var out api.LeaseList
	if err := c.do(ctx, "GET", p, nil, &out); err != nil {
		return nil, err
	}
	return out.Leases, nil
}

// GetLease returns lease id.
func (c *Client) GetLease(ctx context.Context, id string) (*writ.Lease, error) {
	var out writ.Lease
	if err := c.do(ctx, "GET", "/v1/leases/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeLease asks POST /v1/leases/{id}/revoke and returns the lease:
// revoked, or still active while the backend has not confirmed.
func (c *Client) RevokeLease(ctx context.Context, id string) (*writ.Lease, error) {
	var out writ.Lease
	if err := c.do(ctx, "POST", "/v1/leases/"+url.PathEscape(id)+"/revoke", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutSecret stores a static secret env/name (admins).
func (c *Client) PutSecret(ctx context.Context, env, name string, value []byte) (int, error) {
	body, err := json.Marshal(api.SecretPut{Value: string(value)})
	if err != nil {
		return 0, err
	}
	var out api.SecretPutResponse
	if err := c.do(ctx, "PUT", "/v1/secrets/"+url.PathEscape(env)+"/"+url.PathEscape(name), bytes.NewReader(body), &out); err != nil {
		return 0, err
	}
	return out.Version, nil
}

// DeleteSecret removes a static secret (admins).
func (c *Client) DeleteSecret(ctx context.Context, env, name string) error {
	return c.do(ctx, "DELETE", "/v1/secrets/"+url.PathEscape(env)+"/"+url.PathEscape(name), nil, nil)
}

// ListSecrets lists the static secrets, names and versions only (admins).
func (c *Client) ListSecrets(ctx context.Context) ([]*writ.Secret, error) {
	var out api.SecretList
	if err := c.do(ctx, "GET", "/v1/secrets", nil, &out); err != nil {
		return nil, err
	}
	return out.Secrets, nil
}
