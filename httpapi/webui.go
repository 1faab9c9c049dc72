package httpapi

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ"
)

// AuthenticateToken checks a human's API token exactly as a Bearer header
// on a human route is checked, and returns the human. The web UI's sign-in
// uses it; every failure gives the same answer.
func (a *API) AuthenticateToken(ctx context.Context, token string) (*writ.Principal, error) {
	if !writ.LooksLikeHumanToken(token) {
		a.metrics.authFailures.WithLabelValues("malformed").Inc()
		return nil, errBadToken
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+token)
	return a.authenticate(r)
}
