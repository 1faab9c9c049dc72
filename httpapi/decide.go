package httpapi

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/decision"
)

// Decider is the decision point (package decision).
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
	Forget(id writ.RunID)
}

// decide answers what policy decides about an action. A run asks only
// about itself (the run comes from its token); a human may ask about any
// run, as a dry run that does not enter the run's history. The decision is
// the answer, so it is 200 whatever it is; enforcement points answer 403.
func (a *API) decide(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	var req api.DecideRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Action.Kind == "" {
		return writ.Errorf(writ.KindInvalid, "invalid_action", "the body needs an action: {\"action\": {\"kind\": \"tool\", \"name\": \"shell:test\"}}")
	}
	var runID writ.RunID
	switch p.Kind {
	case writ.PrincipalHuman:
		if !req.DryRun {
			return writ.Errorf(writ.KindDenied, "dry_run_only", "a human may only ask for a dry run (\"dryRun\": true) of a run's action; runs ask for themselves")
		}
		id, err := writ.ParseRunID(req.Run)
		if err != nil {
			return writ.Errorf(writ.KindInvalid, "invalid_run", "a dry run names the run it asks about in \"run\"")
		}
		runID = id
	default:
		if req.Run != "" && req.Run != string(p.Run) {
			return writ.Errorf(writ.KindDenied, "not_own_run", "a run asks only about itself; leave \"run\" out")
		}
		if req.DryRun {
			return writ.Errorf(writ.KindDenied, "dry_run_human_only", "only humans may ask for a dry run")
		}
		runID = p.Run
	}
	run, err := a.runs.Get(r.Context(), runID)
	if err != nil {
		return err
	}
	d, err := a.cfg.Decider.Decide(r.Context(), &decision.Request{
		Run: run, Action: req.Action, Via: req.Via, CallRef: req.CallRef, DryRun: req.DryRun, Actor: p.Actor(),
	})
	if err != nil {
		return err
	}
	a.metrics.decisions.WithLabelValues(d.Verdict).Inc()
	state := run.State
	if d.Obligations.Suspend && !d.DryRun {
		a.runs.Stale(run.ID)
		state = writ.RunSuspended
	}
	return writeJSON(w, http.StatusOK, api.DecideResponse{
		ID: d.ID, Decision: d.Verdict, Reasons: d.Reasons, Approval: d.Approval, Obligations: d.Obligations,
		PolicyDigest: d.PolicyDigest, InputDigest: d.InputDigest, RunState: state, DryRun: d.DryRun,
	})
}

func (a *API) decisionOutcome(w http.ResponseWriter, r *http.Request) error {
	var req api.OutcomeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Via != "" || req.CallRef != "" {
		return writ.Errorf(writ.KindInvalid, "invalid_body", "via and callRef belong to POST /v1/outcomes; this route names the decision in its path")
	}
	return a.recordOutcome(w, r, r.PathValue("id"), &req)
}

func (a *API) callOutcome(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	var req api.OutcomeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Via == "" || req.CallRef == "" {
		return writ.Errorf(writ.KindInvalid, "invalid_body", "POST /v1/outcomes names the call with via and callRef, such as {\"via\": \"hook:claude-code\", \"callRef\": \"toolu_01…\"}")
	}
	d, err := a.cfg.Store.DecisionByCallRef(r.Context(), p.Run, req.Via, req.CallRef)
	if err != nil {
		return err
	}
	return a.recordOutcome(w, r, d.ID, &req)
}

func (a *API) recordOutcome(w http.ResponseWriter, r *http.Request, id string, req *api.OutcomeRequest) error {
	p := writ.PrincipalFromContext(r.Context())
	if req.DurationMS < 0 || len(req.Error) > 4096 {
		return writ.Errorf(writ.KindInvalid, "invalid_outcome", "durationMs must not be negative and error at most 4096 bytes")
	}
	o := &writ.Outcome{ExitCode: req.ExitCode, DurationMS: req.DurationMS, Error: req.Error}
	details := map[string]any{"decision": id, "durationMs": req.DurationMS, "failed": req.Error != ""}
	if req.ExitCode != nil {
		details["exitCode"] = *req.ExitCode
	}
	// The error text is the agent's and may quote anything: it stays in the
	// decisions table, out of the log.
	ev := &writ.Event{Type: writ.EventDecisionOutcome, Actor: p.Actor(), Subject: id, Details: details}
	if err := a.cfg.Store.RecordOutcome(r.Context(), p.Run, id, o, ev); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.OutcomeResponse{Decision: id, Outcome: o})
}
