package httpapi

import (
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/runs"
)

// Human API token lifetimes.
const (
	DefaultTokenTTL = runs.DefaultHumanTokenTTL
	MaxTokenTTL     = runs.MaxHumanTokenTTL
)

// createToken is POST /v1/tokens.
func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.TokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	secret, tok, err := a.runs.CreateHumanToken(r.Context(), writ.PrincipalFromContext(r.Context()), req.Human, req.TTL.D())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.TokenResponse{Token: secret, ID: tok.ID, Human: tok.Human, ExpiresAt: tok.ExpiresAt})
}

// mintToken is POST /v1/runs/{id}/token.
func (a *API) mintToken(w http.ResponseWriter, r *http.Request) error {
	var req api.RunTokenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	t, err := a.runs.MintToken(r.Context(), writ.PrincipalFromContext(r.Context()), req.Audience, req.Bind)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.RunTokenResponse{Token: t.Token, TokenType: t.Type, Audience: t.Audience, ExpiresAt: t.ExpiresAt})
}

// openIDConfiguration is the OIDC discovery document relying parties
// (Vault's JWT auth, cloud STS, go-oidc) use to trust run identities.
func (a *API) openIDConfiguration(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=300")
	return writeJSON(w, http.StatusOK, a.runs.Discovery())
}

func (a *API) jwks(w http.ResponseWriter, r *http.Request) error {
	doc, err := a.runs.JWKS()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(doc)
	return err
}

// rotateKey is POST /v1/keys/{kind}/rotate (admins).
func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "rotating a key"); err != nil {
		return err
	}
	kind := r.PathValue("kind")
	if kind != "identity" {
		return writ.Errorf(writ.KindInvalid, "unsupported_key", "only the identity key can be rotated by this server version (asked: %q)", kind)
	}
	kid, err := a.cfg.RotateIdentity(r.Context(), p.Actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.RotateKeyResponse{Kind: kind, KID: kid})
}
