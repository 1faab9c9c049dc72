package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/writ-dev/writ"
)

// runConformance is the storage conformance suite: every dialect must pass
// it. open returns a new, empty, migrated database.
func runConformance(t *testing.T, open func(t *testing.T) *DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) *DB)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateDefaults", testCreateDefaults},
		{"CreateInvalid", testCreateInvalid},
		{"Replay", testReplay},
		{"ListRuns", testListRuns},
		{"Transitions", testTransitions},
		{"TransitionErrors", testTransitionErrors},
		{"ResumePastDeadline", testResumePastDeadline},
		{"EventsPerOperation", testEventsPerOperation},
		{"EventsPaging", testEventsPaging},
		{"EventsOfTypes", testEventsOfTypes},
		{"BatchIsolation", testBatchIsolation},
		{"BatchRollsBackFailedRequest", testBatchRollsBackFailedRequest},
		{"CancelledRequest", testCancelledRequest},
		{"ExpireRuns", testExpireRuns},
		{"NextDeadline", testNextDeadline},
		{"CountRuns", testCountRuns},
		{"RecordRefusal", testRecordRefusal},
		{"PruneTriggers", testPruneTriggers},
		{"Tokens", testTokens},
		{"Bootstrap", testBootstrap},
		{"Reopen", testReopen},
		{"Closed", testClosed},
		{"SigningKeys", testSigningKeys},
		{"UseProof", testUseProof},
		{"TriggerHorizon", testTriggerHorizon},
		{"ProofHorizon", testProofHorizon},
		{"HorizonWithoutRows", testHorizonWithoutRows},
		{"AppendEvent", testAppendEvent},
		{"AuditLog", testAuditLog},
		{"PruneCheckpoints", testPruneCheckpoints},
		{"ArtifactEvents", testArtifactEvents},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
}

func testCreateGetRoundTrip(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	created := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	parent := createRun(t, db, created)
	child := createRun(t, db, created.Add(time.Second), func(r *writ.Run) {
		r.Parent = parent.ID
		r.Depth = 1
		r.Ticket.URL = ""
		r.Task = ""
		r.State = writ.RunSuspended
	})
	for _, want := range []*writ.Run{parent, child} {
		got, err := db.GetRun(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRun(%s) = %v", want.ID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetRun(%s) mismatch (-want +got):\n%s", want.ID, diff)
		}
		if got.CreatedAt.Location() != time.UTC || got.Deadline.Location() != time.UTC {
			t.Errorf("GetRun(%s) times are not UTC: %v, %v", want.ID, got.CreatedAt, got.Deadline)
		}
	}
	// nil and empty lists stay as they were.
	got, _ := db.GetRun(ctx, parent.ID)
	if got.Scope.Environments != nil || got.Scope.Secrets == nil || got.Scope.Repos[1].Paths == nil {
		t.Errorf("scope lists changed nil-ness: %#v", got.Scope)
	}
	list, err := db.ListRuns(ctx, writ.RunFilter{})
	if err != nil {
		t.Fatalf("ListRuns() = %v", err)
	}
	if diff := cmp.Diff([]*writ.Run{child, parent}, list); diff != "" {
		t.Errorf("ListRuns() mismatch (-want +got):\n%s", diff)
	}

	_, err = db.GetRun(ctx, writ.RunID(writ.NewULID(time.Now(), nil)))
	wantError(t, err, writ.KindNotFound, "run_not_found")
}

func testCreateDefaults(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	r, trig, evs := testRun(time.Now())
	r.ID, r.State, r.CreatedAt, r.TriggerID, r.TriggerDigest = "", "", time.Time{}, "", ""
	if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
		t.Fatalf("CreateRun() = %v", err)
	}
	if _, err := writ.ParseRunID(string(r.ID)); err != nil {
		t.Errorf("CreateRun set ID %q: %v", r.ID, err)
	}
	if r.State != writ.RunActive || r.TriggerID != trig.ID || r.TriggerDigest != trig.Digest {
		t.Errorf("CreateRun set state %q, trigger %q %q; want active, %q %q", r.State, r.TriggerID, r.TriggerDigest, trig.ID, trig.Digest)
	}
	stored := allEvents(t, db)
	if len(stored) != 2 {
		t.Fatalf("events = %d; want 2", len(stored))
	}
	for i, ev := range evs {
		if ev.Run != r.ID || ev.ID == "" {
			t.Errorf("event %d: run %q id %q; want run %q and an id", i, ev.Run, ev.ID, r.ID)
		}
		if !ev.Time.Equal(r.CreatedAt) {
			t.Errorf("event %d: time %v; want the commit time = createdAt %v", i, ev.Time, r.CreatedAt)
		}
		checkStored(t, stored[i], ev)
	}
	got, err := db.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatalf("GetRun() = %v", err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("GetRun() mismatch (-want +got):\n%s", diff)
	}
}

