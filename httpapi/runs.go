package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/trigger"
)

// startRun accepts a signed trigger (DESIGN.md §4.1) as its own credential
// and starts a run.
func (a *API) startRun(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return a.junk(r, writ.Errorf(writ.KindTooLarge, "too_large", "the signed trigger is over the %d-byte limit", mbe.Limit))
		}
		return err
	}
	now := a.now()
	v, err := trigger.Verify(body, a.cfg.Ring)
	if err != nil {
		if v == nil || v.Signer == "" {
			return a.junk(r, err)
		}
		// The signature verified, but the payload is not a valid trigger:
		// the signer is known, so this refusal is an audit event.
		return a.refuse(r, v, err)
	}
	if err := a.cfg.Rules.Check(v, now); err != nil {
		return a.refuse(r, v, err)
	}
	// A client holding a DPoP key (the launcher, `writ run start`) proves
	// it here, and the run's first token is bound to that key. The proof is
	// checked only now that the trigger is authenticated, so anonymous
	// callers cannot write proofs into the store.
	jkt := ""
	if len(r.Header.Values("DPoP")) > 0 {
		pc, err := a.checkProof(r, "", "")
		if err != nil {
			return err
		}
		jkt = pc.JKT
	}
	t := &v.Trigger
	scopeJSON, err := json.Marshal(t.Scope)
	if err != nil {
		return err
	}
	sd := sha256.Sum256(scopeJSON)
	run := &writ.Run{
		ID:            writ.RunID(writ.NewULID(now, nil)),
		Agent:         t.Agent,
		Profile:       t.Profile,
		Ticket:        t.Ticket,
		Task:          t.Task,
		Scope:         t.Scope,
		ScopeDigest:   "sha256:" + hex.EncodeToString(sd[:]),
		TriggerID:     t.ID,
		TriggerDigest: v.Digest,
		Issuer:        v.Signer,
		SignerKey:     v.KeyID,
		State:         writ.RunActive,
		CreatedAt:     now.UTC(),
		Deadline:      now.Add(t.Scope.MaxDuration.D()).UTC(),
	}
	actor := writ.SignerActor(v.Signer)
	accepted := &writ.Event{Type: writ.EventTriggerAccepted, Run: run.ID, Actor: actor, Subject: "trigger:" + t.ID,
		Details: map[string]any{"digest": v.Digest, "keyId": v.KeyID, "format": v.Format, "agent": t.Agent, "profile": t.Profile,
			"ticket": t.Ticket.System + ":" + t.Ticket.ID}}
	started := &writ.Event{Type: writ.EventRunStarted, Run: run.ID, Actor: actor, Subject: run.SPIFFEID(a.cfg.TrustDomain),
		Details: map[string]any{"agent": run.Agent, "profile": run.Profile, "deadline": run.Deadline, "scopeDigest": run.ScopeDigest,
			"triggerDigest": run.TriggerDigest}}
	ttl, typ := unboundTTL, "Bearer"
	if jkt != "" {
		ttl, typ = boundTTL, "DPoP"
	}
	raw, claims, err := a.mint(run, a.apiAudience(), jkt, ttl, now)
	if err != nil {
		return err
	}
	rec := writ.TriggerRecord{ID: t.ID, Digest: v.Digest, Signer: v.Signer, ExpiresAt: t.ExpiresAt}
	if err := a.cfg.Store.CreateRun(ctx, run, rec, accepted, started, tokenEvent(run, claims, actor)); err != nil {
		if writ.ErrorCode(err) == "replay" {
			return a.refuse(r, v, err)
		}
		return err
	}
	a.metrics.runsStarted.Inc()
	if a.cfg.OnRunCreated != nil {
		a.cfg.OnRunCreated(run)
	}
	a.log.InfoContext(ctx, "run started", slog.String("run", string(run.ID)), slog.String("agent", run.Agent),
		slog.String("signer", v.Signer), slog.Time("deadline", run.Deadline))
	return writeJSON(w, http.StatusCreated, StartedRun{
		RunView: RunView{Run: run, SPIFFEID: run.SPIFFEID(a.cfg.TrustDomain)},
		Token:   raw, TokenType: typ, TokenExpiresAt: claims.Expiry,
	})
}

// StartedRun is the answer to POST /v1/runs: the run and its first API
// token (DPoP-bound when the request carried a DPoP proof).
type StartedRun struct {
	RunView
	Token          string    `json:"token"`
	TokenType      string    `json:"tokenType"`
	TokenExpiresAt time.Time `json:"tokenExpiresAt"`
}

