package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/writ-dev/writ"
)

// AddSigningKey makes k the current key of its kind, in one transaction
// with ev: the previous current key, if any, is retired now and stays
// published until now+publishFor (the longest lifetime of anything it
// signed, plus leeway). Adding the key that is already current is a no-op
// that writes nothing (so every replica may register its key at start-up);
// adding a key that was retired before is refused (KindConflict,
// "key_retired").
func (db *DB) AddSigningKey(ctx context.Context, k *writ.SigningKey, publishFor time.Duration, ev *writ.Event) (added bool, err error) {
	if k == nil || k.ID == "" || len(k.Public) == 0 || k.Kind == "" {
		return false, fmt.Errorf("sqlstore: AddSigningKey: kind, id and public key are required")
	}
	if err := checkEvent("AddSigningKey", ev); err != nil {
		return false, err
	}
	err = db.write(ctx, func(tx *wtx) error {
		added = false
		var retired sql.NullInt64
		err := tx.queryRow("SELECT retired_at FROM signing_keys WHERE kind = ? AND id = ?", k.Kind, k.ID).Scan(&retired)
		switch {
		case err == nil && !retired.Valid:
			return nil // already current
		case err == nil:
			return writ.Errorf(writ.KindConflict, "key_retired", "%s key %s was retired; a retired key never comes back: generate a new one", k.Kind, k.ID)
		case err != sql.ErrNoRows:
			return fmt.Errorf("sqlstore: add signing key: %w", err)
		}
		now := tx.now.UnixNano()
		if _, err := tx.exec("UPDATE signing_keys SET retired_at = ?, not_after = ? WHERE kind = ? AND retired_at IS NULL",
			now, tx.now.Add(publishFor).UnixNano(), k.Kind); err != nil {
			return fmt.Errorf("sqlstore: retire signing key: %w", err)
		}
		if _, err := tx.exec("INSERT INTO signing_keys (kind, id, public, created_at) VALUES (?, ?, ?, ?)",
			k.Kind, k.ID, k.Public, now); err != nil {
			return fmt.Errorf("sqlstore: add signing key: %w", err)
		}
		if err := tx.appendEvent(ev); err != nil {
			return err
		}
		added = true
		return nil
	})
	return added, err
}

// SigningKeys returns the keys of kind that are current or still published
// at now, the current one first.
func (db *DB) SigningKeys(ctx context.Context, kind string, now time.Time) ([]*writ.SigningKey, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT id, public, created_at, retired_at, not_after FROM signing_keys WHERE kind = ? AND (retired_at IS NULL OR not_after > ?) ORDER BY retired_at IS NOT NULL, created_at DESC"), kind, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sqlstore: signing keys: %w", err)
	}
	defer rows.Close()
	var out []*writ.SigningKey
	for rows.Next() {
		k := &writ.SigningKey{Kind: kind}
		var created int64
		var retired, notAfter sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Public, &created, &retired, &notAfter); err != nil {
			return nil, fmt.Errorf("sqlstore: signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt, k.NotAfter = decTime(created), decOptTime(retired), decOptTime(notAfter)
		out = append(out, k)
	}
	return out, rows.Err()
}

// UseProof records the single use of a DPoP proof (jkt, jti), remembered
// until expiresAt. A proof already used gets KindUnauthenticated with code
// "dpop_replay" and nothing is written; so does a proof whose expiresAt is
// at or before the DPoP replay horizon ([DB.PruneProofs]), whose use could
// no longer be told apart from a replay. Proofs are not audit events: the
// decision they authorize is.
func (db *DB) UseProof(ctx context.Context, jkt, jti string, expiresAt time.Time) error {
	if jkt == "" || jti == "" || len(jti) > 256 {
		return writ.Errorf(writ.KindUnauthenticated, "invalid_dpop_proof", "the DPoP proof needs a jti of at most 256 characters")
	}
	exp, err := encTime("expiresAt", expiresAt)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		// One statement on the hot path (every DPoP request): the insert
		// happens only when the id is new and its expiry is after the
		// horizon, read in this transaction. Only a refusal looks closer.
		res, err := tx.exec(useProofSQL, jkt, jti, exp, exp)
		if err != nil {
			return fmt.Errorf("sqlstore: use dpop proof: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("sqlstore: use dpop proof: %w", err)
		} else if n == 1 {
			return nil
		}
		h, err := tx.horizon(HorizonDPoP) // fails closed when the row is missing
		if err != nil {
			return err
		}
		if exp <= h {
			return writ.Errorf(writ.KindUnauthenticated, "dpop_replay",
				"this DPoP proof is remembered only until %s, at or before the replay horizon %s, so its use cannot be told from a replay; make a fresh proof (new jti, current iat) for every request, and check this client's clock",
				expiresAt.UTC().Format(time.RFC3339), decOptHorizon(h).Format(time.RFC3339))
		}
		return writ.Errorf(writ.KindUnauthenticated, "dpop_replay", "this DPoP proof was already used; make a fresh proof (new jti) for every request")
	})
}

// useProofSQL inserts a proof's (jkt, jti, expires_at) unless the pair is
// stored or expires_at is at or before the DPoP replay horizon (a missing
// horizon row inserts nothing either). The casts give PostgreSQL the
// parameters' types, which an INSERT … SELECT does not infer.
const useProofSQL = "INSERT INTO dpop_proofs (jkt, jti, expires_at) SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT)" +
	" WHERE CAST(? AS BIGINT) > (SELECT horizon FROM replay_horizon WHERE kind = '" + HorizonDPoP + "')" +
	" ON CONFLICT (jkt, jti) DO NOTHING"

// PruneProofs forgets the DPoP proofs that expired more than keep before
// the database's clock (as [DB.PruneTriggers]), and in the same
// transaction raises the DPoP replay horizon to that time, so a forgotten
// proof stays refused by [DB.UseProof].
func (db *DB) PruneProofs(ctx context.Context, keep time.Duration) (int64, error) {
	if err := checkPrune("PruneProofs", keep); err != nil {
		return 0, err
	}
	var n int64
	err := db.write(ctx, func(tx *wtx) error {
		var err error
		n, err = tx.prune(HorizonDPoP, keep, "dpop_proofs")
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// AppendEvent writes one event that records no other change (a token
// minted, a decision taken), acknowledged once committed.
func (db *DB) AppendEvent(ctx context.Context, ev *writ.Event) error {
	if err := checkEvent("AppendEvent", ev); err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error { return tx.appendEvent(ev) })
}
