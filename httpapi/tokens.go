package httpapi

import (
	"net/http"
	"time"

	"github.com/writ-dev/writ"
)

// Human API token lifetimes.
const (
	DefaultTokenTTL = 30 * 24 * time.Hour
	MaxTokenTTL     = 366 * 24 * time.Hour
)

// TokenRequest asks for a human API token. Human defaults to the caller;
// a token for someone else needs an admin.
type TokenRequest struct {
	Human string        `json:"human"`
	TTL   writ.Duration `json:"ttl"`
}

// TokenResponse carries a new token. Token is shown once and never stored.
type TokenResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	Human     string    `json:"human"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Human == "" {
		req.Human = p.Name
	}
	if req.Human != p.Name {
		if err := requireAdmin(p, "creating a token for another human"); err != nil {
			return err
		}
	}
	if _, ok := a.cfg.Humans[req.Human]; !ok {
		return writ.Errorf(writ.KindInvalid, "unknown_human", "%q is not a configured human signer", req.Human)
	}
	ttl := req.TTL.D()
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < time.Minute || ttl > MaxTokenTTL {
		return writ.Errorf(writ.KindInvalid, "invalid_ttl", "ttl %v: want between 1m and %v", ttl, MaxTokenTTL)
	}
	secret, tok := writ.NewHumanToken(req.Human, p.Actor(), a.now(), ttl)
	ev := &writ.Event{Type: writ.EventTokenIssued, Actor: p.Actor(), Subject: writ.HumanActor(req.Human),
		Details: map[string]any{"kind": "human", "tokenId": tok.ID, "expiresAt": tok.ExpiresAt}}
	if err := a.cfg.Store.CreateToken(r.Context(), tok, ev); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, TokenResponse{Token: secret, ID: tok.ID, Human: tok.Human, ExpiresAt: tok.ExpiresAt})
}
