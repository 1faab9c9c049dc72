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

// Leases and the revocation queue (migration 0007). See the comment at the
// top of that migration for why the queue is the leases table itself.

const leaseCols = "l.id, l.state, l.issued_at, l.expires_at, l.revoked_at, l.revoke_reason, l.attempts, l.last_error, l.body"

func scanLease(s scanner, extra ...any) (*writ.Lease, error) {
	var l writ.Lease
	var id, state, reason, lastErr string
	var issued, expires int64
	var revoked sql.NullInt64
	var attempts int
	var body []byte
	dest := append([]any{&id, &state, &issued, &expires, &revoked, &reason, &attempts, &lastErr, &body}, extra...)
	if err := s.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("sqlstore: lease %s body: %w", id, err)
	}
	l.ID, l.State, l.IssuedAt, l.ExpiresAt, l.RevokedAt = id, state, decTime(issued), decTime(expires), decOptTime(revoked)
	l.RevokeReason, l.Attempts, l.LastError = reason, attempts, lastErr
	return &l, nil
}

func errLeaseNotFound(id string) error {
	return writ.Errorf(writ.KindNotFound, "lease_not_found", "lease %s not found", id)
}

// InsertLease stores a new lease in state l.State (issuing or active) with
// the handle and verifier given (either may be nil), and ev when set, in
// one transaction. The store sets IssuedAt (the commit time). It refuses
// with KindConflict "run_not_active" when the run is not active at commit
// time: a run that stopped while its credential was being made never gets
// a lease row in a state the revoker would not see.
func (db *DB) InsertLease(ctx context.Context, l *writ.Lease, handle, verifier []byte, ev *writ.Event) error {
	if l.State != writ.LeaseIssuing && l.State != writ.LeaseActive {
		return fmt.Errorf("sqlstore: InsertLease: state %q: want issuing or active", l.State)
	}
	if ev != nil {
		if err := checkEvent("InsertLease", ev); err != nil {
			return err
		}
	}
	exp, err := encTime("lease expiresAt", l.ExpiresAt)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error { return tx.insertLease(l, exp, handle, verifier, ev) })
}

// insertLease is InsertLease inside a transaction; exp is l.ExpiresAt
// encoded.
func (tx *wtx) insertLease(l *writ.Lease, exp int64, handle, verifier []byte, ev *writ.Event) error {
	var state string
	err := tx.queryRow("SELECT state FROM runs WHERE id = ?", string(l.Run)).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return errRunNotFound(l.Run)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: insert lease: %w", err)
	}
	if writ.RunState(state) != writ.RunActive {
		return writ.Errorf(writ.KindConflict, "run_not_active", "run %s is %s; a lease is issued only to an active run", l.Run, state)
	}
	l.IssuedAt = tx.now
	body, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := tx.exec("INSERT INTO leases (id, run, kind, target, state, issued_at, expires_at, verifier, handle, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		l.ID, string(l.Run), l.Kind, l.Target, l.State, tx.now.UnixNano(), exp, verifier, handle, body); err != nil {
		if tx.db.d.uniqueViolation(err) {
			return writ.Errorf(writ.KindConflict, "lease_exists", "lease %s already exists", l.ID)
		}
		return fmt.Errorf("sqlstore: insert lease: %w", err)
	}
	if ev != nil {
		return tx.appendEvent(ev)
	}
	return nil
}

// ActivateLease moves an issuing lease to active with what its backend
// returned, and appends ev, in one transaction. It refuses with
// KindConflict "lease_not_issuing" when the lease is no longer issuing (the
// revoker took it because its run stopped meanwhile: the caller revokes
// what it just issued) and "run_not_active" when the run stopped but the
// revoker has not yet.
func (db *DB) ActivateLease(ctx context.Context, l *writ.Lease, handle, verifier []byte, ev *writ.Event) error {
	if err := checkEvent("ActivateLease", ev); err != nil {
		return err
	}
	exp, err := encTime("lease expiresAt", l.ExpiresAt)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		var state, runState string
		err := tx.queryRow("SELECT l.state, r.state FROM leases l JOIN runs r ON r.id = l.run WHERE l.id = ?", l.ID).Scan(&state, &runState)
		if errors.Is(err, sql.ErrNoRows) {
			return errLeaseNotFound(l.ID)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: activate lease: %w", err)
		}
		if state != writ.LeaseIssuing {
			return writ.Errorf(writ.KindConflict, "lease_not_issuing", "lease %s is %s, not issuing", l.ID, state)
		}
		if writ.RunState(runState) != writ.RunActive {
			return writ.Errorf(writ.KindConflict, "run_not_active", "run %s is %s; a lease is issued only to an active run", l.Run, runState)
		}
		l.State = writ.LeaseActive
		body, err := json.Marshal(l)
		if err != nil {
			return err
		}
		res, err := tx.exec("UPDATE leases SET state = 'active', expires_at = ?, verifier = ?, handle = ?, body = ? WHERE id = ? AND state = 'issuing'",
			exp, verifier, handle, body, l.ID)
		if err != nil {
			return fmt.Errorf("sqlstore: activate lease: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return writ.Errorf(writ.KindConflict, "lease_not_issuing", "lease %s is no longer issuing", l.ID)
		}
		return tx.appendEvent(ev)
	})
}

