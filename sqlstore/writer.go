package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ"
)

// maxBatch is the most requests one transaction commits.
const maxBatch = 256

// A request is one write waiting for the writer.
type request struct {
	ctx   context.Context
	fn    func(*wtx) error
	state atomic.Int32 // reqQueued, then reqClaimed by the writer or reqAbandoned by the caller
	done  chan error   // buffered; receives the outcome once, unless abandoned
}

const (
	reqQueued int32 = iota
	reqClaimed
	reqAbandoned
)

// write runs fn in the writer goroutine, inside a transaction it may share
// with other requests, and returns nil only once that transaction has
// committed. fn runs inside its own savepoint: when it returns an error (or
// panics) everything it did is rolled back, the other requests of the batch
// are not affected, and write returns that error.
//
// fn must not keep tx, nor leave rows open, after it returns. Whatever fn
// sets in variables of the caller is safe for the caller to read after
// write returns: write never returns while fn may still run.
func (db *DB) write(ctx context.Context, fn func(tx *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	select {
	case db.reqs <- r:
		db.mu.RUnlock()
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return Unavailable(err)
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		// The writer has claimed it: its outcome is moments away, and
		// until then fn may still touch the caller's values.
		return Unavailable(<-r.done)
	}
}

// writer is the one goroutine that writes. It returns when reqs is closed
// and drained.
func (db *DB) writer() {
	defer close(db.writerDone)
	batch := make([]*request, 0, maxBatch)
	live := make([]*request, 0, maxBatch)
	errs := make([]error, maxBatch)
	for r := range db.reqs {
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		live = live[:0]
		for _, r := range batch {
			if !r.state.CompareAndSwap(reqQueued, reqClaimed) {
				continue // the caller gave up waiting
			}
			if err := r.ctx.Err(); err != nil {
				r.done <- err
				continue
			}
			live = append(live, r)
		}
		if len(live) > 0 {
			db.commit(live, errs[:len(live)])
		}
		clear(batch)
		clear(live)
	}
}

// commit runs one batch in one transaction and answers every request.
func (db *DB) commit(batch []*request, errs []error) {
	clear(errs)
	clock := db.now().UTC().Round(0)
	tx := &wtx{db: db, now: db.batchNow(clock), clock: clock}
	db.nBatches.Add(1)
	db.nRequests.Add(int64(len(batch)))

	// fail ends the batch early: the transaction is rolled back and every
	// request without an error of its own gets err.
	fail := func(err error) {
		db.log.ErrorContext(context.Background(), "write batch failed", slog.Int("requests", len(batch)), slog.Any("error", err))
		db.rollback()
		for i, r := range batch {
			if errs[i] == nil {
				errs[i] = err
			}
			r.done <- errs[i]
		}
	}

	if err := tx.execRaw(db.d.begin); err != nil {
		// A server connection can break between batches (a PostgreSQL
		// restart, a proxy timeout): open a new one and try once more.
		if !db.d.reconnect || db.reconnectWriter(err) != nil {
			fail(fmt.Errorf("sqlstore: begin: %w", err))
			return
		}
		if err := tx.execRaw(db.d.begin); err != nil {
			fail(fmt.Errorf("sqlstore: begin: %w", err))
			return
		}
	}
	if db.d.batchLock != "" {
		if err := tx.execRaw(db.d.batchLock); err != nil {
			fail(fmt.Errorf("sqlstore: batch lock: %w", err))
			return
		}
	}
	for i, r := range batch {
		if err := tx.execRaw("SAVEPOINT req"); err != nil {
			fail(fmt.Errorf("sqlstore: savepoint: %w", err))
			return
		}
		errs[i] = run(r.fn, tx)
		if errs[i] != nil {
			// If the statement that failed took the whole transaction
			// with it (SQLite does so on I/O errors, a full disk, …), the
			// savepoint is gone and this fails: the batch fails.
			if err := tx.execRaw("ROLLBACK TO SAVEPOINT req"); err != nil {
				fail(fmt.Errorf("sqlstore: rollback to savepoint after %w: %w", errs[i], err))
				return
			}
		}
		if err := tx.execRaw("RELEASE SAVEPOINT req"); err != nil {
			fail(fmt.Errorf("sqlstore: release savepoint: %w", err))
			return
		}
	}
	if err := tx.notifyReplicas(); err != nil {
		fail(err)
		return
	}
	if err := tx.execRaw("COMMIT"); err != nil {
		fail(fmt.Errorf("sqlstore: commit: %w", err))
		return
	}
	if tx.events > 0 && db.cfg.OnEvents != nil {
		db.cfg.OnEvents()
	}
	if tx.runsChanged && db.cfg.OnRunsChanged != nil {
		db.cfg.OnRunsChanged()
	}
	for i, r := range batch {
		r.done <- errs[i]
	}
}

// notifyReplicas tells the other processes on the database (replicas),
// when they are delivered at COMMIT, which runs the batch changed and that
// it stored events; see [DB.listen].
func (tx *wtx) notifyReplicas() error {
	if !tx.db.d.notify {
		return nil
	}
	for len(tx.runs) > 0 {
		// A payload holds less than 8000 bytes.
		var b strings.Builder
		n := 0
		for n < len(tx.runs) && b.Len()+len(tx.runs[n]) < 7000 {
			if n > 0 {
				b.WriteByte(',')
			}
			b.WriteString(tx.runs[n])
			n++
		}
		n = max(n, 1)
		if _, err := tx.exec("SELECT pg_notify('"+runsChannel+"', ?)", b.String()); err != nil {
			return fmt.Errorf("sqlstore: notify run changes: %w", err)
		}
		tx.runs = tx.runs[n:]
	}
	if tx.events > 0 {
		if _, err := tx.exec("SELECT pg_notify('" + eventsChannel + "', '')"); err != nil {
			return fmt.Errorf("sqlstore: notify events: %w", err)
		}
	}
	return nil
}

// run calls fn, turning a panic into an error so one bad request cannot
// stop the writer.
func run(fn func(*wtx) error, tx *wtx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("sqlstore: panic in write: %v", p)
		}
	}()
	return fn(tx)
}

