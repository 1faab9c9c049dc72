package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/runs"
)

// view is run as the API shows it.
func (a *API) view(run *writ.Run) api.RunView {
	return api.RunView{Run: *run, SPIFFEID: a.runs.SPIFFEID(run)}
}

// proof is the DPoP proof r carries, as package runs checks it.
func (a *API) proof(r *http.Request) runs.Proof {
	return runs.Proof{Headers: r.Header.Values("DPoP"), Method: r.Method, Path: r.URL.EscapedPath()}
}

// startRun is POST /v1/runs: a signed trigger (docs/design.md §4.1) is
// its own credential.
func (a *API) startRun(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return a.runs.RefuseUnauthenticated(r.Context(), r.RemoteAddr,
				writ.Errorf(writ.KindTooLarge, "too_large", "the signed trigger is over the %d-byte limit", mbe.Limit))
		}
		return err
	}
	st, err := a.runs.Start(r.Context(), runs.StartRequest{Trigger: body, Proof: a.proof(r), Remote: r.RemoteAddr,
		Admit: func(signer string) error { return a.limits.allow(ClassRunStart, "signer", signer) }})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, api.StartedRun{
		Run: *st.Run, SPIFFEID: a.runs.SPIFFEID(st.Run), Token: st.Token.Token, TokenType: st.Token.Type, TokenExpiresAt: st.Token.ExpiresAt,
	})
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := writ.RunFilter{State: writ.RunState(q.Get("state")), Agent: q.Get("agent")}
	if f.State != "" && !f.State.Valid() {
		return writ.Errorf(writ.KindInvalid, "invalid_state", "state %q: want one of active, suspended, ended, killed, expired", f.State)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return writ.Errorf(writ.KindInvalid, "invalid_limit", "limit %q: want a number from 1 to 1000", s)
		}
		f.Limit = n
	}
	list, err := a.cfg.Store.ListRuns(r.Context(), f)
	if err != nil {
		return err
	}
	out := api.RunList{Runs: make([]api.RunView, len(list))}
	for i, run := range list {
		out.Runs[i] = a.view(run)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) showRun(w http.ResponseWriter, r *http.Request) error {
	id, err := writ.ParseRunID(r.PathValue("id"))
	if err != nil {
		return err
	}
	run, err := a.cfg.Store.GetRun(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.view(run))
}

// transition moves a run to state `to` (end, suspend, kill, resume).
func (a *API) transition(to writ.RunState) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req api.TransitionRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		run, err := a.runs.Transition(r.Context(), writ.PrincipalFromContext(r.Context()), writ.RunID(r.PathValue("id")), to, req.Reason)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, a.view(run))
	}
}
