package decision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// Input is the policy input document (policy/CONTRACT.md). Field order is
// fixed by the structs, so the same facts always give the same bytes and
// the same input digest.
type Input struct {
	Action   writ.Action  `json:"action"`
	Via      string       `json:"via"`
	Enforced bool         `json:"enforced"`
	Run      RunInput     `json:"run"`
	History  HistoryInput `json:"history"`
	Context  ContextInput `json:"context"`
}

// RunInput is the run as policy sees it.
type RunInput struct {
	ID            writ.RunID    `json:"id"`
	Agent         string        `json:"agent"`
	Profile       string        `json:"profile"`
	Issuer        string        `json:"issuer"`
	Ticket        writ.Ticket   `json:"ticket"`
	Scope         writ.Scope    `json:"scope"`
	ScopeDigest   string        `json:"scopeDigest"`
	TriggerDigest string        `json:"triggerDigest"`
	Depth         int           `json:"depth"`
	Parent        writ.RunID    `json:"parent"`
	Deadline      time.Time     `json:"deadline"`
	State         writ.RunState `json:"state"`
	BranchPrefix  string        `json:"branchPrefix"`
	// Chain names the run's ancestors, parent first.
	Chain []writ.ChainLink `json:"chain"`
}

// HistoryInput is the run's history as policy sees it.
type HistoryInput struct {
	Actions []writ.HistoryEntry `json:"actions"`
	Counts  Counts              `json:"counts"`
	Allowed map[string]bool     `json:"allowed"`
}

// Counts are counted by writ, never reported by the agent.
type Counts struct {
	Total      int `json:"total"`
	LastMinute int `json:"lastMinute"`
	Denials    int `json:"denials"`
	Children   int `json:"children"`
}

// ContextInput holds the target facts.
type ContextInput struct {
	Time             time.Time  `json:"time"`
	Hour             int        `json:"hour"`
	Weekday          string     `json:"weekday"`
	RemainingSeconds int64      `json:"remainingSeconds"`
	ToolInScope      bool       `json:"toolInScope"`
	Repo             *RepoFacts `json:"repo,omitempty"`
	Paths            PathFacts  `json:"paths"`
	Environment      *EnvFacts  `json:"environment,omitempty"`
	Secret           *ScopeFact `json:"secret,omitempty"`
	Host             *ScopeFact `json:"host,omitempty"`
	// Args are facts about the action's arguments, when a gateway looked
	// (mcp.call): absent otherwise.
	Args *ArgsFacts `json:"args,omitempty"`
}

// ArgsFacts describe what the arguments of an action touch.
type ArgsFacts struct {
	Paths             []string    `json:"paths"`
	OutsideWorkspace  []string    `json:"outsideWorkspace"`
	Hosts             []ScopeFact `json:"hosts"`
	HostsOutsideScope []string    `json:"hostsOutsideScope"`
}

// RepoFacts describe the target repository and branch.
type RepoFacts struct {
	Name      string `json:"name"`
	InScope   bool   `json:"inScope"`
	Write     bool   `json:"write"`
	Base      string `json:"base"`
	Branch    string `json:"branch"`
	Protected bool   `json:"protected"`
	RunBranch bool   `json:"runBranch"`
}

// PathFacts describe the changed paths.
type PathFacts struct {
	Changed      []string `json:"changed"`
	OutsideScope []string `json:"outsideScope"`
	Protected    []string `json:"protected"`
}

// EnvFacts describe the target environment.
type EnvFacts struct {
	Name      string `json:"name"`
	InScope   bool   `json:"inScope"`
	Sensitive bool   `json:"sensitive"`
}

// ScopeFact says whether a named thing is in the run's scope.
type ScopeFact struct {
	Name    string `json:"name"`
	InScope bool   `json:"inScope"`
}

// BranchPrefix is the prefix of the only branches run id may push.
func BranchPrefix(id writ.RunID) string { return "writ/" + string(id) + "/" }

