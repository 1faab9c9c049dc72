package gate

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/gitgw"
)

// RunPredicate gathers what writ witnessed of run from its events, apart
// from what the agent only asserted: the predicate of its attestation
// (docs/attestations.md), without the log proof.
func RunPredicate(run *writ.Run, es []writ.LogEntry, trustDomain string) *attest.RunPredicate {
	w := attest.RunWitnessed{
		Agent: run.Agent, Identity: run.SPIFFEID(trustDomain), Profile: run.Profile,
		Trigger:     attest.TriggerRef{ID: run.TriggerID, Digest: run.TriggerDigest, Signer: run.Issuer, SignerKey: run.SignerKey},
		Ticket:      attest.TicketRef{System: run.Ticket.System, ID: run.Ticket.ID, URL: run.Ticket.URL},
		ScopeDigest: run.ScopeDigest, Parent: string(run.Parent), Depth: run.Depth,
		StartedAt: run.CreatedAt.UTC(), EndedAt: run.EndedAt.UTC(), EndState: string(run.State),
		PolicyDigest: []string{}, Approvals: []attest.ApprovalRef{}, Credentials: []attest.CredentialRef{},
		Pushes: []attest.PushRef{}, Merges: []attest.MergeRef{},
	}
	var asserted attest.AgentAsserted
	leases := map[string]int{}
	self := writ.Principal{Kind: writ.PrincipalRun, Run: run.ID}
	for _, e := range es {
		var ev writ.Event
		if json.Unmarshal(e.Body, &ev) != nil {
			continue
		}
		str := func(k string) string { v, _ := ev.Details[k].(string); return v }
		switch ev.Type {
		case writ.EventDecision:
			if dry, _ := ev.Details["dryRun"].(bool); dry {
				continue
			}
			switch ev.Decision {
			case writ.VerdictAllow:
				w.Actions.Allowed++
			case writ.VerdictDeny:
				w.Actions.Denied++
			case writ.VerdictApprovalRequired:
				w.Actions.ApprovalRequired++
			}
			if d := str("policyDigest"); d != "" && !slices.Contains(w.PolicyDigest, d) {
				w.PolicyDigest = append(w.PolicyDigest, d)
			}
		case writ.EventApprovalGranted, writ.EventApprovalDenied:
			w.Approvals = append(w.Approvals, attest.ApprovalRef{ID: ev.Subject, Approver: str("approver"), Verdict: ev.Decision, LogIndex: e.Seq})
		case writ.EventCredentialIssued:
			c := attest.CredentialRef{Lease: ev.Subject, Kind: str("kind"), Target: str("target"), LogIndex: e.Seq}
			c.ExpiresAt, _ = time.Parse(time.RFC3339, str("expiresAt"))
			c.Static, _ = ev.Details["static"].(bool)
			leases[ev.Subject] = len(w.Credentials)
			w.Credentials = append(w.Credentials, c)
		case writ.EventCredentialRevoked:
			if i, ok := leases[ev.Subject]; ok {
				w.Credentials[i].RevokedAt = ev.Time.UTC()
			}
		case gitgw.EventPushed:
			if str("outcome") != "accepted" {
				continue
			}
			p := attest.PushRef{Repo: str("repo"), Commits: []string{}, LogIndex: e.Seq}
			if cs, ok := ev.Details["commits"].([]any); ok {
				for _, c := range cs {
					if c, ok := c.(string); ok {
						p.Commits = append(p.Commits, c)
					}
				}
			}
			w.Pushes = append(w.Pushes, p)
		case gitgw.EventMerge:
			w.Merges = append(w.Merges, attest.MergeRef{Repo: str("repo"), Into: str("into"), Head: str("head"), Approval: str("approval"), LogIndex: e.Seq})
		case writ.EventDecisionOutcome:
			asserted.Outcomes++
		case writ.EventReviewRecorded:
			asserted.Reviews++
		case writ.EventRunEnded, writ.EventRunKilled, writ.EventRunExpired:
			w.EndedBy = ev.Actor
			if ev.Actor == self.Actor() {
				asserted.EndReason = str("reason")
			} else {
				w.EndReason = str("reason")
			}
		}
	}
	return &attest.RunPredicate{Run: string(run.ID), Witnessed: w, AgentAsserted: asserted}
}