// refusalMemory is how long past a refused trigger's expiry its refusal is
// remembered for de-duplication.
const refusalMemory = 24 * time.Hour

// RunView is a run as the API shows it.
type RunView struct {
	*writ.Run
	SPIFFEID string `json:"spiffeId"`
}

// junk counts an unauthenticated refusal and logs it at most once a second.
func (a *API) junk(r *http.Request, err error) error {
	code := writ.ErrorCode(err)
	a.metrics.refusals.WithLabelValues(code).Inc()
	if ok, suppressed := a.junkLog.allow(a.now()); ok {
		a.log.WarnContext(r.Context(), "refused unauthenticated trigger", slog.String("reason", code),
			slog.String("remote", r.RemoteAddr), slog.Int("suppressed_since_last", suppressed))
	}
	return err
}

// refuse records the refusal of a known signer's trigger: one audit event
// per distinct trigger and reason, so replaying a refused trigger cannot
// flood the log.
func (a *API) refuse(r *http.Request, v *trigger.Verified, cause error) error {
	code := writ.ErrorCode(cause)
	a.metrics.refusals.WithLabelValues(code).Inc()
	var we *writ.Error
	if !errors.As(cause, &we) {
		return cause
	}
	details := map[string]any{"digest": v.Digest, "keyId": v.KeyID, "code": code, "message": we.Message}
	if len(we.Items) > 0 {
		details["items"] = we.Items
	}
	subject := "trigger:" + v.Trigger.ID
	if v.Trigger.ID == "" {
		subject = "trigger:" + v.Digest
	}
	ev := &writ.Event{Type: writ.EventTriggerRefused, Actor: writ.SignerActor(v.Signer), Subject: subject, Details: details}
	// The dedup row outlives the trigger by a day, so even an expired
	// trigger replayed in a loop yields at most one event a day.
	exp := v.Trigger.ExpiresAt
	if exp.IsZero() || exp.Before(a.now()) {
		exp = a.now()
	}
	if _, err := a.cfg.Store.RecordRefusal(r.Context(), v.Digest, code, exp.Add(refusalMemory), ev); err != nil {
		return err
	}
	return cause
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
	runs, err := a.cfg.Store.ListRuns(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]RunView, len(runs))
	for i, run := range runs {
		out[i] = RunView{Run: run, SPIFFEID: run.SPIFFEID(a.cfg.TrustDomain)}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"runs": out})
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
	return writeJSON(w, http.StatusOK, RunView{Run: run, SPIFFEID: run.SPIFFEID(a.cfg.TrustDomain)})
}

// TransitionRequest is the optional body of end, kill, suspend and resume.
type TransitionRequest struct {
	Reason string `json:"reason"`
}

// transition moves a run to state `to`; adminOnly marks kill and resume,
// which DESIGN.md §4.8 reserves for admins.
func (a *API) transition(to writ.RunState, adminOnly bool) handlerFunc {
	verb := map[writ.RunState]string{writ.RunEnded: "end", writ.RunSuspended: "suspend", writ.RunKilled: "kill", writ.RunActive: "resume"}[to]
	return func(w http.ResponseWriter, r *http.Request) error {
		p := writ.PrincipalFromContext(r.Context())
		if adminOnly {
			if err := requireAdmin(p, verb+" a run"); err != nil {
				return err
			}
		}
		id, err := writ.ParseRunID(r.PathValue("id"))
		if err != nil {
			return err
		}
		var req TransitionRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		if len(req.Reason) > 1024 {
			return writ.Errorf(writ.KindInvalid, "invalid_reason", "reason is over 1024 bytes")
		}
		reason := req.Reason
		if reason == "" {
			reason = verb + " by " + p.Actor()
		}
		ev := &writ.Event{Type: to.EventType(), Actor: p.Actor(), Details: map[string]any{"reason": reason}}
		run, err := a.cfg.Store.TransitionRun(r.Context(), id, to, reason, ev)
		a.RunChanged(id)
		if err != nil {
			return err
		}
		a.log.InfoContext(r.Context(), "run "+verb, slog.String("run", string(id)), slog.String("actor", p.Actor()))
		return writeJSON(w, http.StatusOK, RunView{Run: run, SPIFFEID: run.SPIFFEID(a.cfg.TrustDomain)})
	}
}