func (p *Point) input(req *Request, h *history, now time.Time) *Input {
	run := req.Run
	a := req.Action
	in := &Input{
		Action: a, Via: req.Via, Enforced: !req.DryRun && !strings.HasPrefix(req.Via, "hook:"),
		Run: RunInput{
			ID: run.ID, Agent: run.Agent, Profile: run.Profile, Issuer: run.Issuer, Ticket: run.Ticket, Scope: run.Scope,
			ScopeDigest: run.ScopeDigest, TriggerDigest: run.TriggerDigest, Depth: run.Depth, Parent: run.Parent,
			Deadline: run.Deadline.UTC(), State: run.State, BranchPrefix: BranchPrefix(run.ID), Chain: run.Chain,
		},
	}
	if h.suspended && in.Run.State == writ.RunActive {
		in.Run.State = writ.RunSuspended
	}
	if !now.Before(run.Deadline) && !in.Run.State.Final() {
		in.Run.State = writ.RunExpired
	}
	in.Run.Scope.Tools, in.Run.Scope.Hosts = nonNil(in.Run.Scope.Tools), nonNil(in.Run.Scope.Hosts)
	in.Run.Scope.Environments, in.Run.Scope.Secrets = nonNil(in.Run.Scope.Environments), nonNil(in.Run.Scope.Secrets)
	if in.Run.Scope.Repos == nil {
		in.Run.Scope.Repos = []writ.RepoScope{}
	}
	if in.Run.Chain == nil {
		in.Run.Chain = []writ.ChainLink{}
	}

	// History.
	h.prune(now, p.window())
	in.History.Actions = h.recent
	if in.History.Actions == nil {
		in.History.Actions = []writ.HistoryEntry{}
	}
	in.History.Allowed = h.allowed
	if in.History.Allowed == nil {
		in.History.Allowed = map[string]bool{}
	}
	c := Counts{Total: h.total, Children: h.children}
	minute, denialsFrom := now.Add(-time.Minute), now.Add(-p.cfg.Denials.Window)
	for _, e := range h.window {
		if !e.Time.Before(minute) {
			c.LastMinute++
		}
		if e.Verdict == writ.VerdictDeny && !e.Time.Before(denialsFrom) {
			c.Denials++
		}
	}
	in.History.Counts = c

	// Context.
	cx := &in.Context
	cx.Time, cx.Hour, cx.Weekday = now, now.Hour(), now.Weekday().String()
	cx.RemainingSeconds = max(int64(run.Deadline.Sub(now)/time.Second), 0)
	if a.Kind == writ.ActionTool || a.Kind == writ.ActionMCPCall {
		cx.ToolInScope = anyMatch(run.Scope.Tools, a.Name, writ.MatchTool)
	}
	t := a.Target
	// An agent's hook knows the workspace, not the repository: a push or a
	// change of paths without a repo is about the run's repo when its
	// scope names exactly one.
	if t.Repo == "" && len(run.Scope.Repos) == 1 && (a.Kind == writ.ActionGitPush || a.Kind == writ.ActionGitFetch || len(t.Paths) > 0) {
		t.Repo = run.Scope.Repos[0].Name
	}
	var scopeRepo *writ.RepoScope
	if t.Repo != "" {
		rf := &RepoFacts{Name: t.Repo, Branch: strings.TrimPrefix(t.Ref, "refs/heads/")}
		for i := range run.Scope.Repos {
			if run.Scope.Repos[i].Name == t.Repo {
				scopeRepo = &run.Scope.Repos[i]
			}
		}
		if scopeRepo != nil {
			rf.InScope, rf.Write, rf.Base = true, scopeRepo.Write, scopeRepo.Base
		}
		if rf.Branch != "" {
			rules := p.repos[t.Repo]
			rf.Protected = rf.Branch == rf.Base || anyMatch(rules.Protected, rf.Branch, writ.MatchPath)
			rf.RunBranch = strings.HasPrefix(rf.Branch, BranchPrefix(run.ID))
		}
		cx.Repo = rf
	}
	cx.Paths = PathFacts{Changed: nonNil(t.Paths), OutsideScope: []string{}, Protected: []string{}}
	for _, path := range t.Paths {
		inScope := scopeRepo != nil && (len(scopeRepo.Paths) == 0 || anyMatch(scopeRepo.Paths, path, writ.MatchPath))
		if !inScope {
			cx.Paths.OutsideScope = append(cx.Paths.OutsideScope, path)
		}
		if t.Repo != "" && anyMatch(p.repos[t.Repo].ProtectedPaths, path, writ.MatchPath) {
			cx.Paths.Protected = append(cx.Paths.Protected, path)
		}
	}
	if t.Environment != "" {
		cx.Environment = &EnvFacts{Name: t.Environment, Sensitive: p.envs[t.Environment].Sensitive}
		for _, e := range run.Scope.Environments {
			if e == t.Environment {
				cx.Environment.InScope = true
			}
		}
	}
	if t.Secret != "" {
		cx.Secret = &ScopeFact{Name: t.Secret, InScope: anyMatch(run.Scope.Secrets, t.Secret, writ.MatchPath)}
	}
	host := t.Host
	if a.Kind == writ.ActionEgress {
		host, _, _ = strings.Cut(a.Name, ":")
	}
	if host != "" {
		cx.Host = &ScopeFact{Name: host, InScope: anyMatch(run.Scope.Hosts, host, writ.MatchHost)}
	}
	if af := req.ArgFacts; af != nil {
		args := &ArgsFacts{Paths: nonNil(af.Paths), OutsideWorkspace: nonNil(af.OutsideWorkspace), Hosts: []ScopeFact{}, HostsOutsideScope: []string{}}
		for _, h := range af.Hosts {
			f := ScopeFact{Name: h, InScope: anyMatch(run.Scope.Hosts, h, writ.MatchHost)}
			args.Hosts = append(args.Hosts, f)
			if !f.InScope {
				args.HostsOutsideScope = append(args.HostsOutsideScope, h)
			}
		}
		cx.Args = args
	}
	return in
}

