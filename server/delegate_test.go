package server_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
)

// Delegation through the whole server (issue 11): what needs HTTP, the
// real client and DPoP on the wire — `writ run delegate` end to end, a
// child's token refused on any run's path but its own, a review child in
// an approval chain — and the benchmarks of the HTTP path. The logic
// (narrowing of scope, deadline and depth, who may delegate, policy,
// budgets, the cascades) is tested on runs.Service in package runs.

// delegKid is a delegated run as its own launcher holds it: the token
// bound to the launcher's own DPoP key.
type delegKid struct {
	c   *client.Client
	id  writ.RunID
	d   *client.Delegated
	key *ecdsa.PrivateKey
	jkt string
}

// delegStart asks parent (the DPoP-bound client of run parentID) for a
// child run whose first token is bound to a fresh key, as `writ run
// delegate` does.
func delegStart(t testing.TB, url string, parent *client.Client, parentID writ.RunID, req client.DelegateRequest) (*delegKid, error) {
	t.Helper()
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := token.Thumbprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	req.DPoPJKT = jkt
	d, err := parent.Delegate(context.Background(), string(parentID), &req)
	if err != nil {
		return nil, err
	}
	return &delegKid{c: client.NewRun(url, d.AccessToken, key), id: d.Run.ID, d: d, key: key, jkt: jkt}, nil
}

// delegMust is delegStart that fails the test on a refusal.
func delegMust(t testing.TB, url string, parent *client.Client, parentID writ.RunID, req client.DelegateRequest) *delegKid {
	t.Helper()
	k, err := delegStart(t, url, parent, parentID, req)
	if err != nil {
		t.Fatalf("delegate from %s (%s/%s): %v", parentID, req.Agent, req.Profile, err)
	}
	return k
}

// delegReviewScope is the narrow review scope of a child of the template
// refactor run: its repo read-only, src/** only, the read tool.
func delegReviewScope() *writ.Scope {
	return &writ.Scope{Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Paths: []string{"src/**"}}}, Tools: []string{"read"}}
}

// delegReview asks for a review-bot child under profile review.
func delegReview(scope *writ.Scope) client.DelegateRequest {
	return client.DelegateRequest{Agent: "review-bot", Profile: "review", Task: "review the rename", Scope: scope}
}

