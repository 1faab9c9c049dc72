package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
)

// RecordDecision stores rec in one transaction (see [writ.DecisionRecord]).
// A decision whose (run, via, callRef) is already recorded is not stored
// again: RecordDecision returns the recorded one and dup = true. A new
// approval request identical to a pending one (same run, subject kind and
// digest) fails with KindConflict "approval_exists"; the caller re-reads it.
func (db *DB) RecordDecision(ctx context.Context, rec *writ.DecisionRecord) (out *writ.Decision, dup bool, err error) {
	d := rec.Decision
	if d == nil || len(rec.Events) == 0 {
		return nil, false, errors.New("sqlstore: RecordDecision: a decision and its event are required")
	}
	err = db.write(ctx, func(tx *wtx) error {
		if d.CallRef != "" && !d.DryRun {
			var body []byte
			err := tx.queryRow("SELECT body FROM decisions WHERE run = ? AND via = ? AND call_ref = ? AND call_ref <> '' AND dry_run = 0",
				string(d.Run), d.Via, d.CallRef).Scan(&body)
			if err == nil {
				var prev writ.Decision
				if err := json.Unmarshal(body, &prev); err != nil {
					return fmt.Errorf("sqlstore: decision body: %w", err)
				}
				out, dup = &prev, true
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlstore: find decision by callRef: %w", err)
			}
		}
		d.Time = tx.now
		for _, v := range rec.Voids {
			if err := tx.voidApproval(v); err != nil {
				return err
			}
		}
		if id := rec.UseApproval; id != "" {
			ok, err := tx.setApprovalState(id, []string{writ.ApprovalApproved}, writ.ApprovalUsed, d.ID)
			if err != nil {
				return err
			}
			if !ok {
				return writ.Errorf(writ.KindConflict, "approval_not_approved", "approval %s is no longer approved (used, voided or expired meanwhile); ask again", id)
			}
		}
		if a := rec.NewApproval; a != nil {
			if err := tx.insertApproval(a); err != nil {
				return err
			}
		}
		body, err := json.Marshal(d)
		if err != nil {
			return err
		}
		var approval any
		if d.Approval != nil {
			approval = d.Approval.ID
		}
		if _, err := tx.exec("INSERT INTO decisions (id, run, time, kind, name, verdict, via, call_ref, dry_run, enforced, approval, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			d.ID, string(d.Run), tx.now.UnixNano(), d.Action.Kind, d.Action.Name, d.Verdict, d.Via, d.CallRef, boolInt(d.DryRun), boolInt(d.Enforced()), approval, body); err != nil {
			if tx.db.d.uniqueViolation(err) {
				return writ.Errorf(writ.KindConflict, "decision_exists", "decision %s is already recorded", d.ID)
			}
			return fmt.Errorf("sqlstore: insert decision: %w", err)
		}
		for _, ev := range rec.Events {
			if err := checkEvent("RecordDecision", ev); err != nil {
				return err
			}
			if err := tx.appendEvent(ev); err != nil {
				return err
			}
		}
		if lr := rec.Lease; lr != nil {
			if d.Verdict != writ.VerdictAllow || lr.Lease == nil || lr.Lease.State != writ.LeaseActive {
				return errors.New("sqlstore: RecordDecision: a lease is recorded only with an allow, in state active")
			}
			exp, err := encTime("lease expiresAt", lr.Lease.ExpiresAt)
			if err != nil {
				return err
			}
			if lr.Event != nil {
				if err := checkEvent("RecordDecision", lr.Event); err != nil {
					return err
				}
			}
			if err := tx.insertLease(lr.Lease, exp, lr.Handle, lr.Verifier, lr.Event); err != nil {
				return err
			}
		}
		if rec.Suspend != nil {
			var state string
			if err := tx.queryRow("SELECT state FROM runs WHERE id = ?", string(d.Run)).Scan(&state); err != nil {
				return fmt.Errorf("sqlstore: run state: %w", err)
			}
			if writ.RunState(state) == writ.RunActive {
				if _, err := tx.transitionRun(d.Run, writ.RunSuspended, "", rec.Suspend); err != nil {
					return err
				}
			}
		}
		out = d
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return out, dup, nil
}

// GetDecision returns decision id.
func (db *DB) GetDecision(ctx context.Context, id string) (*writ.Decision, error) {
	return db.oneDecision(ctx, "SELECT body, outcome FROM decisions WHERE id = ?", id)
}

// decisionByCallRef finds a call's decision. "call_ref <> ”" repeats the
// partial index's condition, without which SQLite cannot use the index and
// walks every decision of the run (hook decisions then slow down as a run
// accumulates them).
const decisionByCallRef = "SELECT body, outcome FROM decisions WHERE run = ? AND via = ? AND call_ref = ? AND call_ref <> '' AND dry_run = 0"

// DecisionByCallRef returns the non-dry-run decision of run for (via,
// callRef).
func (db *DB) DecisionByCallRef(ctx context.Context, run writ.RunID, via, callRef string) (*writ.Decision, error) {
	return db.oneDecision(ctx, decisionByCallRef, string(run), via, callRef)
}

func (db *DB) oneDecision(ctx context.Context, q string, args ...any) (*writ.Decision, error) {
	var body, outcome []byte
	err := db.rdb.QueryRowContext(ctx, db.d.q(q), args...).Scan(&body, &outcome)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, writ.Errorf(writ.KindNotFound, "decision_not_found", "no such decision")
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get decision: %w", err)
	}
	var d writ.Decision
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("sqlstore: decision body: %w", err)
	}
	if outcome != nil {
		d.Outcome = new(writ.Outcome)
		if err := json.Unmarshal(outcome, d.Outcome); err != nil {
			return nil, fmt.Errorf("sqlstore: decision outcome: %w", err)
		}
	}
	return &d, nil
}

