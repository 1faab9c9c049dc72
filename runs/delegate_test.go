package runs_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/runs"
)

// Attack and contract tests of delegation (issue 11), on runs.Service
// over a real store, keys, triggers and policy: a child run only narrows
// its parent (scope, deadline, depth), carries the chain in every token,
// is refused when its ancestors end, are killed or suspended, and only the
// parent's DPoP-bound holder delegates. Every test checks the store and
// the events, not only the answer. What needs the HTTP routes (a child's
// token on another run's path, the RFC 8693 answer on the wire) is tested
// in package server.

// TestDelegateNarrows: a refactor run hands a read-only review of src/**
// to review-bot. The child is at depth 1 under its parent with the chain
// in the store and in its token (act.sub = the parent's SPIFFE ID), its
// deadline no later than the parent's, its token bound to its own
// launcher's key, and the delegation on the record of both runs.
func TestDelegateNarrows(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	parent := f.start(nil)
	pid := parent.id
	pr := f.get(pid)

	scope := reviewScope()
	scope.MaxDuration = writ.Duration(10 * time.Minute)
	kid, d := f.delegate(parent, reviewReq(scope))

	// The answer: a DPoP-bound API token of at most 15 minutes.
	if d.Token.Type != "DPoP" || d.Token.Audience != publicURL+"/v1" || !d.Token.ExpiresAt.After(d.Token.IssuedAt) || d.Token.ExpiresAt.Sub(d.Token.IssuedAt) > 15*time.Minute {
		t.Errorf("token %+v; want DPoP for %s/v1, ≤ 15 minutes", d.Token, publicURL)
	}
	if got := f.svc.SPIFFEID(d.Run); got != spiffe("review-bot", kid.id) {
		t.Errorf("spiffeId %q", got)
	}

	// The store.
	c := f.get(kid.id)
	want := []writ.ChainLink{{Run: pid, Agent: "refactor-bot"}}
	if c.Depth != 1 || c.Parent != pid || !cmp.Equal(c.Chain, want) || c.State != writ.RunActive ||
		c.Agent != "review-bot" || c.Profile != "review" || c.Issuer != pr.Issuer || c.TriggerDigest != pr.TriggerDigest || c.Ticket != pr.Ticket {
		t.Errorf("child in the store: %+v; want active review-bot/review at depth 1 under %s, chain %v, the parent's issuer, trigger and ticket", c, pid, want)
	}
	if c.Deadline.After(pr.Deadline) || !c.Deadline.Equal(f.clock.Now().Add(10*time.Minute)) {
		t.Errorf("child deadline %v; want ≤ the parent's %v and 10 minutes from now", c.Deadline, pr.Deadline)
	}
	if len(c.Scope.Repos) != 1 || c.Scope.Repos[0].Write || !slices.Equal(c.Scope.Repos[0].Paths, []string{"src/**"}) || !slices.Equal(c.Scope.Tools, []string{"read"}) || !strings.HasPrefix(c.ScopeDigest, "sha256:") {
		t.Errorf("child scope %+v digest %q; want what was asked", c.Scope, c.ScopeDigest)
	}
	if got := f.get(pid); got.Depth != 0 || got.Parent != "" || len(got.Chain) != 0 || got.State != writ.RunActive {
		t.Errorf("the parent changed: %+v", got)
	}

	// The token: sub is the child, act names the parent, cnf the child's
	// own key.
	cl := f.claims(kid.tok, publicURL+"/v1")
	if cl.Subject != spiffe("review-bot", kid.id) || cl.Run != string(kid.id) || cl.Agent != "review-bot" || cl.Profile != "review" || cl.Audience != publicURL+"/v1" {
		t.Errorf("child token claims %+v", cl)
	}
	if subs := actSubs(cl.Act); !slices.Equal(subs, []string{spiffe("refactor-bot", pid)}) {
		t.Errorf("child token act chain %v; want [%s]", subs, spiffe("refactor-bot", pid))
	}
	if cl.JKT != kid.jkt {
		t.Errorf("child token cnf.jkt %q; want the jkt the delegation named, %s", cl.JKT, kid.jkt)
	}
	// A refresh the child mints carries the same chain.
	fresh, err := f.svc.MintToken(ctx, f.principal(kid), "", true)
	if err != nil {
		t.Fatal(err)
	}
	if subs := actSubs(f.claims(fresh.Token, publicURL+"/v1").Act); !slices.Equal(subs, []string{spiffe("refactor-bot", pid)}) {
		t.Errorf("refreshed child token act chain %v", subs)
	}

	// The events: the decision and run.delegated on the parent; run.started
	// and token.issued on the child; all by the parent run.
	actor := "run:" + string(pid)
	pev := f.runEvents(pid)
	if got := pev[len(pev)-2:]; !slices.Equal(got, []string{"decision " + actor, "run.delegated " + actor}) {
		t.Errorf("parent events %v; want them to end with the delegate decision and run.delegated", pev)
	}
	if diff := cmp.Diff([]string{"run.started " + actor, "token.issued " + actor, "token.issued run:" + string(kid.id)}, f.runEvents(kid.id)); diff != "" {
		t.Errorf("child events (-want +got):\n%s", diff)
	}
	var delegated, decision *writ.Event
	for _, e := range f.events() {
		switch {
		case e.Type == writ.EventRunDelegated && e.Run == pid:
			delegated = &e
		case e.Type == writ.EventDecision && e.Run == pid && e.Action == writ.ActionDelegate:
			decision = &e
		case e.Type == writ.EventRunStarted && e.Run == kid.id:
			if e.Subject != spiffe("review-bot", kid.id) || e.Details["parent"] != string(pid) || e.Details["depth"] != float64(1) {
				t.Errorf("child run.started %+v", e)
			}
		case e.Type == writ.EventTokenIssued && e.Run == kid.id && e.Actor == actor:
			if e.Details["jkt"] != kid.jkt || e.Details["bound"] != true {
				t.Errorf("child token.issued %+v; want bound to %s", e.Details, kid.jkt)
			}
		}
	}
	if delegated == nil || delegated.Subject != string(kid.id) || delegated.Details["child"] != string(kid.id) ||
		delegated.Details["agent"] != "review-bot" || delegated.Details["depth"] != float64(1) || delegated.Details["scopeDigest"] != c.ScopeDigest {
		t.Errorf("run.delegated %+v; want subject %s with the child's agent, depth and scope digest", delegated, kid.id)
	}
	if decision == nil || decision.Decision != writ.VerdictAllow || delegated == nil || decision.Subject != delegated.Details["decision"] {
		t.Errorf("delegate decision %+v; want an allow that run.delegated names", decision)
	}

	// The child acts within its scope only.
	if d := f.mustDecide(kid, writ.Action{Kind: "tool", Name: "read"}); d.Verdict != writ.VerdictAllow {
		t.Errorf("child reads: %+v", d)
	}
	if d := f.mustDecide(kid, writ.Action{Kind: "tool", Name: "edit"}); d.Verdict != writ.VerdictDeny {
		t.Errorf("child edits: %+v; want deny", d)
	}
	if got, err := f.svc.Get(ctx, f.principal(kid).Run); err != nil || got.Parent != pid || got.Depth != 1 {
		t.Errorf("child reads its own run: %+v %v", got, err)
	}

	// Without a duration the child ends with its parent, never after.
	kid2, _ := f.delegate(parent, reviewReq(reviewScope()))
	if c2 := f.get(kid2.id); c2.Deadline.After(pr.Deadline) || pr.Deadline.Sub(c2.Deadline) > 5*time.Second {
		t.Errorf("child without a duration: deadline %v; want the parent's %v (within the second it was truncated to)", c2.Deadline, pr.Deadline)
	}
	// … or when its profile's longest run ends, if that is sooner.
	long := f.start(func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(time.Hour) })
	kid3, _ := f.delegate(long, reviewReq(reviewScope()))
	if c3 := f.get(kid3.id); !c3.Deadline.Equal(f.clock.Now().Add(30 * time.Minute)) {
		t.Errorf("child without a duration of an hour-long parent: deadline %v; want review's 30 minutes from now", c3.Deadline)
	}
}

