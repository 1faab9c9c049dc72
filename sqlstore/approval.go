package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

func errApprovalNotFound(id string) error {
	return writ.Errorf(writ.KindNotFound, "approval_not_found", "approval %s not found", id)
}

func (tx *wtx) insertApproval(a *writ.ApprovalRequest) error {
	a.CreatedAt = tx.now
	a.State = writ.ApprovalPending
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	exp, err := encTime("approval expiresAt", a.ExpiresAt)
	if err != nil {
		return err
	}
	if _, err := tx.exec("INSERT INTO approvals (id, run, decision, subject_kind, subject_digest, slot, state, created_at, expires_at, body) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
		a.ID, string(a.Run), a.Decision, a.SubjectKind, a.SubjectDigest, a.Slot, tx.now.UnixNano(), exp, body); err != nil {
		if tx.db.d.uniqueViolation(err) {
			return writ.Errorf(writ.KindConflict, "approval_exists", "an identical approval request is already open; retry")
		}
		return fmt.Errorf("sqlstore: insert approval: %w", err)
	}
	return nil
}

// setApprovalState moves approval id from one of the states in from to
// state to (recording usedBy when it is consumed). It reports false when
// the approval is not in one of those states.
func (tx *wtx) setApprovalState(id string, from []string, to, usedBy string) (bool, error) {
	var body []byte
	var state string
	err := tx.queryRow("SELECT state, body FROM approvals WHERE id = ?", id).Scan(&state, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return false, errApprovalNotFound(id)
	}
	if err != nil {
		return false, fmt.Errorf("sqlstore: get approval: %w", err)
	}
	if !slices.Contains(from, state) {
		return false, nil
	}
	var a writ.ApprovalRequest
	if err := json.Unmarshal(body, &a); err != nil {
		return false, fmt.Errorf("sqlstore: approval body: %w", err)
	}
	a.State, a.UsedBy, a.Grants = to, usedBy, nil
	nb, err := json.Marshal(&a)
	if err != nil {
		return false, err
	}
	var used any
	if usedBy != "" {
		used = usedBy
	}
	res, err := tx.exec("UPDATE approvals SET state = ?, used_by = ?, body = ? WHERE id = ? AND state = ?", to, used, nb, id, state)
	if err != nil {
		return false, fmt.Errorf("sqlstore: update approval: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}

// voidApproval voids (or expires) a live request and records its event;
// a request no longer live is left alone.
func (tx *wtx) voidApproval(v writ.ApprovalVoid) error {
	to := v.State
	if to == "" {
		to = writ.ApprovalVoided
	}
	ok, err := tx.setApprovalState(v.ID, []string{writ.ApprovalPending, writ.ApprovalApproved}, to, "")
	if err != nil || !ok {
		return err
	}
	if err := checkEvent("void approval", v.Event); err != nil {
		return err
	}
	return tx.appendEvent(v.Event)
}

const approvalCols = "body, state, used_by"

func (db *DB) scanApprovals(ctx context.Context, q string, args ...any) ([]*writ.ApprovalRequest, error) {
	rows, err := db.rdb.QueryContext(ctx, db.d.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: approvals: %w", err)
	}
	defer rows.Close()
	var out []*writ.ApprovalRequest
	for rows.Next() {
		var body []byte
		var state string
		var used sql.NullString
		if err := rows.Scan(&body, &state, &used); err != nil {
			return nil, fmt.Errorf("sqlstore: approvals: %w", err)
		}
		var a writ.ApprovalRequest
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, fmt.Errorf("sqlstore: approval body: %w", err)
		}
		a.State, a.UsedBy = state, used.String
		out = append(out, &a)
	}
	return out, rows.Err()
}

// LiveApproval returns run's live (pending or approved) request for the
// subject, if there is one.
func (db *DB) LiveApproval(ctx context.Context, run writ.RunID, kind, digest string) (*writ.ApprovalRequest, error) {
	as, err := db.scanApprovals(ctx, "SELECT "+approvalCols+" FROM approvals WHERE run = ? AND subject_kind = ? AND subject_digest = ? AND state IN ('pending', 'approved')",
		string(run), kind, digest)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, writ.Errorf(writ.KindNotFound, "approval_not_found", "no live approval for this subject")
	}
	return as[0], nil
}

// LiveApprovalsInSlot returns run's live requests in slot.
func (db *DB) LiveApprovalsInSlot(ctx context.Context, run writ.RunID, slot string) ([]*writ.ApprovalRequest, error) {
	return db.scanApprovals(ctx, "SELECT "+approvalCols+" FROM approvals WHERE run = ? AND slot = ? AND state IN ('pending', 'approved') ORDER BY created_at, id",
		string(run), slot)
}

// GetApproval returns approval id with its grants.
func (db *DB) GetApproval(ctx context.Context, id string) (*writ.ApprovalRequest, error) {
	as, err := db.scanApprovals(ctx, "SELECT "+approvalCols+" FROM approvals WHERE id = ?", id)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, errApprovalNotFound(id)
	}
	a := as[0]
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT human, verdict, key_id, format, statement, envelope, countersignature, time FROM approval_grants WHERE approval = ? ORDER BY time, human"), id)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: approval grants: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g writ.ApprovalGrant
		var t int64
		if err := rows.Scan(&g.Human, &g.Verdict, &g.KeyID, &g.Format, &g.Statement, &g.Envelope, &g.Countersignature, &t); err != nil {
			return nil, fmt.Errorf("sqlstore: approval grants: %w", err)
		}
		g.Time = decTime(t)
		a.Grants = append(a.Grants, g)
	}
	return a, rows.Err()
}