// delegRefactor asks for a refactor-bot child that may itself delegate:
// the template's repo, writable, src/** only; read and edit.
func delegRefactor() client.DelegateRequest {
	return client.DelegateRequest{Agent: "refactor-bot", Profile: "refactor", Task: "rename in src", Scope: &writ.Scope{
		Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**"}}}, Tools: []string{"read", "edit"}}}
}

// delegUnlimited lifts every profile's budgets (0 = unlimited), so a test
// can build trees of runs.
func delegUnlimited(cfg *server.Config) {
	for _, p := range cfg.Profiles {
		p.Budgets = writ.Budgets{}
	}
}

// delegCounts counts the runs and the events in the store.
func delegCounts(t *testing.T, store *sqlstore.DB) (runs, events int) {
	t.Helper()
	counts, err := store.CountRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range counts {
		runs += n
	}
	return runs, len(storeEvents(t, store))
}

// delegSPIFFE is the SPIFFE ID of run id of agent in the dev trust domain.
func delegSPIFFE(agent string, id writ.RunID) string {
	return "spiffe://writ.dev.local/agent/" + agent + "/run/" + string(id)
}

// delegGet reads a run from the store.
func delegGet(t testing.TB, store *sqlstore.DB, id writ.RunID) *writ.Run {
	t.Helper()
	r, err := store.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// delegTree builds under parent `children` refactor children, each of
// which delegates `grand` review grandchildren, and returns every
// descendant, children first.
func delegTree(t testing.TB, url string, parent *client.Client, pid writ.RunID, children, grand int) []*delegKid {
	t.Helper()
	var all, kids []*delegKid
	for range children {
		k := delegMust(t, url, parent, pid, delegRefactor())
		kids = append(kids, k)
	}
	all = append(all, kids...)
	for _, k := range kids {
		for range grand {
			all = append(all, delegMust(t, url, k.c, k.id, delegReview(delegReviewScope())))
		}
	}
	return all
}

// TestDelegateOverHTTP: delegation as `writ run delegate` does it. The
// parent's DPoP-bound client exchanges its token (RFC 8693, POST
// /v1/runs/{id}/delegate) for a child whose token is bound to a fresh
// key; the answer is the RFC 8693 response; the child's own client acts
// on its own run with that key — and only there: on its parent's or its
// sibling's path the API refuses it (not_own_run), creating nothing. A
// human's kill of the parent reaches the child's next request.
func TestDelegateOverHTTP(t *testing.T) {
	p := startPolicy(t, nil)
	ctx := context.Background()
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	scope := delegReviewScope()
	scope.MaxDuration = writ.Duration(10 * time.Minute)
	kid := delegMust(t, p.r.url, parent, pid, delegReview(scope))
	sib := delegMust(t, p.r.url, parent, pid, delegReview(delegReviewScope()))

	// The answer: an RFC 8693 response with a DPoP-bound JWT.
	if kid.d.IssuedTokenType != "urn:ietf:params:oauth:token-type:jwt" || kid.d.TokenType != "DPoP" || kid.d.ExpiresIn <= 0 || kid.d.ExpiresIn > 15*60 {
		t.Errorf("response: issued %q type %q expires_in %d; want a jwt, DPoP, ≤ 15 minutes", kid.d.IssuedTokenType, kid.d.TokenType, kid.d.ExpiresIn)
	}
	if kid.d.Run.SPIFFEID != delegSPIFFE("review-bot", kid.id) || kid.d.Run.Parent != pid || kid.d.Run.Depth != 1 {
		t.Errorf("response run %+v; want review-bot's SPIFFE ID, at depth 1 under %s", kid.d.Run, pid)
	}

	// The child's own client: its run, its scope, a refresh of its token.
	if got, err := kid.c.GetRun(ctx, string(kid.id)); err != nil || got.Parent != pid || got.Depth != 1 {
		t.Errorf("child reads its own run: %+v %v", got, err)
	}
	if d := p.decide(kid.c, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow {
		t.Errorf("child reads: %+v", d)
	}
	if d := p.decide(kid.c, writ.Action{Kind: "tool", Name: "edit"}); d.Decision != writ.VerdictDeny {
		t.Errorf("child edits: %+v; want deny", d)
	}
	if fresh, err := kid.c.MintToken(ctx, string(kid.id), "", true); err != nil || fresh.TokenType != "DPoP" {
		t.Errorf("child refreshes its token: %+v %v", fresh, err)
	}

	// The child's token on other runs' paths.
	review := func() *client.DelegateRequest {
		return &client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: delegReviewScope()}
	}
	for _, a := range []struct {
		name string
		do   func() error
	}{
		{"the child reads its parent", func() error { _, err := kid.c.GetRun(ctx, string(pid)); return err }},
		{"the child delegates as its parent", func() error { _, err := kid.c.Delegate(ctx, string(pid), review()); return err }},
		{"the child ends its parent", func() error { _, err := kid.c.Transition(ctx, string(pid), "end", ""); return err }},
		{"the child mints a token of its parent", func() error { _, err := kid.c.MintToken(ctx, string(pid), "", false); return err }},
		{"the child decides for its parent", func() error {
			_, err := kid.c.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}, Run: string(pid)})
			return err
		}},
		{"the child reads its sibling", func() error { _, err := kid.c.GetRun(ctx, string(sib.id)); return err }},
		{"the child delegates as its sibling", func() error { _, err := kid.c.Delegate(ctx, string(sib.id), review()); return err }},
	} {
		t.Run(a.name, func(t *testing.T) {
			runs, _ := delegCounts(t, store)
			if err := a.do(); writ.ErrorCode(err) != "not_own_run" {
				t.Fatalf("got %v; want not_own_run", err)
			}
			if r, _ := delegCounts(t, store); r != runs {
				t.Errorf("a refused request created %d run(s)", r-runs)
			}
		})
	}
	if kids, err := store.Descendants(ctx, pid); err != nil || len(kids) != 2 {
		t.Errorf("descendants of the parent: %v %v; want the two it delegated", kids, err)
	}
	if _, err := parent.GetRun(ctx, string(pid)); err != nil {
		t.Errorf("the parent reads its own run: %v", err)
	}

	// A human kills the parent: the child's next request is refused.
	if _, err := p.human.Transition(ctx, string(pid), "kill", "runaway"); err != nil {
		t.Fatal(err)
	}
	poll(t, "the child's token to be refused", func() bool {
		_, err := kid.c.GetRun(ctx, string(kid.id))
		return writ.ErrorCode(err) == "token_revoked"
	})
}

