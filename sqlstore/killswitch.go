package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
)

// Heartbeats and kill switches (docs/design.md §4.3): a launcher's last
// heartbeat per run, disabled agents and the global freeze. All three are
// rows, so they survive a restart; the refusals they cause are checked in
// the same transaction as the change they refuse (a run start, a resume).

// Heartbeat records that run id's launcher is alive, at the commit time.
// It writes one column and no event. A run that is no longer live gets a
// KindConflict error with code "run_final".
func (db *DB) Heartbeat(ctx context.Context, id writ.RunID) (time.Time, error) {
	var at time.Time
	err := db.write(ctx, func(tx *wtx) error {
		res, err := tx.exec("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND state IN "+liveStates, tx.now.UnixNano(), string(id))
		if err != nil {
			return fmt.Errorf("sqlstore: heartbeat: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlstore: heartbeat: %w", err)
		} else if n == 0 {
			var state string
			err := tx.queryRow("SELECT state FROM runs WHERE id = ?", string(id)).Scan(&state)
			if errors.Is(err, sql.ErrNoRows) {
				return errRunNotFound(id)
			} else if err != nil {
				return fmt.Errorf("sqlstore: heartbeat: %w", err)
			}
			return writ.Errorf(writ.KindConflict, "run_final", "run %s is already %s", id, state)
		}
		at = tx.now
		return nil
	})
	return at, err
}

// LastHeartbeat returns the time of run id's last heartbeat; ok is false
// when its launcher never sent one.
func (db *DB) LastHeartbeat(ctx context.Context, id writ.RunID) (t time.Time, ok bool, err error) {
	if db.isClosed() {
		return time.Time{}, false, ErrClosed
	}
	var n sql.NullInt64
	err = db.rdb.QueryRowContext(ctx, db.d.q("SELECT heartbeat_at FROM runs WHERE id = ?"), string(id)).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, errRunNotFound(id)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlstore: last heartbeat: %w", err)
	}
	return decOptTime(n), n.Valid, nil
}

