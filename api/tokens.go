package api

import (
	"time"

	"github.com/writ-dev/writ"
)

// TokenRequest asks for a human API token (POST /v1/tokens). Human
// defaults to the caller; a token for someone else needs an admin.
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

// RotateKeyResponse answers POST /v1/keys/{kind}/rotate: the new current
// key's id.
type RotateKeyResponse struct {
	Kind string `json:"kind"`
	KID  string `json:"kid"`
}