// rollback ends the open transaction, if any.
func (db *DB) rollback() {
	if _, err := db.wconn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		db.log.DebugContext(context.Background(), "rollback", slog.Any("error", err))
	}
}

// reconnectWriter replaces the write connection after cause, a failure to
// begin, with a new one; prepared statements are prepared again as used.
func (db *DB) reconnectWriter(cause error) error {
	db.log.WarnContext(context.Background(), "reconnecting the write connection", slog.Any("error", cause))
	for q, s := range db.stmts {
		s.Close()
		delete(db.stmts, q)
	}
	db.wconn.Close() // a broken connection is discarded, not reused
	ctx, cancel := context.WithTimeout(context.Background(), reconnectTimeout)
	defer cancel()
	c, err := db.wdb.Conn(ctx)
	if err != nil {
		db.log.ErrorContext(ctx, "reconnect the write connection", slog.Any("error", err))
		return err
	}
	db.wconn = c
	return nil
}

// reconnectTimeout bounds how long the writer waits for a new connection.
const reconnectTimeout = 10 * time.Second

// batchNow returns the commit time of a new batch: clock (the clock's
// reading, UTC), but never before the previous batch's, so commit times
// follow commit order even when the clock steps back. A commit time can
// therefore stay ahead of the clock after a step back: it stamps what a
// batch writes, and decides nothing (see wtx.clock).
func (db *DB) batchNow(clock time.Time) time.Time {
	now := clock
	if now.Before(db.last) {
		now = db.last
	}
	db.last = now
	return now
}

