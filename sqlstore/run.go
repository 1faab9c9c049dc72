package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// Listing limits of [DB.ListRuns].
const (
	defaultListLimit = 100
	maxListLimit     = 1000
)

// runCols are the columns of runs in the order scanRun reads them.
const runCols = `id, agent, profile, ticket_system, ticket_id, ticket_url, task, scope, scope_digest,
	trigger_id, trigger_digest, issuer, signer_key, state, created_at, deadline, ended_at, end_reason, parent, depth, chain`

// liveStates is the SQL list of the states a run can still leave.
const liveStates = "('active', 'suspended')"

type scanner interface{ Scan(dest ...any) error }

func scanRun(s scanner) (*writ.Run, error) {
	var (
		r                 writ.Run
		id, parent        sql.NullString
		scope, state      string
		chain             string
		created, deadline int64
		ended             sql.NullInt64
	)
	err := s.Scan(&id, &r.Agent, &r.Profile, &r.Ticket.System, &r.Ticket.ID, &r.Ticket.URL, &r.Task,
		&scope, &r.ScopeDigest, &r.TriggerID, &r.TriggerDigest, &r.Issuer, &r.SignerKey, &state,
		&created, &deadline, &ended, &r.EndReason, &parent, &r.Depth, &chain)
	if err != nil {
		return nil, err
	}
	r.ID = writ.RunID(id.String)
	r.Parent = writ.RunID(parent.String)
	r.State = writ.RunState(state)
	r.CreatedAt = decTime(created)
	r.Deadline = decTime(deadline)
	r.EndedAt = decOptTime(ended)
	if err := json.Unmarshal([]byte(scope), &r.Scope); err != nil {
		return nil, fmt.Errorf("sqlstore: run %s: scope: %w", r.ID, err)
	}
	if chain != "" && chain != "[]" {
		if err := json.Unmarshal([]byte(chain), &r.Chain); err != nil {
			return nil, fmt.Errorf("sqlstore: run %s: chain: %w", r.ID, err)
		}
	}
	return &r, nil
}

func errRunNotFound(id writ.RunID) error {
	return writ.Errorf(writ.KindNotFound, "run_not_found", "run %s not found", id)
}

// CreateRun stores a new run started by trigger trig, and events, the
// events that record it (trigger.accepted, run.started), in one
// transaction. The trigger id goes into the replay table in that same
// transaction: a trigger id already seen, or a trigger whose expiry is at
// or before the trigger replay horizon ([DB.PruneTriggers]), gets a
// [writ.Error] with KindConflict and code "replay", and nothing is
// written.
//
// An empty run.ID gets a new ULID, an empty run.State is active, a zero
// run.CreatedAt is the commit time, and empty run.TriggerID and
// run.TriggerDigest are taken from trig. Each event's ID, Time and (when
// empty) Run are filled in as described in the package documentation. At
// least one event is required.
func (db *DB) CreateRun(ctx context.Context, run *writ.Run, trig writ.TriggerRecord, events ...*writ.Event) error {
	if err := db.checkNewRun(run, trig, events); err != nil {
		return err
	}
	row, err := encodeNewRun(run, trig)
	if err != nil {
		return err
	}
	if !run.EndedAt.IsZero() {
		return writ.Errorf(writ.KindInvalid, "invalid_run", "a new run cannot have ended")
	}

	return db.write(ctx, func(tx *wtx) error {
		if err := tx.checkKillSwitches(run.Agent); err != nil {
			return err
		}
		createdAt := run.CreatedAt
		if createdAt.IsZero() {
			createdAt = tx.now
		}
		created, err := encTime("createdAt", createdAt)
		if err != nil {
			return err
		}
		if err := tx.recordTrigger(trig, run.ID, row.expires); err != nil {
			return err
		}
		if row.parent != nil {
			if err := tx.checkParentExists(run.Parent); err != nil {
				return err
			}
		}
		if err := tx.insertRun(run, created, row.deadline, row.parent, row.scope); err != nil {
			return err
		}
		for _, ev := range events {
			if ev.Run == "" {
				ev.Run = run.ID
			}
			if err := tx.appendEvent(ev); err != nil {
				return err
			}
		}
		run.CreatedAt = createdAt
		return nil
	})
}

