package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/writ-dev/writ"
)

// storeRetryAfter is the Retry-After of a store that cannot serve: long
// enough for a lock or a failover, short enough for a client's retry to
// land once space is freed.
const storeRetryAfter = 2 * time.Second

// Unavailable returns err as a KindUnavailable error (code
// "store_unavailable", the cause still in its chain) when it says the
// database cannot serve for now — a full disk, a read-only file or
// database, a lock held too long, a database that is down or unreachable —
// so that callers are told to retry rather than shown an internal error
// (docs/design.md §4.8). Any other error is returned as it is.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	var we *writ.Error
	if errors.As(err, &we) {
		return err
	}
	if IsCorrupt(err) {
		return fmt.Errorf("%w: %w", &writ.Error{Kind: writ.KindUnavailable, Code: "store_damaged", RetryAfter: time.Minute,
			Message: "the store is damaged (SQLite reports a malformed database file); nothing was done: an operator must restore it from a backup (writ restore, docs/operations.md)"}, err)
	}
	what := outage(err)
	if what == "" {
		return err
	}
	return fmt.Errorf("%w: %w", &writ.Error{Kind: writ.KindUnavailable, Code: "store_unavailable", RetryAfter: storeRetryAfter,
		Message: "the store cannot serve this request now (" + what + "); nothing was done, retry later"}, err)
}

// outage says what kind of outage err is, or "" when it is not one.
func outage(err error) string {
	if code, ok := sqliteCode(err); ok {
		switch code & 0xff {
		case sqlite3.SQLITE_FULL:
			return "its disk is full"
		case sqlite3.SQLITE_READONLY:
			return "its database is read-only"
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return "its database is locked"
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM:
			return "its database cannot be read or written"
		}
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53100":
			return "its disk is full"
		case pe.Code == "25006":
			return "its database is read-only"
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "55P03":
			return "its database is locked"
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "53"), strings.HasPrefix(pe.Code, "57"):
			return "its database is down or unreachable"
		}
		return ""
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EROFS):
		return "its database is down or unreachable"
	}
	return ""
}

// probeEvery is how long a Writable answer is reused: /readyz may be
// polled often, and one tiny write every few seconds is enough.
const probeEvery = 2 * time.Second

// minFree is the free space below which a SQLite store is not writable:
// SQLite can reuse its WAL in place on a full disk, so a tiny write alone
// would pass while inserts that grow the file fail.
const minFree = 1 << 20

// Writable reports whether the store can commit a write now: it commits a
// tiny write (the write_probe row) through the writer, and on SQLite
// checks that the database's file system has at least 1 MiB free. The
// answer is reused for 2 seconds. Its error is KindUnavailable
// (store_unavailable) and says why; /readyz fails with it.
func (db *DB) Writable(ctx context.Context) error {
	db.probeMu.Lock()
	defer db.probeMu.Unlock()
	if now := time.Now(); now.Sub(db.probeAt) < probeEvery && !db.probeAt.IsZero() {
		return db.probeErr
	}
	err := db.probe(ctx)
	if ctx.Err() != nil {
		return err // the caller went away: not an answer to remember
	}
	db.probeAt, db.probeErr = time.Now(), err
	return err
}

func (db *DB) probe(ctx context.Context) error {
	if db.isClosed() {
		return ErrClosed
	}
	if db.d == sqliteDialect && db.path != "" {
		if free, err := freeBytes(filepath.Dir(db.path)); err == nil && free < minFree {
			return &writ.Error{Kind: writ.KindUnavailable, Code: "store_unavailable", RetryAfter: storeRetryAfter,
				Message: fmt.Sprintf("the store cannot write: its disk has %d bytes free (under %d); free some space", free, minFree)}
		}
	}
	err := db.write(ctx, func(tx *wtx) error {
		_, err := tx.exec("UPDATE write_probe SET n = n + 1, written = ? WHERE id = 1", tx.now.UnixNano())
		return err
	})
	if err != nil {
		if writ.ErrorKind(err) == writ.KindUnavailable {
			return err
		}
		return fmt.Errorf("%w: %w", &writ.Error{Kind: writ.KindUnavailable, Code: "store_unavailable", RetryAfter: storeRetryAfter,
			Message: "the store cannot commit a write"}, err)
	}
	return nil
}
