package sqlstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// stepClock is the wall clock moved by an offset a test sets.
type stepClock struct{ off atomic.Int64 }

func (c *stepClock) now() time.Time       { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *stepClock) step(d time.Duration) { c.off.Store(int64(d)) }

// forEachDialectClock runs suite on each dialect with a store whose clock
// the suite steps.
func forEachDialectClock(t *testing.T, suite func(t *testing.T, db *DB, c *stepClock, pg bool)) {
	t.Run("sqlite", func(t *testing.T) {
		c := &stepClock{}
		suite(t, openSQLite(t, Config{Now: c.now}), c, false)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresTestDSN(t)
		c := &stepClock{}
		suite(t, openPostgres(t, dsn, Config{Now: c.now}), c, true)
	})
}

// TestDeadlinesUseTheClock: after the clock stepped forward (a batch
// committed then) and back, commit times stay clamped ahead; deadlines are
// still decided against the clock, as package runs decides them, so a run
// with time left resumes, delegates and is resumed by an unfreeze.
func TestDeadlinesUseTheClock(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, db *DB, c *stepClock, pg bool) {
		ctx := context.Background()
		c.step(2 * time.Hour)
		if err := db.AppendEvent(ctx, &writ.Event{Type: "test.clock", Actor: writ.ActorSystem}); err != nil {
			t.Fatal(err) // a batch commits at now+2h: later commit times stay there
		}
		c.step(0)
		now := c.now()
		parent := createRun(t, db, now) // deadline now+30m
		if got, _ := db.GetRun(ctx, parent.ID); !got.LiveAt(c.now()) {
			t.Fatalf("the new run is not live by the clock: %+v", got)
		}
		if _, err := db.TransitionRun(ctx, parent.ID, writ.RunSuspended, "", &writ.Event{}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.TransitionRun(ctx, parent.ID, writ.RunActive, "", &writ.Event{}); err != nil {
			t.Errorf("resume of a run with 30 minutes left = %v; want nil", err)
		}
		child, _, _ := testRun(now)
		child.Parent, child.Depth, child.Deadline = parent.ID, 1, now.Add(10*time.Minute)
		child.TriggerID, child.TriggerDigest = "", ""
		if err := db.CreateChildRun(ctx, child, &writ.Event{Type: writ.EventRunStarted, Actor: writ.ActorSystem}); err != nil {
			t.Errorf("delegation by a run with 30 minutes left = %v; want nil", err)
		}
		if _, err := db.Freeze(ctx, "human:alice", "test"); err != nil {
			t.Fatal(err)
		}
		resumed, _, err := db.Unfreeze(ctx, "human:alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(resumed) == 0 {
			t.Errorf("unfreeze resumed nothing; want the runs with time left")
		}
	})
}
