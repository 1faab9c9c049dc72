package sqlstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// triggerRun is testRun with the trigger expiring at expires.
func triggerRun(created, expires time.Time) (*writ.Run, writ.TriggerRecord, []*writ.Event) {
	r, trig, evs := testRun(created)
	trig.ExpiresAt = expires
	return r, trig, evs
}

// reuseTrigger tries to start another run with trig.
func reuseTrigger(db *DB, trig writ.TriggerRecord) error {
	r, _, _ := testRun(time.Now())
	r.TriggerID, r.TriggerDigest = trig.ID, trig.Digest
	return db.CreateRun(context.Background(), r, trig, startEvents(trig)...)
}

// wantRefused checks that err is kind/code and that its message says why.
func wantRefused(t *testing.T, what string, err error, kind writ.Kind, code, why string) {
	t.Helper()
	if writ.ErrorKind(err) != kind || writ.ErrorCode(err) != code || !strings.Contains(err.Error(), why) {
		t.Errorf("%s = %v; want %s/%s saying %q", what, err, kind, code, why)
	}
}

func horizon(t *testing.T, db *DB, kind string) time.Time {
	t.Helper()
	h, err := db.ReplayHorizon(context.Background(), kind)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkNear checks that h is within a minute of want (the database's
// clock and the test's are the same machine's; the margin only absorbs
// the time the test takes).
func checkNear(t *testing.T, what string, h, want time.Time) {
	t.Helper()
	if d := h.Sub(want); d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %v; want about %v", what, h, want)
	}
}

// testTriggerHorizon: a prune raises the trigger horizon by the
// database's clock, never lowers it, and every trigger whose expiry is at
// or before it is refused, its record pruned or not.
func testTriggerHorizon(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	for _, kind := range []string{HorizonTrigger, HorizonDPoP} {
		if h := horizon(t, db, kind); !h.IsZero() {
			t.Errorf("%s horizon of a new store = %v; want zero", kind, h)
		}
	}
	if _, err := db.ReplayHorizon(ctx, "nonsense"); err == nil {
		t.Errorf("ReplayHorizon(nonsense) = nil error")
	}
	now := time.Now()
	old, oldTrig, oldEvs := triggerRun(now, now.Add(-10*time.Minute))
	fresh, freshTrig, freshEvs := triggerRun(now, now.Add(time.Hour))
	for _, c := range []struct {
		r    *writ.Run
		trig writ.TriggerRecord
		evs  []*writ.Event
	}{{old, oldTrig, oldEvs}, {fresh, freshTrig, freshEvs}} {
		if err := db.CreateRun(ctx, c.r, c.trig, c.evs...); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.PruneTriggers(ctx, 5*time.Minute); err != nil || n != 1 {
		t.Fatalf("PruneTriggers(5m) = %d, %v; want 1 (the trigger that expired 10 minutes ago)", n, err)
	}
	h := horizon(t, db, HorizonTrigger)
	checkNear(t, "trigger horizon", h, now.Add(-5*time.Minute))
	if d := horizon(t, db, HorizonDPoP); !d.IsZero() {
		t.Errorf("dpop horizon after a trigger prune = %v; want zero (horizons are per kind)", d)
	}

	// The pruned trigger's record is gone; the horizon refuses it.
	var rows int
	if err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM trigger_replay WHERE id = ?"), oldTrig.ID).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("pruned trigger's rows = %d, %v; want 0", rows, err)
	}
	wantRefused(t, "reuse of a pruned trigger", reuseTrigger(db, oldTrig), writ.KindConflict, "replay", "replay horizon")
	// So is a trigger never used but as old.
	_, never, _ := triggerRun(now, now.Add(-6*time.Minute))
	wantRefused(t, "a new trigger expired before the horizon", reuseTrigger(db, never), writ.KindConflict, "replay", "replay horizon")
	// A kept trigger is refused by its record; a new one with time left starts.
	wantRefused(t, "reuse of a kept trigger", reuseTrigger(db, freshTrig), writ.KindConflict, "replay", "already used")
	_, newTrig, _ := triggerRun(now, now.Add(time.Hour))
	if err := reuseTrigger(db, newTrig); err != nil {
		t.Errorf("a new trigger with time left = %v", err)
	}

	// Monotonic: a cutoff before the horizon (a clock stepped back, a
	// replica's longer keep) does not lower it, nor may a cutoff be after
	// the database's clock.
	if n, err := db.PruneTriggers(ctx, 2*time.Hour); err != nil || n != 0 {
		t.Errorf("PruneTriggers(2h) = %d, %v; want 0, nil", n, err)
	}
	if got := horizon(t, db, HorizonTrigger); !got.Equal(h) {
		t.Errorf("trigger horizon after an earlier cutoff = %v; want it kept at %v", got, h)
	}
	if _, err := db.PruneTriggers(ctx, -time.Second); err == nil {
		t.Errorf("PruneTriggers(-1s) = nil error")
	}
	if got := horizon(t, db, HorizonTrigger); !got.Equal(h) {
		t.Errorf("trigger horizon after a refused prune = %v; want %v", got, h)
	}
	if _, err := db.PruneTriggers(ctx, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := horizon(t, db, HorizonTrigger); got.Before(h) {
		t.Errorf("trigger horizon went back from %v to %v", h, got)
	}
	// Records whose expiry is after the horizon are never pruned.
	wantRefused(t, "reuse of a kept trigger after more prunes", reuseTrigger(db, freshTrig), writ.KindConflict, "replay", "already used")
}

// testProofHorizon is testTriggerHorizon for DPoP proofs.
func testProofHorizon(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	now := time.Now()
	for _, jti := range []string{"old", "new"} {
		exp := now.Add(time.Hour)
		if jti == "old" {
			exp = now.Add(-10 * time.Minute)
		}
		if err := db.UseProof(ctx, "jktA", jti, exp); err != nil {
			t.Fatalf("UseProof(%s) = %v", jti, err)
		}
	}
	if n, err := db.PruneProofs(ctx, 5*time.Minute); err != nil || n != 1 {
		t.Fatalf("PruneProofs(5m) = %d, %v; want 1", n, err)
	}
	h := horizon(t, db, HorizonDPoP)
	checkNear(t, "dpop horizon", h, now.Add(-5*time.Minute))
	if d := horizon(t, db, HorizonTrigger); !d.IsZero() {
		t.Errorf("trigger horizon after a proof prune = %v; want zero (horizons are per kind)", d)
	}
	wantRefused(t, "reuse of a pruned proof", db.UseProof(ctx, "jktA", "old", now.Add(-10*time.Minute)), writ.KindUnauthenticated, "dpop_replay", "replay horizon")
	wantRefused(t, "a new proof expired before the horizon", db.UseProof(ctx, "jktB", "never", now.Add(-6*time.Minute)), writ.KindUnauthenticated, "dpop_replay", "replay horizon")
	wantRefused(t, "reuse of a kept proof", db.UseProof(ctx, "jktA", "new", now.Add(time.Hour)), writ.KindUnauthenticated, "dpop_replay", "already used")
	if err := db.UseProof(ctx, "jktA", "newer", now.Add(time.Hour)); err != nil {
		t.Errorf("a new proof = %v", err)
	}
	if n, err := db.PruneProofs(ctx, 2*time.Hour); err != nil || n != 0 {
		t.Errorf("PruneProofs(2h) = %d, %v; want 0, nil", n, err)
	}
	if got := horizon(t, db, HorizonDPoP); !got.Equal(h) {
		t.Errorf("dpop horizon after an earlier cutoff = %v; want it kept at %v", got, h)
	}
	if _, err := db.PruneProofs(ctx, -time.Second); err == nil {
		t.Errorf("PruneProofs(-1s) = nil error")
	}
	if len(allEvents(t, db)) != 0 {
		t.Errorf("proof prunes wrote events")
	}
}

// testHorizonWithoutRows: with the one-time ids' records lost (a restored
// database, rows deleted by hand) and the horizons kept, ids at or before
// the horizons stay refused.
func testHorizonWithoutRows(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	now := time.Now()
	r, trig, evs := triggerRun(now, now.Add(-10*time.Minute))
	if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
		t.Fatal(err)
	}
	if err := db.UseProof(ctx, "jktA", "p", now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.write(ctx, func(tx *wtx) error {
		for _, q := range []string{"DELETE FROM trigger_replay", "DELETE FROM dpop_proofs"} {
			if _, err := tx.exec(q); err != nil {
				return err
			}
		}
		_, err := tx.exec("UPDATE replay_horizon SET horizon = ?", now.Add(-5*time.Minute).UnixNano())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "reuse of a trigger whose record is lost", reuseTrigger(db, trig), writ.KindConflict, "replay", "replay horizon")
	wantRefused(t, "reuse of a proof whose record is lost", db.UseProof(ctx, "jktA", "p", now.Add(-10*time.Minute)), writ.KindUnauthenticated, "dpop_replay", "replay horizon")
	// At the horizon exactly is refused too.
	_, at, _ := triggerRun(now, now.Add(-5*time.Minute))
	wantRefused(t, "a trigger expiring at the horizon", reuseTrigger(db, at), writ.KindConflict, "replay", "replay horizon")

	// Without the horizon rows (a botched restore) nothing is recorded:
	// the check fails closed.
	if err := db.write(ctx, func(tx *wtx) error {
		_, err := tx.exec("DELETE FROM replay_horizon")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, fresh, _ := triggerRun(now, now.Add(time.Hour))
	if err := reuseTrigger(db, fresh); err == nil || writ.ErrorKind(err) != writ.KindInternal {
		t.Errorf("a trigger with no horizon row = %v; want an internal error", err)
	}
	if err := db.UseProof(ctx, "jktA", "fresh", now.Add(time.Hour)); err == nil || writ.ErrorKind(err) != writ.KindInternal {
		t.Errorf("a proof with no horizon row = %v; want an internal error", err)
	}
}

// TestHorizonClockStep: the store's clock steps forward two hours, a prune
// runs, the clock steps back. On SQLite (one process: the store's clock
// is the database's) the horizon moved with the step and the used trigger
// stays refused although its record is gone. On PostgreSQL the prune
// reads the database server's clock, so a replica whose clock ran ahead
// neither moves the horizon nor deletes a record that is still needed.
func TestHorizonClockStep(t *testing.T) {
	forEachDialectClock(t, func(t *testing.T, db *DB, c *stepClock, pg bool) {
		ctx := context.Background()
		now := c.now()
		r, trig, evs := triggerRun(now, now.Add(5*time.Minute))
		if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
			t.Fatal(err)
		}
		if err := db.UseProof(ctx, "jktA", "p", now.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		c.step(2 * time.Hour)
		if _, err := db.PruneTriggers(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := db.PruneProofs(ctx, 0); err != nil {
			t.Fatal(err)
		}
		c.step(0)
		if pg {
			checkNear(t, "trigger horizon on PostgreSQL", horizon(t, db, HorizonTrigger), time.Now().Add(-2*time.Minute))
			checkNear(t, "dpop horizon on PostgreSQL", horizon(t, db, HorizonDPoP), time.Now())
			wantRefused(t, "reuse of the trigger", reuseTrigger(db, trig), writ.KindConflict, "replay", "already used")
			wantRefused(t, "reuse of the proof", db.UseProof(ctx, "jktA", "p", now.Add(3*time.Minute)), writ.KindUnauthenticated, "dpop_replay", "already used")
			return
		}
		checkNear(t, "trigger horizon on SQLite", horizon(t, db, HorizonTrigger), now.Add(2*time.Hour-2*time.Minute))
		checkNear(t, "dpop horizon on SQLite", horizon(t, db, HorizonDPoP), now.Add(2*time.Hour))
		wantRefused(t, "reuse of the trigger after the clock stepped back", reuseTrigger(db, trig), writ.KindConflict, "replay", "replay horizon")
		wantRefused(t, "reuse of the proof after the clock stepped back", db.UseProof(ctx, "jktA", "p", now.Add(3*time.Minute)), writ.KindUnauthenticated, "dpop_replay", "replay horizon")
	})
}
