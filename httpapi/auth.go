package httpapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/writ-dev/writ"
)

// public marks a route that needs no credential.
func (a *API) public(h handlerFunc) handlerFunc { return h }

// human requires a valid human API token and puts the principal in the
// request context.
func (a *API) human(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := a.authenticate(r)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(writ.NewContextWithPrincipal(r.Context(), p)))
	}
}

var errBadToken = writ.Errorf(writ.KindUnauthenticated, "invalid_token", "the API token is not valid: it is unknown, malformed, expired, or its human is no longer configured; create one with `writ token create`")

// authenticate checks the Bearer credential. Every failure gives the same
// answer, so a caller learns nothing about which part was wrong.
func (a *API) authenticate(r *http.Request) (*writ.Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, writ.Errorf(writ.KindUnauthenticated, "missing_credential", "this route needs a credential: send Authorization: Bearer <token> (WRIT_TOKEN for the CLI)")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, writ.Errorf(writ.KindUnauthenticated, "missing_credential", "the Authorization header must use the Bearer scheme")
	}
	cred = strings.TrimSpace(cred)
	id, hash, ok := writ.SplitHumanToken(cred)
	if !ok {
		a.metrics.authFailures.WithLabelValues("malformed").Inc()
		return nil, errBadToken
	}
	tok, err := a.cfg.Store.GetToken(r.Context(), id)
	if err != nil {
		if writ.ErrorKind(err) == writ.KindNotFound {
			a.metrics.authFailures.WithLabelValues("unknown").Inc()
			return nil, errBadToken
		}
		return nil, err
	}
	if !tok.Matches(hash) {
		a.metrics.authFailures.WithLabelValues("mismatch").Inc()
		return nil, errBadToken
	}
	if !a.now().Before(tok.ExpiresAt) {
		a.metrics.authFailures.WithLabelValues("expired").Inc()
		return nil, errBadToken
	}
	s, ok := a.cfg.Humans[tok.Human]
	if !ok {
		a.metrics.authFailures.WithLabelValues("unconfigured").Inc()
		a.log.WarnContext(r.Context(), "token of a human no longer configured", slog.String("token_id", tok.ID), slog.String("human", tok.Human))
		return nil, errBadToken
	}
	return &writ.Principal{Kind: writ.PrincipalHuman, Name: s.Name, Groups: s.Groups}, nil
}

// requireAdmin refuses callers outside the admins group.
func requireAdmin(p *writ.Principal, what string) error {
	if p == nil || !p.InGroup(writ.GroupAdmins) {
		return writ.Errorf(writ.KindDenied, "admin_required", "%s needs a human in the %q group", what, writ.GroupAdmins)
	}
	return nil
}
