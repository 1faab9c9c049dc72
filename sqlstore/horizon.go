package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The kinds of one-time ids that have a replay horizon.
const (
	// HorizonTrigger is the horizon of trigger ids (trigger_replay),
	// moved by [DB.PruneTriggers].
	HorizonTrigger = "trigger"
	// HorizonDPoP is the horizon of DPoP proof jtis (dpop_proofs), moved
	// by [DB.PruneProofs].
	HorizonDPoP = "dpop"
)

// ReplayHorizon returns kind's replay horizon: every one-time id of that
// kind whose expiry is at or before it is refused, whether or not its row
// is still stored. The zero time means nothing was pruned yet.
func (db *DB) ReplayHorizon(ctx context.Context, kind string) (time.Time, error) {
	if db.isClosed() {
		return time.Time{}, ErrClosed
	}
	var h int64
	err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT horizon FROM replay_horizon WHERE kind = ?"), kind).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("sqlstore: no replay horizon of kind %q", kind)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlstore: replay horizon: %w", err)
	}
	return decOptHorizon(h), nil
}

func decOptHorizon(h int64) time.Time {
	if h == 0 {
		return time.Time{}
	}
	return time.Unix(0, h).UTC()
}

// dbClock returns the database's clock: on PostgreSQL the server's
// clock_timestamp(), one clock for every replica whatever their own
// clocks say; on SQLite, where one process writes, the store's clock as
// read at the batch's start (not the clamped commit time).
func (tx *wtx) dbClock() (time.Time, error) {
	if tx.db.d.clock == "" {
		return tx.clock, nil
	}
	var ns int64
	if err := tx.queryRow(tx.db.d.clock).Scan(&ns); err != nil {
		return time.Time{}, fmt.Errorf("sqlstore: read the database clock: %w", err)
	}
	return time.Unix(0, ns).UTC(), nil
}

// horizon reads kind's replay horizon inside the transaction. A missing
// row is an error, never "no horizon": the check fails closed.
func (tx *wtx) horizon(kind string) (int64, error) {
	var h int64
	err := tx.queryRow("SELECT horizon FROM replay_horizon WHERE kind = ?", kind).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlstore: no replay horizon of kind %q (is migration 0010 applied?)", kind)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlstore: read the %s replay horizon: %w", kind, err)
	}
	return h, nil
}

// prune raises kind's replay horizon to the database's clock less keep
// (never lowering it), then deletes from each table the rows whose
// expires_at is at or before the horizon, all in the one transaction: a
// row is deleted only once the horizon refuses its id. It returns how
// many rows it deleted.
func (tx *wtx) prune(kind string, keep time.Duration, tables ...string) (int64, error) {
	clock, err := tx.dbClock()
	if err != nil {
		return 0, err
	}
	cutoff, err := encTime("prune cutoff", clock.Add(-keep))
	if err != nil {
		return 0, err
	}
	if _, err := tx.exec("UPDATE replay_horizon SET horizon = ? WHERE kind = ? AND horizon < ?", cutoff, kind, cutoff); err != nil {
		return 0, fmt.Errorf("sqlstore: raise the %s replay horizon: %w", kind, err)
	}
	h, err := tx.horizon(kind)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, table := range tables {
		res, err := tx.exec("DELETE FROM "+table+" WHERE expires_at <= ?", h)
		if err != nil {
			return 0, fmt.Errorf("sqlstore: prune %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlstore: prune %s: %w", table, err)
		}
		total += n
	}
	return total, nil
}

// checkPrune refuses a negative keep: a prune cutoff after the database's
// clock would refuse ids that are still valid.
func checkPrune(method string, keep time.Duration) error {
	if keep < 0 {
		return fmt.Errorf("sqlstore: %s: negative keep %v", method, keep)
	}
	return nil
}
