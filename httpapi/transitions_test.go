package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
)

func (f *fixture) transition(token string, id writ.RunID, verb, body string) response {
	f.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return f.do("POST", "/v1/runs/"+string(id)+"/"+verb, token, b)
}

// mustTransition posts a transition that must succeed and returns the run.
func (f *fixture) mustTransition(token string, id writ.RunID, verb, body string) runView {
	f.t.Helper()
	r := f.transition(token, id, verb, body)
	if r.status != http.StatusOK {
		f.t.Fatalf("%s %s: %d %s", verb, id, r.status, r.body)
	}
	return decodeRun(f.t, r.body)
}

// TestTransitions walks a run through suspend, resume and end over HTTP
// and checks each answer and each event: the actor is the human, the
// details carry the reason (given, or a default naming the human).
func TestTransitions(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.tokens["alice"], f.tokens["bob"]
	run := f.mustStart(f.signed("alice", nil))
	pos := f.lastPos()

	f.clock.Add(time.Minute)
	if got := f.mustTransition(bob, run.ID, "suspend", `{"reason": "investigating"}`); got.State != writ.RunSuspended {
		t.Errorf("after suspend: %s", got.State)
	}
	f.clock.Add(time.Minute)
	if got := f.mustTransition(alice, run.ID, "resume", ""); got.State != writ.RunActive {
		t.Errorf("after resume: %s", got.State)
	}
	f.clock.Add(time.Minute)
	ended := f.mustTransition(bob, run.ID, "end", `{"reason": "ENG-123 done"}`)
	wantEnded := run
	wantEnded.State, wantEnded.EndedAt, wantEnded.EndReason = writ.RunEnded, t0.Add(3*time.Minute), "ENG-123 done"
	if diff := cmp.Diff(wantEnded, ended); diff != "" {
		t.Errorf("ended run (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantEnded.Run, *f.getRun(run.ID)); diff != "" {
		t.Errorf("stored run (-want +got):\n%s", diff)
	}

	type ev struct {
		Type, Actor string
		Run         writ.RunID
		Time        time.Time
		Details     map[string]any
	}
	var got []ev
	for _, e := range f.eventsAfter(pos) {
		got = append(got, ev{e.Type, e.Actor, e.Run, e.Time, e.Details})
	}
	want := []ev{
		{writ.EventRunSuspended, "human:bob", run.ID, t0.Add(time.Minute), map[string]any{"reason": "investigating"}},
		{writ.EventRunResumed, "human:alice", run.ID, t0.Add(2 * time.Minute), map[string]any{"reason": "resume by human:alice"}},
		{writ.EventRunEnded, "human:bob", run.ID, t0.Add(3 * time.Minute), map[string]any{"reason": "ENG-123 done"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestFinalStatesAreOneWay: nothing leaves ended, killed or expired, for
// any verb, and the refusal leaves the run and the log as they were.
func TestFinalStatesAreOneWay(t *testing.T) {
	for _, final := range []writ.RunState{writ.RunEnded, writ.RunKilled, writ.RunExpired} {
		t.Run(string(final), func(t *testing.T) {
			f := newFixture(t)
			alice := f.tokens["alice"]
			run := f.mustStart(f.signed("alice", nil))
			switch final {
			case writ.RunEnded:
				f.mustTransition(alice, run.ID, "end", "")
			case writ.RunKilled:
				f.mustTransition(alice, run.ID, "kill", `{"reason": "runaway"}`)
			case writ.RunExpired:
				f.clock.Add(30 * time.Minute)
				if _, err := f.store.ExpireRuns(context.Background(), f.clock.Now(), 0); err != nil {
					t.Fatal(err)
				}
			}
			before := f.getRun(run.ID)
			if before.State != final {
				t.Fatalf("run is %s; want %s", before.State, final)
			}
			pos := f.lastPos()
			for _, verb := range []string{"end", "suspend", "kill", "resume"} {
				wantError(t, f.transition(alice, run.ID, verb, ""), http.StatusConflict, "run_final")
			}
			if evs := f.eventsAfter(pos); len(evs) != 0 {
				t.Errorf("refused transitions left events %v", types(evs))
			}
			if diff := cmp.Diff(before, f.getRun(run.ID)); diff != "" {
				t.Errorf("run changed (-before +after):\n%s", diff)
			}
		})
	}
}

// TestResumePastDeadline: a suspended run may be resumed up to its
// deadline and not at or after it (the deadline keeps running while
// suspended).
func TestResumePastDeadline(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	run := f.mustStart(f.signed("alice", nil)) // deadline t0+30m
	f.mustTransition(alice, run.ID, "suspend", "")
	f.clock.Set(run.Deadline.Add(-time.Nanosecond))
	f.mustTransition(alice, run.ID, "resume", "")
	f.mustTransition(alice, run.ID, "suspend", "")
	f.clock.Set(run.Deadline)
	pos := f.lastPos()
	wantError(t, f.transition(alice, run.ID, "resume", ""), http.StatusConflict, "deadline_passed")
	if got := f.getRun(run.ID); got.State != writ.RunSuspended {
		t.Errorf("run is %s after a refused resume; want suspended", got.State)
	}
	if evs := f.eventsAfter(pos); len(evs) != 0 {
		t.Errorf("refused resume left events %v", types(evs))
	}
	// Ending it is still allowed.
	f.mustTransition(alice, run.ID, "end", "")
}

func TestTransitionConflictsAndLookups(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	run := f.mustStart(f.signed("alice", nil))
	wantError(t, f.transition(alice, run.ID, "resume", ""), http.StatusConflict, "invalid_transition")
	f.mustTransition(alice, run.ID, "suspend", "")
	wantError(t, f.transition(alice, run.ID, "suspend", ""), http.StatusConflict, "invalid_transition")

	missing := writ.RunID(writ.NewULID(t0, nil))
	wantError(t, f.transition(alice, missing, "end", ""), http.StatusNotFound, "run_not_found")
	wantError(t, f.do("GET", "/v1/runs/"+string(missing), alice, nil), http.StatusNotFound, "run_not_found")
	wantError(t, f.transition(alice, "not-a-ulid", "end", ""), http.StatusBadRequest, "invalid_run_id")
	wantError(t, f.do("GET", "/v1/runs/NOT-A-ULID", alice, nil), http.StatusBadRequest, "invalid_run_id")
}

func TestListRuns(t *testing.T) {
	f := newFixture(t)
	alice := f.tokens["alice"]
	a := f.mustStart(f.signed("alice", nil))
	f.clock.Add(time.Second)
	b := f.mustStart(f.signed("alice", func(t *writ.Trigger) { t.Agent = "review-bot"; t.Profile = "review"; t.Scope.Tools = []string{"read"} }))
	f.mustTransition(alice, a.ID, "end", "")
	list := func(q string) []writ.RunID {
		t.Helper()
		r := f.do("GET", "/v1/runs"+q, alice, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /v1/runs%s: %d %s", q, r.status, r.body)
		}
		var out struct{ Runs []runView }
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		ids := []writ.RunID{}
		for _, r := range out.Runs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	for _, c := range []struct {
		q    string
		want []writ.RunID
	}{
		{"", []writ.RunID{b.ID, a.ID}},
		{"?state=ended", []writ.RunID{a.ID}},
		{"?state=active", []writ.RunID{b.ID}},
		{"?agent=review-bot", []writ.RunID{b.ID}},
		{"?limit=1", []writ.RunID{b.ID}},
		{"?state=killed", []writ.RunID{}},
	} {
		if diff := cmp.Diff(c.want, list(c.q)); diff != "" {
			t.Errorf("GET /v1/runs%s (-want +got):\n%s", c.q, diff)
		}
	}
	wantError(t, f.do("GET", "/v1/runs?state=zombie", alice, nil), http.StatusBadRequest, "invalid_state")
	for _, l := range []string{"0", "1001", "x", "-1"} {
		wantError(t, f.do("GET", "/v1/runs?limit="+l, alice, nil), http.StatusBadRequest, "invalid_limit")
	}
}