// checkNewRun checks the arguments of [DB.CreateRun] and fills in run's
// defaults as it goes: a new ID, the active state, and the trigger id and
// digest from trig, which the run must agree with.
func (db *DB) checkNewRun(run *writ.Run, trig writ.TriggerRecord, events []*writ.Event) error {
	if run == nil {
		return errors.New("sqlstore: CreateRun: nil run")
	}
	if len(events) == 0 {
		return errors.New("sqlstore: CreateRun: no event (every change is recorded by one)")
	}
	for _, ev := range events {
		if err := checkEvent("CreateRun", ev); err != nil {
			return err
		}
	}
	if trig.ID == "" {
		return errors.New("sqlstore: CreateRun: trigger record has no id")
	}
	if run.ID == "" {
		run.ID = writ.RunID(writ.NewULID(db.now(), nil))
	}
	if _, err := writ.ParseRunID(string(run.ID)); err != nil {
		return err
	}
	if run.State == "" {
		run.State = writ.RunActive
	}
	if !run.State.Valid() || run.State.Final() {
		return writ.Errorf(writ.KindInvalid, "invalid_state", "a new run cannot be %q", run.State)
	}
	if run.Depth < 0 {
		return writ.Errorf(writ.KindInvalid, "invalid_run", "run depth %d is negative", run.Depth)
	}
	if run.Parent != "" {
		if _, err := writ.ParseRunID(string(run.Parent)); err != nil {
			return err
		}
	}
	if run.TriggerID == "" {
		run.TriggerID = trig.ID
	}
	if run.TriggerDigest == "" {
		run.TriggerDigest = trig.Digest
	}
	if run.TriggerID != trig.ID || run.TriggerDigest != trig.Digest {
		return fmt.Errorf("sqlstore: CreateRun: run %s names trigger %s (%s) but the trigger record is %s (%s)",
			run.ID, run.TriggerID, run.TriggerDigest, trig.ID, trig.Digest)
	}
	return nil
}

// newRunRow is a new run's columns as stored, encoded before the
// transaction: its scope, its deadline and its trigger's expiry, and its
// parent (nil for a root run).
type newRunRow struct {
	scope             []byte
	deadline, expires int64
	parent            any
}

// encodeNewRun encodes the columns of a new run started by trig.
func encodeNewRun(run *writ.Run, trig writ.TriggerRecord) (newRunRow, error) {
	var row newRunRow
	var err error
	if row.scope, err = json.Marshal(run.Scope); err != nil {
		return newRunRow{}, fmt.Errorf("sqlstore: CreateRun: scope: %w", err)
	}
	if row.deadline, err = encTime("deadline", run.Deadline); err != nil {
		return newRunRow{}, err
	}
	if row.expires, err = encTime("trigger expiry", trig.ExpiresAt); err != nil {
		return newRunRow{}, err
	}
	if run.Parent != "" {
		row.parent = string(run.Parent)
	}
	return row, nil
}

// recordTrigger puts trig's id into the replay table for run: a trigger
// id already there is a replay, refused with KindConflict and code
// "replay", naming the run it started. So is a trigger whose expiry is at
// or before the trigger replay horizon: its id may have been pruned, so
// its absence proves nothing (a clock stepped back, a restored database,
// a replica whose clock is behind). The horizon is read in this
// transaction, and batches of all replicas take turns (batchLock), so a
// prune cannot slip between the check and the insert.
func (tx *wtx) recordTrigger(trig writ.TriggerRecord, run writ.RunID, expires int64) error {
	h, err := tx.horizon(HorizonTrigger)
	if err != nil {
		return err
	}
	if expires <= h {
		return writ.Errorf(writ.KindConflict, "replay",
			"trigger %s expired at %s, at or before the replay horizon %s: writ no longer remembers which triggers that old were used, so it refuses them all; sign a new trigger with a fresh id and a current expiresAt",
			trig.ID, decTime(expires).Format(time.RFC3339), decOptHorizon(h).Format(time.RFC3339))
	}
	res, err := tx.exec(tx.db.d.insertIgnore("trigger_replay", "id", "id", "digest", "signer", "run", "expires_at", "created_at"),
		trig.ID, trig.Digest, trig.Signer, string(run), expires, tx.now.UnixNano())
	if err != nil {
		return fmt.Errorf("sqlstore: record trigger: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlstore: record trigger: %w", err)
	} else if n == 0 {
		var prev string
		if err := tx.queryRow("SELECT run FROM trigger_replay WHERE id = ?", trig.ID).Scan(&prev); err != nil {
			return fmt.Errorf("sqlstore: look up replayed trigger: %w", err)
		}
		return writ.Errorf(writ.KindConflict, "replay",
			"trigger %s was already used to start run %s; sign a new trigger with a fresh id", trig.ID, prev)
	}
	return nil
}

