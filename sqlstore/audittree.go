package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
)

// The reads and repairs of the audit log's background tree check
// (auditlog.TreeStore, docs/design.md §4.6): entries and stored tree hashes
// by range, the roots of the stored signed checkpoints, and rewriting rows
// the check found damaged.

// LogLeaf is one logged entry as the tree check reads it.
type LogLeaf struct {
	Seq  int64
	Leaf [32]byte // recorded when it was logged
	Body []byte   // nil unless asked for
}

// LogHash is a stored tree hash and its tlog stored-hash index.
type LogHash struct {
	Index int64
	Hash  [32]byte
}

// CheckpointRoot is the size and root of a stored signed checkpoint.
type CheckpointRoot struct {
	Size int64
	Root [32]byte
}

// LogHashRepair sets stored hash Index from Old (nil: missing) to New.
type LogHashRepair struct {
	Index int64
	Old   *[32]byte
	New   [32]byte
}

// LogLeafRepair sets the recorded leaf of entry Seq from Old to New.
type LogLeafRepair struct {
	Seq      int64
	Old, New [32]byte
}

// LogLeaves returns the logged entries with index in [start, end), in
// index order: the leaf hash recorded when each was logged and, when
// bodies is true, its stored bytes. A missing entry is absent.
func (db *DB) LogLeaves(ctx context.Context, start, end int64, bodies bool) ([]LogLeaf, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	cols := "seq, leaf"
	if bodies {
		cols += ", body"
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT "+cols+" FROM outbox WHERE seq >= ? AND seq < ? ORDER BY seq"), start, end)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: log leaves: %w", err)
	}
	defer rows.Close()
	out := make([]LogLeaf, 0, max(0, min(end-start, 1<<16)))
	for rows.Next() {
		var e LogLeaf
		var leaf sql.RawBytes // copied below: no allocation per row
		dest := []any{&e.Seq, &leaf}
		if bodies {
			dest = append(dest, &e.Body)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("sqlstore: log leaves: %w", err)
		}
		copy(e.Leaf[:], leaf)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LogHashRange returns the stored tree hashes with index in [start, end),
// in index order; an index with no stored hash, or with a value that is
// not 32 bytes long, is absent.
func (db *DB) LogHashRange(ctx context.Context, start, end int64) ([]LogHash, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT idx, hash FROM tlog_hashes WHERE idx >= ? AND idx < ? ORDER BY idx"), start, end)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: log hash range: %w", err)
	}
	defer rows.Close()
	out := make([]LogHash, 0, max(0, min(end-start, 1<<16)))
	for rows.Next() {
		var h LogHash
		var b sql.RawBytes
		if err := rows.Scan(&h.Index, &b); err != nil {
			return nil, fmt.Errorf("sqlstore: log hash range: %w", err)
		}
		if len(b) != len(h.Hash) {
			continue // damaged: as good as missing
		}
		copy(h.Hash[:], b)
		out = append(out, h)
	}
	return out, rows.Err()
}

// CheckpointRoots returns the size and root of the stored checkpoints
// whose size is in (after, upto], by size.
func (db *DB) CheckpointRoots(ctx context.Context, after, upto int64) ([]CheckpointRoot, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT size, root FROM checkpoints WHERE size > ? AND size <= ? ORDER BY size"), after, upto)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: checkpoint roots: %w", err)
	}
	defer rows.Close()
	var out []CheckpointRoot
	for rows.Next() {
		var c CheckpointRoot
		var b []byte
		if err := rows.Scan(&c.Size, &b); err != nil {
			return nil, fmt.Errorf("sqlstore: checkpoint roots: %w", err)
		}
		copy(c.Root[:], b)
		out = append(out, c)
	}
	return out, rows.Err()
}

// RepairLog rewrites, in one transaction, stored tree hashes and recorded
// leaf hashes the audit log's tree check found damaged: each row only if
// it still holds the damaged value Old — a hash with no Old only if it is
// missing or not 32 bytes long — so replicas repairing at once, or an
// operator's fix, are never overwritten. It returns how many rows
// changed.
func (db *DB) RepairLog(ctx context.Context, hashes []LogHashRepair, leaves []LogLeafRepair) (int, error) {
	n := 0
	err := db.write(ctx, func(tx *wtx) error {
		n = 0
		for _, r := range hashes {
			if r.Old == nil {
				res, err := tx.exec("UPDATE tlog_hashes SET hash = ? WHERE idx = ? AND length(hash) <> 32", r.New[:], r.Index)
				if err != nil {
					return fmt.Errorf("sqlstore: repair log hash %d: %w", r.Index, err)
				}
				if c, _ := res.RowsAffected(); c == 0 {
					res, err = tx.exec(db.d.insertIgnore("tlog_hashes", "idx", "idx", "hash"), r.Index, r.New[:])
					if err != nil {
						return fmt.Errorf("sqlstore: repair log hash %d: %w", r.Index, err)
					}
				}
				c, _ := res.RowsAffected()
				n += int(c)
				continue
			}
			res, err := tx.exec("UPDATE tlog_hashes SET hash = ? WHERE idx = ? AND hash = ?", r.New[:], r.Index, r.Old[:])
			if err != nil {
				return fmt.Errorf("sqlstore: repair log hash %d: %w", r.Index, err)
			}
			c, _ := res.RowsAffected()
			n += int(c)
		}
		for _, r := range leaves {
			res, err := tx.exec("UPDATE outbox SET leaf = ? WHERE seq = ? AND leaf = ?", r.New[:], r.Seq, r.Old[:])
			if err != nil {
				return fmt.Errorf("sqlstore: repair the leaf of entry %d: %w", r.Seq, err)
			}
			c, _ := res.RowsAffected()
			n += int(c)
		}
		return nil
	})
	return n, err
}
