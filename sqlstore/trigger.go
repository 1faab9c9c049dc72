package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
)

// RecordRefusal records that a trigger with the given digest was refused
// for reason code, with ev (a trigger.refused event) as its audit record,
// unless the same (digest, code) was already recorded: then nothing is
// written and recorded is false. So sending a refused trigger again and
// again cannot flood the audit log. The record is kept until expiresAt
// (the trigger's own expiry, or a bound the caller picks for a trigger
// whose expiry cannot be read) and then may be pruned by
// [DB.PruneTriggers].
//
// ev's ID, Time are filled in as described in the package documentation;
// when recorded is false, ev is left as it was.
func (db *DB) RecordRefusal(ctx context.Context, digest, code string, expiresAt time.Time, ev *writ.Event) (recorded bool, err error) {
	if digest == "" || code == "" {
		return false, errors.New("sqlstore: RecordRefusal: empty digest or code")
	}
	if err := checkEvent("RecordRefusal", ev); err != nil {
		return false, err
	}
	expires, err := encTime("refusal expiry", expiresAt)
	if err != nil {
		return false, err
	}
	var ok bool
	err = db.write(ctx, func(tx *wtx) error {
		ok = false
		id := ev.ID
		if id == "" {
			id = writ.NewULID(tx.now, nil)
		}
		res, err := tx.exec(tx.db.d.insertIgnore("trigger_refusals", "digest, code", "digest", "code", "event", "expires_at", "created_at"),
			digest, code, id, expires, tx.now.UnixNano())
		if err != nil {
			return fmt.Errorf("sqlstore: record refusal: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlstore: record refusal: %w", err)
		}
		if n == 0 {
			return nil // already audited
		}
		ev.ID = id
		if err := tx.appendEvent(ev); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return ok, nil
}

// PruneTriggers forgets the replay records of triggers, and the refusal
// records, that expired more than keep before the database's clock (its
// own clock on PostgreSQL, so every replica prunes alike; the store's
// clock on SQLite), and returns how many it deleted. In the same
// transaction it raises the trigger replay horizon to that time (never
// lowers it): [DB.CreateRun] refuses every trigger whose expiry is at or
// before the horizon, so a trigger whose record is gone stays refused
// even after the clock steps back or its record is lost. (A restored
// backup brings back its own, older horizon: it cannot know the triggers
// used since; docs/design.md §5.)
// Callers pass a keep that covers the leeway the trigger verifier allows.
func (db *DB) PruneTriggers(ctx context.Context, keep time.Duration) (int64, error) {
	if err := checkPrune("PruneTriggers", keep); err != nil {
		return 0, err
	}
	var total int64
	err := db.write(ctx, func(tx *wtx) error {
		var err error
		total, err = tx.prune(HorizonTrigger, keep, "trigger_replay", "trigger_refusals")
		return err
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}
