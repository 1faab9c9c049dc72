package httpapi

import (
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// delegate is POST /v1/runs/{id}/delegate (package runs decides).
func (a *API) delegate(w http.ResponseWriter, r *http.Request) error {
	var req api.DelegateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	d, err := a.runs.Delegate(r.Context(), writ.PrincipalFromContext(r.Context()), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.DelegateResponse{
		AccessToken: d.Token.Token, IssuedTokenType: api.TokenTypeJWT, TokenType: d.Token.Type,
		ExpiresIn: int64(d.Token.ExpiresAt.Sub(d.Token.IssuedAt).Seconds()), Run: a.view(d.Run),
	})
}
