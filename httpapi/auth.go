package httpapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/writ-dev/writ"
)

// public marks a route that needs no credential.
func (a *API) public(h handlerFunc) handlerFunc { return h }

// access says who may call a route.
type access int

const (
	humans          access = 1 << iota // any configured human with an API token
	ownRun                             // the run named by the path's {id}, while active
	ownRunSuspended                    // … and while suspended (end, heartbeat)
	tokenRun                           // the run named by its own token, while active (routes without {id})
)

// human requires a valid human API token.
func (a *API) human(h handlerFunc) handlerFunc { return a.auth(humans, h) }

// auth authenticates the caller — a human API token, or a run's JWT-SVID
// (bearer when unbound, DPoP when bound) — checks it may call the route,
// and puts the principal in the request context.
func (a *API) auth(allow access, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		hdr := r.Header.Get("Authorization")
		scheme, cred, _ := strings.Cut(hdr, " ")
		cred = strings.TrimSpace(cred)
		var p *writ.Principal
		var err error
		bearer, dpop := strings.EqualFold(scheme, "Bearer"), strings.EqualFold(scheme, "DPoP")
		runsAllowed := allow&(ownRun|ownRunSuspended|tokenRun) != 0
		switch {
		case hdr == "":
			return writ.Errorf(writ.KindUnauthenticated, "missing_credential", "this route needs a credential: send Authorization: Bearer <token> (WRIT_TOKEN for the CLI)")
		case !bearer && !dpop:
			return writ.Errorf(writ.KindUnauthenticated, "missing_credential", "the Authorization header must use the Bearer or DPoP scheme")
		case cred == "":
			return writ.Errorf(writ.KindUnauthenticated, "missing_credential", "the Authorization header has a scheme but no token")
		case bearer && writ.LooksLikeHumanToken(cred):
			if p, err = a.authenticate(r); err != nil {
				return err
			}
			if allow&humans == 0 {
				return writ.Errorf(writ.KindDenied, "run_only", "this route is for a run's own token, not a human's")
			}
		case strings.Count(cred, ".") != 2:
			// Neither a human token nor shaped like a JWT: the same answer
			// as any other bad token.
			a.metrics.authFailures.WithLabelValues("malformed").Inc()
			return errBadToken
		case !runsAllowed:
			// A valid run token on a human route is told so; anything else
			// gets the answer of any other bad token.
			if _, err := a.verifier().Verify(cred, a.apiAudience()); err == nil {
				return writ.Errorf(writ.KindDenied, "human_only", "this route needs a human's API token; a run's token cannot call it")
			}
			a.metrics.authFailures.WithLabelValues("malformed").Inc()
			return errBadToken
		default:
			if p, err = a.authenticateRun(r, scheme, cred, allow&ownRunSuspended != 0); err != nil {
				return err
			}
			if allow&tokenRun == 0 && string(p.Run) != r.PathValue("id") {
				return writ.Errorf(writ.KindDenied, "not_own_run", "a run's token acts only on its own run")
			}
		}
		return h(w, r.WithContext(writ.NewContextWithPrincipal(r.Context(), p)))
	}
}

var errBadToken = writ.Errorf(writ.KindUnauthenticated, "invalid_token", "the API token is not valid: it is unknown, malformed, expired, or its human is no longer configured; create one with `writ token create`")

// authenticate checks a human's Bearer API token. Every failure gives the
// same answer, so a caller learns nothing about which part was wrong.
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