func testCreateInvalid(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	existing := createRun(t, db, time.Now())
	tests := []struct {
		name string
		mod  func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event)
		kind writ.Kind
		code string // "" for a plain (internal) error
	}{
		{"no events", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { *evs = nil }, writ.KindInternal, ""},
		{"nil event", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { (*evs)[1] = nil }, writ.KindInternal, ""},
		{"typeless event", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { (*evs)[0].Type = "" }, writ.KindInternal, ""},
		{"bad run id", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.ID = "Run-1" }, writ.KindInvalid, "invalid_run_id"},
		{"final state", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.State = writ.RunEnded }, writ.KindInvalid, "invalid_state"},
		{"unknown state", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.State = "paused" }, writ.KindInvalid, "invalid_state"},
		{"ended", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.EndedAt = time.Now() }, writ.KindInvalid, "invalid_run"},
		{"negative depth", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.Depth = -1 }, writ.KindInvalid, "invalid_run"},
		{"no deadline", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.Deadline = time.Time{} }, writ.KindInvalid, "invalid_time"},
		{"deadline out of range", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) {
			r.Deadline = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
		}, writ.KindInvalid, "invalid_time"},
		{"no trigger expiry", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { trig.ExpiresAt = time.Time{} }, writ.KindInvalid, "invalid_time"},
		{"no trigger id", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { trig.ID = "" }, writ.KindInternal, ""},
		{"trigger mismatch", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.TriggerID = "other" }, writ.KindInternal, ""},
		{"bad parent id", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.Parent = "nope" }, writ.KindInvalid, "invalid_run_id"},
		{"unknown parent", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) {
			r.Parent = writ.RunID(writ.NewULID(time.Now(), nil))
		}, writ.KindNotFound, "run_not_found"},
		{"existing run id", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) { r.ID = existing.ID }, writ.KindConflict, "run_exists"},
		{"existing event id", func(r *writ.Run, trig *writ.TriggerRecord, evs *[]*writ.Event) {
			(*evs)[1].ID = allEvents(t, db)[0].ID
		}, writ.KindInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, trig, evs := testRun(time.Now())
			tt.mod(r, &trig, &evs)
			runs, pos := runCount(t, db), lastPos(t, db)
			err := db.CreateRun(ctx, r, trig, evs...)
			if err == nil {
				t.Fatalf("CreateRun() = nil; want an error")
			}
			if tt.code == "" {
				if k := writ.ErrorKind(err); k != writ.KindInternal {
					t.Errorf("CreateRun() = %v (kind %s); want a plain error", err, k)
				}
			} else {
				wantError(t, err, tt.kind, tt.code)
			}
			if n := runCount(t, db); n != runs {
				t.Errorf("runs = %d after a refused CreateRun; want %d", n, runs)
			}
			if got := eventsAfter(t, db, pos); len(got) != 0 {
				t.Errorf("a refused CreateRun wrote events %v", eventTypes(got))
			}
			// Its trigger id was not recorded: a correct run may use it.
			if trig.ID != "" {
				r2, _, _ := testRun(time.Now())
				r2.TriggerID, r2.TriggerDigest = trig.ID, trig.Digest
				trig.ExpiresAt = time.Now().Add(time.Hour)
				if err := db.CreateRun(ctx, r2, trig, startEvents(trig)...); err != nil {
					t.Errorf("CreateRun with the refused run's trigger = %v; want nil", err)
				}
			}
		})
	}
}

func testReplay(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	first, trig, evs := testRun(time.Now())
	if err := db.CreateRun(ctx, first, trig, evs...); err != nil {
		t.Fatalf("CreateRun() = %v", err)
	}
	second, _, evs2 := testRun(time.Now())
	second.TriggerID, second.TriggerDigest = trig.ID, trig.Digest
	err := db.CreateRun(ctx, second, trig, evs2...)
	wantError(t, err, writ.KindConflict, "replay")
	wantMsg := fmt.Sprintf("trigger %s was already used to start run %s; sign a new trigger with a fresh id", trig.ID, first.ID)
	if msg := err.(*writ.Error).Message; msg != wantMsg {
		t.Errorf("replay message = %q; want %q", msg, wantMsg)
	}
	if n := runCount(t, db); n != 1 {
		t.Errorf("runs = %d; want 1", n)
	}
	if got := eventTypes(allEvents(t, db)); !cmp.Equal(got, []string{writ.EventTriggerAccepted, writ.EventRunStarted}) {
		t.Errorf("events = %v; want only the first run's", got)
	}
	_, err = db.GetRun(ctx, second.ID)
	wantError(t, err, writ.KindNotFound, "run_not_found")
	// The replay is refused whatever the run's state.
	if _, err := db.TransitionRun(ctx, first.ID, writ.RunEnded, "done", &writ.Event{}); err != nil {
		t.Fatal(err)
	}
	err = db.CreateRun(ctx, second, trig, startEvents(trig)...)
	wantError(t, err, writ.KindConflict, "replay")
}

func testListRuns(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	base := time.Now().Add(-time.Hour)
	var all []*writ.Run // oldest first
	for i := range 105 {
		r := createRun(t, db, base.Add(time.Duration(i/2)*time.Second), func(r *writ.Run) {
			if i%3 == 0 {
				r.Agent = "codex"
			}
		})
		all = append(all, r)
	}
	for _, r := range all[:10] {
		if _, err := db.TransitionRun(ctx, r.ID, writ.RunSuspended, "", &writ.Event{}); err != nil {
			t.Fatal(err)
		}
		r.State = writ.RunSuspended
	}
	// newest first: by created_at, then id, descending.
	newest := func(filter func(*writ.Run) bool, limit int) []*writ.Run {
		var out []*writ.Run
		for i := len(all) - 1; i >= 0; i-- {
			if filter(all[i]) {
				out = append(out, all[i])
			}
		}
		// Two runs share each creation time: the larger id comes first.
		slices.SortFunc(out, func(a, b *writ.Run) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(string(b.ID), string(a.ID))
		})
		if len(out) > limit {
			out = out[:limit]
		}
		return out
	}
	every := func(*writ.Run) bool { return true }
	tests := []struct {
		name string
		f    writ.RunFilter
		want []*writ.Run
	}{
		{"default limit", writ.RunFilter{}, newest(every, 100)},
		{"limit", writ.RunFilter{Limit: 7}, newest(every, 7)},
		{"over max", writ.RunFilter{Limit: 5000}, newest(every, 1000)},
		{"state", writ.RunFilter{State: writ.RunSuspended}, newest(func(r *writ.Run) bool { return r.State == writ.RunSuspended }, 100)},
		{"agent", writ.RunFilter{Agent: "codex"}, newest(func(r *writ.Run) bool { return r.Agent == "codex" }, 100)},
		{"state and agent", writ.RunFilter{State: writ.RunActive, Agent: "codex", Limit: 3},
			newest(func(r *writ.Run) bool { return r.Agent == "codex" && r.State == writ.RunActive }, 3)},
		{"no match", writ.RunFilter{State: writ.RunKilled}, []*writ.Run{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListRuns(ctx, tt.f)
			if err != nil {
				t.Fatalf("ListRuns(%+v) = %v", tt.f, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ListRuns(%+v) mismatch (-want +got):\n%s", tt.f, diff)
			}
		})
	}
	_, err := db.ListRuns(ctx, writ.RunFilter{State: "paused"})
	wantError(t, err, writ.KindInvalid, "invalid_state")
}