// checkParentExists refuses a run whose parent is not stored.
func (tx *wtx) checkParentExists(parent writ.RunID) error {
	var one int
	err := tx.queryRow("SELECT 1 FROM runs WHERE id = ?", string(parent)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return writ.Errorf(writ.KindNotFound, "run_not_found", "parent run %s not found", parent)
	} else if err != nil {
		return fmt.Errorf("sqlstore: look up parent run: %w", err)
	}
	return nil
}

func (tx *wtx) insertRun(run *writ.Run, created, deadline int64, parent any, scope []byte) error {
	chain := []byte("[]")
	if len(run.Chain) > 0 {
		var err error
		if chain, err = json.Marshal(run.Chain); err != nil {
			return err
		}
	}
	_, err := tx.exec("INSERT INTO runs ("+runCols+") VALUES ("+placeholders(21)+")",
		string(run.ID), run.Agent, run.Profile, run.Ticket.System, run.Ticket.ID, run.Ticket.URL, run.Task,
		string(scope), run.ScopeDigest, run.TriggerID, run.TriggerDigest, run.Issuer, run.SignerKey,
		string(run.State), created, deadline, nil, run.EndReason, parent, run.Depth, string(chain))
	if err != nil {
		if tx.db.d.uniqueViolation(err) {
			return writ.Errorf(writ.KindConflict, "run_exists", "run %s already exists", run.ID)
		}
		return fmt.Errorf("sqlstore: insert run: %w", err)
	}
	return nil
}

// CreateChildRun stores a run delegated by run.Parent, with events, in one
// transaction. The parent must still be active, the child's deadline no
// later than the parent's, and its depth the parent's + 1: checked here,
// at the commit, so a parent killed meanwhile gets no child.
func (db *DB) CreateChildRun(ctx context.Context, run *writ.Run, events ...*writ.Event) error {
	if run == nil || run.Parent == "" {
		return errors.New("sqlstore: CreateChildRun: a child run names its parent")
	}
	if len(events) == 0 {
		return errors.New("sqlstore: CreateChildRun: no event (every change is recorded by one)")
	}
	for _, ev := range events {
		if err := checkEvent("CreateChildRun", ev); err != nil {
			return err
		}
	}
	if _, err := writ.ParseRunID(string(run.ID)); err != nil {
		return err
	}
	scope, err := json.Marshal(run.Scope)
	if err != nil {
		return err
	}
	deadline, err := encTime("deadline", run.Deadline)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		if err := tx.checkKillSwitches(run.Agent); err != nil {
			return err
		}
		p, err := scanRun(tx.queryRow("SELECT "+runCols+" FROM runs WHERE id = ?", string(run.Parent)))
		if errors.Is(err, sql.ErrNoRows) {
			return writ.Errorf(writ.KindNotFound, "run_not_found", "parent run %s not found", run.Parent)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: get parent run: %w", err)
		}
		switch {
		case p.State != writ.RunActive || !tx.clock.Before(p.Deadline):
			return writ.Errorf(writ.KindConflict, "parent_not_active", "run %s is %s: it delegates nothing", p.ID, p.State)
		case run.Deadline.After(p.Deadline):
			return writ.Errorf(writ.KindInvalid, "deadline_after_parent", "the child's deadline %s is after its parent's %s",
				run.Deadline.Format(time.RFC3339), p.Deadline.Format(time.RFC3339))
		case run.Depth != p.Depth+1:
			return writ.Errorf(writ.KindInvalid, "invalid_run", "a child of a run at depth %d is at depth %d", p.Depth, p.Depth+1)
		}
		run.CreatedAt = tx.now
		run.State = writ.RunActive
		if err := tx.insertRun(run, tx.now.UnixNano(), deadline, string(run.Parent), scope); err != nil {
			return err
		}
		for _, ev := range events {
			if ev.Run == "" {
				ev.Run = run.ID
			}
			if err := tx.appendEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// Descendants returns every run below id (children, their children, …).
func (db *DB) Descendants(ctx context.Context, id writ.RunID) ([]writ.RunID, error) {
	rows, err := db.rdb.QueryContext(ctx, db.d.q(descendantsQuery), string(id))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: descendants: %w", err)
	}
	defer rows.Close()
	var out []writ.RunID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, writ.RunID(s))
	}
	return out, rows.Err()
}

