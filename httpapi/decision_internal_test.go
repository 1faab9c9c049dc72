package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/writ-dev/writ"
)

// TestRefusalEnvelope: a decision the API refuses is answered with the
// status of its kind and an error envelope carrying the decision's one
// code and sentence (writ.DecisionMessage), the decision and the approval.
func TestRefusalEnvelope(t *testing.T) {
	scope := writ.Reason{Code: "tool_not_in_scope", Message: `tool "shell:net" is not in this run's scope`}
	budget := writ.Reason{Code: "budget_total_calls", Message: "the run made 500 calls, its budget"}
	decisions := []*writ.Decision{
		{ID: "dec_1", Verdict: writ.VerdictDeny, Reasons: []writ.Reason{scope}},
		{ID: "dec_2", Verdict: writ.VerdictDeny, Reasons: []writ.Reason{scope, budget}},
		{ID: "dec_3", Verdict: writ.VerdictDeny},
		{ID: "dec_4", Verdict: writ.VerdictApprovalRequired, Reasons: []writ.Reason{scope}, Approval: &writ.ApprovalRef{ID: "apr_1", Group: "ops", Count: 1}},
		{ID: "dec_5", Verdict: writ.VerdictApprovalRequired},
	}
	a := New(Config{})
	var current *writ.Decision
	a.route("GET /v1/test/refused", a.public(func(http.ResponseWriter, *http.Request) error {
		return writ.DecisionError(current)
	}))
	srv := httptest.NewServer(a)
	defer srv.Close()
	for _, d := range decisions {
		current = d
		resp, err := http.Get(srv.URL + "/v1/test/refused")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message, Decision, Approval string } `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		code, sentence := writ.DecisionMessage(d)
		approval := ""
		if d.Approval != nil {
			approval = d.Approval.ID
		}
		if err != nil || resp.StatusCode != http.StatusForbidden || body.Error.Code != code || body.Error.Message != sentence ||
			body.Error.Decision != d.ID || body.Error.Approval != approval {
			t.Errorf("%s: %d %+v (%v); want 403 %s %q", d.ID, resp.StatusCode, body.Error, err, code, sentence)
		}
	}
}
