package server_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
)

// Attack and contract tests of delegation (issue 11): a child run only
// narrows its parent (scope, deadline, depth), carries the chain in every
// token, is refused anywhere but on its own run, and follows its ancestors
// when they end, are killed or suspended. Every test checks the store and
// the events, not only the answer.

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

// delegAct is one link of an act claim as it is on the wire.
type delegAct struct {
	Sub string    `json:"sub"`
	Act *delegAct `json:"act"`
}

// delegClaims are the claims of a JWT-SVID as a relying party reads them.
type delegClaims struct {
	Sub     string    `json:"sub"`
	Aud     string    `json:"aud"`
	Run     string    `json:"run"`
	Agent   string    `json:"agent"`
	Profile string    `json:"profile"`
	Exp     int64     `json:"exp"`
	Act     *delegAct `json:"act"`
	Cnf     *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// delegDecode decodes a JWT's payload without verifying it (the server
// verified it; the test reads what it says).
func delegDecode(t testing.TB, raw string) delegClaims {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c delegClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// delegActSubs lists the subjects of an act chain, outermost first.
func delegActSubs(a *delegAct) []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Sub)
	}
	return out
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

// TestDelegateNarrows: a refactor run hands a read-only review of src/**
// to review-bot. The child is at depth 1 under its parent with the chain
// in the store and in its token (act.sub = the parent's SPIFFE ID), its
// deadline no later than the parent's, its token bound to its own
// launcher's key, and the delegation on the record of both runs.
func TestDelegateNarrows(t *testing.T) {
	p := startPolicy(t, nil)
	ctx := context.Background()
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	pr := delegGet(t, store, pid)

	scope := delegReviewScope()
	scope.MaxDuration = writ.Duration(10 * time.Minute)
	kid := delegMust(t, p.r.url, parent, pid, delegReview(scope))

	// The answer: an RFC 8693 response with a DPoP-bound JWT.
	if kid.d.IssuedTokenType != "urn:ietf:params:oauth:token-type:jwt" || kid.d.TokenType != "DPoP" || kid.d.ExpiresIn <= 0 || kid.d.ExpiresIn > 15*60 {
		t.Errorf("response: issued %q type %q expires_in %d; want a jwt, DPoP, ≤ 15 minutes", kid.d.IssuedTokenType, kid.d.TokenType, kid.d.ExpiresIn)
	}
	if kid.d.Run.SPIFFEID != delegSPIFFE("review-bot", kid.id) {
		t.Errorf("response spiffeId %q", kid.d.Run.SPIFFEID)
	}

	// The store.
	c := delegGet(t, store, kid.id)
	want := []writ.ChainLink{{Run: pid, Agent: "refactor-bot"}}
	if c.Depth != 1 || c.Parent != pid || !cmp.Equal(c.Chain, want) || c.State != writ.RunActive ||
		c.Agent != "review-bot" || c.Profile != "review" || c.Issuer != pr.Issuer || c.TriggerDigest != pr.TriggerDigest || c.Ticket != pr.Ticket {
		t.Errorf("child in the store: %+v; want active review-bot/review at depth 1 under %s, chain %v, the parent's issuer, trigger and ticket", c, pid, want)
	}
	if c.Deadline.After(pr.Deadline) || c.Deadline.After(time.Now().Add(10*time.Minute+time.Second)) {
		t.Errorf("child deadline %v; want ≤ the parent's %v and ≤ 10 minutes from now", c.Deadline, pr.Deadline)
	}
	if len(c.Scope.Repos) != 1 || c.Scope.Repos[0].Write || !slices.Equal(c.Scope.Repos[0].Paths, []string{"src/**"}) || !slices.Equal(c.Scope.Tools, []string{"read"}) || !strings.HasPrefix(c.ScopeDigest, "sha256:") {
		t.Errorf("child scope %+v digest %q; want what was asked", c.Scope, c.ScopeDigest)
	}
	if got := delegGet(t, store, pid); got.Depth != 0 || got.Parent != "" || len(got.Chain) != 0 || got.State != writ.RunActive {
		t.Errorf("the parent changed: %+v", got)
	}

	// The token: sub is the child, act names the parent, cnf the child's
	// own key.
	cl := delegDecode(t, kid.d.AccessToken)
	if cl.Sub != delegSPIFFE("review-bot", kid.id) || cl.Run != string(kid.id) || cl.Agent != "review-bot" || cl.Profile != "review" || cl.Aud != p.r.url+"/v1" {
		t.Errorf("child token claims %+v", cl)
	}
	if subs := delegActSubs(cl.Act); !slices.Equal(subs, []string{delegSPIFFE("refactor-bot", pid)}) {
		t.Errorf("child token act chain %v; want [%s]", subs, delegSPIFFE("refactor-bot", pid))
	}
	if cl.Cnf == nil || cl.Cnf.JKT != kid.jkt {
		t.Errorf("child token cnf %+v; want the jkt the delegation named, %s", cl.Cnf, kid.jkt)
	}
	// A refresh the child mints carries the same chain.
	fresh, err := kid.c.MintToken(ctx, string(kid.id), "", true)
	if err != nil {
		t.Fatal(err)
	}
	if subs := delegActSubs(delegDecode(t, fresh.Token).Act); !slices.Equal(subs, []string{delegSPIFFE("refactor-bot", pid)}) {
		t.Errorf("refreshed child token act chain %v", subs)
	}

	// The events: the decision and run.delegated on the parent; run.started
	// and token.issued on the child; all by the parent run.
	actor := "run:" + string(pid)
	pev := runEvents(t, store, pid)
	if got := pev[len(pev)-2:]; !slices.Equal(got, []string{"decision " + actor, "run.delegated " + actor}) {
		t.Errorf("parent events %v; want them to end with the delegate decision and run.delegated", pev)
	}
	if diff := cmp.Diff([]string{"run.started " + actor, "token.issued " + actor, "token.issued run:" + string(kid.id)}, runEvents(t, store, kid.id)); diff != "" {
		t.Errorf("child events (-want +got):\n%s", diff)
	}
	var delegated, decision *writ.Event
	for _, e := range storeEvents(t, store) {
		switch {
		case e.Type == writ.EventRunDelegated && e.Run == pid:
			delegated = &e
		case e.Type == writ.EventDecision && e.Run == pid && e.Action == writ.ActionDelegate:
			decision = &e
		case e.Type == writ.EventRunStarted && e.Run == kid.id:
			if e.Subject != delegSPIFFE("review-bot", kid.id) || e.Details["parent"] != string(pid) || e.Details["depth"] != float64(1) {
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
	if d := p.decide(kid.c, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow {
		t.Errorf("child reads: %+v", d)
	}
	if d := p.decide(kid.c, writ.Action{Kind: "tool", Name: "edit"}); d.Decision != writ.VerdictDeny {
		t.Errorf("child edits: %+v; want deny", d)
	}
	if got, err := kid.c.GetRun(ctx, string(kid.id)); err != nil || got.Parent != pid || got.Depth != 1 {
		t.Errorf("child reads its own run: %+v %v", got, err)
	}

	// Without a duration the child ends with its parent, never after.
	kid2 := delegMust(t, p.r.url, parent, pid, delegReview(delegReviewScope()))
	if c2 := delegGet(t, store, kid2.id); c2.Deadline.After(pr.Deadline) || pr.Deadline.Sub(c2.Deadline) > 5*time.Second {
		t.Errorf("child without a duration: deadline %v; want the parent's %v (within the second it was truncated to)", c2.Deadline, pr.Deadline)
	}
}

// TestDelegateWideningRefused: every way a child's scope could exceed its
// parent's is refused with invalid_scope, naming exactly the items
// outside, and creates no run and writes no event.
func TestDelegateWideningRefused(t *testing.T) {
	p := startPolicy(t, nil)
	store := p.r.srv.Store()
	rw, rwID := p.run(func(tr *writ.Trigger) { tr.Scope.Tools = append(tr.Scope.Tools, "mcp:everything/echo") })
	ro, roID := p.run(func(tr *writ.Trigger) { tr.Scope.Repos[0].Write = false })
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
			parent, pid := rw, rwID
			if c.ro {
				parent, pid = ro, roID
			}
			runs, events := delegCounts(t, store)
			scope := c.scope
			scope.MaxDuration = writ.Duration(5 * time.Minute)
			_, err := delegStart(t, p.r.url, parent, pid, client.DelegateRequest{Agent: "refactor-bot", Profile: "refactor", Scope: &scope})
			if writ.ErrorCode(err) != "invalid_scope" || writ.ErrorKind(err) != writ.KindInvalid {
				t.Fatalf("got %v; want 400 invalid_scope", err)
			}
			we, _ := err.(*writ.Error)
			if !slices.Equal(we.Items, c.items) {
				t.Errorf("items %q; want %q (%v)", we.Items, c.items, err)
			}
			if r, e := delegCounts(t, store); r != runs || e != events {
				t.Errorf("a refused delegation left %d run(s) and %d event(s)", r-runs, e-events)
			}
		})
	}
}

// TestDelegateDeadlineAfterParent: a child asking to outlive its parent
// is refused — not given a shorter deadline — and nothing is created.
func TestDelegateDeadlineAfterParent(t *testing.T) {
	p := startPolicy(t, nil)
	store := p.r.srv.Store()
	parent, pid := p.run(nil) // 30 minutes
	for _, c := range []struct {
		name string
		req  client.DelegateRequest
	}{
		{"scope.maxDuration", func() client.DelegateRequest {
			s := delegReviewScope()
			s.MaxDuration = writ.Duration(31 * time.Minute)
			return delegReview(s)
		}()},
		{"maxDuration beside the scope", func() client.DelegateRequest {
			r := delegReview(delegReviewScope())
			r.MaxDuration = writ.Duration(2 * time.Hour)
			return r
		}()},
	} {
		t.Run(c.name, func(t *testing.T) {
			runs, events := delegCounts(t, store)
			_, err := delegStart(t, p.r.url, parent, pid, c.req)
			if writ.ErrorCode(err) != "deadline_after_parent" || writ.ErrorKind(err) != writ.KindInvalid {
				t.Fatalf("got %v; want 400 deadline_after_parent", err)
			}
			if r, e := delegCounts(t, store); r != runs || e != events {
				t.Errorf("a refused delegation left %d run(s) and %d event(s)", r-runs, e-events)
			}
		})
	}
	// No child was silently given a capped deadline.
	kids, err := store.Descendants(context.Background(), pid)
	if err != nil || len(kids) != 0 {
		t.Fatalf("descendants %v %v; want none", kids, err)
	}
}

// TestDelegateDepth: with runs.maxDepth 2 a parent → child → grandchild
// chain works, each link holding its own key; the grandchild's token
// carries the nested act (its parent, then its grandparent); the
// grandchild may not delegate a third level.
func TestDelegateDepth(t *testing.T) {
	p := startPolicy(t, func(cfg *server.Config) { cfg.MaxDepth = 2 })
	ctx := context.Background()
	store := p.r.srv.Store()
	root, rootID := p.run(nil)
	child := delegMust(t, p.r.url, root, rootID, delegRefactor())
	// The child delegates with its own DPoP-bound client.
	gc := delegMust(t, p.r.url, child.c, child.id, delegReview(delegReviewScope()))

	g := delegGet(t, store, gc.id)
	wantChain := []writ.ChainLink{{Run: child.id, Agent: "refactor-bot"}, {Run: rootID, Agent: "refactor-bot"}}
	if g.Depth != 2 || g.Parent != child.id || !cmp.Equal(g.Chain, wantChain) {
		t.Errorf("grandchild: depth %d parent %s chain %v; want 2, %s, %v", g.Depth, g.Parent, g.Chain, child.id, wantChain)
	}
	wantAct := []string{delegSPIFFE("refactor-bot", child.id), delegSPIFFE("refactor-bot", rootID)}
	if subs := delegActSubs(delegDecode(t, gc.d.AccessToken).Act); !slices.Equal(subs, wantAct) {
		t.Errorf("grandchild act chain %v; want %v", subs, wantAct)
	}
	if subs := delegActSubs(delegDecode(t, child.d.AccessToken).Act); !slices.Equal(subs, wantAct[1:]) {
		t.Errorf("child act chain %v; want %v", subs, wantAct[1:])
	}
	if kids, err := store.Descendants(ctx, rootID); err != nil || !slices.Equal(kids, []writ.RunID{child.id, gc.id}) {
		t.Errorf("descendants of the root %v %v; want [%s %s]", kids, err, child.id, gc.id)
	}

	// A third level: refused, with nothing created. (The grandchild is a
	// review run, which policy would refuse too; a refactor grandchild
	// shows the depth limit is checked on its own.)
	gc2 := delegMust(t, p.r.url, child.c, child.id, client.DelegateRequest{Agent: "refactor-bot", Profile: "refactor", Scope: &writ.Scope{
		Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**"}}}, Tools: []string{"read"}}})
	runs, events := delegCounts(t, store)
	for _, from := range []*delegKid{gc, gc2} {
		_, err := delegStart(t, p.r.url, from.c, from.id, delegReview(delegReviewScope()))
		if writ.ErrorCode(err) != "too_deep" || writ.ErrorKind(err) != writ.KindDenied {
			t.Errorf("a third level from %s: %v; want 403 too_deep", from.id, err)
		}
	}
	if r, e := delegCounts(t, store); r != runs || e != events {
		t.Errorf("refused delegations left %d run(s) and %d event(s)", r-runs, e-events)
	}
}

// TestDelegateOnlyTheBoundHolder: who may delegate, and where a child's
// token is refused. An unbound token of the parent never delegates; the
// subject token must be the parent's own; a child's token acts only on
// the child (not its parent, not its sibling); a token for another
// audience is refused by the API.
func TestDelegateOnlyTheBoundHolder(t *testing.T) {
	p := startPolicy(t, func(cfg *server.Config) { cfg.Audiences = []string{downstream} })
	ctx := context.Background()
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	other, otherID := p.run(nil)
	kid := delegMust(t, p.r.url, parent, pid, delegReview(delegReviewScope()))
	sib := delegMust(t, p.r.url, parent, pid, delegReview(delegReviewScope()))

	otherTok, err := other.MintToken(ctx, string(otherID), "", true)
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := parent.MintToken(ctx, string(pid), "", false)
	if err != nil {
		t.Fatal(err)
	}
	down, err := parent.MintToken(ctx, string(pid), downstream, false)
	if err != nil {
		t.Fatal(err)
	}
	unboundC := client.New(p.r.url, unbound.Token)
	downC := client.New(p.r.url, down.Token)
	if _, err := unboundC.GetRun(ctx, string(pid)); err != nil {
		t.Fatalf("control: the unbound token reads its run: %v", err)
	}
	parentKey := func() *ecdsa.PrivateKey {
		k, _ := token.NewDPoPKey()
		return k
	}()
	attacks := []struct {
		name string
		do   func() error
		code string
	}{
		{"the parent's unbound bearer token delegates", func() error {
			_, err := unboundC.Delegate(ctx, string(pid), &client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "dpop_required"},
		{"the parent's unbound token mints a bound one", func() error {
			_, err := unboundC.MintToken(ctx, string(pid), "", true)
			return err
		}, "dpop_required"},
		{"another run's token as subject_token", func() error {
			_, err := parent.Delegate(ctx, string(pid), &client.DelegateRequest{SubjectToken: otherTok.Token, Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "invalid_grant"},
		{"the child's token as the parent's subject_token", func() error {
			_, err := parent.Delegate(ctx, string(pid), &client.DelegateRequest{SubjectToken: kid.d.AccessToken, Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "invalid_grant"},
		{"a downstream token as subject_token", func() error {
			_, err := parent.Delegate(ctx, string(pid), &client.DelegateRequest{SubjectToken: down.Token, Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "invalid_grant"},
		{"another grant type", func() error {
			_, err := parent.Delegate(ctx, string(pid), &client.DelegateRequest{GrantType: "client_credentials", Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "unsupported_grant_type"},
		{"the child reads its parent", func() error { _, err := kid.c.GetRun(ctx, string(pid)); return err }, "not_own_run"},
		{"the child delegates as its parent", func() error {
			_, err := kid.c.Delegate(ctx, string(pid), &client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "not_own_run"},
		{"the child ends its parent", func() error { _, err := kid.c.Transition(ctx, string(pid), "end", ""); return err }, "not_own_run"},
		{"the child mints a token of its parent", func() error { _, err := kid.c.MintToken(ctx, string(pid), "", false); return err }, "not_own_run"},
		{"the child decides for its parent", func() error {
			_, err := kid.c.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}, Run: string(pid)})
			return err
		}, "not_own_run"},
		{"the child reads its sibling", func() error { _, err := kid.c.GetRun(ctx, string(sib.id)); return err }, "not_own_run"},
		{"the child delegates as its sibling", func() error {
			_, err := kid.c.Delegate(ctx, string(sib.id), &client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "not_own_run"},
		{"the child's bound token without its key", func() error { _, err := client.New(p.r.url, kid.d.AccessToken).GetRun(ctx, string(kid.id)); return err }, "dpop_required"},
		{"the child's token with another key", func() error {
			_, err := client.NewRun(p.r.url, kid.d.AccessToken, parentKey).GetRun(ctx, string(kid.id))
			return err
		}, "invalid_dpop_proof"},
		{"a downstream token on the API", func() error { _, err := downC.GetRun(ctx, string(pid)); return err }, "audience_mismatch"},
		{"a downstream token delegates", func() error {
			_, err := downC.Delegate(ctx, string(pid), &client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: delegReviewScope()})
			return err
		}, "audience_mismatch"},
		{"a downstream token decides", func() error {
			_, err := downC.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}})
			return err
		}, "audience_mismatch"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			runs, _ := delegCounts(t, store)
			if err := a.do(); writ.ErrorCode(err) != a.code {
				t.Fatalf("got %v; want %s", err, a.code)
			}
			if r, _ := delegCounts(t, store); r != runs {
				t.Errorf("a refused request created %d run(s)", r-runs)
			}
		})
	}
	if kids, err := store.Descendants(ctx, pid); err != nil || len(kids) != 2 {
		t.Errorf("descendants of the parent: %v %v; want the two it delegated", kids, err)
	}
	// Controls: the child and the parent still act on their own runs.
	if _, err := kid.c.GetRun(ctx, string(kid.id)); err != nil {
		t.Errorf("the child reads its own run: %v", err)
	}
	if _, err := parent.GetRun(ctx, string(pid)); err != nil {
		t.Errorf("the parent reads its own run: %v", err)
	}
}

// TestDelegatePolicy: what the configuration and the default bundle
// refuse. Each refusal creates no run; policy's refusals are decisions on
// the parent's record.
func TestDelegatePolicy(t *testing.T) {
	p := startPolicy(t, func(cfg *server.Config) {
		// A profile the dev signer may not start, that review-bot may run.
		cfg.Profiles = append(cfg.Profiles, &writ.Profile{Name: "docs", MaxDuration: time.Hour, Tools: []string{"read"}})
		for _, a := range cfg.Agents {
			if a.Name == "review-bot" {
				a.Profiles = append(a.Profiles, "docs")
			}
		}
	})
	store := p.r.srv.Store()
	parent, pid := p.run(func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(time.Hour) })
	review, reviewID := p.run(reviewRun)
	ro := &writ.Scope{Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Paths: []string{"src/**"}}}, Tools: []string{"read"}}
	withDur := func(s *writ.Scope, d time.Duration) *writ.Scope { c := *s; c.MaxDuration = writ.Duration(d); return &c }
	cases := []struct {
		name   string
		from   *client.Client
		fromID writ.RunID
		req    client.DelegateRequest
		code   string
		items  []string
		policy bool // refused by policy: a deny decision on the record
	}{
		{"refactor → release", parent, pid, client.DelegateRequest{Agent: "release-bot", Profile: "release", Scope: ro}, "delegation_not_allowed", nil, true},
		{"a review run delegates", review, reviewID, client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: ro}, "delegate_not_allowed", nil, true},
		{"an agent outside its profiles", parent, pid, client.DelegateRequest{Agent: "review-bot", Profile: "refactor", Scope: ro}, "profile_not_allowed", nil, false},
		{"an unknown agent", parent, pid, client.DelegateRequest{Agent: "ghost-bot", Profile: "review", Scope: ro}, "unknown_agent", nil, false},
		{"an unknown profile", parent, pid, client.DelegateRequest{Agent: "review-bot", Profile: "root", Scope: ro}, "unknown_profile", nil, false},
		{"a profile the trigger's signer may not start", parent, pid, client.DelegateRequest{Agent: "review-bot", Profile: "docs", Scope: ro}, "signer_not_allowed", nil, false},
		{"a tool the child's profile lacks", parent, pid, client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: &writ.Scope{Repos: ro.Repos, Tools: []string{"read", "edit"}}}, "scope_too_broad", []string{"tool:edit"}, false},
		{"longer than the child's profile allows", parent, pid, client.DelegateRequest{Agent: "review-bot", Profile: "review", Scope: withDur(ro, 45*time.Minute)}, "duration_too_long", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runs, _ := delegCounts(t, store)
			before := runEvents(t, store, c.fromID)
			_, err := delegStart(t, p.r.url, c.from, c.fromID, c.req)
			if writ.ErrorCode(err) != c.code || writ.ErrorKind(err) != writ.KindDenied {
				t.Fatalf("got %v; want 403 %s", err, c.code)
			}
			we, _ := err.(*writ.Error)
			if !slices.Equal(we.Items, c.items) {
				t.Errorf("items %q; want %q (%v)", we.Items, c.items, err)
			}
			if r, _ := delegCounts(t, store); r != runs {
				t.Errorf("a refused delegation created %d run(s)", r-runs)
			}
			added := runEvents(t, store, c.fromID)[len(before):]
			want := []string(nil)
			if c.policy {
				want = []string{"decision run:" + string(c.fromID)}
				if we.Decision == "" {
					t.Errorf("a policy refusal names no decision")
				}
			}
			if !slices.Equal(added, want) {
				t.Errorf("events added to %s: %v; want %v", c.fromID, added, want)
			}
		})
	}

	// The children budget: refactor delegates 3 children, not a 4th.
	budget, bid := p.run(nil)
	for range 3 {
		delegMust(t, p.r.url, budget, bid, delegReview(delegReviewScope()))
	}
	runs, _ := delegCounts(t, store)
	_, err := delegStart(t, p.r.url, budget, bid, delegReview(delegReviewScope()))
	if writ.ErrorCode(err) != "budget_children" || writ.ErrorKind(err) != writ.KindDenied {
		t.Fatalf("a 4th child: %v; want 403 budget_children", err)
	}
	if r, _ := delegCounts(t, store); r != runs {
		t.Errorf("the refused 4th child was created")
	}
	if kids, _ := store.Descendants(context.Background(), bid); len(kids) != 3 {
		t.Errorf("%d children; want 3", len(kids))
	}
	// The run itself goes on.
	if d := p.decide(budget, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow || d.RunState != writ.RunActive {
		t.Errorf("the parent after its children budget: %+v", d)
	}
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

// delegCascadeEvents checks that every run of kids has exactly one event
// of type typ, by writ, naming root as cascadeFrom, and that no run of
// spared has one.
func delegCascadeEvents(t *testing.T, store *sqlstore.DB, root writ.RunID, typ string, kids []*delegKid, spared ...writ.RunID) {
	t.Helper()
	got := map[writ.RunID][]writ.Event{}
	for _, e := range storeEvents(t, store) {
		if e.Type == typ {
			got[e.Run] = append(got[e.Run], e)
		}
	}
	bad := 0
	for _, k := range kids {
		evs := got[k.id]
		if len(evs) != 1 || evs[0].Actor != writ.ActorSystem || evs[0].Subject != string(root) || evs[0].Details["cascadeFrom"] != string(root) {
			if bad++; bad <= 3 {
				t.Errorf("%s events of descendant %s: %+v; want one by writ with cascadeFrom %s", typ, k.id, evs, root)
			}
		}
	}
	for _, id := range spared {
		if len(got[id]) != 0 {
			t.Errorf("%s events of %s, which was no longer live: %+v", typ, id, got[id])
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d descendants lack their %s event", bad, len(kids), typ)
	}
}

// delegRefused polls until every kid's token is refused with
// token_revoked on its own run (tests never assert on time).
func delegRefused(t *testing.T, kids []*delegKid) {
	t.Helper()
	ctx := context.Background()
	for _, k := range kids {
		poll(t, "the token of "+string(k.id)+" to be refused", func() bool {
			_, err := k.c.GetRun(ctx, string(k.id))
			return writ.ErrorCode(err) == "token_revoked"
		})
	}
}

// delegStates checks the store state of every kid.
func delegStates(t *testing.T, store *sqlstore.DB, kids []*delegKid, want writ.RunState) {
	t.Helper()
	bad := 0
	for _, k := range kids {
		if r := delegGet(t, store, k.id); r.State != want || (want.Final() && r.EndedAt.IsZero()) {
			if bad++; bad <= 3 {
				t.Errorf("descendant %s (depth %d) is %s; want %s", k.id, r.Depth, r.State, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d descendants are not %s", bad, len(kids), want)
	}
}

// TestDelegateCascadeKill: killing a parent with 100 descendants (10
// children, 90 grandchildren) kills every one of them in the same
// transaction, one run.killed event each by writ naming the parent, and
// each one's token is refused on its next request. A descendant that had
// already ended stays ended.
func TestDelegateCascadeKill(t *testing.T) {
	p := startPolicy(t, delegUnlimited)
	ctx := context.Background()
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	kids := delegTree(t, p.r.url, parent, pid, 10, 9)
	if len(kids) != 100 {
		t.Fatalf("%d descendants", len(kids))
	}
	// Controls before the kill: every descendant acts.
	for _, k := range kids[:3] {
		if _, err := k.c.GetRun(ctx, string(k.id)); err != nil {
			t.Fatalf("descendant %s before the kill: %v", k.id, err)
		}
	}
	// One more child that ends itself first: the kill leaves it ended.
	done := delegMust(t, p.r.url, parent, pid, delegReview(delegReviewScope()))
	if _, err := done.c.Transition(ctx, string(done.id), "end", "reviewed"); err != nil {
		t.Fatal(err)
	}
	// A human (an admin) kills the parent.
	killed, err := p.human.Transition(ctx, string(pid), "kill", "runaway")
	if err != nil || killed.State != writ.RunKilled {
		t.Fatalf("kill: %+v %v", killed, err)
	}
	delegStates(t, store, kids, writ.RunKilled)
	if r := delegGet(t, store, done.id); r.State != writ.RunEnded || r.EndReason != "reviewed" {
		t.Errorf("the child that had ended: %s %q; want ended, reviewed", r.State, r.EndReason)
	}
	for _, k := range kids[:1] {
		if r := delegGet(t, store, k.id); !strings.Contains(r.EndReason, string(pid)) {
			t.Errorf("end reason %q does not name the ancestor", r.EndReason)
		}
	}
	if ev := runEvents(t, store, pid); ev[len(ev)-1] != "run.killed human:dev" {
		t.Errorf("parent events end with %v; want run.killed by human:dev", ev[len(ev)-1])
	}
	delegCascadeEvents(t, store, pid, writ.EventRunKilled, kids, done.id)
	delegRefused(t, kids)
	// Final is final: a killed child cannot be resumed.
	if _, err := p.human.Transition(ctx, string(kids[0].id), "resume", ""); writ.ErrorCode(err) != "run_final" {
		t.Errorf("resume a killed descendant: %v; want run_final", err)
	}
}

// TestDelegateCascadeSuspend: suspending a parent suspends its active
// descendants (and leaves an ended one ended). Resuming the parent does
// not resume them — each is a human act of its own (docs/delegation.md) —
// and a descendant a human resumes acts again.
func TestDelegateCascadeSuspend(t *testing.T) {
	p := startPolicy(t, delegUnlimited)
	ctx := context.Background()
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	kids := delegTree(t, p.r.url, parent, pid, 4, 3)
	done := kids[len(kids)-1]
	kids = kids[:len(kids)-1]
	if _, err := done.c.Transition(ctx, string(done.id), "end", "reviewed"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.human.Transition(ctx, string(pid), "suspend", "looks odd"); err != nil {
		t.Fatal(err)
	}
	delegStates(t, store, kids, writ.RunSuspended)
	if r := delegGet(t, store, done.id); r.State != writ.RunEnded {
		t.Errorf("the ended grandchild is %s; want still ended", r.State)
	}
	delegCascadeEvents(t, store, pid, writ.EventRunSuspended, kids, done.id)
	delegRefused(t, kids)

	// Resuming the parent: the parent acts, its descendants stay suspended.
	if _, err := p.human.Transition(ctx, string(pid), "resume", "checked"); err != nil {
		t.Fatal(err)
	}
	if d := p.decide(parent, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow {
		t.Fatalf("the resumed parent: %+v", d)
	}
	delegStates(t, store, kids, writ.RunSuspended)
	for _, k := range kids {
		if _, err := k.c.GetRun(ctx, string(k.id)); writ.ErrorCode(err) != "token_revoked" {
			t.Errorf("descendant %s after its parent resumed: %v; want token_revoked (still suspended)", k.id, err)
		}
		for _, e := range runEvents(t, store, k.id) {
			if strings.HasPrefix(e, "run.resumed") {
				t.Errorf("descendant %s has %s", k.id, e)
			}
		}
	}
	// A human resumes one child: it acts again, its own children stay
	// suspended.
	c0 := kids[0]
	if _, err := p.human.Transition(ctx, string(c0.id), "resume", "checked"); err != nil {
		t.Fatal(err)
	}
	poll(t, "the resumed child to act", func() bool { _, err := c0.c.GetRun(ctx, string(c0.id)); return err == nil })
	grand, err := store.Descendants(ctx, c0.id)
	if err != nil || len(grand) != 3 {
		t.Fatalf("grandchildren of %s: %v %v", c0.id, grand, err)
	}
	for _, g := range grand {
		if r := delegGet(t, store, g); r.State != writ.RunSuspended {
			t.Errorf("grandchild %s is %s after its parent was resumed; want suspended", g, r.State)
		}
	}
}

// TestDelegateCascadeEnd: a parent that ends itself ends its descendants.
func TestDelegateCascadeEnd(t *testing.T) {
	p := startPolicy(t, delegUnlimited)
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	kids := delegTree(t, p.r.url, parent, pid, 3, 3)
	if _, err := parent.Transition(context.Background(), string(pid), "end", "done"); err != nil {
		t.Fatal(err)
	}
	delegStates(t, store, kids, writ.RunEnded)
	delegCascadeEvents(t, store, pid, writ.EventRunEnded, kids)
	delegRefused(t, kids)
	if ev := runEvents(t, store, pid); ev[len(ev)-1] != "run.ended run:"+string(pid) {
		t.Errorf("parent events end with %v; want run.ended by the run", ev[len(ev)-1])
	}
}

// TestDelegateCascadePolicySuspension: a parent suspended by policy for
// scope creep (edit, build, then a secret outside its trigger) takes its
// descendants with it.
func TestDelegateCascadePolicySuspension(t *testing.T) {
	p := startPolicy(t, delegUnlimited)
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	kids := delegTree(t, p.r.url, parent, pid, 2, 2)
	// The children act before.
	for _, k := range kids {
		if d := p.decide(k.c, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow {
			t.Fatalf("descendant %s reads: %+v", k.id, d)
		}
	}
	for _, name := range []string{"edit", "shell:build"} {
		if d := p.decide(parent, writ.Action{Kind: "tool", Name: name}); d.Decision != writ.VerdictAllow {
			t.Fatalf("%s: %+v", name, d)
		}
	}
	d := p.decide(parent, writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "prod/db", Environment: "production"}})
	if d.Decision != writ.VerdictDeny || !hasCode(d.Reasons, "scope_creep") || d.RunState != writ.RunSuspended {
		t.Fatalf("scope creep: %+v", d)
	}
	if r := delegGet(t, store, pid); r.State != writ.RunSuspended {
		t.Fatalf("parent is %s", r.State)
	}
	delegStates(t, store, kids, writ.RunSuspended)
	delegCascadeEvents(t, store, pid, writ.EventRunSuspended, kids)
	delegRefused(t, kids)
	for _, k := range kids {
		if _, err := k.c.Decide(context.Background(), &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}}); writ.ErrorCode(err) != "token_revoked" {
			t.Errorf("descendant %s decides after the cascade: %v; want token_revoked", k.id, err)
		}
	}
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

// TestDelegateChildrenBudgetConcurrent: the children budget holds when a
// parent asks for many children at once, not only one after another.
func TestDelegateChildrenBudgetConcurrent(t *testing.T) {
	// refactor: children 3. The denial threshold is off: nine budget
	// denials would otherwise suspend the parent, which is not what this
	// test is about.
	p := startPolicy(t, func(cfg *server.Config) { cfg.Policy.Denials.Max = 0 })
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	const n = 12
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	codes := make(chan string, n)
	for range n {
		wg.Go(func() {
			_, err := delegStart(t, p.r.url, parent, pid, delegReview(delegReviewScope()))
			switch {
			case err == nil:
				ok.Add(1)
			case writ.ErrorCode(err) == "budget_children":
				refused.Add(1)
			default:
				codes <- writ.ErrorCode(err)
			}
		})
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		t.Errorf("unexpected refusal %s", c)
	}
	kids, err := store.Descendants(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 3 || ok.Load() != 3 {
		t.Errorf("%d concurrent delegations against a budget of 3 children: %d allowed, %d refused, %d children in the store", n, ok.Load(), refused.Load(), len(kids))
	}
}

// TestDelegateResumeUnderSuspendedParent: a descendant cannot be made
// active again while an ancestor is suspended — it would act, and even
// delegate, for a run a human (or policy) stopped. CreateChildRun keeps
// this invariant for new children (the parent must be active at the
// commit); a resume must keep it too.
func TestDelegateResumeUnderSuspendedParent(t *testing.T) {
	p := startPolicy(t, delegUnlimited)
	ctx := context.Background()
	store := p.r.srv.Store()
	parent, pid := p.run(nil)
	kids := delegTree(t, p.r.url, parent, pid, 1, 1)
	child := kids[0]
	if _, err := p.human.Transition(ctx, string(pid), "suspend", "looks odd"); err != nil {
		t.Fatal(err)
	}
	runs, _ := delegCounts(t, store)
	if _, err := p.human.Transition(ctx, string(child.id), "resume", "only the child"); writ.ErrorCode(err) != "parent_not_active" {
		t.Errorf("resume a child of a suspended parent: %v; want parent_not_active", err)
	}
	if r := delegGet(t, store, child.id); r.State != writ.RunSuspended {
		t.Errorf("the child is %s; want still suspended", r.State)
	}
	if _, err := delegStart(t, p.r.url, child.c, child.id, delegReview(delegReviewScope())); err == nil {
		t.Errorf("the child delegated while its parent is suspended")
	}
	if r, _ := delegCounts(t, store); r != runs {
		t.Errorf("%d run(s) created under a suspended ancestor", r-runs)
	}
}
