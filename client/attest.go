package client

import (
	"context"
	"net/http"
	"net/url"
)

// AttestKey returns the attest key's public half, PEM: what verifies
// writ's attestations (writ attest verify, cosign --key).
func (c *Client) AttestKey(ctx context.Context) ([]byte, error) {
	var raw rawBody
	err := c.do(ctx, http.MethodGet, "/v1/attest/key", nil, &raw)
	return raw, err
}

// RunAttestation returns a run's signed attestation, a DSSE envelope. It
// is an error of kind unavailable (not_yet_attested) until writ has
// signed it, a few seconds after the run ended.
func (c *Client) RunAttestation(ctx context.Context, run string) ([]byte, error) {
	var raw rawBody
	err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(run)+"/attestation", nil, &raw)
	return raw, err
}
