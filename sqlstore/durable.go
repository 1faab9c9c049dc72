package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// UsedTriggerHorizon returns the latest expiry among the stored trigger
// ids (or the trigger replay horizon, when that is later): every trigger
// this store has seen used expires at or before it. The checkpoint pin
// keeps it outside the database so that after a rollback or a restore
// ([DB.RaiseHorizon]) the triggers used since stay refused.
func (db *DB) UsedTriggerHorizon(ctx context.Context) (time.Time, error) {
	if db.isClosed() {
		return time.Time{}, ErrClosed
	}
	var used sql.NullInt64
	if err := db.rdb.QueryRowContext(ctx, "SELECT MAX(expires_at) FROM trigger_replay").Scan(&used); err != nil {
		return time.Time{}, fmt.Errorf("sqlstore: used trigger horizon: %w", err)
	}
	h, err := db.ReplayHorizon(ctx, HorizonTrigger)
	if err != nil {
		return time.Time{}, err
	}
	if used.Valid && used.Int64 > h.UnixNano() {
		return time.Unix(0, used.Int64).UTC(), nil
	}
	return h, nil
}

// RaiseHorizon raises kind's replay horizon to at least t (it never
// lowers it) and deletes the rows it now covers. It is for a store that
// forgot ids it had seen (a rollback, a restore): every id of kind that
// expires at or before t is refused from then on, used or not.
func (db *DB) RaiseHorizon(ctx context.Context, kind string, t time.Time) error {
	table := map[string]string{HorizonTrigger: "trigger_replay", HorizonDPoP: "dpop_proofs"}[kind]
	if table == "" {
		return fmt.Errorf("sqlstore: no replay horizon of kind %q", kind)
	}
	ns, err := encTime("horizon", t)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		if _, err := tx.exec("UPDATE replay_horizon SET horizon = ? WHERE kind = ? AND horizon < ?", ns, kind, ns); err != nil {
			return fmt.Errorf("sqlstore: raise the %s replay horizon: %w", kind, err)
		}
		if _, err := tx.exec("DELETE FROM "+table+" WHERE expires_at <= ?", ns); err != nil {
			return fmt.Errorf("sqlstore: prune %s: %w", table, err)
		}
		return nil
	})
}

// IsSQLite reports whether the store is an SQLite file (one process; the
// integrity check and the backup command apply).
func (db *DB) IsSQLite() bool { return db.d == sqliteDialect }

// Path returns the SQLite file's path ("" on PostgreSQL).
func (db *DB) Path() string {
	if db.d != sqliteDialect {
		return ""
	}
	return db.path
}

// QuickCheck runs SQLite's PRAGMA quick_check (the b-tree structure of
// every page, without cross-checking indexes against tables) and returns
// the problems it reports, at most max; none means the file is sound. It
// stops early, returning ctx's error, when ctx ends. On PostgreSQL, which
// checks its own pages, it returns nothing.
func (db *DB) QuickCheck(ctx context.Context, max int) ([]string, error) {
	if db.d != sqliteDialect {
		return nil, nil
	}
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, fmt.Sprintf("PRAGMA quick_check(%d)", max))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: quick_check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("sqlstore: quick_check: %w", err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		if ctx.Err() != nil {
			return problems, ctx.Err()
		}
		if IsCorrupt(err) {
			return append(problems, err.Error()), nil
		}
		return problems, fmt.Errorf("sqlstore: quick_check: %w", err)
	}
	return problems, nil
}

// IsCorrupt reports whether err is SQLite's "the file is damaged"
// (SQLITE_CORRUPT, SQLITE_NOTADB).
func IsCorrupt(err error) bool {
	if err == nil {
		return false
	}
	if code, ok := sqliteCode(err); ok {
		return code&0xff == sqlite3.SQLITE_CORRUPT || code&0xff == sqlite3.SQLITE_NOTADB
	}
	s := err.Error()
	return strings.Contains(s, "database disk image is malformed") || strings.Contains(s, "file is not a database")
}