// ListApprovals lists approvals, newest first.
func (db *DB) ListApprovals(ctx context.Context, f writ.ApprovalFilter) ([]*writ.ApprovalRequest, error) {
	var where []string
	var args []any
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	if f.Run != "" {
		where, args = append(where, "run = ?"), append(args, string(f.Run))
	}
	q := "SELECT " + approvalCols + " FROM approvals"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > maxListLimit {
		limit = defaultListLimit
	}
	return db.scanApprovals(ctx, q+" ORDER BY created_at DESC, id DESC LIMIT ?", append(args, limit)...)
}

// RecordGrant records one human's signed verdict on approval id and moves
// it to state (pending, approved or denied), with events, in one
// transaction. It refuses with KindConflict "approval_changed" when the
// request is no longer pending or has not exactly expectGrants grants (the
// caller re-reads and decides again), and "already_signed" when this
// human already signed a verdict on it.
func (db *DB) RecordGrant(ctx context.Context, id string, g *writ.ApprovalGrant, expectGrants int, state string, events ...*writ.Event) error {
	for _, ev := range events {
		if err := checkEvent("RecordGrant", ev); err != nil {
			return err
		}
	}
	return db.write(ctx, func(tx *wtx) error {
		var cur string
		var n int
		if err := tx.queryRow("SELECT state, (SELECT COUNT(*) FROM approval_grants WHERE approval = ?) FROM approvals WHERE id = ?", id, id).Scan(&cur, &n); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return errApprovalNotFound(id)
			}
			return fmt.Errorf("sqlstore: get approval: %w", err)
		}
		if cur != writ.ApprovalPending || n != expectGrants {
			return writ.Errorf(writ.KindConflict, "approval_changed", "approval %s changed meanwhile (now %s with %d verdicts); read it again", id, cur, n)
		}
		g.Time = tx.now
		if _, err := tx.exec("INSERT INTO approval_grants (approval, human, verdict, key_id, format, statement, envelope, countersignature, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			id, g.Human, g.Verdict, g.KeyID, g.Format, g.Statement, g.Envelope, g.Countersignature, tx.now.UnixNano()); err != nil {
			if tx.db.d.uniqueViolation(err) {
				return writ.Errorf(writ.KindConflict, "already_signed", "%s already signed a verdict on approval %s; distinct humans count, not signatures", g.Human, id)
			}
			return fmt.Errorf("sqlstore: insert grant: %w", err)
		}
		if state != cur {
			if ok, err := tx.setApprovalState(id, []string{cur}, state, ""); err != nil {
				return err
			} else if !ok {
				return writ.Errorf(writ.KindConflict, "approval_changed", "approval %s changed meanwhile; read it again", id)
			}
		}
		for _, ev := range events {
			if err := tx.appendEvent(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// VoidApproval voids a live request (or expires it, with state
// ApprovalExpired) and records ev; a request no longer live is left as it
// is.
func (db *DB) VoidApproval(ctx context.Context, v writ.ApprovalVoid) error {
	return db.write(ctx, func(tx *wtx) error { return tx.voidApproval(v) })
}

// ExpiredApprovals returns up to limit live requests whose expiry is at
// or before now.
func (db *DB) ExpiredApprovals(ctx context.Context, now time.Time, limit int) ([]*writ.ApprovalRequest, error) {
	return db.scanApprovals(ctx, "SELECT "+approvalCols+" FROM approvals WHERE state IN ('pending', 'approved') AND expires_at <= ? ORDER BY expires_at LIMIT ?",
		now.UnixNano(), limit)
}
