package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/writ-dev/writ"
)

// lastSeq reads the highest log index through the partial index
// outbox_seq. (SELECT MAX(seq) FROM outbox, without the WHERE, is planned
// as a scan of the whole outbox: at a million entries it was most of the
// integrator's and the writer's time.)
const lastSeq = "SELECT seq FROM outbox WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"

// Unsequenced returns up to limit committed events that are not yet in the
// log, in commit order.
func (db *DB) Unsequenced(ctx context.Context, limit int) ([]StoredEvent, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT pos, id, type, run, body FROM outbox WHERE seq IS NULL ORDER BY pos LIMIT ?"), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: unsequenced events: %w", err)
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		var e StoredEvent
		var run sql.NullString
		if err := rows.Scan(&e.Pos, &e.ID, &e.Type, &run, &e.Body); err != nil {
			return nil, fmt.Errorf("sqlstore: unsequenced events: %w", err)
		}
		e.Run = writ.RunID(run.String)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LogSize returns the number of logged events.
func (db *DB) LogSize(ctx context.Context) (int64, error) {
	if db.isClosed() {
		return 0, ErrClosed
	}
	var n int64
	err := db.rdb.QueryRowContext(ctx, lastSeq).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlstore: log size: %w", err)
	}
	return n + 1, nil
}

// ReadLogHashes returns the stored tree hashes at the given indexes. A
// missing index is an error: the tree is incomplete.
func (db *DB) ReadLogHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	out := make([][32]byte, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	args := make([]any, len(indexes))
	for i, x := range indexes {
		args[i] = x
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT idx, hash FROM tlog_hashes WHERE idx IN ("+placeholders(len(indexes))+")"), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read log hashes: %w", err)
	}
	defer rows.Close()
	got := make(map[int64][]byte, len(indexes))
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, fmt.Errorf("sqlstore: read log hashes: %w", err)
		}
		got[idx] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, x := range indexes {
		h, ok := got[x]
		if !ok || len(h) != 32 {
			return nil, fmt.Errorf("sqlstore: log hash %d is missing", x)
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// AppendLog logs events in one transaction: it refuses unless the log
// holds exactly from entries (one sequencer at a time), gives the events at
// outbox positions pos[i] the index from+i and leaf hash leaves[i], stores
// the tree hashes and the signed checkpoint of the new size.
func (db *DB) AppendLog(ctx context.Context, from int64, pos []int64, leaves [][32]byte, hashes map[int64][32]byte, size int64, root [32]byte, note []byte) error {
	if len(pos) != len(leaves) || size != from+int64(len(pos)) {
		return fmt.Errorf("sqlstore: AppendLog: %d positions, %d leaves, from %d to size %d do not add up", len(pos), len(leaves), from, size)
	}
	return db.write(ctx, func(tx *wtx) error {
		var cur int64
		have := int64(0)
		switch err := tx.queryRow(lastSeq).Scan(&cur); {
		case err == nil:
			have = cur + 1
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlstore: append log: %w", err)
		}
		if have != from {
			return writ.Errorf(writ.KindConflict, "log_moved", "the log has %d entries, not %d: another integrator appended", have, from)
		}
		for i, p := range pos {
			res, err := tx.exec("UPDATE outbox SET seq = ?, leaf = ? WHERE pos = ? AND seq IS NULL", from+int64(i), leaves[i][:], p)
			if err != nil {
				return fmt.Errorf("sqlstore: append log: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("sqlstore: append log: outbox position %d is missing or already logged", p)
			}
		}
		for idx, h := range hashes {
			if _, err := tx.exec(db.d.insertIgnore("tlog_hashes", "idx", "idx", "hash"), idx, h[:]); err != nil {
				return fmt.Errorf("sqlstore: append log hash: %w", err)
			}
		}
		if _, err := tx.exec("INSERT INTO checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)", size, root[:], note, tx.now.UnixNano()); err != nil {
			return fmt.Errorf("sqlstore: append checkpoint: %w", err)
		}
		return nil
	})
}

// LatestCheckpoint returns the newest signed checkpoint, or nil when the
// log is empty.
func (db *DB) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	var note []byte
	err := db.rdb.QueryRowContext(ctx, "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").Scan(&note)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: latest checkpoint: %w", err)
	}
	return note, nil
}

// Checkpoints returns up to limit stored checkpoints, newest first.
func (db *DB) Checkpoints(ctx context.Context, limit int) ([][]byte, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT note FROM checkpoints ORDER BY size DESC LIMIT ?"), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: checkpoints: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var n []byte
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// PruneCheckpoints keeps the newest checkpoint and the first of every
// minute, so history stays sparse while a verifier can still narrow down
// where a rewritten log went wrong.
func (db *DB) PruneCheckpoints(ctx context.Context) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *wtx) error {
		res, err := tx.exec(`DELETE FROM checkpoints WHERE size <> (SELECT MAX(size) FROM checkpoints)
			AND size NOT IN (SELECT MIN(size) FROM checkpoints GROUP BY created_at / 60000000000)`)
		if err != nil {
			return fmt.Errorf("sqlstore: prune checkpoints: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// LogEntries returns the logged entries with index in [start, end), in
// order, at most 1000.
func (db *DB) LogEntries(ctx context.Context, start, end int64) ([]writ.LogEntry, error) {
	if end-start > 1000 {
		end = start + 1000
	}
	return db.logEntries(ctx, "seq >= ? AND seq < ? ORDER BY seq", start, end)
}

// RunEntries returns every event of run, logged or not, in commit order.
func (db *DB) RunEntries(ctx context.Context, run writ.RunID) ([]writ.LogEntry, error) {
	return db.logEntries(ctx, "run = ? ORDER BY pos", string(run))
}

// EntryByLeaf returns the logged entry whose leaf hash is leaf.
func (db *DB) EntryByLeaf(ctx context.Context, leaf [32]byte) (*writ.LogEntry, error) {
	es, err := db.logEntries(ctx, "leaf = ? ORDER BY seq LIMIT 1", leaf[:])
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, writ.Errorf(writ.KindNotFound, "entry_not_found", "no logged entry has that leaf hash")
	}
	return &es[0], nil
}

// EntryByID returns the event with id, logged or not.
func (db *DB) EntryByID(ctx context.Context, id string) (*writ.LogEntry, error) {
	es, err := db.logEntries(ctx, "id = ?", id)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, writ.Errorf(writ.KindNotFound, "event_not_found", "no event %q", id)
	}
	return &es[0], nil
}

func (db *DB) logEntries(ctx context.Context, where string, args ...any) ([]writ.LogEntry, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	q := "SELECT seq, id, type, run, body, leaf FROM outbox WHERE " + where
	rows, err := db.rdb.QueryContext(ctx, db.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: log entries: %w", err)
	}
	defer rows.Close()
	out := []writ.LogEntry{}
	for rows.Next() {
		var e writ.LogEntry
		var seq sql.NullInt64
		var run sql.NullString
		var leaf []byte
		if err := rows.Scan(&seq, &e.ID, &e.Type, &run, &e.Body, &leaf); err != nil {
			return nil, fmt.Errorf("sqlstore: log entries: %w", err)
		}
		e.Seq = -1
		if seq.Valid {
			e.Seq = seq.Int64
		}
		e.Run = writ.RunID(run.String)
		copy(e.Leaf[:], leaf)
		out = append(out, e)
	}
	return out, rows.Err()
}