// GetLease returns lease id.
func (db *DB) GetLease(ctx context.Context, id string) (*writ.Lease, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	l, err := scanLease(db.rdb.QueryRowContext(ctx, db.d.q("SELECT "+leaseCols+" FROM leases l WHERE l.id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errLeaseNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get lease: %w", err)
	}
	return l, nil
}

// LeaseVerifier returns lease id, its verifier and its run's state, for a
// gateway checking a presented credential.
func (db *DB) LeaseVerifier(ctx context.Context, id string) (*writ.Lease, []byte, writ.RunState, error) {
	if db.isClosed() {
		return nil, nil, "", ErrClosed
	}
	var verifier []byte
	var runState string
	l, err := scanLease(db.rdb.QueryRowContext(ctx, db.d.q("SELECT "+leaseCols+", l.verifier, r.state FROM leases l JOIN runs r ON r.id = l.run WHERE l.id = ?"), id),
		&verifier, &runState)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, "", errLeaseNotFound(id)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("sqlstore: lease verifier: %w", err)
	}
	return l, verifier, writ.RunState(runState), nil
}

// ListLeases lists leases, newest first.
func (db *DB) ListLeases(ctx context.Context, f writ.LeaseFilter) ([]*writ.Lease, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	var where []string
	var args []any
	if f.Run != "" {
		where, args = append(where, "l.run = ?"), append(args, string(f.Run))
	}
	if f.State != "" {
		where, args = append(where, "l.state = ?"), append(args, f.State)
	}
	q := "SELECT " + leaseCols + " FROM leases l"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > maxListLimit {
		limit = defaultListLimit
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q(q+" ORDER BY l.issued_at DESC, l.id DESC LIMIT ?"), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list leases: %w", err)
	}
	defer rows.Close()
	var out []*writ.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list leases: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// RequestRevoke marks lease id due for revocation now, for reason (kept
// if the lease already has one). It returns the lease; a lease already
// revoked is returned unchanged.
func (db *DB) RequestRevoke(ctx context.Context, id, reason string) (*writ.Lease, error) {
	var out *writ.Lease
	err := db.write(ctx, func(tx *wtx) error {
		l, err := scanLease(tx.queryRow("SELECT "+leaseCols+" FROM leases l WHERE l.id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return errLeaseNotFound(id)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: revoke lease: %w", err)
		}
		out = l
		if l.State == writ.LeaseRevoked {
			return nil
		}
		if l.RevokeReason == "" {
			l.RevokeReason = reason
		}
		_, err = tx.exec("UPDATE leases SET revoke_reason = ?, next_attempt = 0 WHERE id = ? AND state <> 'revoked'", l.RevokeReason, id)
		return err
	})
	return out, err
}

// issueGrace is how long a lease may stay issuing before the revoker
// treats the issue as abandoned (writ stopped while a backend worked).
const issueGrace = time.Minute

const dueLeases = " FROM leases l JOIN runs r ON r.id = l.run WHERE l.state <> 'revoked' AND l.claim_until <= ? AND l.next_attempt <= ?" +
	" AND (l.revoke_reason <> '' OR r.state <> 'active' OR l.expires_at <= ? OR r.deadline <= ? OR (l.state = 'issuing' AND l.issued_at <= ?))"

// LeasesDue reports whether any lease is due for revocation at now, from a
// reader: the revoker asks before it takes a turn of the writer.
func (db *DB) LeasesDue(ctx context.Context, now time.Time) (bool, error) {
	if db.isClosed() {
		return false, ErrClosed
	}
	n := now.UnixNano()
	var due int
	err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM (SELECT 1"+dueLeases+" LIMIT 1) AS due"), n, n, n, n, n-int64(issueGrace)).Scan(&due)
	if err != nil {
		return false, fmt.Errorf("sqlstore: leases due: %w", err)
	}
	return due > 0, nil
}

// NextLeaseDue returns the earliest time a lease not yet revoked expires
// or may be retried; ok is false when there is none.
func (db *DB) NextLeaseDue(ctx context.Context) (time.Time, bool, error) {
	if db.isClosed() {
		return time.Time{}, false, ErrClosed
	}
	var exp, retry sql.NullInt64
	err := db.rdb.QueryRowContext(ctx, "SELECT MIN(expires_at), MIN(CASE WHEN next_attempt > 0 THEN next_attempt END) FROM leases WHERE state <> 'revoked'").Scan(&exp, &retry)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlstore: next lease due: %w", err)
	}
	switch {
	case !exp.Valid:
		return time.Time{}, false, nil
	case retry.Valid && retry.Int64 < exp.Int64:
		return decTime(retry.Int64), true, nil
	}
	return decTime(exp.Int64), true, nil
}