// runIn returns a new run brought into state s the way the API would.
func runIn(t *testing.T, db *DB, s writ.RunState) *writ.Run {
	t.Helper()
	r := createRun(t, db, time.Now())
	var path []writ.RunState
	switch s {
	case writ.RunSuspended:
		path = []writ.RunState{writ.RunSuspended}
	case writ.RunEnded, writ.RunKilled, writ.RunExpired:
		path = []writ.RunState{s}
	}
	for _, to := range path {
		var err error
		r, err = db.TransitionRun(context.Background(), r.ID, to, "setup", &writ.Event{Actor: writ.ActorSystem})
		if err != nil {
			t.Fatalf("TransitionRun(%s) = %v", to, err)
		}
	}
	return r
}

func testTransitions(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	// docs/design.md §4.3: active ⇄ suspended, then ended | killed | expired.
	allowed := map[[2]writ.RunState]bool{
		{writ.RunActive, writ.RunSuspended}:  true,
		{writ.RunActive, writ.RunEnded}:      true,
		{writ.RunActive, writ.RunKilled}:     true,
		{writ.RunActive, writ.RunExpired}:    true,
		{writ.RunSuspended, writ.RunActive}:  true,
		{writ.RunSuspended, writ.RunEnded}:   true,
		{writ.RunSuspended, writ.RunKilled}:  true,
		{writ.RunSuspended, writ.RunExpired}: true,
	}
	for _, from := range writ.RunStates {
		for _, to := range writ.RunStates {
			t.Run(fmt.Sprintf("%s to %s", from, to), func(t *testing.T) {
				r := runIn(t, db, from)
				before := lastPos(t, db)
				ev := &writ.Event{Actor: writ.HumanActor("bob"), Details: map[string]any{"why": "test"}}
				got, err := db.TransitionRun(ctx, r.ID, to, "because", ev)
				stored := eventsAfter(t, db, before)
				if !allowed[[2]writ.RunState{from, to}] {
					code := "invalid_transition"
					if from.Final() {
						code = "run_final"
					}
					wantError(t, err, writ.KindConflict, code)
					if msg := err.(*writ.Error).Message; !strings.Contains(msg, string(from)) {
						t.Errorf("%s message %q does not name the state %s", code, msg, from)
					}
					if len(stored) != 0 {
						t.Errorf("refused transition wrote events %v", eventTypes(stored))
					}
					now, _ := db.GetRun(ctx, r.ID)
					if diff := cmp.Diff(r, now); diff != "" {
						t.Errorf("refused transition changed the run (-before +after):\n%s", diff)
					}
					return
				}
				if err != nil {
					t.Fatalf("TransitionRun(%s → %s) = %v", from, to, err)
				}
				want := *r
				want.State = to
				if to.Final() {
					want.EndedAt, want.EndReason = ev.Time, "because"
				}
				if diff := cmp.Diff(&want, got); diff != "" {
					t.Errorf("TransitionRun returned (-want +got):\n%s", diff)
				}
				stored2, _ := db.GetRun(ctx, r.ID)
				if diff := cmp.Diff(&want, stored2); diff != "" {
					t.Errorf("stored run (-want +got):\n%s", diff)
				}
				if len(stored) != 1 {
					t.Fatalf("events = %v; want one %s", eventTypes(stored), to.EventType())
				}
				wantEv := &writ.Event{ID: ev.ID, Time: ev.Time, Type: to.EventType(), Run: r.ID,
					Actor: writ.HumanActor("bob"), Details: map[string]any{"why": "test"}}
				checkStored(t, stored[0], wantEv)
				if ev.Time.IsZero() || (to.Final() && !got.EndedAt.Equal(ev.Time)) {
					t.Errorf("event time %v, ended_at %v; want both the commit time", ev.Time, got.EndedAt)
				}
			})
		}
	}
}

func testTransitionErrors(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	r := createRun(t, db, time.Now())
	_, err := db.TransitionRun(ctx, r.ID, "paused", "", &writ.Event{})
	wantError(t, err, writ.KindInvalid, "invalid_state")
	_, err = db.TransitionRun(ctx, writ.RunID(writ.NewULID(time.Now(), nil)), writ.RunEnded, "", &writ.Event{})
	wantError(t, err, writ.KindNotFound, "run_not_found")
	if _, err := db.TransitionRun(ctx, r.ID, writ.RunEnded, "", nil); err == nil {
		t.Errorf("TransitionRun with a nil event = nil; want an error")
	}
	// A caller's own event type is kept.
	ev := &writ.Event{Type: writ.EventAlert}
	if _, err := db.TransitionRun(ctx, r.ID, writ.RunKilled, "heartbeat missed", ev); err != nil {
		t.Fatal(err)
	}
	if got := eventTypes(allEvents(t, db)); got[len(got)-1] != writ.EventAlert {
		t.Errorf("events = %v; want the caller's type last", got)
	}
}

