package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// TestRaiseHorizon: what a rollback or a restore does to a store that
// forgot trigger uses. UsedTriggerHorizon is the latest expiry of a used
// trigger; raising the horizon to it refuses that trigger even once its
// row is gone, and an unused trigger expiring later still starts a run.
// The horizon never goes down.
func TestRaiseHorizon(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(t *testing.T) *DB) {
		ctx := context.Background()
		db := open(t)
		now := time.Now().UTC().Truncate(time.Second)
		r, trig, evs := triggerRun(now, now.Add(5*time.Minute))
		if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
			t.Fatal(err)
		}
		used, err := db.UsedTriggerHorizon(ctx)
		if err != nil || !used.Equal(now.Add(5*time.Minute)) {
			t.Fatalf("UsedTriggerHorizon = %v, %v; want the used trigger's expiry %v", used, err, now.Add(5*time.Minute))
		}
		if err := db.RaiseHorizon(ctx, HorizonTrigger, used); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, "the used trigger after the raise", reuseTrigger(db, trig), writ.KindConflict, "replay", "replay horizon")
		later, ltrig, levs := triggerRun(now, now.Add(10*time.Minute))
		if err := db.CreateRun(ctx, later, ltrig, levs...); err != nil {
			t.Errorf("a trigger expiring after the horizon: %v; want a run", err)
		}
		if err := db.RaiseHorizon(ctx, HorizonTrigger, now); err != nil {
			t.Fatal(err)
		}
		if h := horizon(t, db, HorizonTrigger); !h.Equal(used) {
			t.Errorf("horizon after raising it to an earlier time = %v; want it kept at %v", h, used)
		}
		if err := db.RaiseHorizon(ctx, "nonsense", now); err == nil {
			t.Error("RaiseHorizon of an unknown kind succeeded")
		}
	})
}

// TestBackupAndInspect: a backup of a store in use is a sound store file
// with the same log, and InspectFile reads it without opening it as a
// store; a backup never overwrites a file.
func TestBackupAndInspect(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, Config{})
	now := time.Now().UTC().Truncate(time.Second)
	r, trig, evs := triggerRun(now, now.Add(5*time.Minute))
	if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := db.Backup(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, dst); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a backup over an existing file: %v; want a refusal", err)
	}
	f, err := InspectFile(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Problems) > 0 || !f.TriggerHorizon.Equal(now.Add(5*time.Minute)) {
		t.Errorf("InspectFile = %+v; want a sound file whose trigger horizon is %v", f, now.Add(5*time.Minute))
	}
	if p, err := db.QuickCheck(ctx, 10); err != nil || len(p) > 0 {
		t.Errorf("QuickCheck of a sound store = %v, %v", p, err)
	}
	if _, err := InspectFile(ctx, filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Error("InspectFile of a missing file succeeded")
	}
}