// KillSilentRuns kills every live run whose launcher sent heartbeats but
// none since cutoff (runs started without a launcher never heartbeat and
// are left alone), each with a run.killed event whose reason is
// "missed_heartbeats", at most limit per call (0: 100).
func (db *DB) KillSilentRuns(ctx context.Context, cutoff time.Time, limit int) ([]*writ.Run, error) {
	c, err := encTime("cutoff", cutoff)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > maxListLimit {
		limit = defaultListLimit
	}
	if db.isClosed() {
		return nil, ErrClosed
	}
	// Most sweeps find nothing: answer those from a reader.
	const silent = " FROM runs WHERE heartbeat_at IS NOT NULL AND heartbeat_at < ? AND state IN " + liveStates
	var due int
	if err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM (SELECT 1"+silent+" LIMIT 1) AS due"), c).Scan(&due); err != nil {
		return nil, fmt.Errorf("sqlstore: silent runs: %w", err)
	}
	if due == 0 {
		return nil, nil
	}
	var out []*writ.Run
	err = db.write(ctx, func(tx *wtx) error {
		out = nil
		ids, last, err := tx.strings2("SELECT id, heartbeat_at"+silent+" ORDER BY depth, heartbeat_at, id LIMIT ?", c, limit)
		if err != nil {
			return fmt.Errorf("sqlstore: silent runs: %w", err)
		}
		for i, id := range ids {
			ev := &writ.Event{Type: writ.EventRunKilled, Actor: writ.ActorSystem, Details: map[string]any{
				"reason": "missed_heartbeats", "lastHeartbeat": decTime(last[i]).Format(time.RFC3339Nano)}}
			r, err := tx.transitionRun(writ.RunID(id), writ.RunKilled, "missed_heartbeats", ev)
			if writ.ErrorKind(err) == writ.KindConflict {
				continue // a parent's kill cascaded to it already
			}
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// strings2 runs a query of (text, integer) rows.
func (tx *wtx) strings2(query string, args ...any) ([]string, []int64, error) {
	rows, err := tx.query(query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var ss []string
	var ns []int64
	for rows.Next() {
		var s string
		var n sql.NullInt64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, nil, err
		}
		ss, ns = append(ss, s), append(ns, n.Int64)
	}
	return ss, ns, rows.Err()
}

// KillSwitches reads the freeze and the disabled agents.
func (db *DB) KillSwitches(ctx context.Context) (*writ.KillSwitchState, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	st := &writ.KillSwitchState{DisabledAgents: []string{}}
	var at int64
	err := db.rdb.QueryRowContext(ctx, "SELECT frozen_at, frozen_by, reason FROM global_freeze").Scan(&at, &st.FrozenBy, &st.Reason)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("sqlstore: freeze: %w", err)
	default:
		st.Frozen, st.FrozenAt = true, decTime(at)
	}
	rows, err := db.rdb.QueryContext(ctx, "SELECT name FROM disabled_agents ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: disabled agents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		st.DisabledAgents = append(st.DisabledAgents, s)
	}
	return st, rows.Err()
}

// checkKillSwitches refuses starting (or resuming) a run of agent while
// writ is frozen or the agent is disabled. It runs inside the write that
// would start the run, so a switch committed first always wins.
func (tx *wtx) checkKillSwitches(agent string) error {
	var n int
	if err := tx.queryRow("SELECT COUNT(*) FROM global_freeze").Scan(&n); err != nil {
		return fmt.Errorf("sqlstore: freeze: %w", err)
	}
	if n > 0 {
		return writ.Errorf(writ.KindDenied, "frozen", "writ is frozen: no run starts or resumes until an admin runs `writ freeze --off`")
	}
	if err := tx.queryRow("SELECT COUNT(*) FROM disabled_agents WHERE name = ?", agent).Scan(&n); err != nil {
		return fmt.Errorf("sqlstore: disabled agents: %w", err)
	}
	if n > 0 {
		return writ.Errorf(writ.KindDenied, "agent_disabled", "agent %q is disabled: no run of it starts or resumes until an admin re-enables it (`writ agent enable %s`)", agent, agent)
	}
	return nil
}

// DisableAgent disables agent name and kills its live runs (each with a
// run.killed event), in one transaction. The agent.disabled event is
// written when the agent was not disabled already. It returns the runs it
// killed.
func (db *DB) DisableAgent(ctx context.Context, name, actor, reason string) ([]writ.RunID, error) {
	var killed []writ.RunID
	err := db.write(ctx, func(tx *wtx) error {
		killed = nil
		res, err := tx.exec(tx.db.d.insertIgnore("disabled_agents", "name", "name", "disabled_at", "disabled_by", "reason"),
			name, tx.now.UnixNano(), actor, reason)
		if err != nil {
			return fmt.Errorf("sqlstore: disable agent: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlstore: disable agent: %w", err)
		} else if n == 1 {
			if err := tx.appendEvent(&writ.Event{Type: writ.EventAgentDisabled, Actor: actor, Subject: "agent:" + name,
				Details: map[string]any{"agent": name, "reason": reason}}); err != nil {
				return err
			}
		}
		ids, _, err := tx.strings2("SELECT id, depth FROM runs WHERE agent = ? AND state IN "+liveStates+" ORDER BY depth, id", name)
		if err != nil {
			return fmt.Errorf("sqlstore: disable agent: %w", err)
		}
		for _, id := range ids {
			ev := &writ.Event{Type: writ.EventRunKilled, Actor: actor, Details: map[string]any{"reason": "agent_disabled", "agent": name}}
			_, err := tx.transitionRun(writ.RunID(id), writ.RunKilled, "agent_disabled", ev)
			if writ.ErrorKind(err) == writ.KindConflict {
				continue // killed by a cascade from its parent
			}
			if err != nil {
				return err
			}
			killed = append(killed, writ.RunID(id))
		}
		return nil
	})
	return killed, err
}

// EnableAgent lifts the disabling of agent name (an agent.enabled event);
// it reports whether the agent was disabled. Its killed runs stay killed.
func (db *DB) EnableAgent(ctx context.Context, name, actor string) (bool, error) {
	var was bool
	err := db.write(ctx, func(tx *wtx) error {
		res, err := tx.exec("DELETE FROM disabled_agents WHERE name = ?", name)
		if err != nil {
			return fmt.Errorf("sqlstore: enable agent: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		was = n == 1
		if !was {
			return nil
		}
		return tx.appendEvent(&writ.Event{Type: writ.EventAgentEnabled, Actor: actor, Subject: "agent:" + name, Details: map[string]any{"agent": name}})
	})
	return was, err
}

// Freeze turns the global freeze on and suspends every active run (each
// with a run.suspended event), in one transaction; a freeze event is
// written when it was not on already. It returns the runs it suspended.
func (db *DB) Freeze(ctx context.Context, actor, reason string) ([]writ.RunID, error) {
	var suspended []writ.RunID
	err := db.write(ctx, func(tx *wtx) error {
		suspended = nil
		res, err := tx.exec(tx.db.d.insertIgnore("global_freeze", "id", "id", "frozen_at", "frozen_by", "reason"),
			1, tx.now.UnixNano(), actor, reason)
		if err != nil {
			return fmt.Errorf("sqlstore: freeze: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlstore: freeze: %w", err)
		} else if n == 1 {
			if err := tx.appendEvent(&writ.Event{Type: writ.EventFreeze, Actor: actor, Subject: "writ",
				Details: map[string]any{"state": "on", "reason": reason}}); err != nil {
				return err
			}
		}
		ids, _, err := tx.strings2("SELECT id, depth FROM runs WHERE state = 'active' ORDER BY depth, id")
		if err != nil {
			return fmt.Errorf("sqlstore: freeze: %w", err)
		}
		for _, id := range ids {
			// A cascade from a parent suspends some children before their
			// turn; they are remembered all the same.
			ev := &writ.Event{Type: writ.EventRunSuspended, Actor: actor, Details: map[string]any{"reason": "freeze"}}
			_, err := tx.transitionRun(writ.RunID(id), writ.RunSuspended, "freeze", ev)
			if err != nil && writ.ErrorKind(err) != writ.KindConflict {
				return err
			}
			if _, err := tx.exec(tx.db.d.insertIgnore("freeze_suspended", "run", "run"), id); err != nil {
				return fmt.Errorf("sqlstore: freeze: %w", err)
			}
			suspended = append(suspended, writ.RunID(id))
		}
		return nil
	})
	return suspended, err
}

// Unfreeze turns the freeze off (a freeze event) and resumes the runs it
// suspended that are still suspended and before their deadline (each with
// a run.resumed event). It returns the runs it resumed; wasFrozen is false
// (and nothing changes) when the freeze was not on.
func (db *DB) Unfreeze(ctx context.Context, actor string) (resumed []writ.RunID, wasFrozen bool, err error) {
	err = db.write(ctx, func(tx *wtx) error {
		resumed, wasFrozen = nil, false
		res, err := tx.exec("DELETE FROM global_freeze WHERE id = 1")
		if err != nil {
			return fmt.Errorf("sqlstore: unfreeze: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		wasFrozen = true
		if err := tx.appendEvent(&writ.Event{Type: writ.EventFreeze, Actor: actor, Subject: "writ", Details: map[string]any{"state": "off"}}); err != nil {
			return err
		}
		ids, _, err := tx.strings2("SELECT r.id, r.depth FROM freeze_suspended f JOIN runs r ON r.id = f.run WHERE r.state = 'suspended' AND r.deadline > ? ORDER BY r.depth, r.id", tx.clock.UnixNano())
		if err != nil {
			return fmt.Errorf("sqlstore: unfreeze: %w", err)
		}
		if _, err := tx.exec("DELETE FROM freeze_suspended"); err != nil {
			return fmt.Errorf("sqlstore: unfreeze: %w", err)
		}
		for _, id := range ids {
			ev := &writ.Event{Type: writ.EventRunResumed, Actor: actor, Details: map[string]any{"reason": "freeze lifted"}}
			_, err := tx.transitionRun(writ.RunID(id), writ.RunActive, "freeze lifted", ev)
			if k := writ.ErrorKind(err); k == writ.KindConflict || k == writ.KindDenied {
				continue // a parent still suspended, or its agent disabled meanwhile
			}
			if err != nil {
				return err
			}
			resumed = append(resumed, writ.RunID(id))
		}
		return nil
	})
	return resumed, wasFrozen, err
}