// Backup writes a consistent copy of the SQLite store to path (VACUUM
// INTO: one read transaction, so the copy is the store as of one commit,
// taken while writ serves). path must not exist. On PostgreSQL it
// refuses: use pg_dump or the cluster's point-in-time recovery
// (docs/operations.md).
func (db *DB) Backup(ctx context.Context, path string) error {
	if db.d != sqliteDialect {
		return errors.New("sqlstore: writ backup copies SQLite stores; on PostgreSQL use pg_dump or point-in-time recovery (docs/operations.md)")
	}
	if db.isClosed() {
		return ErrClosed
	}
	return BackupFile(ctx, db.path, path)
}

// FileFacts is what [InspectFile] reads from an SQLite store file without
// opening it as a store (no migration, no writer).
type FileFacts struct {
	Problems       []string  // PRAGMA quick_check's findings; none: sound
	LogSize        int64     // logged entries
	Checkpoint     []byte    // the newest signed checkpoint; nil: none
	TriggerHorizon time.Time // as [DB.UsedTriggerHorizon]
}

// InspectFile checks the SQLite store file at path read-only: its
// integrity, its log size, its newest checkpoint and its used-trigger
// horizon. It is for files writ is not serving from (a backup, a store
// about to be replaced).
func InspectFile(ctx context.Context, path string) (*FileFacts, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	c, err := sql.Open(sqliteDialect.driver, sqliteDSN(path, "query_only(1)"))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	f := &FileFacts{}
	rows, err := c.QueryContext(ctx, "PRAGMA quick_check(20)")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", path, err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: %s: %w", path, err)
		}
		if s != "ok" {
			f.Problems = append(f.Problems, s)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		if !IsCorrupt(err) {
			return nil, fmt.Errorf("sqlstore: %s: %w", path, err)
		}
		f.Problems = append(f.Problems, err.Error())
	}
	if len(f.Problems) > 0 {
		return f, nil
	}
	var n int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('outbox', 'checkpoints', 'trigger_replay', 'replay_horizon')").Scan(&n); err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", path, err)
	}
	if n != 4 {
		return nil, fmt.Errorf("sqlstore: %s is not a writ store (or one older than migration 0010: start writ on it once to migrate)", path)
	}
	var seq sql.NullInt64
	if err := c.QueryRowContext(ctx, lastSeq).Scan(&seq); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: %s: log size: %w", path, err)
	}
	if seq.Valid {
		f.LogSize = seq.Int64 + 1
	}
	if err := c.QueryRowContext(ctx, "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").Scan(&f.Checkpoint); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: %s: checkpoint: %w", path, err)
	}
	var used sql.NullInt64
	var h int64
	if err := c.QueryRowContext(ctx, "SELECT MAX(expires_at) FROM trigger_replay").Scan(&used); err != nil {
		return nil, fmt.Errorf("sqlstore: %s: %w", path, err)
	}
	if err := c.QueryRowContext(ctx, "SELECT horizon FROM replay_horizon WHERE kind = 'trigger'").Scan(&h); err != nil {
		return nil, fmt.Errorf("sqlstore: %s: trigger horizon: %w", path, err)
	}
	if used.Valid && used.Int64 > h {
		h = used.Int64
	}
	f.TriggerHorizon = decOptHorizon(h)
	return f, nil
}

// BackupFile is [DB.Backup] of the SQLite file at src, for a store writ
// serves from in another process (VACUUM INTO reads one snapshot while
// the server goes on writing).
func BackupFile(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("sqlstore: backup: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("sqlstore: backup %s: the file exists; pick a new name", dst)
	}
	c, err := sql.Open(sqliteDialect.driver, sqliteDSN(src, "busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")"))
	if err != nil {
		return fmt.Errorf("sqlstore: backup: %w", err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("sqlstore: backup to %s: %w", dst, err)
	}
	f, err := os.Open(dst)
	if err != nil {
		return fmt.Errorf("sqlstore: backup %s: %w", dst, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sqlstore: backup %s: %w", dst, err)
	}
	return nil
}
