// Package decision is writ's policy decision point: for one action of a
// run it builds the policy input — the action, the run, the run's history
// and the delivery context (is the branch protected, which paths change,
// how sensitive the environment is) — asks the policy engine, applies the
// precedence deny > approval_required > allow, and records the decision,
// its approval request and, when policy says so, the run's suspension, in
// one transaction. Every gateway (the API's /v1/decide, git, MCP, the
// broker) decides through the same [Point].
//
// Pattern matching (paths, hosts, tools) happens here, once, with the root
// package's matcher; Rego receives the answers as facts (policy/CONTRACT.md).
package decision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ"
)

// Evaluator answers a policy input (JSON bytes). The policy package's
// Engine is the real one.
type Evaluator interface {
	Evaluate(ctx context.Context, input []byte) (*writ.PolicyResult, error)
}

// Store is what the decision point needs from storage.
type Store interface {
	RunHistory(ctx context.Context, run writ.RunID, windowStart time.Time, limit int) (*writ.RunHistory, error)
	RecordDecision(ctx context.Context, rec *writ.DecisionRecord) (*writ.Decision, bool, error)
	DecisionByCallRef(ctx context.Context, run writ.RunID, via, callRef string) (*writ.Decision, error)
	LiveApproval(ctx context.Context, run writ.RunID, kind, digest string) (*writ.ApprovalRequest, error)
	LiveApprovalsInSlot(ctx context.Context, run writ.RunID, slot string) ([]*writ.ApprovalRequest, error)
}

// Environment is a configured deployment environment.
type Environment struct {
	Name      string `json:"-"`
	Sensitive bool   `json:"sensitive"`
}

// RepoRules are the configured rules of a repository: its protected
// branches and the paths whose change needs approval.
type RepoRules struct {
	Name           string   `json:"-"`
	Protected      []string `json:"protected"`
	ProtectedPaths []string `json:"protectedPaths"`
}

// Denials is the denial threshold: Max enforced denials within Window
// suspend a run (0 disables it).
type Denials struct {
	Max    int
	Window time.Duration
}

// Config holds the decision point's dependencies.
type Config struct {
	Store        Store
	Policy       Evaluator
	Environments []Environment
	Repos        []RepoRules
	Denials      Denials
	// HistoryLimit is how many recent decisions policy sees (default 100).
	HistoryLimit int
	// ApprovalTTL bounds how long an approval request stays open (default
	// 24h); never past the run's deadline.
	ApprovalTTL time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
	// OnRunChanged is called after a decision suspended a run, so caches
	// of run state drop it; may be nil.
	OnRunChanged func(writ.RunID)
	// Shared says other processes (replicas) decide for the same runs on
	// the same store: a run's history is then read from the store for
	// every decision instead of kept in memory, so budgets and denial
	// thresholds count every replica's decisions.
	Shared bool
}

// Point is the decision point. It is safe for concurrent use; decisions
// of one run are evaluated one at a time, so budgets and thresholds see
// every earlier decision.
type Point struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	envs  map[string]Environment
	repos map[string]RepoRules

	mu   sync.Mutex
	runs map[writ.RunID]*history
}

