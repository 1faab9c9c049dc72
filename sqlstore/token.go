package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"github.com/writ-dev/writ"
)

const tokenCols = "id, human, hash, created_at, expires_at, created_by"

// CreateToken stores a human API token and ev, the event that records its
// creation, in one transaction. Only t.Hash, the SHA-256 of the token's
// secret, is stored. A zero t.CreatedAt is the commit time; a zero
// t.ExpiresAt means the token does not expire. A token id already stored
// gets a [writ.Error] with KindConflict and code "token_exists".
func (db *DB) CreateToken(ctx context.Context, t *writ.HumanToken, ev *writ.Event) error {
	if err := checkToken("CreateToken", t, ev); err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		return insertToken(tx, t, ev)
	})
}

// BootstrapToken is [DB.CreateToken] for the first token of an
// installation: when any token exists it writes nothing and returns a
// [writ.Error] with KindConflict and code "already_bootstrapped". The check
// and the insert are one transaction, so of two concurrent bootstraps one
// fails.
func (db *DB) BootstrapToken(ctx context.Context, t *writ.HumanToken, ev *writ.Event) error {
	if err := checkToken("BootstrapToken", t, ev); err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		var n int
		if err := tx.queryRow("SELECT COUNT(*) FROM (SELECT 1 FROM human_tokens LIMIT 1) AS t").Scan(&n); err != nil {
			return fmt.Errorf("sqlstore: bootstrap token: %w", err)
		}
		if n > 0 {
			return writ.Errorf(writ.KindConflict, "already_bootstrapped",
				"writ already has an API token; an admin creates more with writ token create")
		}
		return insertToken(tx, t, ev)
	})
}

func checkToken(op string, t *writ.HumanToken, ev *writ.Event) error {
	if t == nil {
		return fmt.Errorf("sqlstore: %s: nil token", op)
	}
	if t.ID == "" || t.Human == "" {
		return fmt.Errorf("sqlstore: %s: token needs an id and a human", op)
	}
	if len(t.Hash) != sha256.Size {
		// Also keeps a token's secret from being stored by mistake.
		return fmt.Errorf("sqlstore: %s: token hash is %d bytes, want a %d-byte SHA-256", op, len(t.Hash), sha256.Size)
	}
	return checkEvent(op, ev)
}

func insertToken(tx *wtx, t *writ.HumanToken, ev *writ.Event) error {
	createdAt := t.CreatedAt
	if createdAt.IsZero() {
		createdAt = tx.now
	}
	created, err := encTime("createdAt", createdAt)
	if err != nil {
		return err
	}
	expires, err := encOptTime("expiresAt", t.ExpiresAt)
	if err != nil {
		return err
	}
	_, err = tx.exec("INSERT INTO human_tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?)",
		t.ID, t.Human, t.Hash, created, expires, t.CreatedBy)
	if err != nil {
		if tx.db.d.uniqueViolation(err) {
			return writ.Errorf(writ.KindConflict, "token_exists", "token %s already exists", t.ID)
		}
		return fmt.Errorf("sqlstore: insert token: %w", err)
	}
	if err := tx.appendEvent(ev); err != nil {
		return err
	}
	t.CreatedAt = createdAt
	return nil
}

// GetToken returns the token with the given id, or a [writ.Error] with
// KindNotFound and code "token_not_found".
func (db *DB) GetToken(ctx context.Context, id string) (*writ.HumanToken, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	var (
		t       writ.HumanToken
		created int64
		expires sql.NullInt64
	)
	err := db.rdb.QueryRowContext(ctx, db.d.q("SELECT "+tokenCols+" FROM human_tokens WHERE id = ?"), id).
		Scan(&t.ID, &t.Human, &t.Hash, &created, &expires, &t.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, writ.Errorf(writ.KindNotFound, "token_not_found", "token %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get token: %w", err)
	}
	t.CreatedAt = decTime(created)
	t.ExpiresAt = decOptTime(expires)
	return &t, nil
}
