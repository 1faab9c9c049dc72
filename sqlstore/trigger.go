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

// PruneTriggers deletes the replay records of triggers and the refusal
// records that expire before before, and returns how many it deleted.
// Callers pass a time far enough in the past to cover clock skew allowed
// by the trigger verifier: a trigger whose record is gone must be one the
// verifier refuses as expired.
func (db *DB) PruneTriggers(ctx context.Context, before time.Time) (int64, error) {
	cutoff, err := encTime("before", before)
	if err != nil {
		return 0, err
	}
	var total int64
	err = db.write(ctx, func(tx *wtx) error {
		total = 0
		for _, table := range []string{"trigger_replay", "trigger_refusals"} {
			res, err := tx.exec("DELETE FROM "+table+" WHERE expires_at < ?", cutoff)
			if err != nil {
				return fmt.Errorf("sqlstore: prune %s: %w", table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("sqlstore: prune %s: %w", table, err)
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}