// TestDelegateWideningRefused: every way a child's scope could exceed its
// parent's is refused with invalid_scope, naming exactly the items
// outside, and creates no run and writes no event.
func TestDelegateWideningRefused(t *testing.T) {
	f := newFixture(t, nil)
	rw := f.start(func(tr *writ.Trigger) { tr.Scope.Tools = append(tr.Scope.Tools, "mcp:everything/echo") })
	ro := f.start(func(tr *writ.Trigger) { tr.Scope.Repos[0].Write = false })
	repo := func(name, base string, write bool, paths ...string) []writ.RepoScope {
		return []writ.RepoScope{{Name: name, Base: base, Write: write, Paths: paths}}
	}
	src := repo("acme/api", "main", false, "src/**")
	cases := []struct {
		name  string
		ro    bool // delegate from the read-only parent
		scope writ.Scope
		items []string
	}{
		{"another repo", false, writ.Scope{Repos: repo("acme/web", "main", false), Tools: []string{"read"}}, []string{"repo:acme/web"}},
		{"another repo beside its own", false, writ.Scope{Repos: append(repo("acme/api", "main", false, "src/**"), writ.RepoScope{Name: "acme/ops", Base: "main"}), Tools: []string{"read"}}, []string{"repo:acme/ops"}},
		{"write on a read-only parent repo", true, writ.Scope{Repos: repo("acme/api", "main", true, "src/**"), Tools: []string{"read"}}, []string{"repo:acme/api:write"}},
		{"another base branch", false, writ.Scope{Repos: repo("acme/api", "release/1.2", false, "src/**"), Tools: []string{"read"}}, []string{"repo:acme/api@release/1.2"}},
		{"every path", false, writ.Scope{Repos: repo("acme/api", "main", false, "**"), Tools: []string{"read"}}, []string{"path:acme/api:**"}},
		{"no paths (the whole repo)", false, writ.Scope{Repos: repo("acme/api", "main", false), Tools: []string{"read"}}, []string{"path:acme/api:**"}},
		{"a path outside", false, writ.Scope{Repos: repo("acme/api", "main", false, "src/**", "cmd/**"), Tools: []string{"read"}}, []string{"path:acme/api:cmd/**"}},
		{"a wider path", false, writ.Scope{Repos: repo("acme/api", "main", false, "*/**"), Tools: []string{"read"}}, []string{"path:acme/api:*/**"}},
		{"a path prefix pattern", false, writ.Scope{Repos: repo("acme/api", "main", false, "src*/**"), Tools: []string{"read"}}, []string{"path:acme/api:src*/**"}},
		{"a path at any depth", false, writ.Scope{Repos: repo("acme/api", "main", false, "**/src/**"), Tools: []string{"read"}}, []string{"path:acme/api:**/src/**"}},
		{"a tool outside", false, writ.Scope{Repos: src, Tools: []string{"read", "shell:net"}}, []string{"tool:shell:net"}},
		{"a wider tool pattern", false, writ.Scope{Repos: src, Tools: []string{"mcp:everything/*"}}, []string{"tool:mcp:everything/*"}},
		{"a tool outside the grammar", false, writ.Scope{Repos: src, Tools: []string{"shell:*"}}, nil},
		{"a host", false, writ.Scope{Repos: src, Tools: []string{"read"}, Hosts: []string{"proxy.golang.org"}}, []string{"host:proxy.golang.org"}},
		{"an environment", false, writ.Scope{Repos: src, Tools: []string{"read"}, Environments: []string{"production"}}, []string{"environment:production"}},
		{"a secret", false, writ.Scope{Repos: src, Tools: []string{"read"}, Secrets: []string{"deploy/*"}}, []string{"secret:deploy/*"}},
		{"all at once, each listed", false, writ.Scope{Repos: repo("acme/api", "main", false, "cmd/**"), Tools: []string{"read", "shell:net"}, Hosts: []string{"evil.example.com"}, Environments: []string{"staging"}, Secrets: []string{"db/*"}},
			[]string{"path:acme/api:cmd/**", "tool:shell:net", "host:evil.example.com", "environment:staging", "secret:db/*"}},
		{"a path escaping the repo", false, writ.Scope{Repos: repo("acme/api", "main", false, "src/../../etc/**"), Tools: []string{"read"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := rw
			if c.ro {
				parent = ro
			}
			runCount, events := f.counts()
			scope := c.scope
			scope.MaxDuration = writ.Duration(5 * time.Minute)
			_, _, err := f.tryDelegate(parent, api.DelegateRequest{Agent: "refactor-bot", Profile: "refactor", Scope: &scope})
			we := wantErr(t, err, writ.KindInvalid, "invalid_scope")
			if !slices.Equal(we.Items, c.items) {
				t.Errorf("items %q; want %q (%v)", we.Items, c.items, err)
			}
			if r, e := f.counts(); r != runCount || e != events {
				t.Errorf("a refused delegation left %d run(s) and %d event(s)", r-runCount, e-events)
			}
		})
	}
	// Control: the same request within the parent's scope is allowed.
	if _, _, err := f.tryDelegate(rw, api.DelegateRequest{Agent: "refactor-bot", Profile: "refactor",
		Scope: &writ.Scope{Repos: src, Tools: []string{"read", "mcp:everything/echo"}, MaxDuration: writ.Duration(5 * time.Minute)}}); err != nil {
		t.Errorf("a narrower scope: %v", err)
	}
}

// TestDelegateDeadlineAfterParent: a child asking to outlive its parent
// is refused — not given a shorter deadline — and nothing is created.
func TestDelegateDeadlineAfterParent(t *testing.T) {
	f := newFixture(t, nil)
	parent := f.start(nil) // 30 minutes
	// Ten minutes pass: the parent has 20 left (its 15-minute token is
	// still valid).
	f.clock.Add(10 * time.Minute)
	for _, c := range []struct {
		name string
		req  api.DelegateRequest
	}{
		{"scope.maxDuration", func() api.DelegateRequest {
			s := reviewScope()
			s.MaxDuration = writ.Duration(31 * time.Minute)
			return reviewReq(s)
		}()},
		{"maxDuration beside the scope", func() api.DelegateRequest {
			r := reviewReq(reviewScope())
			r.MaxDuration = writ.Duration(2 * time.Hour)
			return r
		}()},
		{"a second more than the parent has left", func() api.DelegateRequest {
			s := reviewScope()
			s.MaxDuration = writ.Duration(20*time.Minute + time.Second)
			return reviewReq(s)
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			runCount, events := f.counts()
			_, _, err := f.tryDelegate(parent, c.req)
			wantErr(t, err, writ.KindInvalid, "deadline_after_parent")
			if r, e := f.counts(); r != runCount || e != events {
				t.Errorf("a refused delegation left %d run(s) and %d event(s)", r-runCount, e-events)
			}
		})
	}
	// No child was silently given a capped deadline.
	if kids := f.descendants(parent.id); len(kids) != 0 {
		t.Fatalf("descendants %v; want none", kids)
	}
	// Control: exactly what the parent has left is allowed, and ends with
	// the parent.
	s := reviewScope()
	s.MaxDuration = writ.Duration(20 * time.Minute)
	kid, _ := f.delegate(parent, reviewReq(s))
	if got, want := f.get(kid.id).Deadline, f.get(parent.id).Deadline; !got.Equal(want) {
		t.Errorf("child deadline %v; want the parent's %v", got, want)
	}
}

// TestDelegateDepth: with runs.maxDepth n a chain of n delegations works,
// each link holding its own key; every run's token carries the nested act
// (its parent, then its grandparent, …) and the store its chain; a run at
// depth n may not delegate another level, and the refusal creates
// nothing. Depth 2 is parent → child → grandchild.
func TestDelegateDepth(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxDepth int
	}{
		{"no delegation", 0},
		{"one level", 1},
		{"two levels", 2},
		{"three levels (the default)", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(s *setup) { s.MaxDepth = c.maxDepth })
			root := f.start(nil)
			// line[d] is the refactor run at depth d; each delegates the
			// next with its own DPoP-bound token. At the last level a
			// review run is delegated too: policy would refuse it a child
			// anyway, so the refactor run beside it shows the depth limit
			// is checked on its own.
			line := []*holder{root}
			depth := map[writ.RunID]int{root.id: 0}
			var all, last []*holder
			for d := 1; d <= c.maxDepth; d++ {
				k, _ := f.delegate(line[d-1], refactorReq())
				line = append(line, k)
				all = append(all, k)
				depth[k.id] = d
				if d == c.maxDepth {
					rev, _ := f.delegate(line[d-1], reviewReq(reviewScope()))
					all = append(all, rev)
					depth[rev.id] = d
					last = append(last, rev)
				}
			}
			last = append(last, line[c.maxDepth])

			for _, k := range all {
				d := depth[k.id]
				var wantChain []writ.ChainLink
				var wantAct []string
				for up := d - 1; up >= 0; up-- {
					wantChain = append(wantChain, writ.ChainLink{Run: line[up].id, Agent: "refactor-bot"})
					wantAct = append(wantAct, spiffe("refactor-bot", line[up].id))
				}
				r := f.get(k.id)
				if r.Depth != d || r.Parent != line[d-1].id || !cmp.Equal(r.Chain, wantChain) {
					t.Errorf("run %s: depth %d parent %s chain %v; want %d, %s, %v", k.id, r.Depth, r.Parent, r.Chain, d, line[d-1].id, wantChain)
				}
				if subs := actSubs(f.claims(k.tok, publicURL+"/v1").Act); !slices.Equal(subs, wantAct) {
					t.Errorf("run %s at depth %d: act chain %v; want %v", k.id, d, subs, wantAct)
				}
			}
			// The store lists the descendants nearest first.
			want := make([]writ.RunID, 0, len(all))
			for _, k := range all {
				want = append(want, k.id)
			}
			slices.SortFunc(want, func(a, b writ.RunID) int {
				if depth[a] != depth[b] {
					return depth[a] - depth[b]
				}
				return strings.Compare(string(a), string(b))
			})
			if kids := f.descendants(root.id); !slices.Equal(kids, want) {
				t.Errorf("descendants of the root %v; want %v", kids, want)
			}

			// Another level: refused, with nothing created.
			runCount, events := f.counts()
			for _, from := range last {
				for _, req := range []api.DelegateRequest{reviewReq(reviewScope()), refactorReq()} {
					_, _, err := f.tryDelegate(from, req)
					if writ.ErrorCode(err) != "too_deep" || writ.ErrorKind(err) != writ.KindDenied {
						t.Errorf("level %d from %s (%s): %v; want denied too_deep", c.maxDepth+1, from.id, req.Profile, err)
					}
				}
			}
			if r, e := f.counts(); r != runCount || e != events {
				t.Errorf("refused delegations left %d run(s) and %d event(s)", r-runCount, e-events)
			}
		})
	}
}

