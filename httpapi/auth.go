package httpapi

import (
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/runs"
)

// public marks a route that needs no credential: its rate limit is per
// source address.
func (a *API) public(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := a.rateAddress(r); err != nil {
			return err
		}
		return h(w, r)
	}
}

// access says who may call a route (package runs' [runs.Access]).
type access = runs.Access

const (
	humans          = runs.Humans          // any configured human with an API token
	ownRun          = runs.OwnRun          // the run named by the path's {id}, while active
	ownRunSuspended = runs.OwnRunSuspended // … and while suspended (end, heartbeat)
	tokenRun        = runs.TokenRun        // the run named by its own token, while active (routes without {id})
)

// human requires a valid human API token.
func (a *API) human(h handlerFunc) handlerFunc { return a.auth(humans, h) }

// auth authenticates the caller through package runs — a human API token,
// or a run's JWT-SVID (bearer when unbound, DPoP when bound) — checks a
// run acts on its own run, and puts the principal in the request context.
func (a *API) auth(allow access, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := a.runs.Authenticate(r.Context(), r.Header.Get("Authorization"), a.proof(r), allow)
		if err != nil {
			return err
		}
		if p.Kind == writ.PrincipalRun && allow&tokenRun == 0 && string(p.Run) != r.PathValue("id") {
			return writ.Errorf(writ.KindDenied, "not_own_run", "a run's token acts only on its own run")
		}
		if err := a.ratePrincipal(r, p); err != nil {
			return err
		}
		return h(w, r.WithContext(writ.NewContextWithPrincipal(r.Context(), p)))
	}
}

// requireAdmin refuses callers outside the admins group.
func requireAdmin(p *writ.Principal, what string) error { return runs.RequireAdmin(p, what) }