func anyMatch(patterns []string, s string, match func(p, s string) bool) bool {
	for _, p := range patterns {
		if match(p, s) {
			return true
		}
	}
	return false
}

// subject returns what an approval of action a binds to (docs/design.md §4.5)
// and its slot: what the subject is of, so that a new subject in the same
// slot (a new push to the branch, another digest for the environment)
// voids the approval of the old one.
func subject(a writ.Action) (kind string, subj map[string]any, slot string) {
	t := a.Target
	b, _ := json.Marshal(a)
	sum := sha256.Sum256(b)
	// Every subject binds the digest of the whole action — kind, name,
	// arguments and target — so an approval never covers another action
	// with the same readable detail (a deploy for a release, a vault
	// credential for a secret, other arguments).
	actionDigest := "sha256:" + hex.EncodeToString(sum[:])
	switch {
	case a.Kind == writ.ActionMerge || a.Kind == writ.ActionGitPush:
		// One slot per repository: a new push changes what any approved
		// merge of the run's work would merge.
		return writ.SubjectCommit, map[string]any{"action": a.Kind, "repo": t.Repo, "ref": t.Ref, "base": t.Base, "head": t.Head,
			"diffDigest": t.Digest, "paths": nonNil(t.Paths), "actionDigest": actionDigest}, "commit:" + t.Repo
	case a.Kind == writ.ActionRelease || a.Kind == writ.ActionDeploy || a.Kind == writ.ActionBuild:
		return writ.SubjectArtifact, map[string]any{"action": a.Kind, "digest": t.Digest, "environment": t.Environment, "repo": t.Repo,
			"actionDigest": actionDigest}, "artifact:" + a.Kind + ":" + t.Repo + "@" + t.Environment
	case a.Kind == writ.ActionCredential && t.Secret != "":
		return writ.SubjectSecret, map[string]any{"credential": a.Name, "name": t.Secret, "environment": t.Environment,
			"actionDigest": actionDigest}, "secret:" + t.Secret + "@" + t.Environment
	case a.Kind == writ.ActionDelegate:
		return writ.SubjectScope, map[string]any{"actionDigest": actionDigest, "name": a.Name}, "scope:" + a.Name
	}
	return writ.SubjectTool, map[string]any{"actionDigest": actionDigest, "kind": a.Kind, "name": a.Name},
		"tool:" + a.Kind + ":" + a.Name
}

// withRepo fills in the run's repo for an action that names none when the
// run's scope names exactly one (as the facts do), so a hook's push and a
// gateway's push of the same repo share a slot.
func (p *Point) withRepo(run *writ.Run, a writ.Action) writ.Action {
	if a.Target.Repo == "" && len(run.Scope.Repos) == 1 && (a.Kind == writ.ActionGitPush || a.Kind == writ.ActionGitFetch || a.Kind == writ.ActionMerge || len(a.Target.Paths) > 0) {
		a.Target.Repo = run.Scope.Repos[0].Name
	}
	return a
}

// gateResult is what the approval gate found for a decision.
type gateResult struct {
	request  *writ.ApprovalRequest
	approved bool // request is approved and satisfies the gate now
	created  bool // request is new
	voids    []writ.ApprovalVoid
}

