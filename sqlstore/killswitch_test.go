package sqlstore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

func TestKillSwitches(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(t *testing.T) *DB) {
		t.Run("Heartbeat", func(t *testing.T) { t.Parallel(); testHeartbeat(t, open) })
		t.Run("DisableAgent", func(t *testing.T) { t.Parallel(); testDisableAgent(t, open) })
		t.Run("Freeze", func(t *testing.T) { t.Parallel(); testFreeze(t, open) })
	})
}

func testHeartbeat(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	quiet := createRun(t, db, time.Now())   // never heartbeats: never killed for it
	beating := createRun(t, db, time.Now()) // heartbeats, then goes silent
	if _, ok, err := db.LastHeartbeat(ctx, beating.ID); err != nil || ok {
		t.Fatalf("LastHeartbeat before any = %v, %v; want none", ok, err)
	}
	at, err := db.Heartbeat(ctx, beating.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := db.LastHeartbeat(ctx, beating.ID); err != nil || !ok || !got.Equal(at) {
		t.Fatalf("LastHeartbeat = %v, %v, %v; want %v", got, ok, err, at)
	}
	before := len(allEvents(t, db))
	// Heartbeats write no event.
	if _, err := db.Heartbeat(ctx, beating.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(allEvents(t, db)); n != before {
		t.Errorf("events after a heartbeat = %d; want %d (no event per heartbeat)", n, before)
	}
	// A cutoff before the heartbeat kills nothing.
	if killed, err := db.KillSilentRuns(ctx, at.Add(-time.Minute), 0); err != nil || len(killed) != 0 {
		t.Fatalf("KillSilentRuns(before) = %v, %v; want none", ids(killed), err)
	}
	killed, err := db.KillSilentRuns(ctx, time.Now().Add(time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(killed); !slices.Equal(got, []writ.RunID{beating.ID}) {
		t.Fatalf("KillSilentRuns = %v; want [%s] (not the run that never beat)", got, beating.ID)
	}
	r, _ := db.GetRun(ctx, beating.ID)
	if r.State != writ.RunKilled || r.EndReason != "missed_heartbeats" {
		t.Errorf("silent run = %s (%s); want killed (missed_heartbeats)", r.State, r.EndReason)
	}
	if r, _ := db.GetRun(ctx, quiet.ID); r.State != writ.RunActive {
		t.Errorf("run without heartbeats = %s; want active", r.State)
	}
	evs := allEvents(t, db)
	last := evs[len(evs)-1]
	if last.Type != writ.EventRunKilled || !strings.Contains(string(last.Body), "missed_heartbeats") {
		t.Errorf("last event = %s %s; want run.killed missed_heartbeats", last.Type, last.Body)
	}
	_, err = db.Heartbeat(ctx, beating.ID)
	wantError(t, err, writ.KindConflict, "run_final")
}

func testDisableAgent(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	mine := createRun(t, db, time.Now())
	other := createRun(t, db, time.Now(), func(r *writ.Run) { r.Agent = "other-bot" })
	killed, err := db.DisableAgent(ctx, "claude", "human:alice", "runaway")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(killed, []writ.RunID{mine.ID}) {
		t.Fatalf("DisableAgent killed %v; want [%s]", killed, mine.ID)
	}
	if r, _ := db.GetRun(ctx, other.ID); r.State != writ.RunActive {
		t.Errorf("other agent's run = %s; want active", r.State)
	}
	r, trig, evs := testRun(time.Now())
	wantError(t, db.CreateRun(ctx, r, trig, evs...), writ.KindDenied, "agent_disabled")
	// Durable: a reopened store still refuses, and the trigger was not
	// consumed by the refusal.
	db = reopen(t, db)
	wantError(t, db.CreateRun(ctx, r, trig, evs...), writ.KindDenied, "agent_disabled")
	st, err := db.KillSwitches(ctx)
	if err != nil || !slices.Equal(st.DisabledAgents, []string{"claude"}) {
		t.Fatalf("KillSwitches = %+v, %v", st, err)
	}
	if was, err := db.EnableAgent(ctx, "claude", "human:alice"); err != nil || !was {
		t.Fatalf("EnableAgent = %v, %v", was, err)
	}
	if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
		t.Fatalf("CreateRun after enable = %v", err)
	}
}

func testFreeze(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	a := createRun(t, db, time.Now())
	ended := createRun(t, db, time.Now())
	if _, err := db.TransitionRun(ctx, ended.ID, writ.RunEnded, "done", &writ.Event{Actor: "x"}); err != nil {
		t.Fatal(err)
	}
	susp, err := db.Freeze(ctx, "human:alice", "incident")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(susp, []writ.RunID{a.ID}) {
		t.Fatalf("Freeze suspended %v; want [%s]", susp, a.ID)
	}
	r, trig, evs := testRun(time.Now())
	wantError(t, db.CreateRun(ctx, r, trig, evs...), writ.KindDenied, "frozen")
	_, err = db.TransitionRun(ctx, a.ID, writ.RunActive, "resume", &writ.Event{Actor: "x"})
	wantError(t, err, writ.KindDenied, "frozen")
	db = reopen(t, db)
	st, err := db.KillSwitches(ctx)
	if err != nil || !st.Frozen || st.FrozenBy != "human:alice" {
		t.Fatalf("KillSwitches after reopen = %+v, %v; want frozen by alice", st, err)
	}
	resumed, was, err := db.Unfreeze(ctx, "human:alice")
	if err != nil || !was || !slices.Equal(resumed, []writ.RunID{a.ID}) {
		t.Fatalf("Unfreeze = %v, %v, %v; want [%s], true", resumed, was, err, a.ID)
	}
	if got, _ := db.GetRun(ctx, a.ID); got.State != writ.RunActive {
		t.Errorf("run after unfreeze = %s; want active", got.State)
	}
	if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
		t.Fatalf("CreateRun after unfreeze = %v", err)
	}
	if _, was, err := db.Unfreeze(ctx, "human:alice"); err != nil || was {
		t.Fatalf("second Unfreeze = %v, %v; want not frozen", was, err)
	}
}