// TestDelegateOnlyTheBoundHolder: who may delegate. An unbound token of
// the parent never delegates (nor mints a bound one); the subject token
// must be the parent's own API token; a child's token is refused without
// its own key or with another; a token for another audience is refused
// as an API credential. (That a child's token acts only on the child's
// own run is the API's routing: package server tests it.)
func TestDelegateOnlyTheBoundHolder(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	parent := f.start(nil)
	other := f.start(nil)
	kid, _ := f.delegate(parent, reviewReq(reviewScope()))
	f.delegate(parent, reviewReq(reviewScope()))

	otherTok, err := f.svc.MintToken(ctx, f.principal(other), "", true)
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := f.svc.MintToken(ctx, f.principal(parent), "", false)
	if err != nil {
		t.Fatal(err)
	}
	down, err := f.svc.MintToken(ctx, f.principal(parent), downstream, false)
	if err != nil {
		t.Fatal(err)
	}
	delegatePath := "/v1/runs/" + string(parent.id) + "/delegate"
	if _, err := f.authAs(unbound.Token, nil, "GET", "/v1/runs/"+string(parent.id), runs.OwnRun); err != nil {
		t.Fatalf("control: the unbound token reads its run: %v", err)
	}
	review := func() api.DelegateRequest { return reviewReq(reviewScope()) }
	withSubject := func(tok string) api.DelegateRequest { r := review(); r.SubjectToken = tok; return r }
	// asBearer authenticates tok as a bearer token and delegates with it.
	asBearer := func(tok, path string, allow runs.Access) error {
		p, err := f.authAs(tok, nil, "POST", path, allow)
		if err != nil {
			return err
		}
		req := withSubject(tok)
		_, err = f.svc.Delegate(ctx, p, &req)
		return err
	}
	delegWith := func(req api.DelegateRequest) func() error {
		return func() error { _, _, err := f.tryDelegate(parent, req); return err }
	}
	attacks := []struct {
		name string
		do   func() error
		code string
	}{
		{"the parent's unbound bearer token delegates", func() error { return asBearer(unbound.Token, delegatePath, runs.OwnRun) }, "dpop_required"},
		{"the parent's unbound token mints a bound one", func() error {
			p, err := f.authAs(unbound.Token, nil, "POST", "/v1/runs/"+string(parent.id)+"/token", runs.OwnRun)
			if err != nil {
				return err
			}
			_, err = f.svc.MintToken(ctx, p, "", true)
			return err
		}, "dpop_required"},
		{"a human delegates", func() error { req := review(); _, err := f.svc.Delegate(ctx, f.human, &req); return err }, "dpop_required"},
		{"another run's token as subject_token", delegWith(withSubject(otherTok.Token)), "invalid_grant"},
		{"the child's token as the parent's subject_token", delegWith(withSubject(kid.tok)), "invalid_grant"},
		{"a downstream token as subject_token", delegWith(withSubject(down.Token)), "invalid_grant"},
		{"another grant type", delegWith(func() api.DelegateRequest { r := review(); r.GrantType = "client_credentials"; return r }()), "unsupported_grant_type"},
		{"the child's bound token without its key", func() error {
			_, err := f.authAs(kid.tok, nil, "GET", "/v1/runs/"+string(kid.id), runs.OwnRun)
			return err
		}, "dpop_required"},
		{"the child's token with another key", func() error {
			_, err := f.authAs(kid.tok, mustKey(t), "GET", "/v1/runs/"+string(kid.id), runs.OwnRun)
			return err
		}, "invalid_dpop_proof"},
		{"a downstream token on the API", func() error {
			_, err := f.authAs(down.Token, nil, "GET", "/v1/runs/"+string(parent.id), runs.OwnRun)
			return err
		}, "audience_mismatch"},
		{"a downstream token delegates", func() error { return asBearer(down.Token, delegatePath, runs.OwnRun) }, "audience_mismatch"},
		{"a downstream token decides", func() error {
			_, err := f.authAs(down.Token, nil, "POST", "/v1/decide", runs.TokenRun)
			return err
		}, "audience_mismatch"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			runCount, _ := f.counts()
			if err := a.do(); writ.ErrorCode(err) != a.code {
				t.Fatalf("got %v; want %s", err, a.code)
			}
			if r, _ := f.counts(); r != runCount {
				t.Errorf("a refused request created %d run(s)", r-runCount)
			}
		})
	}
	if kids := f.descendants(parent.id); len(kids) != 2 {
		t.Errorf("descendants of the parent: %v; want the two it delegated", kids)
	}
	// Controls: the child and the parent still act on their own runs.
	if _, err := f.auth(kid, "GET", "/v1/runs/"+string(kid.id), runs.OwnRun); err != nil {
		t.Errorf("the child reads its own run: %v", err)
	}
	if _, err := f.auth(parent, "GET", "/v1/runs/"+string(parent.id), runs.OwnRun); err != nil {
		t.Errorf("the parent reads its own run: %v", err)
	}
}

