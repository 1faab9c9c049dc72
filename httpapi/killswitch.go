package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/writ-dev/writ"
)

// KillSwitchStore is what heartbeats and the kill switches need from
// storage (package sqlstore).
type KillSwitchStore interface {
	Heartbeat(ctx context.Context, id writ.RunID) (time.Time, error)
	DisableAgent(ctx context.Context, name, actor, reason string) ([]writ.RunID, error)
	EnableAgent(ctx context.Context, name, actor string) (bool, error)
	Freeze(ctx context.Context, actor, reason string) ([]writ.RunID, error)
	Unfreeze(ctx context.Context, actor string) ([]writ.RunID, bool, error)
	KillSwitches(ctx context.Context) (*writ.KillSwitchState, error)
}

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

func (a *API) noKillSwitches() error {
	return writ.Errorf(writ.KindUnavailable, "unavailable", "this server has no kill switch store")
}

// HeartbeatResponse answers a heartbeat: the run's state and when the
// next heartbeat is due.
type HeartbeatResponse struct {
	Run      writ.RunID    `json:"run"`
	State    writ.RunState `json:"state"`
	At       time.Time     `json:"at"`
	Interval writ.Duration `json:"interval"`
	Missed   int           `json:"missed"`
}

// heartbeat is POST /v1/runs/{id}/heartbeat: the run's launcher is alive.
// It is one column update and no event (a launcher sends one every few
// seconds); the run's state comes back, so a launcher learns of a kill.
func (a *API) heartbeat(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.KillSwitches == nil {
		return a.noKillSwitches()
	}
	p := writ.PrincipalFromContext(r.Context())
	at, err := a.cfg.KillSwitches.Heartbeat(r.Context(), p.Run)
	if err != nil {
		return err
	}
	run, err := a.runs.get(r.Context(), p.Run)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, HeartbeatResponse{Run: p.Run, State: run.State, At: at,
		Interval: writ.Duration(a.cfg.Heartbeat.Interval), Missed: a.cfg.Heartbeat.Missed})
}

// KillSwitchRequest is the optional body of disable and freeze.
type KillSwitchRequest struct {
	Reason string `json:"reason"`
}

// KillSwitchResponse says what a kill switch did.
type KillSwitchResponse struct {
	Agent     string                `json:"agent,omitempty"`
	Disabled  bool                  `json:"disabled,omitempty"`
	Frozen    bool                  `json:"frozen"`
	Killed    []writ.RunID          `json:"killed,omitempty"`
	Suspended []writ.RunID          `json:"suspended,omitempty"`
	Resumed   []writ.RunID          `json:"resumed,omitempty"`
	Changed   bool                  `json:"changed"`
	State     *writ.KillSwitchState `json:"state,omitempty"`
}

func (a *API) killSwitchReason(r *http.Request, p *writ.Principal, what string) (string, error) {
	var req KillSwitchRequest
	if err := decodeBody(r, &req); err != nil {
		return "", err
	}
	if len(req.Reason) > 1024 {
		return "", writ.Errorf(writ.KindInvalid, "invalid_reason", "reason is over 1024 bytes")
	}
	if req.Reason == "" {
		req.Reason = what + " by " + p.Actor()
	}
	return req.Reason, nil
}

// forgetRuns drops what the API caches of runs a kill switch changed, so
// the next request of any of them sees the change.
func (a *API) forgetRuns(ids []writ.RunID) {
	if len(ids) == 0 {
		return
	}
	a.runs.forgetAll()
	for _, id := range ids {
		if a.cfg.Decider != nil {
			a.cfg.Decider.Forget(id)
		}
	}
}

// disableAgent is POST /v1/agents/{name}/disable (admins): kill the
// agent's live runs and refuse new ones until it is enabled again.
func (a *API) disableAgent(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "disabling an agent"); err != nil {
		return err
	}
	if a.cfg.KillSwitches == nil {
		return a.noKillSwitches()
	}
	name := r.PathValue("name")
	if !writ.ValidName(name) {
		return writ.Errorf(writ.KindInvalid, "invalid_agent", "agent %q: want a configured agent's name", name)
	}
	reason, err := a.killSwitchReason(r, p, "disabled")
	if err != nil {
		return err
	}
	killed, err := a.cfg.KillSwitches.DisableAgent(r.Context(), name, p.Actor(), reason)
	a.forgetRuns(killed)
	if err != nil {
		return err
	}
	a.log.WarnContext(r.Context(), "agent disabled", slog.String("agent", name), slog.String("actor", p.Actor()), slog.Int("killed", len(killed)))
	return writeJSON(w, http.StatusOK, KillSwitchResponse{Agent: name, Disabled: true, Killed: killed, Changed: true})
}

// enableAgent is POST /v1/agents/{name}/enable (admins).
func (a *API) enableAgent(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "enabling an agent"); err != nil {
		return err
	}
	if a.cfg.KillSwitches == nil {
		return a.noKillSwitches()
	}
	name := r.PathValue("name")
	if !writ.ValidName(name) {
		return writ.Errorf(writ.KindInvalid, "invalid_agent", "agent %q: want a configured agent's name", name)
	}
	if err := decodeBody(r, &KillSwitchRequest{}); err != nil {
		return err
	}
	was, err := a.cfg.KillSwitches.EnableAgent(r.Context(), name, p.Actor())
	if err != nil {
		return err
	}
	a.log.InfoContext(r.Context(), "agent enabled", slog.String("agent", name), slog.String("actor", p.Actor()), slog.Bool("was_disabled", was))
	return writeJSON(w, http.StatusOK, KillSwitchResponse{Agent: name, Disabled: false, Changed: was})
}

func (a *API) freezeState(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.KillSwitches == nil {
		return a.noKillSwitches()
	}
	st, err := a.cfg.KillSwitches.KillSwitches(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, KillSwitchResponse{Frozen: st.Frozen, State: st})
}

// freeze is POST /v1/freeze (admins): suspend every active run, and refuse
// run starts, resumes and the suspended runs' tokens until DELETE.
func (a *API) freeze(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "freezing writ"); err != nil {
		return err
	}
	if a.cfg.KillSwitches == nil {
		return a.noKillSwitches()
	}
	reason, err := a.killSwitchReason(r, p, "frozen")
	if err != nil {
		return err
	}
	suspended, err := a.cfg.KillSwitches.Freeze(r.Context(), p.Actor(), reason)
	a.forgetRuns(suspended)
	if err != nil {
		return err
	}
	a.log.WarnContext(r.Context(), "writ frozen", slog.String("actor", p.Actor()), slog.Int("suspended", len(suspended)))
	return writeJSON(w, http.StatusOK, KillSwitchResponse{Frozen: true, Suspended: suspended, Changed: true})
}

// unfreeze is DELETE /v1/freeze (admins): lift the freeze and resume the
// runs it suspended.
func (a *API) unfreeze(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "lifting the freeze"); err != nil {
		return err
	}
	if a.cfg.KillSwitches == nil {
		return a.noKillSwitches()
	}
	resumed, was, err := a.cfg.KillSwitches.Unfreeze(r.Context(), p.Actor())
	a.forgetRuns(resumed)
	if err != nil {
		return err
	}
	a.log.WarnContext(r.Context(), "writ freeze lifted", slog.String("actor", p.Actor()), slog.Int("resumed", len(resumed)))
	return writeJSON(w, http.StatusOK, KillSwitchResponse{Frozen: false, Resumed: resumed, Changed: was})
}