// wtx is the writer's view of the open transaction, handed to a request's
// function. Statements run with a context that is never cancelled: with
// SQLite, interrupting a statement can roll back the whole transaction,
// and with it the other requests of the batch.
type wtx struct {
	db  *DB
	now time.Time // the batch's commit time: stamps rows and events, never steps back
	// clock is the clock's own reading at the batch's start, not clamped
	// to earlier commit times. Deadlines are decided against it, as
	// package runs decides them against the same injected clock
	// (writ.Run.LiveAt), so a commit time left ahead by a clock that
	// stepped back never makes a live run look past its deadline
	// (docs/design.md §4.3).
	clock  time.Time
	events int // events appended in this batch (including rolled-back ones)
	// runs are the ids of the runs whose state the batch changed
	// (including rolled-back changes), for the notification to replicas.
	runs []string
	// runsChanged is set when the batch changed some run's state.
	runsChanged bool
}

// runChanged records that the batch changed the state of run id.
func (tx *wtx) runChanged(id string) {
	tx.runsChanged = true
	if tx.db.d.notify {
		tx.runs = append(tx.runs, id)
	}
}

// stmt returns a prepared statement for query, prepared once per
// connection.
func (tx *wtx) stmt(query string) (*sql.Stmt, error) {
	if s, ok := tx.db.stmts[query]; ok {
		return s, nil
	}
	s, err := tx.db.wconn.PrepareContext(context.Background(), query)
	if err != nil {
		return nil, err
	}
	tx.db.stmts[query] = s
	return s, nil
}

// execRaw runs a statement of the writer's own (BEGIN, SAVEPOINT, …).
func (tx *wtx) execRaw(query string) error {
	_, err := tx.exec(query)
	return err
}

// exec runs a statement with ? placeholders.
func (tx *wtx) exec(query string, args ...any) (sql.Result, error) {
	s, err := tx.stmt(tx.db.d.q(query))
	if err != nil {
		return nil, err
	}
	return s.ExecContext(context.Background(), args...)
}

// queryRow runs a query with ? placeholders that returns at most one row.
func (tx *wtx) queryRow(query string, args ...any) *sql.Row {
	s, err := tx.stmt(tx.db.d.q(query))
	if err != nil {
		// Surface the error through Scan, as database/sql does.
		return tx.db.wconn.QueryRowContext(context.Background(), tx.db.d.q(query), args...)
	}
	return s.QueryRowContext(context.Background(), args...)
}

// query runs a query with ? placeholders. The caller closes the rows.
func (tx *wtx) query(query string, args ...any) (*sql.Rows, error) {
	s, err := tx.stmt(tx.db.d.q(query))
	if err != nil {
		return nil, err
	}
	return s.QueryContext(context.Background(), args...)
}

// appendEvent writes ev into the outbox. It fills in ev.ID when empty and
// sets ev.Time to the commit time; the marshalled bytes are stored as they
// are and never re-encoded.
func (tx *wtx) appendEvent(ev *writ.Event) error {
	if ev.ID == "" {
		ev.ID = writ.NewULID(tx.now, nil)
	}
	ev.Time = tx.now
	body, err := ev.Marshal()
	if err != nil {
		return fmt.Errorf("sqlstore: marshal event %s: %w", ev.Type, err)
	}
	var run any
	if ev.Run != "" {
		run = string(ev.Run)
	}
	if _, err := tx.exec("INSERT INTO outbox (id, type, run, body) VALUES (?, ?, ?, ?)", ev.ID, ev.Type, run, body); err != nil {
		if tx.db.d.uniqueViolation(err) {
			return fmt.Errorf("sqlstore: event id %s is already stored", ev.ID)
		}
		return fmt.Errorf("sqlstore: insert event: %w", err)
	}
	tx.events++
	return nil
}

// checkEvent reports a missing or typeless event: no change is stored
// without the event that records it.
func checkEvent(op string, ev *writ.Event) error {
	if ev == nil {
		return fmt.Errorf("sqlstore: %s: no event (every change is recorded by one)", op)
	}
	if ev.Type == "" {
		return fmt.Errorf("sqlstore: %s: event has no type", op)
	}
	return nil
}
