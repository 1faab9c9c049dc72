package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// Approvals is the approval service (package approval).
type Approvals interface {
	Statement(ctx context.Context, p *writ.Principal, id, verdict string) ([]byte, error)
	Submit(ctx context.Context, p *writ.Principal, id, verdict string, body []byte) (*writ.ApprovalRequest, error)
}

// ApprovalStore is what the approval routes read.
type ApprovalStore interface {
	GetApproval(ctx context.Context, id string) (*writ.ApprovalRequest, error)
	ListApprovals(ctx context.Context, f writ.ApprovalFilter) ([]*writ.ApprovalRequest, error)
	GetDecision(ctx context.Context, id string) (*writ.Decision, error)
}

func (a *API) listApprovals(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := writ.ApprovalFilter{State: q.Get("state")}
	switch f.State {
	case "", writ.ApprovalPending, writ.ApprovalApproved, writ.ApprovalDenied, writ.ApprovalVoided, writ.ApprovalExpired, writ.ApprovalUsed:
	default:
		return writ.Errorf(writ.KindInvalid, "invalid_state", "state %q: want pending, approved, denied, voided, expired or used", f.State)
	}
	if s := q.Get("run"); s != "" {
		id, err := writ.ParseRunID(s)
		if err != nil {
			return err
		}
		f.Run = id
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return writ.Errorf(writ.KindInvalid, "invalid_limit", "limit %q: want a number from 1 to 1000", s)
		}
		f.Limit = n
	}
	as, err := a.cfg.ApprovalStore.ListApprovals(r.Context(), f)
	if err != nil {
		return err
	}
	if as == nil {
		as = []*writ.ApprovalRequest{}
	}
	return writeJSON(w, http.StatusOK, api.ApprovalList{Approvals: as})
}

func (a *API) showApproval(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ap, err := a.cfg.ApprovalStore.GetApproval(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := api.ApprovalView{ApprovalRequest: *ap, Risk: api.ApprovalRisk{Reasons: []string{}}}
	for _, rs := range ap.Reasons {
		v.Risk.Reasons = append(v.Risk.Reasons, rs.Code)
	}
	if run, err := a.cfg.Store.GetRun(ctx, ap.Run); err == nil {
		v.RunInfo = &api.ApprovalRun{ID: run.ID, Agent: run.Agent, Profile: run.Profile, Issuer: run.Issuer, Ticket: run.Ticket,
			State: run.State, Deadline: run.Deadline, Scope: run.Scope, TriggerDigest: run.TriggerDigest}
		v.Risk.Profile = run.Profile
	} else if writ.ErrorKind(err) != writ.KindNotFound {
		return err
	}
	if d, err := a.cfg.ApprovalStore.GetDecision(ctx, ap.Decision); err == nil {
		act := d.Action
		args := act.Args
		act.Args = nil
		v.Action = &act
		t := act.Target
		v.Risk.Environment, v.Risk.Secret = t.Environment, t.Secret
		v.Risk.Sensitive = a.cfg.SensitiveEnvironments[t.Environment]
		for _, rs := range ap.Reasons {
			if rs.Code == "protected_path" {
				v.Risk.ProtectedPaths = t.Paths
			}
		}
		if len(args) > 0 {
			v.WrittenByAgent = &api.AgentWritten{Note: "written by the agent: shown as it sent it, not verified by writ", Args: args}
		}
	} else if writ.ErrorKind(err) != writ.KindNotFound {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (a *API) approvalStatement(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	b, err := a.cfg.Approvals.Statement(r.Context(), p, r.PathValue("id"), r.URL.Query().Get("verdict"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/vnd.writ.approval.v1+json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

func (a *API) submitApproval(verdict string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := writ.PrincipalFromContext(r.Context())
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return writ.Errorf(writ.KindTooLarge, "too_large", "the signed statement is over the %d-byte limit", mbe.Limit)
			}
			return err
		}
		ap, err := a.cfg.Approvals.Submit(r.Context(), p, r.PathValue("id"), verdict, body)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, ap)
	}
}