// TestDelegatePolicy: what the configuration and the default bundle
// refuse. Each refusal creates no run; policy's refusals are decisions on
// the parent's record.
func TestDelegatePolicy(t *testing.T) {
	f := newFixture(t, func(s *setup) {
		// A profile the signer may not start, that review-bot may run.
		s.Profiles = append(s.Profiles, &writ.Profile{Name: "docs", MaxDuration: time.Hour, Tools: []string{"read"}})
		for _, a := range s.Agents {
			if a.Name == "review-bot" {
				a.Profiles = append(a.Profiles, "docs")
			}
		}
	})
	parent := f.start(func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(time.Hour) })
	review := f.start(reviewRun)
	ro := &writ.Scope{Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Paths: []string{"src/**"}}}, Tools: []string{"read"}}
	withDur := func(s *writ.Scope, d time.Duration) *writ.Scope { c := *s; c.MaxDuration = writ.Duration(d); return &c }
	cases := []struct {
		name   string
		from   *holder
		req    api.DelegateRequest
		code   string
		items  []string
		policy bool // refused by policy: a deny decision on the record
	}{
		{"refactor → release", parent, api.DelegateRequest{Agent: "release-bot", Profile: "release", Scope: ro}, "delegation_not_allowed", nil, true},
		{"a review run delegates", review, api.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: ro}, "delegate_not_allowed", nil, true},
		{"an agent outside its profiles", parent, api.DelegateRequest{Agent: "review-bot", Profile: "refactor", Scope: ro}, "profile_not_allowed", nil, false},
		{"an unknown agent", parent, api.DelegateRequest{Agent: "ghost-bot", Profile: "review", Scope: ro}, "unknown_agent", nil, false},
		{"an unknown profile", parent, api.DelegateRequest{Agent: "review-bot", Profile: "root", Scope: ro}, "unknown_profile", nil, false},
		{"a profile the trigger's signer may not start", parent, api.DelegateRequest{Agent: "review-bot", Profile: "docs", Scope: ro}, "signer_not_allowed", nil, false},
		{"a tool the child's profile lacks", parent, api.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: &writ.Scope{Repos: ro.Repos, Tools: []string{"read", "edit"}}}, "scope_too_broad", []string{"tool:edit"}, false},
		{"longer than the child's profile allows", parent, api.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: withDur(ro, 45*time.Minute)}, "duration_too_long", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runCount, _ := f.counts()
			before := f.runEvents(c.from.id)
			_, _, err := f.tryDelegate(c.from, c.req)
			we := wantErr(t, err, writ.KindDenied, c.code)
			if !slices.Equal(we.Items, c.items) {
				t.Errorf("items %q; want %q (%v)", we.Items, c.items, err)
			}
			if r, _ := f.counts(); r != runCount {
				t.Errorf("a refused delegation created %d run(s)", r-runCount)
			}
			added := f.runEvents(c.from.id)[len(before):]
			want := []string(nil)
			if c.policy {
				want = []string{"decision run:" + string(c.from.id)}
				if we.Decision == "" {
					t.Errorf("a policy refusal names no decision")
				}
			}
			if !slices.Equal(added, want) {
				t.Errorf("events added to %s: %v; want %v", c.from.id, added, want)
			}
		})
	}

	// The children budget: refactor delegates 3 children, not a 4th.
	budget := f.start(nil)
	for range 3 {
		f.delegate(budget, reviewReq(reviewScope()))
	}
	runCount, _ := f.counts()
	_, _, err := f.tryDelegate(budget, reviewReq(reviewScope()))
	wantErr(t, err, writ.KindDenied, "budget_children")
	if r, _ := f.counts(); r != runCount {
		t.Errorf("the refused 4th child was created")
	}
	if kids := f.descendants(budget.id); len(kids) != 3 {
		t.Errorf("%d children; want 3", len(kids))
	}
	// The run itself goes on.
	if d := f.mustDecide(budget, writ.Action{Kind: "tool", Name: "read"}); d.Verdict != writ.VerdictAllow || d.Obligations.Suspend || f.get(budget.id).State != writ.RunActive {
		t.Errorf("the parent after its children budget: %+v", d)
	}
}