// TestDelegateChainReviewIsNotApproval: a prepare → review → deploy chain
// of scripted agents. A refactor run prepares and pushes its branch; a
// release run delegates a review to review-bot, which records its
// verdict (allowed, a review.recorded event written by the agent); the
// release run's release to production still waits for two humans —
// the agent's "approve" counts for nothing — and the review agent cannot
// submit an approval itself. Bob and carol approve; then it is allowed.
func TestDelegateChainReviewIsNotApproval(t *testing.T) {
	a := startApprovals(t, nil)
	ctx := context.Background()
	store := a.r.srv.Store()

	// prepare
	prep, prepID := a.run(nil)
	if d := a.decide(prep, writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: "writ/" + string(prepID) + "/rename", Paths: []string{"src/log.go"}}}); d.Decision != writ.VerdictAllow {
		t.Fatalf("prepare pushes its branch: %+v", d)
	}

	// review, delegated by the deploy run
	rel, relID := a.run(releaseRun)
	rev := delegMust(t, a.r.url, rel, relID, delegReview(delegReviewScope()))
	if r := delegGet(t, store, rev.id); r.Parent != relID || r.Profile != "review" {
		t.Fatalf("review child: %+v", r)
	}
	review := writ.Action{Kind: writ.ActionReview, Target: writ.Target{Repo: "acme/api", Ref: "writ/" + string(prepID) + "/rename"},
		Args: json.RawMessage(`{"verdict":"approve","summary":"LGTM, ship it"}`)}
	rd := a.decide(rev.c, review)
	if rd.Decision != writ.VerdictAllow {
		t.Fatalf("the review agent records its review: %+v", rd)
	}
	var recorded *writ.Event
	for _, e := range storeEvents(t, store) {
		if e.Type == writ.EventReviewRecorded {
			if recorded != nil {
				t.Fatalf("two review.recorded events")
			}
			recorded = &e
		}
	}
	if recorded == nil || recorded.Run != rev.id || recorded.Actor != "run:"+string(rev.id) || recorded.Subject != rd.ID ||
		recorded.Details["verdict"] != "approve" || recorded.Details["writtenByAgent"] != true {
		t.Fatalf("review.recorded: %+v; want the agent's approve on run %s, decision %s", recorded, rev.id, rd.ID)
	}
	// The review agent's own attempts to "approve" as a human.
	if _, err := rev.c.ListApprovals(ctx, writ.ApprovalFilter{}); writ.ErrorCode(err) != "human_only" {
		t.Errorf("the review agent lists approvals: %v; want human_only", err)
	}

	// deploy
	rel1 := writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Repo: "acme/api", Digest: "sha256:" + strings.Repeat("ef", 32), Environment: "production"}}
	d := a.decide(rel, rel1)
	if d.Decision != writ.VerdictApprovalRequired || d.Approval == nil || d.Approval.Count != 2 || !hasCode(d.Reasons, "sensitive_environment") {
		t.Fatalf("release to production after the agent's review: %+v; want approval_required from 2 humans", d)
	}
	apr := d.Approval.ID
	if _, err := rev.c.SubmitApproval(ctx, apr, "approve", []byte(`{}`)); writ.ErrorCode(err) != "human_only" {
		t.Errorf("the review agent submits an approval: %v; want human_only", err)
	}
	if got, err := a.approve("bob", apr); err != nil || got.State != writ.ApprovalPending {
		t.Fatalf("bob: %+v %v", got, err)
	}
	if d := a.decide(rel, rel1); d.Decision != writ.VerdictApprovalRequired || d.Approval.ID != apr {
		t.Fatalf("one human and one agent: %+v; want still approval_required", d)
	}
	if got, err := a.approve("carol", apr); err != nil || got.State != writ.ApprovalApproved || len(got.Grants) != 2 {
		t.Fatalf("carol: %+v %v", got, err)
	}
	allowed := a.decide(rel, rel1)
	if allowed.Decision != writ.VerdictAllow || !hasCode(allowed.Reasons, "approved") {
		t.Fatalf("after two humans: %+v", allowed)
	}
	// The grants on record are the two humans', none by a run.
	var grants []string
	for _, e := range storeEvents(t, store) {
		if e.Type == writ.EventApprovalGranted && e.Subject == apr {
			grants = append(grants, e.Actor)
		}
	}
	if !slices.Equal(grants, []string{"human:bob", "human:carol"}) {
		t.Errorf("approval.granted by %v; want bob and carol", grants)
	}
}

