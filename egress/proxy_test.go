package egress_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/egress"
)

type oneLease struct{}

func (oneLease) CheckEgress(ctx context.Context, user, password string) (*writ.Lease, error) {
	return &writ.Lease{ID: "lease_1", Run: writ.RunID(user)}, nil
}

type oneRun struct{}

func (oneRun) Get(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	return &writ.Run{ID: id, State: writ.RunActive, Scope: writ.Scope{Hosts: []string{"api.example.com"}}}, nil
}

// answer is a decision point that answers d.
type answer struct{ d writ.Decision }

func (a *answer) Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error) {
	d := a.d
	return &d, nil
}

// TestRefusedTunnelSaysTheDecision: a CONNECT policy refuses is answered
// 403 with the decision's one code (X-Writ-Reason) and sentence, those of
// writ.DecisionMessage.
func TestRefusedTunnelSaysTheDecision(t *testing.T) {
	scope := writ.Reason{Code: "host_not_in_scope", Message: `host "api.example.com" is not in this run's scope`}
	budget := writ.Reason{Code: "budget_total_calls", Message: "the run made 500 calls, its budget"}
	for _, d := range []writ.Decision{
		{ID: "dec_1", Verdict: writ.VerdictDeny, Reasons: []writ.Reason{scope}},
		{ID: "dec_2", Verdict: writ.VerdictDeny, Reasons: []writ.Reason{scope, budget}},
		{ID: "dec_3", Verdict: writ.VerdictDeny},
		{ID: "dec_4", Verdict: writ.VerdictApprovalRequired, Reasons: []writ.Reason{scope}, Approval: &writ.ApprovalRef{ID: "apr_1", Group: "ops", Count: 1}},
		{ID: "dec_5", Verdict: writ.VerdictApprovalRequired},
	} {
		p := egress.New(egress.Config{MaxTunnels: 4, MaxTunnelsPerRun: 2}, oneLease{}, oneRun{}, &answer{d}, nil)
		req := httptest.NewRequest(http.MethodConnect, "http://api.example.com:443", nil)
		req.Host = "api.example.com:443"
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("01RUN:secret")))
		rec := httptest.NewRecorder()
		p.Wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
		code, sentence := writ.DecisionMessage(&d)
		if rec.Code != http.StatusForbidden || rec.Header().Get("X-Writ-Reason") != code || rec.Header().Get("X-Writ-Decision") != d.ID ||
			rec.Body.String() != "writ egress: "+code+": "+sentence+"\n" {
			t.Errorf("%s %v: %d %s %q\n%q", d.ID, d.Verdict, rec.Code, rec.Header().Get("X-Writ-Reason"), rec.Header().Get("X-Writ-Decision"), rec.Body.String())
		}
	}
}
