package runs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/runs"
)

// TestDelegateCascade: a parent that is killed, suspended (by a human or
// by policy) or ends itself takes every live descendant with it, in the
// same transaction: one event each by writ naming the parent as
// cascadeFrom, and each one's token is refused on its very next request
// (the Service drops what it cached of them). A descendant that had
// already ended stays ended, and gets no event.
func TestDelegateCascade(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name            string
		children, grand int
		// spareChild: one more review child of the parent ends itself
		// before the stop; otherwise the last grandchild does.
		spareChild bool
		stop       func(t *testing.T, f *fixture, parent *holder)
		state      writ.RunState
		event      string
		// after checks what is particular to the kind of stop.
		after func(t *testing.T, f *fixture, parent *holder, kids []*holder, spared *holder)
	}{
		{
			// 100 descendants: 10 children, 90 grandchildren.
			name: "kill", children: 10, grand: 9, spareChild: true,
			stop: func(t *testing.T, f *fixture, parent *holder) {
				// A human (an admin) kills the parent.
				killed, err := f.svc.Transition(ctx, f.human, parent.id, writ.RunKilled, "runaway")
				if err != nil || killed.State != writ.RunKilled {
					t.Fatalf("kill: %+v %v", killed, err)
				}
			},
			state: writ.RunKilled, event: writ.EventRunKilled,
			after: func(t *testing.T, f *fixture, parent *holder, kids []*holder, spared *holder) {
				if r := f.get(spared.id); r.EndReason != "reviewed" {
					t.Errorf("the child that had ended: %s %q; want ended, reviewed", r.State, r.EndReason)
				}
				if r := f.get(kids[0].id); !strings.Contains(r.EndReason, string(parent.id)) {
					t.Errorf("end reason %q does not name the ancestor", r.EndReason)
				}
				if ev := f.runEvents(parent.id); ev[len(ev)-1] != "run.killed human:"+human {
					t.Errorf("parent events end with %v; want run.killed by human:%s", ev[len(ev)-1], human)
				}
				// Final is final: a killed descendant cannot be resumed.
				if _, err := f.svc.Transition(ctx, f.human, kids[0].id, writ.RunActive, ""); writ.ErrorCode(err) != "run_final" {
					t.Errorf("resume a killed descendant: %v; want run_final", err)
				}
			},
		},
		{
			name: "suspend", children: 4, grand: 3,
			stop: func(t *testing.T, f *fixture, parent *holder) {
				if _, err := f.svc.Transition(ctx, f.human, parent.id, writ.RunSuspended, "looks odd"); err != nil {
					t.Fatal(err)
				}
			},
			state: writ.RunSuspended, event: writ.EventRunSuspended,
			after: func(t *testing.T, f *fixture, parent *holder, kids []*holder, _ *holder) {
				// Resuming the parent: the parent acts, its descendants
				// stay suspended — each resume is a human act of its own
				// (docs/delegation.md).
				if _, err := f.svc.Transition(ctx, f.human, parent.id, writ.RunActive, "checked"); err != nil {
					t.Fatal(err)
				}
				if d := f.mustDecide(parent, writ.Action{Kind: "tool", Name: "read"}); d.Verdict != writ.VerdictAllow {
					t.Fatalf("the resumed parent: %+v", d)
				}
				states(t, f, kids, writ.RunSuspended)
				refused(t, f, kids)
				for _, k := range kids {
					for _, e := range f.runEvents(k.id) {
						if strings.HasPrefix(e, "run.resumed") {
							t.Errorf("descendant %s has %s", k.id, e)
						}
					}
				}
				// A human resumes one child: it acts again, its own
				// children stay suspended.
				c0 := kids[0]
				if _, err := f.svc.Transition(ctx, f.human, c0.id, writ.RunActive, "checked"); err != nil {
					t.Fatal(err)
				}
				if _, err := f.auth(c0, "GET", "/v1/runs/"+string(c0.id), runs.OwnRun); err != nil {
					t.Errorf("the resumed child: %v", err)
				}
				grand := f.descendants(c0.id)
				if len(grand) != 3 {
					t.Fatalf("grandchildren of %s: %v", c0.id, grand)
				}
				for _, g := range grand {
					if r := f.get(g); r.State != writ.RunSuspended {
						t.Errorf("grandchild %s is %s after its parent was resumed; want suspended", g, r.State)
					}
				}
			},
		},
		{
			name: "end", children: 3, grand: 3,
			stop: func(t *testing.T, f *fixture, parent *holder) {
				// The parent ends itself, with its own token.
				p, err := f.auth(parent, "POST", "/v1/runs/"+string(parent.id)+"/end", runs.OwnRunSuspended)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.Transition(ctx, p, parent.id, writ.RunEnded, "done"); err != nil {
					t.Fatal(err)
				}
			},
			state: writ.RunEnded, event: writ.EventRunEnded,
			after: func(t *testing.T, f *fixture, parent *holder, _ []*holder, _ *holder) {
				if ev := f.runEvents(parent.id); ev[len(ev)-1] != "run.ended run:"+string(parent.id) {
					t.Errorf("parent events end with %v; want run.ended by the run", ev[len(ev)-1])
				}
			},
		},
		{
			// Scope creep: edit, build, then a secret outside the trigger.
			name: "policy suspension", children: 2, grand: 2,
			stop: func(t *testing.T, f *fixture, parent *holder) {
				for _, name := range []string{"edit", "shell:build"} {
					if d := f.mustDecide(parent, writ.Action{Kind: "tool", Name: name}); d.Verdict != writ.VerdictAllow {
						t.Fatalf("%s: %+v", name, d)
					}
				}
				d := f.mustDecide(parent, writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "prod/db", Environment: "production"}})
				if d.Verdict != writ.VerdictDeny || !hasCode(d.Reasons, "scope_creep") || !d.Obligations.Suspend {
					t.Fatalf("scope creep: %+v", d)
				}
				if r := f.get(parent.id); r.State != writ.RunSuspended {
					t.Fatalf("parent is %s", r.State)
				}
			},
			state: writ.RunSuspended, event: writ.EventRunSuspended,
			after: func(t *testing.T, f *fixture, _ *holder, kids []*holder, _ *holder) {
				for _, k := range kids {
					if _, err := f.decide(k, writ.Action{Kind: "tool", Name: "read"}); writ.ErrorCode(err) != "token_revoked" {
						t.Errorf("descendant %s decides after the cascade: %v; want token_revoked", k.id, err)
					}
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, unlimited)
			parent := f.start(nil)
			kids := f.tree(parent, c.children, c.grand)
			if len(kids) != c.children*(1+c.grand) {
				t.Fatalf("%d descendants", len(kids))
			}
			// Controls before the stop: every descendant acts.
			for _, k := range kids {
				if d := f.mustDecide(k, writ.Action{Kind: "tool", Name: "read"}); d.Verdict != writ.VerdictAllow {
					t.Fatalf("descendant %s reads before the stop: %+v", k.id, d)
				}
			}
			// One descendant ends itself first: the stop leaves it ended.
			var spared *holder
			if c.spareChild {
				spared, _ = f.delegate(parent, reviewReq(reviewScope()))
			} else {
				spared, kids = kids[len(kids)-1], kids[:len(kids)-1]
			}
			p, err := f.auth(spared, "POST", "/v1/runs/"+string(spared.id)+"/end", runs.OwnRunSuspended)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Transition(ctx, p, spared.id, writ.RunEnded, "reviewed"); err != nil {
				t.Fatal(err)
			}

			c.stop(t, f, parent)

			states(t, f, kids, c.state)
			if r := f.get(spared.id); r.State != writ.RunEnded {
				t.Errorf("the descendant that had ended is %s; want still ended", r.State)
			}
			cascadeEvents(t, f, parent.id, c.event, kids, spared.id)
			refused(t, f, kids)
			c.after(t, f, parent, kids, spared)
		})
	}
}