func testResumePastDeadline(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	r := createRun(t, db, time.Now().Add(-2*time.Hour), func(r *writ.Run) { r.Deadline = time.Now().Add(-time.Hour) })
	if _, err := db.TransitionRun(ctx, r.ID, writ.RunSuspended, "", &writ.Event{}); err != nil {
		t.Fatalf("suspending a run past its deadline = %v; want nil", err)
	}
	before := lastPos(t, db)
	_, err := db.TransitionRun(ctx, r.ID, writ.RunActive, "", &writ.Event{})
	wantError(t, err, writ.KindConflict, "deadline_passed")
	if got := eventsAfter(t, db, before); len(got) != 0 {
		t.Errorf("refused resume wrote events %v", eventTypes(got))
	}
	if got, _ := db.GetRun(ctx, r.ID); got.State != writ.RunSuspended {
		t.Errorf("state after refused resume = %s; want suspended", got.State)
	}
	// A run with time left resumes.
	r2 := createRun(t, db, time.Now())
	if _, err := db.TransitionRun(ctx, r2.ID, writ.RunSuspended, "", &writ.Event{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TransitionRun(ctx, r2.ID, writ.RunActive, "", &writ.Event{}); err != nil {
		t.Errorf("resume = %v; want nil", err)
	}
}

// testEventsPerOperation checks the exact events each operation writes,
// successful or refused.
func testEventsPerOperation(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	r := createRun(t, db, time.Now())
	old := createRun(t, db, time.Now().Add(-time.Hour), func(r *writ.Run) { r.Deadline = time.Now().Add(-time.Minute) })
	tests := []struct {
		name string
		op   func() error
		want []string
	}{
		{"create", func() error {
			r, trig, evs := testRun(time.Now())
			return db.CreateRun(ctx, r, trig, evs...)
		}, []string{writ.EventTriggerAccepted, writ.EventRunStarted}},
		{"create one event", func() error {
			r, trig, evs := testRun(time.Now())
			return db.CreateRun(ctx, r, trig, evs[1])
		}, []string{writ.EventRunStarted}},
		{"suspend", func() error {
			_, err := db.TransitionRun(ctx, r.ID, writ.RunSuspended, "", &writ.Event{})
			return err
		}, []string{writ.EventRunSuspended}},
		{"suspend again", func() error {
			_, err := db.TransitionRun(ctx, r.ID, writ.RunSuspended, "", &writ.Event{})
			return err
		}, nil},
		{"resume", func() error {
			_, err := db.TransitionRun(ctx, r.ID, writ.RunActive, "", &writ.Event{})
			return err
		}, []string{writ.EventRunResumed}},
		{"end", func() error {
			_, err := db.TransitionRun(ctx, r.ID, writ.RunEnded, "done", &writ.Event{})
			return err
		}, []string{writ.EventRunEnded}},
		{"kill ended", func() error {
			_, err := db.TransitionRun(ctx, r.ID, writ.RunKilled, "", &writ.Event{})
			return err
		}, nil},
		{"expire", func() error {
			_, err := db.ExpireRuns(ctx, time.Now(), 0)
			return err
		}, []string{writ.EventRunExpired}},
		{"expire nothing", func() error {
			_, err := db.ExpireRuns(ctx, time.Now(), 0)
			return err
		}, nil},
		{"refusal", func() error {
			_, err := db.RecordRefusal(ctx, "sha256:aa", "bad_signature", time.Now().Add(time.Hour), &writ.Event{Type: writ.EventTriggerRefused})
			return err
		}, []string{writ.EventTriggerRefused}},
		{"same refusal", func() error {
			_, err := db.RecordRefusal(ctx, "sha256:aa", "bad_signature", time.Now().Add(time.Hour), &writ.Event{Type: writ.EventTriggerRefused})
			return err
		}, nil},
		{"bootstrap", func() error {
			return db.BootstrapToken(ctx, &writ.HumanToken{ID: "t1", Human: "alice", Hash: tokenHash("s1")}, &writ.Event{Type: "token.created"})
		}, []string{"token.created"}},
		{"bootstrap again", func() error {
			return db.BootstrapToken(ctx, &writ.HumanToken{ID: "t2", Human: "alice", Hash: tokenHash("s2")}, &writ.Event{Type: "token.created"})
		}, nil},
		{"create token", func() error {
			return db.CreateToken(ctx, &writ.HumanToken{ID: "t3", Human: "bob", Hash: tokenHash("s3")}, &writ.Event{Type: "token.created"})
		}, []string{"token.created"}},
		{"prune", func() error {
			_, err := db.PruneTriggers(ctx, 0)
			return err
		}, nil},
	}
	for _, tt := range tests {
		before := lastPos(t, db)
		err := tt.op()
		if got := eventTypes(eventsAfter(t, db, before)); !cmp.Equal(got, tt.want) {
			t.Errorf("%s (error %v) wrote events %v; want %v", tt.name, err, got, tt.want)
		}
	}
	if got, _ := db.GetRun(ctx, old.ID); got.State != writ.RunExpired {
		t.Errorf("old run is %s; want expired", got.State)
	}
}

func testEventsPaging(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	var want []string
	for range 30 {
		r, trig, evs := testRun(time.Now())
		if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			want = append(want, ev.ID)
		}
	}
	var got []string
	var pos int64
	for {
		page, err := db.Events(ctx, pos, 7)
		if err != nil {
			t.Fatalf("Events(%d, 7) = %v", pos, err)
		}
		if len(page) > 7 {
			t.Fatalf("Events(%d, 7) returned %d events", pos, len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.Pos <= pos {
				t.Fatalf("Events(%d) returned position %d", pos, e.Pos)
			}
			pos = e.Pos
			got = append(got, e.ID)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events in commit order mismatch (-want +got):\n%s", diff)
	}
}

// testEventsOfTypes reads back the events of some types, in commit
// order, as they were appended.
func testEventsOfTypes(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	var want []string
	for i := range 6 {
		ev := &writ.Event{Type: []string{"git.ref.intent", "other", "git.pushed"}[i%3], Actor: writ.ActorSystem,
			Details: map[string]any{"repo": "acme/api", "i": i}}
		if err := db.AppendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != "other" {
			want = append(want, ev.ID)
		}
	}
	var got []string
	err := db.EventsOfTypes(ctx, []string{"git.pushed", "git.ref.intent"}, func(ev *writ.Event) error {
		if ev.Details["repo"] != "acme/api" || ev.Time.IsZero() {
			t.Errorf("event read back: %+v", ev)
		}
		got = append(got, ev.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events of types (-want +got):\n%s", diff)
	}
}

// holdWriter blocks the writer until the returned function is called, so
// the requests sent meanwhile queue up and commit as one batch.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	hold, held := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.write(context.Background(), func(*wtx) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held
	return func() {
		close(hold)
		if err := <-done; err != nil {
			t.Errorf("holding write = %v", err)
		}
	}
}

// waitQueued waits until n requests are queued for the writer.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(db.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued after 30s; want %d", len(db.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// testBatchIsolation sends 50 CreateRun requests that commit in one batch.
// 15 trigger ids are used twice, and 5 runs name a parent that does not
// exist, which they find out after recording their trigger id. Exactly the
// first use of each trigger id by a valid run succeeds (the failed runs'
// trigger records are rolled back, even for a later request in the same
// batch), and the outbox holds exactly the events of the runs that
// succeeded, in order.
func testBatchIsolation(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	const n = 50
	type req struct {
		run  *writ.Run
		trig writ.TriggerRecord
		evs  []*writ.Event
		want string // error code, "" for success
	}
	badParent := map[int]bool{0: true, 1: true, 20: true, 21: true, 22: true}
	reqs := make([]*req, n)
	trigs := make(map[int]writ.TriggerRecord)
	for i := range n {
		r, trig, evs := testRun(time.Now())
		if prev, ok := trigs[i%35]; ok {
			trig = prev
			r.TriggerID, r.TriggerDigest = trig.ID, trig.Digest
			evs = startEvents(trig)
		}
		trigs[i%35] = trig
		if badParent[i] {
			r.Parent = writ.RunID(writ.NewULID(time.Now(), nil))
		}
		reqs[i] = &req{run: r, trig: trig, evs: evs}
	}
	// What should happen, in queue order.
	used := make(map[string]bool)
	succeed := 0
	for _, rq := range reqs {
		switch {
		case used[rq.trig.ID]:
			rq.want = "replay"
		case rq.run.Parent != "":
			rq.want = "run_not_found"
		default:
			used[rq.trig.ID] = true
			succeed++
		}
	}
	if succeed != 32 {
		t.Fatalf("test set-up: %d requests should succeed; want 32", succeed)
	}

	// Hold the writer so the requests queue, in an order the test fixes,
	// and commit as one batch.
	release := holdWriter(t, db)
	batches := db.nBatches.Load()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, rq := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.CreateRun(ctx, rq.run, rq.trig, rq.evs...)
		}()
		waitQueued(t, db, i+1)
	}
	release()
	wg.Wait()
	if got := db.nBatches.Load() - batches; got != 1 {
		t.Errorf("the requests took %d batches; want 1", got)
	}

	var wantEvents []string // the successful runs' events, in queue order
	kinds := map[string]writ.Kind{"replay": writ.KindConflict, "run_not_found": writ.KindNotFound}
	for i, rq := range reqs {
		if rq.want != "" {
			if errs[i] == nil {
				t.Errorf("request %d: CreateRun = nil; want %s", i, rq.want)
				continue
			}
			wantError(t, errs[i], kinds[rq.want], rq.want)
			if _, err := db.GetRun(ctx, rq.run.ID); writ.ErrorCode(err) != "run_not_found" {
				t.Errorf("request %d: refused run is stored (GetRun = %v)", i, err)
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("request %d: CreateRun = %v; want nil", i, errs[i])
			continue
		}
		if _, err := db.GetRun(ctx, rq.run.ID); err != nil {
			t.Errorf("request %d: GetRun = %v", i, err)
		}
		for _, ev := range rq.evs {
			wantEvents = append(wantEvents, ev.ID)
		}
	}
	if n := runCount(t, db); n != succeed {
		t.Errorf("runs = %d; want %d", n, succeed)
	}
	var gotEvents []string
	for _, e := range allEvents(t, db) {
		gotEvents = append(gotEvents, e.ID)
	}
	if diff := cmp.Diff(wantEvents, gotEvents); diff != "" {
		t.Errorf("outbox mismatch (-want +got):\n%s", diff)
	}
	// Runs 20 to 22 recorded their trigger ids before failing; the rollback
	// took the records back, so the ids are free.
	for _, i := range []int{20, 21, 22} {
		rq := reqs[i]
		rq.run.Parent = ""
		if err := db.CreateRun(ctx, rq.run, rq.trig, startEvents(rq.trig)...); err != nil {
			t.Errorf("CreateRun with the rolled-back trigger id of request %d = %v; want nil", i, err)
		}
	}
}

// testBatchRollsBackFailedRequest puts requests that write and then fail,
// or panic, between successful ones in one batch.
func testBatchRollsBackFailedRequest(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	insert := func(id string, fail, panics bool) func(tx *wtx) error {
		return func(tx *wtx) error {
			if err := tx.appendEvent(&writ.Event{ID: id, Type: "test"}); err != nil {
				return err
			}
			if panics {
				panic("boom")
			}
			if fail {
				return fmt.Errorf("request %s fails", id)
			}
			return nil
		}
	}
	ids := []string{"e1", "e2", "e3", "e4", "e5", "e6"}
	fns := []func(*wtx) error{
		insert("e1", false, false),
		insert("e2", true, false),
		insert("e3", false, false),
		insert("e4", false, true),
		insert("e5", false, false),
		insert("e1", false, false), // duplicate id: fails on insert
	}
	release := holdWriter(t, db)
	batches := db.nBatches.Load()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.write(ctx, fn)
		}()
		waitQueued(t, db, i+1)
	}
	release()
	wg.Wait()
	if got := db.nBatches.Load() - batches; got != 1 {
		t.Errorf("the requests took %d batches; want 1", got)
	}
	for i, err := range errs {
		wantFail := i == 1 || i == 3 || i == 5
		if (err != nil) != wantFail {
			t.Errorf("request %s: error %v; want failure %v", ids[i], err, wantFail)
		}
	}
	if got := strings.Join(eventTypesIDs(allEvents(t, db)), ","); got != "e1,e3,e5" {
		t.Errorf("outbox = %s; want e1,e3,e5", got)
	}
}

func eventTypesIDs(evs []StoredEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// testCancelledRequest checks that a request whose context ends while it
// waits in the queue is never run, and one already done is refused.
func testCancelledRequest(t *testing.T, open func(t *testing.T) *DB) {
	db := open(t)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	r, trig, evs := testRun(time.Now())
	if err := db.CreateRun(done, r, trig, evs...); err != context.Canceled {
		t.Errorf("CreateRun(done ctx) = %v; want context.Canceled", err)
	}

	release := holdWriter(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Bool
	errc := make(chan error, 1)
	go func() {
		errc <- db.write(ctx, func(*wtx) error { ran.Store(true); return nil })
	}()
	waitQueued(t, db, 1)
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("write cancelled while queued = %v; want context.Canceled", err)
	}
	release()
	if err := db.Ping(context.Background()); err != nil { // a batch after the cancelled one
		t.Fatal(err)
	}
	if ran.Load() {
		t.Errorf("a request cancelled while queued ran")
	}
	if n := runCount(t, db); n != 0 {
		t.Errorf("runs = %d; want 0", n)
	}
}

func testExpireRuns(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	now := time.Now()
	deadline := func(d time.Duration) func(*writ.Run) {
		return func(r *writ.Run) { r.Deadline = now.Add(d); r.CreatedAt = now.Add(-time.Hour) }
	}
	early := createRun(t, db, now, deadline(-30*time.Minute))
	suspended := createRun(t, db, now, deadline(-20*time.Minute))
	if _, err := db.TransitionRun(ctx, suspended.ID, writ.RunSuspended, "", &writ.Event{}); err != nil {
		t.Fatal(err)
	}
	atNow := createRun(t, db, now, deadline(0))
	future := createRun(t, db, now, deadline(time.Minute))
	ended := createRun(t, db, now, deadline(-time.Hour))
	if _, err := db.TransitionRun(ctx, ended.ID, writ.RunEnded, "done", &writ.Event{}); err != nil {
		t.Fatal(err)
	}

	before := lastPos(t, db)
	got, err := db.ExpireRuns(ctx, now, 1)
	if err != nil {
		t.Fatalf("ExpireRuns(limit 1) = %v", err)
	}
	if len(got) != 1 || got[0].ID != early.ID {
		t.Fatalf("ExpireRuns(limit 1) = %v; want the earliest deadline %s", ids(got), early.ID)
	}
	got2, err := db.ExpireRuns(ctx, now, 0)
	if err != nil {
		t.Fatalf("ExpireRuns() = %v", err)
	}
	if want := []writ.RunID{suspended.ID, atNow.ID}; !cmp.Equal(ids(got2), want) {
		t.Fatalf("ExpireRuns() = %v; want %v", ids(got2), want)
	}
	stored := eventsAfter(t, db, before)
	if len(stored) != 3 {
		t.Fatalf("events = %v; want 3 run.expired", eventTypes(stored))
	}
	for i, r := range append(got, got2...) {
		if r.State != writ.RunExpired || r.EndReason != "deadline" || r.EndedAt.IsZero() {
			t.Errorf("expired run %s: state %s reason %q ended %v", r.ID, r.State, r.EndReason, r.EndedAt)
		}
		fromDB, err := db.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, fromDB); diff != "" {
			t.Errorf("stored expired run mismatch (-returned +stored):\n%s", diff)
		}
		want := &writ.Event{ID: stored[i].ID, Time: r.EndedAt, Type: writ.EventRunExpired, Run: r.ID, Actor: writ.ActorSystem,
			Details: map[string]any{"deadline": r.Deadline.Format(time.RFC3339Nano)}}
		checkStored(t, stored[i], want)
	}
	for _, r := range []*writ.Run{future, ended} {
		if got, _ := db.GetRun(ctx, r.ID); got.State == writ.RunExpired {
			t.Errorf("run %s expired; want it left alone", r.ID)
		}
	}
	if got, err := db.ExpireRuns(ctx, now, 0); err != nil || len(got) != 0 {
		t.Errorf("ExpireRuns() again = %v, %v; want none", ids(got), err)
	}
}

func ids(runs []*writ.Run) []writ.RunID {
	var out []writ.RunID
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

func testNextDeadline(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	check := func(wantOK bool, want time.Time) {
		t.Helper()
		got, ok, err := db.NextDeadline(ctx)
		if err != nil || ok != wantOK || !got.Equal(want) {
			t.Errorf("NextDeadline() = %v, %v, %v; want %v, %v, nil", got, ok, err, want, wantOK)
		}
	}
	check(false, time.Time{})
	now := time.Now()
	a := createRun(t, db, now, func(r *writ.Run) { r.Deadline = now.Add(time.Hour) })
	b := createRun(t, db, now, func(r *writ.Run) { r.Deadline = now.Add(10 * time.Minute) })
	check(true, b.Deadline)
	if _, err := db.TransitionRun(ctx, b.ID, writ.RunSuspended, "", &writ.Event{}); err != nil {
		t.Fatal(err)
	}
	check(true, b.Deadline) // the deadline keeps running while suspended
	if _, err := db.TransitionRun(ctx, b.ID, writ.RunKilled, "", &writ.Event{}); err != nil {
		t.Fatal(err)
	}
	check(true, a.Deadline)
	if _, err := db.ExpireRuns(ctx, now.Add(2*time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	check(false, time.Time{})
}

func testCountRuns(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	want := map[writ.RunState]int{writ.RunActive: 0, writ.RunSuspended: 0, writ.RunEnded: 0, writ.RunKilled: 0, writ.RunExpired: 0}
	check := func() {
		t.Helper()
		got, err := db.CountRuns(ctx)
		if err != nil {
			t.Fatalf("CountRuns() = %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CountRuns() mismatch (-want +got):\n%s", diff)
		}
	}
	check()
	for _, s := range []writ.RunState{writ.RunActive, writ.RunActive, writ.RunSuspended, writ.RunKilled, writ.RunEnded, writ.RunEnded, writ.RunEnded} {
		runIn(t, db, s)
		want[s]++
	}
	check()
}

func testRecordRefusal(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		digest, code string
		want         bool
	}{
		{"sha256:01", "bad_signature", true},
		{"sha256:01", "bad_signature", false},
		{"sha256:01", "expired", true},
		{"sha256:02", "bad_signature", true},
		{"sha256:01", "expired", false},
		{"sha256:02", "bad_signature", false},
	}
	for i, tt := range tests {
		before := lastPos(t, db)
		ev := &writ.Event{Type: writ.EventTriggerRefused, Actor: writ.SignerActor("mallory"), Subject: tt.digest,
			Details: map[string]any{"code": tt.code}}
		got, err := db.RecordRefusal(ctx, tt.digest, tt.code, exp, ev)
		if err != nil || got != tt.want {
			t.Fatalf("%d: RecordRefusal(%s, %s) = %v, %v; want %v, nil", i, tt.digest, tt.code, got, err, tt.want)
		}
		stored := eventsAfter(t, db, before)
		if !tt.want {
			if len(stored) != 0 || ev.ID != "" || !ev.Time.IsZero() {
				t.Errorf("%d: a repeated refusal wrote %v or changed the event (%q, %v)", i, eventTypes(stored), ev.ID, ev.Time)
			}
			continue
		}
		if len(stored) != 1 {
			t.Fatalf("%d: events = %v; want one trigger.refused", i, eventTypes(stored))
		}
		checkStored(t, stored[0], ev)
	}
	if _, err := db.RecordRefusal(ctx, "sha256:03", "x", time.Time{}, &writ.Event{Type: writ.EventTriggerRefused}); writ.ErrorCode(err) != "invalid_time" {
		t.Errorf("RecordRefusal without expiry = %v; want invalid_time", err)
	}
	if _, err := db.RecordRefusal(ctx, "sha256:03", "x", exp, nil); err == nil {
		t.Errorf("RecordRefusal without event = nil; want an error")
	}
}

func testPruneTriggers(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	now := time.Now()
	r, trig, evs := testRun(now)
	trig.ExpiresAt = now.Add(-time.Minute)
	if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
		t.Fatal(err)
	}
	keep, keepTrig, keepEvs := testRun(now)
	if err := db.CreateRun(ctx, keep, keepTrig, keepEvs...); err != nil {
		t.Fatal(err)
	}
	refusal := func(digest string, exp time.Time) bool {
		ok, err := db.RecordRefusal(ctx, digest, "expired", exp, &writ.Event{Type: writ.EventTriggerRefused})
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	refusal("sha256:old", now.Add(-time.Second))
	refusal("sha256:new", now.Add(time.Hour))

	n, err := db.PruneTriggers(ctx, 0)
	if err != nil || n != 2 {
		t.Fatalf("PruneTriggers(0) = %d, %v; want 2, nil", n, err)
	}
	if n, err := db.PruneTriggers(ctx, 0); err != nil || n != 0 {
		t.Errorf("PruneTriggers(0) again = %d, %v; want 0, nil", n, err)
	}
	// What was pruned is forgotten; what was not is still refused.
	if !refusal("sha256:old", now.Add(time.Hour)) {
		t.Errorf("a pruned refusal was not recorded again")
	}
	if refusal("sha256:new", now.Add(time.Hour)) {
		t.Errorf("a kept refusal was recorded again")
	}
	r2, _, _ := testRun(now)
	r2.TriggerID, r2.TriggerDigest = keepTrig.ID, keepTrig.Digest
	wantError(t, db.CreateRun(ctx, r2, keepTrig, startEvents(keepTrig)...), writ.KindConflict, "replay")
	// Pruning never touches runs or events.
	if got, err := db.GetRun(ctx, r.ID); err != nil || got.TriggerID != trig.ID {
		t.Errorf("GetRun(pruned trigger's run) = %v, %v", got, err)
	}
}

func testTokens(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	created := time.Date(2026, 5, 1, 9, 30, 0, 1, time.UTC)
	tests := []struct {
		name string
		tok  *writ.HumanToken
	}{
		{"full", &writ.HumanToken{ID: "tok-1", Human: "alice", Hash: tokenHash("a"), CreatedAt: created, ExpiresAt: created.Add(90 * 24 * time.Hour), CreatedBy: "human:root"}},
		{"no expiry", &writ.HumanToken{ID: "tok-2", Human: "bob", Hash: tokenHash("b"), CreatedAt: created, CreatedBy: "human:alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.CreateToken(ctx, tt.tok, &writ.Event{Type: "token.created", Subject: tt.tok.ID}); err != nil {
				t.Fatalf("CreateToken() = %v", err)
			}
			got, err := db.GetToken(ctx, tt.tok.ID)
			if err != nil {
				t.Fatalf("GetToken() = %v", err)
			}
			if diff := cmp.Diff(tt.tok, got); diff != "" {
				t.Errorf("GetToken() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// CreatedAt defaults to the commit time.
	ev := &writ.Event{Type: "token.created"}
	tok := &writ.HumanToken{ID: "tok-3", Human: "carol", Hash: tokenHash("c")}
	if err := db.CreateToken(ctx, tok, ev); err != nil {
		t.Fatal(err)
	}
	if !tok.CreatedAt.Equal(ev.Time) {
		t.Errorf("token createdAt %v; want the commit time %v", tok.CreatedAt, ev.Time)
	}

	before := lastPos(t, db)
	err := db.CreateToken(ctx, &writ.HumanToken{ID: "tok-1", Human: "eve", Hash: tokenHash("e")}, &writ.Event{Type: "token.created"})
	wantError(t, err, writ.KindConflict, "token_exists")
	if err := db.CreateToken(ctx, &writ.HumanToken{ID: "tok-9", Human: "eve", Hash: []byte("the secret itself")}, &writ.Event{Type: "token.created"}); err == nil {
		t.Errorf("CreateToken with a non-hash = nil; want an error")
	}
	if err := db.CreateToken(ctx, &writ.HumanToken{ID: "tok-9", Human: "eve", Hash: tokenHash("e")}, nil); err == nil {
		t.Errorf("CreateToken without event = nil; want an error")
	}
	if got := eventsAfter(t, db, before); len(got) != 0 {
		t.Errorf("refused CreateToken wrote events %v", eventTypes(got))
	}
	_, err = db.GetToken(ctx, "tok-9")
	wantError(t, err, writ.KindNotFound, "token_not_found")
}

func testBootstrap(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	// Of concurrent bootstraps exactly one wins.
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.BootstrapToken(ctx, &writ.HumanToken{ID: fmt.Sprintf("boot-%d", i), Human: "root", Hash: tokenHash(fmt.Sprint(i))},
				&writ.Event{Type: "token.created", Actor: "bootstrap"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantError(t, err, writ.KindConflict, "already_bootstrapped")
	}
	if won != 1 {
		t.Errorf("%d bootstraps succeeded; want 1", won)
	}
	if got := allEvents(t, db); len(got) != 1 {
		t.Errorf("events = %v; want one", eventTypes(got))
	}
	// After the first token, CreateToken still works.
	if err := db.CreateToken(ctx, &writ.HumanToken{ID: "next", Human: "alice", Hash: tokenHash("n")}, &writ.Event{Type: "token.created"}); err != nil {
		t.Errorf("CreateToken after bootstrap = %v", err)
	}
}

func testReopen(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	r := createRun(t, db, time.Now())
	ended := runIn(t, db, writ.RunEnded)
	tok := &writ.HumanToken{ID: "tok", Human: "alice", Hash: tokenHash("x"), CreatedAt: time.Now(), CreatedBy: "human:root"}
	if err := db.BootstrapToken(ctx, tok, &writ.Event{Type: "token.created"}); err != nil {
		t.Fatal(err)
	}
	events := allEvents(t, db)

	db = reopen(t, db)
	for _, want := range []*writ.Run{r, ended} {
		got, err := db.GetRun(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRun after reopen = %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("run after reopen mismatch (-want +got):\n%s", diff)
		}
	}
	if got, err := db.GetToken(ctx, tok.ID); err != nil || !cmp.Equal(tok, got) {
		t.Errorf("GetToken after reopen = %+v, %v; want %+v", got, err, tok)
	}
	if diff := cmp.Diff(events, allEvents(t, db)); diff != "" {
		t.Errorf("events after reopen mismatch (-want +got):\n%s", diff)
	}
	// The replay table survived too.
	r2, _, _ := testRun(time.Now())
	r2.TriggerID, r2.TriggerDigest = r.TriggerID, r.TriggerDigest
	trig := writ.TriggerRecord{ID: r.TriggerID, Digest: r.TriggerDigest, ExpiresAt: time.Now().Add(time.Hour)}
	wantError(t, db.CreateRun(ctx, r2, trig, startEvents(trig)...), writ.KindConflict, "replay")

	// Migrations are recorded once and not applied again.
	db = reopen(t, db)
	var versions []int
	err := db.write(ctx, func(tx *wtx) error {
		rows, err := tx.query("SELECT version FROM schema_migrations ORDER BY version")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			versions = append(versions, v)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := db.d.loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, m := range ms {
		want = append(want, m.version)
	}
	if !cmp.Equal(versions, want) {
		t.Errorf("schema_migrations = %v; want %v", versions, want)
	}
	if n := runCount(t, db); n != 2 {
		t.Errorf("runs after two reopens = %d; want 2", n)
	}
}

func testClosed(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
	r, trig, evs := testRun(time.Now())
	if err := db.CreateRun(ctx, r, trig, evs...); err != ErrClosed {
		t.Errorf("CreateRun after Close = %v; want ErrClosed", err)
	}
	if _, err := db.GetRun(ctx, r.ID); err != ErrClosed {
		t.Errorf("GetRun after Close = %v; want ErrClosed", err)
	}
	if err := db.Ping(ctx); err != ErrClosed {
		t.Errorf("Ping after Close = %v; want ErrClosed", err)
	}
}