// TestDelegateChildrenBudgetConcurrent: the children budget holds when a
// parent asks for many children at once, not only one after another.
func TestDelegateChildrenBudgetConcurrent(t *testing.T) {
	// refactor: children 3. The denial threshold is off: nine budget
	// denials would otherwise suspend the parent, which is not what this
	// test is about.
	f := newFixture(t, func(s *setup) { s.Denials.Max = 0 })
	parent := f.start(nil)
	const n = 12
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, _, err := f.tryDelegate(parent, reviewReq(reviewScope()))
			switch {
			case err == nil:
				ok.Add(1)
			case writ.ErrorCode(err) == "budget_children":
				refused.Add(1)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected refusal %v", err)
	}
	if kids := f.descendants(parent.id); len(kids) != 3 || ok.Load() != 3 {
		t.Errorf("%d concurrent delegations against a budget of 3 children: %d allowed, %d refused, %d children in the store", n, ok.Load(), refused.Load(), len(kids))
	}
}

// TestDelegateRequestForm: the RFC 8693 form of a request is checked
// before anything else is (and so before the subject token is).
func TestDelegateRequestForm(t *testing.T) {
	f := newFixture(t, nil)
	parent := f.start(nil)
	mod := func(m func(*api.DelegateRequest)) api.DelegateRequest { r := reviewReq(reviewScope()); m(&r); return r }
	for _, c := range []struct {
		name string
		req  api.DelegateRequest
		code string
	}{
		{"another subject token type", mod(func(r *api.DelegateRequest) { r.SubjectTokenType = "urn:ietf:params:oauth:token-type:saml2" }), "invalid_request"},
		{"another requested token type", mod(func(r *api.DelegateRequest) { r.RequestedTokenType = "urn:ietf:params:oauth:token-type:saml2" }), "invalid_request"},
		{"another audience", mod(func(r *api.DelegateRequest) { r.Audience = downstream }), "invalid_target"},
		{"no scope", mod(func(r *api.DelegateRequest) { r.Scope = nil }), "invalid_scope"},
		{"no agent", mod(func(r *api.DelegateRequest) { r.Agent = "" }), "invalid_request"},
		{"no profile", mod(func(r *api.DelegateRequest) { r.Profile = "" }), "invalid_request"},
		{"a task over 16 KiB", mod(func(r *api.DelegateRequest) { r.Task = strings.Repeat("x", 16<<10+1) }), "invalid_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			runCount, events := f.counts()
			_, _, err := f.tryDelegate(parent, c.req)
			wantErr(t, err, writ.KindInvalid, c.code)
			if r, e := f.counts(); r != runCount || e != events {
				t.Errorf("a refused delegation left %d run(s) and %d event(s)", r-runCount, e-events)
			}
		})
	}
	// An unbound child: a malformed dpop_jkt is refused; none gives a
	// ≤ 5-minute bearer token.
	p := f.principal(parent)
	req := mod(func(r *api.DelegateRequest) { r.SubjectToken, r.DPoPJKT = parent.tok, "not-a-thumbprint" })
	_, err := f.svc.Delegate(context.Background(), p, &req)
	wantErr(t, err, writ.KindInvalid, "invalid_dpop_proof")
	req.DPoPJKT = ""
	d, err := f.svc.Delegate(context.Background(), f.principal(parent), &req)
	if err != nil {
		t.Fatal(err)
	}
	if c := f.claims(d.Token.Token, publicURL+"/v1"); d.Token.Type != "Bearer" || c.JKT != "" || c.Expiry.Sub(c.IssuedAt) > 5*time.Minute {
		t.Errorf("an unbound child's token: %+v %+v; want a bearer token of at most 5 minutes", d.Token, c)
	}
}
