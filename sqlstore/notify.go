package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/writ-dev/writ"
)

// Webhook notification cursors. A cursor is the outbox position up to
// which one webhook has handled events; the notifier reads [DB.Events]
// after it. Moving a cursor is bookkeeping, not a state change the audit
// needs (the events it walks over are already in the log), so, like
// [DB.UseProof], these writes record no event.

// NotifyCursor returns the position of the cursor name, or 0 when there is
// none.
func (db *DB) NotifyCursor(ctx context.Context, name string) (int64, error) {
	if db.isClosed() {
		return 0, ErrClosed
	}
	if err := checkCursorName(name); err != nil {
		return 0, err
	}
	var pos int64
	err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT pos FROM notify_cursors WHERE name = ?"), name).Scan(&pos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("sqlstore: notify cursor: %w", err)
	}
	return pos, nil
}

// StartNotifyCursor returns the position of the cursor name, first
// creating it at the outbox's last position when there is none. A webhook
// seen for the first time (newly configured, or its URL changed) is thus
// sent what happens from now on, not the whole history.
func (db *DB) StartNotifyCursor(ctx context.Context, name string) (int64, error) {
	if err := checkCursorName(name); err != nil {
		return 0, err
	}
	var pos int64
	err := db.write(ctx, func(tx *wtx) error {
		err := tx.queryRow("SELECT pos FROM notify_cursors WHERE name = ?", name).Scan(&pos)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: start notify cursor: %w", err)
		}
		if err := tx.queryRow("SELECT COALESCE(MAX(pos), 0) FROM outbox").Scan(&pos); err != nil {
			return fmt.Errorf("sqlstore: start notify cursor: %w", err)
		}
		if _, err := tx.exec("INSERT INTO notify_cursors (name, pos) VALUES (?, ?)", name, pos); err != nil {
			return fmt.Errorf("sqlstore: start notify cursor: %w", err)
		}
		return nil
	})
	return pos, err
}

// SetNotifyCursor moves the cursor name to pos, creating it when there is
// none. A cursor never moves back: a pos at or before the stored one
// changes nothing, so two notifiers racing (a replica starting while
// another stops) cannot undo each other's progress.
func (db *DB) SetNotifyCursor(ctx context.Context, name string, pos int64) error {
	if err := checkCursorName(name); err != nil {
		return err
	}
	if pos < 0 {
		return writ.Errorf(writ.KindInvalid, "invalid_cursor", "notify cursor %q: position %d is negative", name, pos)
	}
	return db.write(ctx, func(tx *wtx) error {
		if _, err := tx.exec("INSERT INTO notify_cursors (name, pos) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET pos = excluded.pos WHERE excluded.pos > notify_cursors.pos", name, pos); err != nil {
			return fmt.Errorf("sqlstore: set notify cursor: %w", err)
		}
		return nil
	})
}

func checkCursorName(name string) error {
	if name == "" || len(name) > 200 {
		return writ.Errorf(writ.KindInvalid, "invalid_cursor", "a notify cursor needs a name of 1 to 200 bytes")
	}
	return nil
}