// BenchmarkDelegate: delegations per second — the RFC 8693 exchange, the
// scope and policy checks, the child's run, events and first token
// committed — from one parent with unlimited budgets and an hour to run.
func BenchmarkDelegate(b *testing.B) {
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			p := startPolicy(b, delegUnlimited)
			parent, pid := p.run(func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(time.Hour) })
			key, _ := token.NewDPoPKey()
			jkt, _ := token.Thumbprint(&key.PublicKey)
			ctx := context.Background()
			scope := delegReviewScope()
			scope.MaxDuration = writ.Duration(20 * time.Minute)
			one := func() error {
				req := delegReview(scope)
				req.DPoPJKT = jkt
				_, err := parent.Delegate(ctx, string(pid), &req)
				return err
			}
			if err := one(); err != nil { // warm
				b.Fatal(err)
			}
			var n atomic.Int64
			b.ResetTimer()
			start := time.Now()
			if mode == "serial" {
				for range b.N {
					if err := one(); err != nil {
						b.Fatal(err)
					}
					n.Add(1)
				}
			} else {
				var failed atomic.Value
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := one(); err != nil {
							failed.Store(err)
							return
						}
						n.Add(1)
					}
				})
				if err := failed.Load(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "delegations/s")
		})
	}
}

// BenchmarkKillCascade: the time for a kill to reach the last of 100
// descendants (10 children × 9 grandchildren + the 10 children). Each
// iteration builds a fresh tree outside the timer, then times the kill
// request until every descendant is killed in the store (store-ms: the
// kill request, kill-ms, then a read of all 100 from the store) and until
// every descendant's token has been refused over HTTP (tokens-ms, probed
// by 8 clients at once, each descendant until its first refusal;
// accepted-after-kill counts the probes answered before a refusal).
func BenchmarkKillCascade(b *testing.B) {
	p := startPolicy(b, delegUnlimited)
	ctx := context.Background()
	store := p.r.srv.Store()
	var killMS, storeMS, tokensMS []float64
	retries := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		parent, pid := p.run(nil)
		kids := delegTree(b, p.r.url, parent, pid, 10, 9)
		ids := make([]writ.RunID, len(kids))
		for j, k := range kids {
			ids[j] = k.id
		}
		b.StartTimer()
		t0 := time.Now()
		if _, err := p.human.Transition(ctx, string(pid), "kill", "bench"); err != nil {
			b.Fatal(err)
		}
		tk := time.Now()
		for {
			live := 0
			for _, id := range ids {
				if r, err := store.GetRun(ctx, id); err != nil {
					b.Fatal(err)
				} else if r.State != writ.RunKilled {
					live++
				}
			}
			if live == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		t1 := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		work := make(chan *delegKid, len(kids))
		for _, k := range kids {
			work <- k
		}
		close(work)
		for range 8 {
			wg.Go(func() {
				for k := range work {
					for n := 0; ; n++ {
						_, err := k.c.GetRun(ctx, string(k.id))
						if writ.ErrorCode(err) == "token_revoked" {
							break
						}
						if n > 10000 {
							panic(fmt.Sprintf("descendant %s still accepted after a kill: %v", k.id, err))
						}
						mu.Lock()
						retries++
						mu.Unlock()
						time.Sleep(time.Millisecond)
					}
				}
			})
		}
		wg.Wait()
		t2 := time.Now()
		b.StopTimer()
		killMS = append(killMS, float64(tk.Sub(t0).Microseconds())/1000)
		storeMS = append(storeMS, float64(t1.Sub(t0).Microseconds())/1000)
		tokensMS = append(tokensMS, float64(t2.Sub(t0).Microseconds())/1000)
		b.StartTimer()
	}
	slices.Sort(killMS)
	slices.Sort(storeMS)
	slices.Sort(tokensMS)
	b.ReportMetric(killMS[len(killMS)/2], "kill-ms-p50")
	b.ReportMetric(storeMS[len(storeMS)/2], "store-ms-p50")
	b.ReportMetric(storeMS[len(storeMS)-1], "store-ms-max")
	b.ReportMetric(tokensMS[len(tokensMS)/2], "tokens-ms-p50")
	b.ReportMetric(tokensMS[len(tokensMS)-1], "tokens-ms-max")
	b.ReportMetric(float64(retries)/float64(b.N), "accepted-after-kill/op")
}