// New returns a decision point.
func New(cfg Config) *Point {
	p := &Point{cfg: cfg, log: cfg.Logger, now: cfg.Now, envs: map[string]Environment{}, repos: map[string]RepoRules{},
		runs: map[writ.RunID]*history{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.cfg.HistoryLimit <= 0 {
		p.cfg.HistoryLimit = 100
	}
	if p.cfg.ApprovalTTL <= 0 {
		p.cfg.ApprovalTTL = 24 * time.Hour
	}
	for _, e := range cfg.Environments {
		p.envs[e.Name] = e
	}
	for _, r := range cfg.Repos {
		p.repos[r.Name] = r
	}
	return p
}

// PolicyData is the configuration handed to Rego as data.writ.config
// (policy/CONTRACT.md).
func PolicyData(profiles []*writ.Profile, envs []Environment, repos []RepoRules, denials Denials, approvers string) map[string]any {
	ps := map[string]any{}
	for _, p := range profiles {
		ps[p.Name] = map[string]any{
			"tools": nonNil(p.Tools), "hosts": nonNil(p.Hosts), "environments": nonNil(p.Environments),
			"secrets": p.Secrets, "maxDuration": p.MaxDuration.String(),
			"budgets": map[string]any{"callsPerMinute": p.Budgets.CallsPerMinute, "totalCalls": p.Budgets.TotalCalls, "children": p.Budgets.Children},
		}
	}
	es := map[string]any{}
	for _, e := range envs {
		es[e.Name] = e
	}
	rs := map[string]any{}
	for _, r := range repos {
		rs[r.Name] = RepoRules{Protected: nonNil(r.Protected), ProtectedPaths: nonNil(r.ProtectedPaths)}
	}
	return map[string]any{
		"profiles": ps, "environments": es, "repos": rs,
		"denials":   map[string]any{"max": denials.Max, "window": denials.Window.String()},
		"approvers": approvers,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Request is one action to decide.
type Request struct {
	// Run is the run acting (or, for a dry run, the run asked about), as
	// the caller loaded it.
	Run     *writ.Run
	Action  writ.Action
	Via     string
	CallRef string
	DryRun  bool
	// Actor is who asks: "run:<id>" or "human:<name>".
	Actor string
	// Attach, when set, is called once the verdict is an enforced allow,
	// before anything is recorded, with the decision as it will be
	// recorded; the lease it returns is stored in the decision's own
	// transaction (the broker's local backends: one write per lease). If
	// it fails, the decision is recorded without it and Decide returns
	// the decision together with that error.
	Attach func(d *writ.Decision) (*writ.LeaseRecord, error)
	// ArgFacts are what a gateway found in the action's arguments (the MCP
	// gateway: filesystem paths and URL hosts); nil when it looked for none.
	ArgFacts *ArgFacts
}

// ArgFacts are facts a gateway found in an action's arguments. The
// gateway knows what the arguments mean (which are paths, where the run's
// workspace is); the decision point matches the hosts against the run's
// scope, and policy sees both as input.context.args.
type ArgFacts struct {
	// Paths are the filesystem paths found, as the gateway resolved them.
	Paths []string
	// OutsideWorkspace are the paths that leave the run's workspace (all of
	// them when no workspace is known).
	OutsideWorkspace []string
	// Hosts are the hosts of the URLs found.
	Hosts []string
}

// Decide decides req and records the decision. The returned decision is
// the recorded one: for a repeated hook call (same via and callRef) it is
// the first decision of that call, recorded once.
//
// The steps: check the request; answer a repeated call from the record;
// under the run's lock, ask policy ([Point.evaluate]), apply an approval
// requirement ([Point.applyApproval]), void the commit approvals a push
// outdates ([Point.voidCommitApprovals]), attach a lease, and record it
// all in one transaction; then remember the decision in the run's history.
func (p *Point) Decide(ctx context.Context, req *Request) (*writ.Decision, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	run := req.Run
	if req.CallRef != "" && !req.DryRun {
		if d, err := p.cfg.Store.DecisionByCallRef(ctx, run.ID, req.Via, req.CallRef); err == nil {
			return sameCall(d, req)
		} else if writ.ErrorKind(err) != writ.KindNotFound {
			return nil, err
		}
	}
	now := p.now().UTC()
	d := &writ.Decision{
		ID: "dec_" + writ.NewULID(now, nil), Run: run.ID, Action: req.Action, Via: req.Via, CallRef: req.CallRef,
		DryRun: req.DryRun, Actor: req.Actor,
	}

	h, err := p.history(ctx, run.ID, now)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	res, err := p.evaluate(ctx, req, h, d, now)
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	verdict, reasons, appr := res.Verdict()
	d.Verdict, d.Reasons, d.PolicyDigest = verdict, reasons, res.PolicyDigest
	d.Obligations = res.Obligations
	d.Alerts = res.Alerts
	if req.DryRun {
		d.Obligations.Suspend = false
	}
	suspend := d.Obligations.Suspend && run.State == writ.RunActive && !h.suspended
	rec := &writ.DecisionRecord{Decision: d}
	apr, err := p.applyApproval(ctx, req, d, rec, appr, res.PolicyDigest, now)
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	if err := p.voidCommitApprovals(ctx, run, d, rec); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	var attachErr error
	if req.Attach != nil && d.Verdict == writ.VerdictAllow && d.Enforced() {
		rec.Lease, attachErr = req.Attach(d)
	}
	rec.Events = p.events(d, res, apr, rec.NewApproval != nil)
	if suspend {
		rec.Suspend = suspension(d)
	}
	// The run's lock is held through the commit: the next decision of this
	// run sees this one in its history, and an identical approval-gated
	// action finds this decision's approval request pending instead of
	// opening a second one.
	out, dup, err := p.cfg.Store.RecordDecision(ctx, rec)
	if err != nil {
		h.mu.Unlock()
		p.Forget(run.ID)
		return nil, err
	}
	if dup {
		h.mu.Unlock()
		p.Forget(run.ID)
		return sameCall(out, req)
	}
	if !req.DryRun {
		h.add(d, now, p.window())
		if suspend {
			h.suspended = true
		}
	}
	h.mu.Unlock()
	if suspend {
		p.log.WarnContext(ctx, "run suspended by policy", slog.String("run", string(run.ID)), slog.String("decision", d.ID))
		if p.cfg.OnRunChanged != nil {
			p.cfg.OnRunChanged(run.ID)
		}
	}
	return out, attachErr
}

// checkRequest refuses a malformed request before anything is read: an
// invalid action, via or callRef. An empty via becomes "api".
func checkRequest(req *Request) error {
	if err := req.Action.Validate(); err != nil {
		return err
	}
	if req.Via == "" {
		req.Via = "api"
	}
	if !validVia(req.Via) {
		return writ.Errorf(writ.KindInvalid, "invalid_via", "via %q: want a short name such as api, cli, git, mcp or hook:claude-code", req.Via)
	}
	if len(req.CallRef) > 256 {
		return writ.Errorf(writ.KindInvalid, "invalid_call_ref", "callRef is over 256 characters")
	}
	return nil
}

// evaluate builds the policy input of req from the run's history h (whose
// lock the caller holds), sets d's input digest and asks policy. It fails
// closed: an engine error is answered as a deny, which is recorded. Only
// overload (KindUnavailable) is returned as an error, and is not a
// decision: nothing is recorded, the caller retries.
func (p *Point) evaluate(ctx context.Context, req *Request, h *history, d *writ.Decision, now time.Time) (*writ.PolicyResult, error) {
	in := p.input(req, h, now)
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	d.InputDigest = "sha256:" + hex.EncodeToString(sum[:])
	res, err := p.cfg.Policy.Evaluate(ctx, raw)
	if writ.ErrorKind(err) == writ.KindUnavailable {
		return nil, err
	}
	if err != nil {
		// Fail closed: an engine error is a deny, on the record.
		p.log.ErrorContext(ctx, "policy evaluation failed; denying", slog.String("run", string(req.Run.ID)),
			slog.String("decision", d.ID), slog.Any("error", err))
		if res == nil {
			res = &writ.PolicyResult{}
		}
		res = &writ.PolicyResult{PolicyDigest: res.PolicyDigest, DataDigest: res.DataDigest,
			Deny: []writ.Reason{{Code: "policy_error", Message: "the policy could not be evaluated, so the action is denied; an administrator can see why in writ's log"}}}
	}
	return res, nil
}

// applyApproval applies policy's approval requirement appr (nil: none) to
// d and rec. A dry run only names the group. Otherwise the gate's request
// is found or opened: a standing approval of exactly this subject turns
// the verdict into an allow (an enforced decision uses it, an advisory one
// only says so); a new request is recorded with the decision, except that
// an advisory decision never replaces a live one. It returns the request
// the decision's events name, or nil.
func (p *Point) applyApproval(ctx context.Context, req *Request, d *writ.Decision, rec *writ.DecisionRecord,
	appr *writ.ApprovalReason, policyDigest string, now time.Time) (*writ.ApprovalRequest, error) {
	if appr == nil {
		return nil, nil
	}
	if req.DryRun {
		d.Approval = &writ.ApprovalRef{Group: appr.Group, Count: appr.Count}
		return nil, nil
	}
	g, err := p.gate(ctx, req.Run, d, appr, policyDigest, now)
	if err != nil {
		return nil, err
	}
	apr := g.request
	if d.Enforced() {
		rec.Voids = g.voids
	}
	d.Approval = &writ.ApprovalRef{ID: apr.ID, Group: apr.Group, Count: apr.Count}
	switch {
	case g.approved && d.Enforced():
		// A human approval of exactly this subject, given before this
		// request and still valid, satisfies the gate, once.
		d.Verdict = writ.VerdictAllow
		d.Reasons = []writ.Reason{{Code: "approved", Message: fmt.Sprintf("approval %s covers exactly this %s; it is now used", apr.ID, apr.SubjectKind)}}
		rec.UseApproval = apr.ID
	case g.approved:
		// An advisory (hook) decision says the gate is open without
		// using the approval: the enforcing decision uses it.
		d.Verdict = writ.VerdictAllow
		d.Reasons = []writ.Reason{{Code: "approved", Message: fmt.Sprintf("approval %s covers exactly this %s; the enforcing decision will use it", apr.ID, apr.SubjectKind)}}
	case g.created && (d.Enforced() || len(g.voids) == 0):
		// An advisory decision may open a request (a human can approve
		// before the gateway asks), never replace one.
		rec.NewApproval = apr
	case g.created:
		d.Approval = &writ.ApprovalRef{Group: apr.Group, Count: apr.Count}
		apr = nil
	}
	return apr, nil
}

// voidCommitApprovals adds to rec the voiding of the repo's live commit
// approvals when d is an enforced, allowed git push: a new push changes
// what an approved merge of the run's work would merge.
func (p *Point) voidCommitApprovals(ctx context.Context, run *writ.Run, d *writ.Decision, rec *writ.DecisionRecord) error {
	if !d.Enforced() || d.Verdict != writ.VerdictAllow || d.Action.Kind != writ.ActionGitPush {
		return nil
	}
	a := p.withRepo(run, d.Action)
	if a.Target.Repo == "" {
		return nil
	}
	live, err := p.cfg.Store.LiveApprovalsInSlot(ctx, run.ID, "commit:"+a.Target.Repo)
	if err != nil {
		return err
	}
	for _, o := range live {
		rec.Voids = append(rec.Voids, writ.ApprovalVoid{ID: o.ID, State: writ.ApprovalVoided, Event: &writ.Event{
			Type: writ.EventApprovalVoided, Run: run.ID, Actor: writ.ActorSystem, Subject: o.ID,
			Details: map[string]any{"reason": "new_push", "decision": d.ID, "was": o.State, "subjectDigest": o.SubjectDigest}}})
	}
	return nil
}

// suspension is the event that suspends the run by policy after d, naming
// d's reason codes.
func suspension(d *writ.Decision) *writ.Event {
	codes := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		codes[i] = r.Code
	}
	return &writ.Event{Actor: writ.ActorSystem, Subject: d.ID,
		Details: map[string]any{"reason": "suspended by policy: " + strings.Join(codes, ", "), "decision": d.ID}}
}

// sameCall returns the decision recorded for a call's ref, if the call
// asks the same action: a ref names one call, and another action under it
// is refused rather than answered with the recorded decision.
func sameCall(d *writ.Decision, req *Request) (*writ.Decision, error) {
	a, _ := json.Marshal(d.Action)
	b, _ := json.Marshal(req.Action)
	if string(a) != string(b) {
		return nil, writ.Errorf(writ.KindConflict, "call_ref_reused", "callRef %q was decided for another action (%s %s); a call's ref names one call", req.CallRef, d.Action.Kind, d.Action.Name)
	}
	return d, nil
}

// Forget drops what the point remembers of run id; the next decision
// re-reads its history from the store. Call it when the run changes state
// (a resume clears a policy suspension).
func (p *Point) Forget(id writ.RunID) {
	p.mu.Lock()
	delete(p.runs, id)
	p.mu.Unlock()
}

func validVia(v string) bool {
	if len(v) > 64 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ':' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func (p *Point) window() time.Duration { return max(p.cfg.Denials.Window, time.Minute) }

// history returns the run's history, loading it on first use.
func (p *Point) history(ctx context.Context, id writ.RunID, now time.Time) (*history, error) {
	p.mu.Lock()
	h := p.runs[id]
	if h == nil {
		if len(p.runs) >= 10000 {
			clear(p.runs)
		}
		h = &history{}
		p.runs[id] = h
	}
	p.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.loaded && !p.cfg.Shared {
		return h, nil
	}
	rh, err := p.cfg.Store.RunHistory(ctx, id, now.Add(-p.window()), p.cfg.HistoryLimit)
	if err != nil {
		p.Forget(id)
		return nil, err
	}
	h.recent, h.total, h.window, h.allowed, h.children = rh.Recent, rh.Total, rh.Window, rh.Allowed, rh.Children
	h.limit = p.cfg.HistoryLimit
	h.loaded = true
	return h, nil
}

// history is the in-memory copy of a run's decision history. The store is
// the truth; this copy is updated as decisions are made and re-read after
// any failure.
type history struct {
	mu        sync.Mutex
	loaded    bool
	limit     int
	recent    []writ.HistoryEntry
	total     int
	window    []writ.HistoryEntry
	allowed   map[string]bool
	children  int
	suspended bool
}

func (h *history) add(d *writ.Decision, now time.Time, window time.Duration) {
	e := writ.HistoryEntry{Kind: d.Action.Kind, Name: d.Action.Name, Verdict: d.Verdict, Via: d.Via, Time: now, Enforced: d.Enforced()}
	h.recent = append(h.recent, e)
	if len(h.recent) > h.limit {
		h.recent = slices.Delete(h.recent, 0, len(h.recent)-h.limit)
	}
	if e.Enforced {
		h.total++
		h.window = append(h.window, e)
	}
	h.prune(now, window)
	if d.Verdict == writ.VerdictAllow {
		if h.allowed == nil {
			h.allowed = map[string]bool{}
		}
		h.allowed[writ.HistoryName(e.Kind, e.Name)] = true
		if e.Kind == writ.ActionDelegate && e.Enforced {
			h.children++ // as RunHistory counts them: allowed delegations
		}
	}
}

func (h *history) prune(now time.Time, window time.Duration) {
	cut := now.Add(-window)
	i := 0
	for i < len(h.window) && h.window[i].Time.Before(cut) {
		i++
	}
	h.window = h.window[i:]
}