// descendantsQuery lists a run's descendants, nearest first.
const descendantsQuery = `WITH RECURSIVE d(id, depth) AS (
	SELECT id, 1 FROM runs WHERE parent = ?
	UNION ALL SELECT r.id, d.depth + 1 FROM runs r JOIN d ON r.parent = d.id WHERE d.depth < 64
) SELECT id FROM d ORDER BY depth, id`

// GetRun returns the run with the given id, or a [writ.Error] with
// KindNotFound and code "run_not_found".
func (db *DB) GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	r, err := scanRun(db.rdb.QueryRowContext(ctx, db.d.q("SELECT "+runCols+" FROM runs WHERE id = ?"), string(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errRunNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get run: %w", err)
	}
	return r, nil
}

// ListRuns returns the runs f selects, newest first (by creation time, then
// id, both descending). f.Limit 0 means 100; more than 1000 means 1000.
func (db *DB) ListRuns(ctx context.Context, f writ.RunFilter) ([]*writ.Run, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	var (
		where []string
		args  []any
	)
	if f.State != "" {
		if !f.State.Valid() {
			return nil, writ.Errorf(writ.KindInvalid, "invalid_state", "no run state %q", f.State)
		}
		where = append(where, "state = ?")
		args = append(args, string(f.State))
	}
	if f.Agent != "" {
		where = append(where, "agent = ?")
		args = append(args, f.Agent)
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		limit = maxListLimit
	}
	args = append(args, limit)
	q := "SELECT " + runCols + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC LIMIT ?"
	rows, err := db.rdb.QueryContext(ctx, db.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list runs: %w", err)
	}
	defer rows.Close()
	runs := []*writ.Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list runs: %w", err)
	}
	return runs, nil
}

