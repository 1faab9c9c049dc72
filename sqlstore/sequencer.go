package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// sequencerRetry is how often a process that does not hold the sequencer
// lock tries to take it, and how often the holder checks it still holds it.
const sequencerRetry = time.Second

// SequencerLock blocks until this process holds the sequencer lock, the
// right to run the audit log's integrator, or ctx is done (its error is
// then returned). Of several processes (replicas) on one PostgreSQL
// database one holds it at a time: it is a session-level advisory lock on
// a connection of its own, freed when release is called or when that
// session ends (the holder died), and the others take it within about a
// second. On SQLite, with one process, it is held at once.
//
// The returned context is done when the lock is lost (the connection
// broke), when ctx is done or when release is called; work done under the
// lock runs with it. release must be called. Holding the lock is not what
// keeps the log consistent: [DB.AppendLog] refuses to extend a log another
// integrator extended; the lock only keeps integrators from racing.
func (db *DB) SequencerLock(ctx context.Context) (held context.Context, release func(), err error) {
	if db.isClosed() {
		return nil, nil, ErrClosed
	}
	if db.d != postgresDialect {
		held, cancel := context.WithCancel(ctx)
		return held, cancel, nil
	}
	pool, err := sql.Open(db.d.driver, db.pgDSN)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: sequencer lock: %w", err)
	}
	pool.SetMaxOpenConns(1)
	pool.SetMaxIdleConns(1)
	var conn *sql.Conn
	for {
		if conn == nil {
			if conn, err = pool.Conn(ctx); err != nil {
				conn = nil
			}
		}
		if conn != nil {
			var ok bool
			err = conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+sequencerLockKey+")").Scan(&ok)
			if err == nil && ok {
				break
			}
			if err != nil {
				// A broken connection is discarded by the pool when
				// returned; the next try opens a new one.
				conn.Close()
				conn = nil
			}
		}
		if err != nil && ctx.Err() == nil {
			db.log.WarnContext(ctx, "sequencer lock", slog.Any("error", err))
		}
		t := time.NewTimer(sequencerRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			if conn != nil {
				conn.Close()
			}
			pool.Close()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}

	held, cancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		// The lock lives as long as the session: check the session.
		defer close(watched)
		t := time.NewTicker(sequencerRetry)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(context.Background(), 5*sequencerRetry)
			var one int
			err := conn.QueryRowContext(pctx, "SELECT 1").Scan(&one)
			pcancel()
			if err != nil {
				db.log.ErrorContext(context.Background(), "sequencer lock lost", slog.Any("error", err))
				cancel()
				return
			}
		}
	}()
	release = sync.OnceFunc(func() {
		cancel()
		<-watched
		uctx, ucancel := context.WithTimeout(context.Background(), 5*sequencerRetry)
		defer ucancel()
		if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock("+sequencerLockKey+")"); err != nil {
			db.log.DebugContext(uctx, "sequencer unlock", slog.Any("error", err))
		}
		conn.Close()
		pool.Close() // ends the session, which frees the lock in any case
	})
	return held, release, nil
}
