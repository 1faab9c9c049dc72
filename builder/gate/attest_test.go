package gate_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder/gate"
	"github.com/writ-dev/writ/gitgw"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// entries turns events into log entries at consecutive indexes from 10.
func entries(t *testing.T, evs ...*writ.Event) []writ.LogEntry {
	t.Helper()
	out := make([]writ.LogEntry, len(evs))
	for i, ev := range evs {
		b, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = writ.LogEntry{Seq: int64(10 + i), ID: ev.ID, Type: ev.Type, Run: ev.Run, Body: b}
	}
	return out
}

// TestRunPredicate: what writ witnessed of a run (decisions it made,
// approvals, credentials, accepted pushes, merges, who ended the run) is
// apart from what only the agent asserted (outcomes, reviews, its own end
// reason); dry runs, refused pushes and unreadable entries count for
// nothing.
func TestRunPredicate(t *testing.T) {
	run := &writ.Run{ID: "01JRUN0000000000000000000A", Agent: "refactor-bot", Profile: "refactor",
		Ticket: writ.Ticket{System: "jira", ID: "ENG-1", URL: "https://jira.example/ENG-1"}, TriggerID: "trg-1",
		TriggerDigest: "sha256:tt", Issuer: "alice", SignerKey: "SHA256:k", ScopeDigest: "sha256:ss",
		State: writ.RunEnded, CreatedAt: t0, EndedAt: t0.Add(time.Hour)}
	self := "run:" + string(run.ID)
	dec := func(verdict, digest string, dry bool) *writ.Event {
		d := map[string]any{"policyDigest": digest}
		if dry {
			d["dryRun"] = true
		}
		return &writ.Event{Type: writ.EventDecision, Run: run.ID, Decision: verdict, Details: d}
	}
	common := []*writ.Event{
		dec(writ.VerdictAllow, "sha256:p1", false),
		dec(writ.VerdictAllow, "sha256:p1", false),
		dec(writ.VerdictDeny, "sha256:p2", false),
		dec(writ.VerdictApprovalRequired, "sha256:p2", false),
		dec(writ.VerdictDeny, "sha256:p3", true), // a dry run decides nothing
		{Type: writ.EventApprovalGranted, Run: run.ID, Subject: "apr_1", Decision: "approve", Details: map[string]any{"approver": "bob"}},
		{Type: writ.EventCredentialIssued, Run: run.ID, Subject: "lease_1", Details: map[string]any{"kind": "git", "target": "acme/api", "expiresAt": t0.Add(5 * time.Minute).Format(time.RFC3339)}},
		{Type: writ.EventCredentialIssued, Run: run.ID, Subject: "lease_2", Details: map[string]any{"kind": "secret", "target": "staging/deploy-key", "static": true, "expiresAt": t0.Add(time.Minute).Format(time.RFC3339)}},
		{Type: writ.EventCredentialRevoked, Run: run.ID, Subject: "lease_1", Time: t0.Add(2 * time.Minute)},
		{Type: writ.EventCredentialRevoked, Run: run.ID, Subject: "lease_other", Time: t0}, // not issued to this run: ignored
		{Type: gitgw.EventPushed, Run: run.ID, Details: map[string]any{"outcome": "accepted", "repo": "acme/api", "commits": []any{"c1", "c2"}}},
		{Type: gitgw.EventPushed, Run: run.ID, Details: map[string]any{"outcome": "refused", "repo": "acme/api", "commits": []any{"c3"}}},
		{Type: gitgw.EventMerge, Run: run.ID, Details: map[string]any{"repo": "acme/api", "into": "main", "head": "c2", "approval": "apr_1"}},
		{Type: writ.EventDecisionOutcome, Run: run.ID},
		{Type: writ.EventDecisionOutcome, Run: run.ID},
		{Type: writ.EventReviewRecorded, Run: run.ID},
	}
	wantBase := attest.RunWitnessed{
		Agent: "refactor-bot", Identity: "spiffe://writ.test/agent/refactor-bot/run/" + string(run.ID), Profile: "refactor",
		Trigger:     attest.TriggerRef{ID: "trg-1", Digest: "sha256:tt", Signer: "alice", SignerKey: "SHA256:k"},
		Ticket:      attest.TicketRef{System: "jira", ID: "ENG-1", URL: "https://jira.example/ENG-1"},
		ScopeDigest: "sha256:ss", StartedAt: t0, EndedAt: t0.Add(time.Hour), EndState: "ended",
		PolicyDigest: []string{"sha256:p1", "sha256:p2"},
		Approvals:    []attest.ApprovalRef{{ID: "apr_1", Approver: "bob", Verdict: "approve", LogIndex: 15}},
		Credentials: []attest.CredentialRef{
			{Lease: "lease_1", Kind: "git", Target: "acme/api", ExpiresAt: t0.Add(5 * time.Minute), RevokedAt: t0.Add(2 * time.Minute), LogIndex: 16},
			{Lease: "lease_2", Kind: "secret", Target: "staging/deploy-key", Static: true, ExpiresAt: t0.Add(time.Minute), LogIndex: 17},
		},
		Pushes: []attest.PushRef{{Repo: "acme/api", Commits: []string{"c1", "c2"}, LogIndex: 20}},
		Merges: []attest.MergeRef{{Repo: "acme/api", Into: "main", Head: "c2", Approval: "apr_1", LogIndex: 22}},
	}
	wantBase.Actions.Allowed, wantBase.Actions.Denied, wantBase.Actions.ApprovalRequired = 2, 1, 1

	tests := []struct {
		name         string
		end          *writ.Event
		endedBy      string
		witnessedWhy string
		assertedWhy  string
	}{
		{"the run ends itself: its reason is its own word",
			&writ.Event{Type: writ.EventRunEnded, Run: run.ID, Actor: self, Details: map[string]any{"reason": "done, all green"}},
			self, "", "done, all green"},
		{"a human kills it: the reason is witnessed",
			&writ.Event{Type: writ.EventRunKilled, Run: run.ID, Actor: "human:alice", Details: map[string]any{"reason": "runaway"}},
			"human:alice", "runaway", ""},
		{"the deadline expires it",
			&writ.Event{Type: writ.EventRunExpired, Run: run.ID, Actor: writ.ActorSystem, Details: map[string]any{"reason": "deadline"}},
			writ.ActorSystem, "deadline", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := entries(t, append(append([]*writ.Event{}, common...), tt.end)...)
			es = append(es, writ.LogEntry{Seq: 99, Type: "junk", Body: []byte("{not json")})
			got := gate.RunPredicate(run, es, "writ.test")
			want := wantBase
			want.EndedBy, want.EndReason = tt.endedBy, tt.witnessedWhy
			wantAsserted := attest.AgentAsserted{Outcomes: 2, Reviews: 1, EndReason: tt.assertedWhy}
			if got.Run != string(run.ID) {
				t.Errorf("Run = %q", got.Run)
			}
			if diff := cmp.Diff(want, got.Witnessed); diff != "" {
				t.Errorf("witnessed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantAsserted, got.AgentAsserted); diff != "" {
				t.Errorf("agent-asserted (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunPredicateEmpty: a run with no events still has every list
// present (empty, never null), so verifiers read one shape.
func TestRunPredicateEmpty(t *testing.T) {
	got := gate.RunPredicate(&writ.Run{ID: "01JRUN0000000000000000000B", Agent: "a", State: writ.RunExpired}, nil, "writ.test")
	w := got.Witnessed
	if w.PolicyDigest == nil || w.Approvals == nil || w.Credentials == nil || w.Pushes == nil || w.Merges == nil {
		t.Errorf("nil lists in %+v", w)
	}
	if w.Actions.Allowed+w.Actions.Denied+w.Actions.ApprovalRequired != 0 || w.EndedBy != "" {
		t.Errorf("an empty run witnessed %+v", w)
	}
}

// TestBuilderID is the builder id provenance names.
func TestBuilderID(t *testing.T) {
	if got := gate.BuilderID("writ.example.org"); got != "spiffe://writ.example.org/writ/builder/v1" {
		t.Errorf("BuilderID = %q", got)
	}
}