// TransitionRun moves run id to state to and records ev, in one
// transaction, and returns the run as it then is.
//
// A run already in a final state gets a [writ.Error] with KindConflict and
// code "run_final"; any other move that [writ.RunState.CanTransition]
// refuses gets code "invalid_transition"; resuming (to active) a run whose
// deadline has passed at the commit time gets code "deadline_passed". A
// move to a final state sets the run's ended_at to the commit time and its
// end_reason to reason; reason is not stored otherwise.
//
// The caller sets ev's Type (empty means to.EventType()), Actor and
// Details; the store sets Run, Time and, when empty, ID.
func (db *DB) TransitionRun(ctx context.Context, id writ.RunID, to writ.RunState, reason string, ev *writ.Event) (*writ.Run, error) {
	if !to.Valid() {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_state", "no run state %q", to)
	}
	if ev == nil {
		return nil, errors.New("sqlstore: TransitionRun: no event (every change is recorded by one)")
	}
	var out *writ.Run
	err := db.write(ctx, func(tx *wtx) error {
		r, err := tx.transitionRun(id, to, reason, ev)
		out = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// transitionRun is TransitionRun inside a transaction.
func (tx *wtx) transitionRun(id writ.RunID, to writ.RunState, reason string, ev *writ.Event) (*writ.Run, error) {
	r, err := scanRun(tx.queryRow("SELECT "+runCols+" FROM runs WHERE id = ?", string(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errRunNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get run: %w", err)
	}
	switch {
	case r.State.Final():
		return nil, writ.Errorf(writ.KindConflict, "run_final", "run %s is already %s", id, r.State)
	case !r.State.CanTransition(to):
		return nil, writ.Errorf(writ.KindConflict, "invalid_transition", "run %s is %s and cannot become %s", id, r.State, to)
	case to == writ.RunActive && !tx.clock.Before(r.Deadline):
		return nil, writ.Errorf(writ.KindConflict, "deadline_passed", "run %s passed its deadline at %s and cannot be resumed",
			id, r.Deadline.Format(time.RFC3339))
	}
	if to == writ.RunActive {
		if err := tx.checkKillSwitches(r.Agent); err != nil {
			return nil, err
		}
	}
	if to == writ.RunActive && r.Parent != "" {
		// A child never acts while its parent cannot: resume the parent
		// first.
		var ps string
		if err := tx.queryRow("SELECT state FROM runs WHERE id = ?", string(r.Parent)).Scan(&ps); err != nil {
			return nil, fmt.Errorf("sqlstore: parent state: %w", err)
		}
		if writ.RunState(ps) != writ.RunActive {
			return nil, writ.Errorf(writ.KindConflict, "parent_not_active", "run %s's parent %s is %s; resume the parent first", id, r.Parent, ps)
		}
	}
	var res sql.Result
	if to.Final() {
		res, err = tx.exec("UPDATE runs SET state = ?, ended_at = ?, end_reason = ? WHERE id = ? AND state = ?",
			string(to), tx.now.UnixNano(), reason, string(id), string(r.State))
		r.EndedAt, r.EndReason = tx.now, reason
	} else {
		res, err = tx.exec("UPDATE runs SET state = ? WHERE id = ? AND state = ?", string(to), string(id), string(r.State))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: update run: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("sqlstore: update run: %w", err)
	} else if n != 1 {
		return nil, fmt.Errorf("sqlstore: update run %s: %d rows changed, want 1", id, n)
	}
	tx.runChanged(string(id))
	r.State = to
	if ev.Type == "" {
		ev.Type = to.EventType()
	}
	ev.Run = id
	if err := tx.appendEvent(ev); err != nil {
		return nil, err
	}
	if to.Final() || to == writ.RunSuspended {
		if err := tx.cascade(id, to); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// cascade moves every live descendant of run id to state to (ended,
// killed, expired or suspended), each with its own event: a delegated run
// never outlives, nor outruns, the run it came from.
func (tx *wtx) cascade(id writ.RunID, to writ.RunState) error {
	rows, err := tx.query(descendantsQuery, string(id))
	if err != nil {
		return fmt.Errorf("sqlstore: cascade: %w", err)
	}
	var ids []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, s)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	from := "('active', 'suspended')"
	if to == writ.RunSuspended {
		from = "('active')"
	}
	reason := fmt.Sprintf("%s with its ancestor %s", to, id)
	for _, c := range ids {
		var res sql.Result
		if to.Final() {
			res, err = tx.exec("UPDATE runs SET state = ?, ended_at = ?, end_reason = ? WHERE id = ? AND state IN "+from,
				string(to), tx.now.UnixNano(), reason, c)
		} else {
			res, err = tx.exec("UPDATE runs SET state = ? WHERE id = ? AND state IN "+from, string(to), c)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: cascade: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // already in a final (or, for a suspension, a non-active) state
		}
		tx.runChanged(c)
		ev := &writ.Event{Type: to.EventType(), Run: writ.RunID(c), Actor: writ.ActorSystem, Subject: string(id),
			Details: map[string]any{"reason": reason, "cascadeFrom": string(id)}}
		if err := tx.appendEvent(ev); err != nil {
			return err
		}
	}
	return nil
}

// ExpireRuns moves every active or suspended run whose deadline is at or
// before now to expired, with end_reason "deadline" and a run.expired event
// by [writ.ActorSystem] each, in one transaction, and returns them, at most
// limit (0 means 100) per call, earliest deadline first.
func (db *DB) ExpireRuns(ctx context.Context, now time.Time, limit int) ([]*writ.Run, error) {
	cutoff, err := encTime("now", now)
	if err != nil {
		return nil, err
	}
	switch {
	case limit <= 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		limit = maxListLimit
	}
	// Most sweeps find nothing due: answer those from a reader, without
	// taking a turn of the single writer.
	if db.isClosed() {
		return nil, ErrClosed
	}
	var due int
	if err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM (SELECT 1 FROM "+db.d.liveByDeadline+" WHERE state IN "+liveStates+" AND deadline <= ? LIMIT 1) AS due"), cutoff).Scan(&due); err != nil {
		return nil, fmt.Errorf("sqlstore: expire runs: %w", err)
	}
	if due == 0 {
		return nil, nil
	}
	var out []*writ.Run
	err = db.write(ctx, func(tx *wtx) error {
		out = nil
		rows, err := tx.query("SELECT "+runCols+" FROM "+db.d.liveByDeadline+" WHERE state IN "+liveStates+" AND deadline <= ? ORDER BY deadline, id LIMIT ?", cutoff, limit)
		if err != nil {
			return fmt.Errorf("sqlstore: expire runs: %w", err)
		}
		var runs []*writ.Run
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlstore: expire runs: %w", err)
			}
			runs = append(runs, r)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("sqlstore: expire runs: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sqlstore: expire runs: %w", err)
		}
		expired := runs[:0]
		for _, r := range runs {
			// Conditional on the run still being live, so that a run
			// another replica's sweep expired (or a kill ended) since the
			// SELECT is not expired twice, with two events.
			res, err := tx.exec("UPDATE runs SET state = ?, ended_at = ?, end_reason = ? WHERE id = ? AND state IN "+liveStates,
				string(writ.RunExpired), tx.now.UnixNano(), "deadline", string(r.ID))
			if err != nil {
				return fmt.Errorf("sqlstore: expire run %s: %w", r.ID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("sqlstore: expire run %s: %w", r.ID, err)
			} else if n == 0 {
				continue
			}
			tx.runChanged(string(r.ID))
			expired = append(expired, r)
			r.State, r.EndedAt, r.EndReason = writ.RunExpired, tx.now, "deadline"
			ev := &writ.Event{
				Type:    writ.EventRunExpired,
				Run:     r.ID,
				Actor:   writ.ActorSystem,
				Details: map[string]any{"deadline": r.Deadline.Format(time.RFC3339Nano)},
			}
			if err := tx.appendEvent(ev); err != nil {
				return err
			}
		}
		out = expired
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// NextDeadline returns the earliest deadline of the active and suspended
// runs; ok is false when there are none.
func (db *DB) NextDeadline(ctx context.Context) (t time.Time, ok bool, err error) {
	if db.isClosed() {
		return time.Time{}, false, ErrClosed
	}
	var n sql.NullInt64
	if err := db.rdb.QueryRowContext(ctx, "SELECT MIN(deadline) FROM "+db.d.liveByDeadline+" WHERE state IN "+liveStates).Scan(&n); err != nil {
		return time.Time{}, false, fmt.Errorf("sqlstore: next deadline: %w", err)
	}
	if !n.Valid {
		return time.Time{}, false, nil
	}
	return decTime(n.Int64), true, nil
}

// CountRuns returns the number of runs in each state; every state is in
// the map, with 0 when no run is in it.
func (db *DB) CountRuns(ctx context.Context) (map[writ.RunState]int, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, "SELECT state, COUNT(*) FROM runs GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: count runs: %w", err)
	}
	defer rows.Close()
	counts := make(map[writ.RunState]int, len(writ.RunStates))
	for _, s := range writ.RunStates {
		counts[s] = 0
	}
	for rows.Next() {
		var (
			s string
			n int
		)
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("sqlstore: count runs: %w", err)
		}
		counts[writ.RunState(s)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: count runs: %w", err)
	}
	return counts, nil
}
