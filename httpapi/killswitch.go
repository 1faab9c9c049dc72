package httpapi

import (
	"net/http"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// HeartbeatConfig is how often a launcher sends heartbeats, and how many
// it may miss before its run is killed (runs.heartbeat in writ.yaml).
type HeartbeatConfig struct {
	Interval time.Duration
	Missed   int
}

func (a *API) killSwitchRoutes() {
	a.route("POST /v1/runs/{id}/heartbeat", a.auth(ownRun|ownRunSuspended, a.heartbeat))
	a.route("POST /v1/agents/{name}/disable", a.human(a.disableAgent))
	a.route("POST /v1/agents/{name}/enable", a.human(a.enableAgent))
	a.route("GET /v1/freeze", a.human(a.freezeState))
	a.route("POST /v1/freeze", a.human(a.freeze))
	a.route("DELETE /v1/freeze", a.human(a.unfreeze))
}

// heartbeat is POST /v1/runs/{id}/heartbeat: the run's launcher is alive.
// It is one column update and no event (a launcher sends one every few
// seconds); the run's state comes back, so a launcher learns of a kill.
func (a *API) heartbeat(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	run, at, err := a.runs.Heartbeat(r.Context(), p.Run)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.HeartbeatResponse{Run: p.Run, State: run.State, At: at,
		Interval: writ.Duration(a.cfg.Heartbeat.Interval), Missed: a.cfg.Heartbeat.Missed})
}

// killSwitchReason reads the optional body of disable and freeze.
func killSwitchReason(r *http.Request) (string, error) {
	var req api.KillSwitchRequest
	if err := decodeBody(r, &req); err != nil {
		return "", err
	}
	return req.Reason, nil
}

// disableAgent is POST /v1/agents/{name}/disable (admins): kill the
// agent's live runs and refuse new ones until it is enabled again.
func (a *API) disableAgent(w http.ResponseWriter, r *http.Request) error {
	reason, err := killSwitchReason(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	killed, err := a.runs.DisableAgent(r.Context(), writ.PrincipalFromContext(r.Context()), name, reason)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.KillSwitchResponse{Agent: name, Disabled: true, Killed: killed, Changed: true})
}

// enableAgent is POST /v1/agents/{name}/enable (admins).
func (a *API) enableAgent(w http.ResponseWriter, r *http.Request) error {
	if _, err := killSwitchReason(r); err != nil {
		return err
	}
	name := r.PathValue("name")
	was, err := a.runs.EnableAgent(r.Context(), writ.PrincipalFromContext(r.Context()), name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.KillSwitchResponse{Agent: name, Disabled: false, Changed: was})
}

func (a *API) freezeState(w http.ResponseWriter, r *http.Request) error {
	st, err := a.runs.KillSwitches(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.KillSwitchResponse{Frozen: st.Frozen, State: st})
}

// freeze is POST /v1/freeze (admins): suspend every active run, and refuse
// run starts, resumes and the suspended runs' tokens until DELETE.
func (a *API) freeze(w http.ResponseWriter, r *http.Request) error {
	reason, err := killSwitchReason(r)
	if err != nil {
		return err
	}
	suspended, err := a.runs.Freeze(r.Context(), writ.PrincipalFromContext(r.Context()), reason)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.KillSwitchResponse{Frozen: true, Suspended: suspended, Changed: true})
}

// unfreeze is DELETE /v1/freeze (admins): lift the freeze and resume the
// runs it suspended.
func (a *API) unfreeze(w http.ResponseWriter, r *http.Request) error {
	resumed, was, err := a.runs.Unfreeze(r.Context(), writ.PrincipalFromContext(r.Context()))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.KillSwitchResponse{Frozen: false, Resumed: resumed, Changed: was})
}