// RecordOutcome attaches the outcome of decision id (of run) and records
// ev, once: a second outcome fails with KindConflict "outcome_recorded".
// Only allowed decisions have outcomes.
func (db *DB) RecordOutcome(ctx context.Context, run writ.RunID, id string, o *writ.Outcome, ev *writ.Event) error {
	if err := checkEvent("RecordOutcome", ev); err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		var verdict string
		var at sql.NullInt64
		err := tx.queryRow("SELECT verdict, outcome_at FROM decisions WHERE id = ? AND run = ? AND dry_run = 0", id, string(run)).Scan(&verdict, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return writ.Errorf(writ.KindNotFound, "decision_not_found", "run %s has no decision %s", run, id)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: get decision: %w", err)
		}
		if at.Valid {
			return writ.Errorf(writ.KindConflict, "outcome_recorded", "decision %s already has an outcome", id)
		}
		if verdict != writ.VerdictAllow {
			return writ.Errorf(writ.KindConflict, "not_allowed", "decision %s was %s: only an allowed action has an outcome", id, verdict)
		}
		o.Time = tx.now
		body, err := json.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := tx.exec("UPDATE decisions SET outcome = ?, outcome_at = ? WHERE id = ?", body, tx.now.UnixNano(), id); err != nil {
			return fmt.Errorf("sqlstore: record outcome: %w", err)
		}
		ev.Run = run
		return tx.appendEvent(ev)
	})
}

// RunHistory reads run's decision history for policy: the last limit
// non-dry-run decisions, the enforced ones since windowStart, the count of
// enforced decisions, the names ever allowed and the number of children.
func (db *DB) RunHistory(ctx context.Context, run writ.RunID, windowStart time.Time, limit int) (*writ.RunHistory, error) {
	h := &writ.RunHistory{Allowed: map[string]bool{}}
	scan := func(q string, args ...any) ([]writ.HistoryEntry, error) {
		rows, err := db.rdb.QueryContext(ctx, db.d.q(q), args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: run history: %w", err)
		}
		defer rows.Close()
		var out []writ.HistoryEntry
		for rows.Next() {
			var e writ.HistoryEntry
			var t int64
			if err := rows.Scan(&e.Kind, &e.Name, &e.Verdict, &e.Via, &t, &e.Enforced); err != nil {
				return nil, fmt.Errorf("sqlstore: run history: %w", err)
			}
			e.Time = decTime(t)
			out = append(out, e)
		}
		return out, rows.Err()
	}
	const cols = "kind, name, verdict, via, time, enforced"
	recent, err := scan("SELECT "+cols+" FROM decisions WHERE run = ? AND dry_run = 0 ORDER BY time DESC, id DESC LIMIT ?", string(run), limit)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(recent)-1; i < j; i, j = i+1, j-1 {
		recent[i], recent[j] = recent[j], recent[i]
	}
	h.Recent = recent
	if h.Window, err = scan("SELECT "+cols+" FROM decisions WHERE run = ? AND enforced = 1 AND time >= ? ORDER BY time, id", string(run), windowStart.UnixNano()); err != nil {
		return nil, err
	}
	if err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM decisions WHERE run = ? AND enforced = 1"), string(run)).Scan(&h.Total); err != nil {
		return nil, fmt.Errorf("sqlstore: run history: %w", err)
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT DISTINCT kind, name FROM decisions WHERE run = ? AND dry_run = 0 AND verdict = 'allow'"), string(run))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: run history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, name string
		if err := rows.Scan(&kind, &name); err != nil {
			return nil, fmt.Errorf("sqlstore: run history: %w", err)
		}
		h.Allowed[writ.HistoryName(kind, name)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Children are counted by allowed, enforced delegations: the decision
	// reserves the child (under the run's lock, through its commit), so
	// concurrent delegations cannot overrun the budget before their
	// children are stored.
	if err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM decisions WHERE run = ? AND kind = 'delegate' AND verdict = 'allow' AND enforced = 1"), string(run)).Scan(&h.Children); err != nil {
		return nil, fmt.Errorf("sqlstore: run history: %w", err)
	}
	return h, nil
}

// boolInt is b as the 0 or 1 of an INTEGER flag column: both dialects
// store flags as integers, and PostgreSQL does not take a Go bool for one.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