// gate finds the approval a gated decision waits on: an approved request
// of exactly this subject (which the decision then uses), a pending one, or
// a new one. A live request that expired or was approved under another
// policy is voided; so are live requests of other subjects in the slot.
func (p *Point) gate(ctx context.Context, run *writ.Run, d *writ.Decision, ar *writ.ApprovalReason, policyDigest string, now time.Time) (*gateResult, error) {
	kind, subj, slot := subject(p.withRepo(run, d.Action))
	b, err := json.Marshal(map[string]any{"kind": kind, "subject": subj})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	g := &gateResult{}
	void := func(a *writ.ApprovalRequest, state, reason string) {
		g.voids = append(g.voids, writ.ApprovalVoid{ID: a.ID, State: state, Event: &writ.Event{
			Type: writ.EventApprovalVoided, Run: run.ID, Actor: writ.ActorSystem, Subject: a.ID,
			Details: map[string]any{"reason": reason, "decision": d.ID, "was": a.State, "subjectDigest": a.SubjectDigest}}})
	}
	live, err := p.cfg.Store.LiveApproval(ctx, run.ID, kind, digest)
	switch {
	case err == nil:
		switch {
		case !now.Before(live.ExpiresAt):
			void(live, writ.ApprovalExpired, "expired")
		case live.PolicyDigest != policyDigest:
			void(live, writ.ApprovalVoided, "policy_changed")
		default:
			g.request, g.approved = live, live.State == writ.ApprovalApproved
			return g, nil
		}
	case writ.ErrorKind(err) != writ.KindNotFound:
		return nil, err
	}
	others, err := p.cfg.Store.LiveApprovalsInSlot(ctx, run.ID, slot)
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if o.SubjectDigest != digest {
			void(o, writ.ApprovalVoided, "subject_changed")
		}
	}
	exp := now.Add(p.cfg.ApprovalTTL)
	if run.Deadline.Before(exp) {
		exp = run.Deadline
	}
	g.request = &writ.ApprovalRequest{
		ID: "apr_" + writ.NewULID(now, nil), Run: run.ID, Decision: d.ID, SubjectKind: kind, SubjectDigest: digest,
		Subject: subj, Slot: slot, Reasons: d.Reasons, Group: ar.Group, Count: ar.Count, State: writ.ApprovalPending,
		TriggerDigest: run.TriggerDigest, PolicyDigest: policyDigest, ExpiresAt: exp.UTC(),
	}
	g.created = true
	return g, nil
}

// events returns the events of decision d: the decision itself first,
// then a new approval request, then one alert per policy alert.
func (p *Point) events(d *writ.Decision, res *writ.PolicyResult, apr *writ.ApprovalRequest, newApproval bool) []*writ.Event {
	details := map[string]any{
		"name": d.Action.Name, "via": d.Via, "reasons": d.Reasons, "obligations": d.Obligations,
		"policyDigest": res.PolicyDigest, "dataDigest": res.DataDigest, "inputDigest": d.InputDigest,
	}
	if tgt := d.Action.Target; !isZeroTarget(tgt) {
		details["target"] = tgt
	}
	if len(d.Action.Args) > 0 {
		// Arguments may hold anything the agent typed, secrets included:
		// the log keeps their digest, the decisions table the bytes.
		sum := sha256.Sum256(d.Action.Args)
		details["argsDigest"] = "sha256:" + hex.EncodeToString(sum[:])
	}
	if d.CallRef != "" {
		details["callRef"] = d.CallRef
	}
	if d.DryRun {
		details["dryRun"] = true
	}
	if d.Approval != nil && d.Approval.ID != "" {
		details["approval"] = d.Approval
	}
	evs := []*writ.Event{{Type: writ.EventDecision, Run: d.Run, Actor: d.Actor, Action: d.Action.Kind, Decision: d.Verdict,
		Subject: d.ID, Details: details}}
	if newApproval {
		evs = append(evs, &writ.Event{Type: writ.EventApprovalRequested, Run: d.Run, Actor: writ.ActorSystem, Subject: apr.ID,
			Details: map[string]any{"decision": d.ID, "subjectKind": apr.SubjectKind, "subjectDigest": apr.SubjectDigest,
				"subject": apr.Subject, "group": apr.Group, "count": apr.Count, "expiresAt": apr.ExpiresAt,
				"triggerDigest": apr.TriggerDigest, "policyDigest": apr.PolicyDigest}})
	}
	if d.Action.Kind == writ.ActionReview && d.Verdict == writ.VerdictAllow && !d.DryRun {
		// An agent's review is on the record for policy and people to read;
		// it is the agent's say, and never a human's approval.
		var args struct {
			Verdict string `json:"verdict"`
			Summary string `json:"summary"`
		}
		_ = json.Unmarshal(d.Action.Args, &args)
		details := map[string]any{"decision": d.ID, "verdict": args.Verdict, "writtenByAgent": true}
		if tgt := d.Action.Target; !isZeroTarget(tgt) {
			details["target"] = tgt
		}
		if len(args.Summary) > 0 {
			sum := sha256.Sum256([]byte(args.Summary))
			details["summaryDigest"] = "sha256:" + hex.EncodeToString(sum[:])
		}
		evs = append(evs, &writ.Event{Type: writ.EventReviewRecorded, Run: d.Run, Actor: d.Actor, Subject: d.ID, Details: details})
	}
	for _, msg := range d.Alerts {
		if d.DryRun {
			break
		}
		evs = append(evs, &writ.Event{Type: writ.EventAlert, Run: d.Run, Actor: writ.ActorSystem, Subject: d.ID,
			Details: map[string]any{"message": msg, "decision": d.ID}})
	}
	return evs
}

func isZeroTarget(t writ.Target) bool {
	return t.Repo == "" && t.Ref == "" && t.Environment == "" && len(t.Paths) == 0 && t.Host == "" && t.Secret == "" &&
		t.Digest == "" && t.Base == "" && t.Head == ""
}