// TestDelegateResumeUnderSuspendedParent: a descendant cannot be made
// active again while an ancestor is suspended — it would act, and even
// delegate, for a run a human (or policy) stopped. CreateChildRun keeps
// this invariant for new children (the parent must be active at the
// commit); a resume must keep it too.
func TestDelegateResumeUnderSuspendedParent(t *testing.T) {
	f := newFixture(t, unlimited)
	ctx := context.Background()
	parent := f.start(nil)
	child := f.tree(parent, 1, 1)[0]
	if _, err := f.svc.Transition(ctx, f.human, parent.id, writ.RunSuspended, "looks odd"); err != nil {
		t.Fatal(err)
	}
	runCount, _ := f.counts()
	if _, err := f.svc.Transition(ctx, f.human, child.id, writ.RunActive, "only the child"); writ.ErrorCode(err) != "parent_not_active" {
		t.Errorf("resume a child of a suspended parent: %v; want parent_not_active", err)
	}
	if r := f.get(child.id); r.State != writ.RunSuspended {
		t.Errorf("the child is %s; want still suspended", r.State)
	}
	if _, _, err := f.tryDelegate(child, reviewReq(reviewScope())); err == nil {
		t.Errorf("the child delegated while its parent is suspended")
	}
	if r, _ := f.counts(); r != runCount {
		t.Errorf("%d run(s) created under a suspended ancestor", r-runCount)
	}
}

// cascadeEvents checks that every run of kids has exactly one event of
// type typ, by writ, naming root as cascadeFrom, and that no run of spared
// has a cascaded one.
func cascadeEvents(t *testing.T, f *fixture, root writ.RunID, typ string, kids []*holder, spared ...writ.RunID) {
	t.Helper()
	got := map[writ.RunID][]writ.Event{}
	for _, e := range f.events() {
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
		for _, e := range got[id] {
			if e.Details["cascadeFrom"] != nil {
				t.Errorf("%s event of %s, which was no longer live: %+v", typ, id, e)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d descendants lack their %s event", bad, len(kids), typ)
	}
}

// refused checks that every kid's token is refused with token_revoked on
// its own run, at once: a stop drops what the Service cached of the
// descendants, so no request is let through on a stale state.
func refused(t *testing.T, f *fixture, kids []*holder) {
	t.Helper()
	bad := 0
	for _, k := range kids {
		if _, err := f.auth(k, "GET", "/v1/runs/"+string(k.id), runs.OwnRun); writ.ErrorCode(err) != "token_revoked" {
			if bad++; bad <= 3 {
				t.Errorf("the token of %s: %v; want token_revoked", k.id, err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d descendants' tokens are not refused", bad, len(kids))
	}
}

// states checks the store state of every kid.
func states(t *testing.T, f *fixture, kids []*holder, want writ.RunState) {
	t.Helper()
	bad := 0
	for _, k := range kids {
		if r := f.get(k.id); r.State != want || (want.Final() && r.EndedAt.IsZero()) {
			if bad++; bad <= 3 {
				t.Errorf("descendant %s (depth %d) is %s; want %s", k.id, r.Depth, r.State, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d descendants are not %s", bad, len(kids), want)
	}
}

func hasCode(rs []writ.Reason, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}