// ClaimRevocations claims up to limit leases due for revocation at now
// for hold (another claimant skips them until then), counting an attempt
// on each, and returns them with their handles.
func (db *DB) ClaimRevocations(ctx context.Context, now time.Time, hold time.Duration, limit int) ([]*writ.Revocation, error) {
	if limit <= 0 || limit > maxListLimit {
		limit = defaultListLimit
	}
	var out []*writ.Revocation
	err := db.write(ctx, func(tx *wtx) error {
		out = nil
		n := now.UnixNano()
		rows, err := tx.query("SELECT "+leaseCols+", l.handle, l.alerted, r.state, r.deadline"+dueLeases+" ORDER BY l.expires_at, l.id LIMIT ?",
			n, n, n, n, n-int64(issueGrace), limit)
		if err != nil {
			return fmt.Errorf("sqlstore: claim revocations: %w", err)
		}
		var tasks []*writ.Revocation
		for rows.Next() {
			var handle []byte
			var alerted int
			var runState string
			var deadline int64
			l, err := scanLease(rows, &handle, &alerted, &runState, &deadline)
			if err != nil {
				rows.Close()
				return fmt.Errorf("sqlstore: claim revocations: %w", err)
			}
			t := &writ.Revocation{Lease: l, Handle: handle, Alerted: alerted != 0}
			switch {
			case l.RevokeReason != "":
				t.Reason = l.RevokeReason
			case writ.RunState(runState) != writ.RunActive:
				t.Reason = "run_" + runState
			case deadline <= n:
				t.Reason = "run_expired"
			case !now.Before(l.ExpiresAt):
				t.Reason = "expired"
			default:
				t.Reason = "issue_incomplete"
			}
			tasks = append(tasks, t)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, t := range tasks {
			res, err := tx.exec("UPDATE leases SET claim_until = ?, attempts = attempts + 1 WHERE id = ? AND state <> 'revoked' AND claim_until <= ?",
				now.Add(hold).UnixNano(), t.Lease.ID, n)
			if err != nil {
				return fmt.Errorf("sqlstore: claim revocation: %w", err)
			}
			if c, _ := res.RowsAffected(); c == 1 {
				t.Lease.Attempts++
				out = append(out, t)
			}
		}
		return nil
	})
	return out, err
}

// FinishRevocations records the outcomes of claimed revocations in one
// transaction.
func (db *DB) FinishRevocations(ctx context.Context, results []writ.RevocationResult) error {
	for _, r := range results {
		for _, ev := range []*writ.Event{r.Event, r.Alert} {
			if ev != nil {
				if err := checkEvent("FinishRevocations", ev); err != nil {
					return err
				}
			}
		}
	}
	return db.write(ctx, func(tx *wtx) error {
		for _, r := range results {
			if r.Revoked {
				res, err := tx.exec("UPDATE leases SET state = 'revoked', revoked_at = ?, revoke_reason = ?, claim_until = 0, last_error = '' WHERE id = ? AND state <> 'revoked'",
					tx.now.UnixNano(), r.Reason, r.ID)
				if err != nil {
					return fmt.Errorf("sqlstore: finish revocation: %w", err)
				}
				if n, _ := res.RowsAffected(); n == 1 && r.Event != nil {
					if err := tx.appendEvent(r.Event); err != nil {
						return err
					}
				}
				continue
			}
			next, err := encTime("nextAttempt", r.NextAttempt)
			if err != nil {
				return err
			}
			alerted := 0
			if r.Alert != nil {
				alerted = 1
			}
			if _, err := tx.exec("UPDATE leases SET claim_until = 0, next_attempt = ?, last_error = ?, alerted = CASE WHEN alerted = 1 THEN 1 ELSE ? END WHERE id = ? AND state <> 'revoked'",
				next, r.Error, alerted, r.ID); err != nil {
				return fmt.Errorf("sqlstore: finish revocation: %w", err)
			}
			if r.Alert != nil {
				if err := tx.appendEvent(r.Alert); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// PutSecret stores a sealed static secret (a new version when it exists)
// with ev, in one transaction, and returns the version stored. sealFor
// seals the value for the version the store assigns (the version is part
// of what the seal binds).
func (db *DB) PutSecret(ctx context.Context, env, name, by string, sealFor func(version int) ([]byte, error), ev *writ.Event) (int, error) {
	if err := checkEvent("PutSecret", ev); err != nil {
		return 0, err
	}
	var version int
	err := db.write(ctx, func(tx *wtx) error {
		var cur sql.NullInt64
		err := tx.queryRow("SELECT version FROM secrets WHERE environment = ? AND name = ?", env, name).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlstore: put secret: %w", err)
		}
		version = int(cur.Int64) + 1
		sealed, err := sealFor(version)
		if err != nil {
			return err
		}
		if cur.Valid {
			_, err = tx.exec("UPDATE secrets SET version = ?, sealed = ?, updated_at = ?, updated_by = ? WHERE environment = ? AND name = ?",
				version, sealed, tx.now.UnixNano(), by, env, name)
		} else {
			_, err = tx.exec("INSERT INTO secrets (environment, name, version, sealed, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)",
				env, name, version, sealed, tx.now.UnixNano(), by)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: put secret: %w", err)
		}
		if ev.Details == nil {
			ev.Details = map[string]any{}
		}
		ev.Details["version"] = version
		return tx.appendEvent(ev)
	})
	return version, err
}

// GetSecret returns the sealed secret env/name.
func (db *DB) GetSecret(ctx context.Context, env, name string) (*writ.Secret, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	s := &writ.Secret{Environment: env, Name: name}
	var t int64
	err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT version, sealed, updated_at, updated_by FROM secrets WHERE environment = ? AND name = ?"), env, name).
		Scan(&s.Version, &s.Sealed, &t, &s.UpdatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, writ.Errorf(writ.KindNotFound, "secret_not_found", "no secret %s/%s; an admin stores it with writ secret put %s/%s", env, name, env, name)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get secret: %w", err)
	}
	s.UpdatedAt = decTime(t)
	return s, nil
}

// ListSecrets lists the secrets, without their sealed values.
func (db *DB) ListSecrets(ctx context.Context) ([]*writ.Secret, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, "SELECT environment, name, version, updated_at, updated_by FROM secrets ORDER BY environment, name")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list secrets: %w", err)
	}
	defer rows.Close()
	var out []*writ.Secret
	for rows.Next() {
		s := &writ.Secret{}
		var t int64
		if err := rows.Scan(&s.Environment, &s.Name, &s.Version, &t, &s.UpdatedBy); err != nil {
			return nil, fmt.Errorf("sqlstore: list secrets: %w", err)
		}
		s.UpdatedAt = decTime(t)
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteSecret removes secret env/name with ev, in one transaction.
func (db *DB) DeleteSecret(ctx context.Context, env, name string, ev *writ.Event) error {
	if err := checkEvent("DeleteSecret", ev); err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		res, err := tx.exec("DELETE FROM secrets WHERE environment = ? AND name = ?", env, name)
		if err != nil {
			return fmt.Errorf("sqlstore: delete secret: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return writ.Errorf(writ.KindNotFound, "secret_not_found", "no secret %s/%s", env, name)
		}
		return tx.appendEvent(ev)
	})
}
