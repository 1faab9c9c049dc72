package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/writ-dev/writ"
)

// StoredEvent is one event as the outbox holds it. Pos is its position in
// commit order (increasing, possibly with gaps); Body is the exact bytes
// [writ.Event.Marshal] gave when it was stored.
type StoredEvent struct {
	Pos  int64
	ID   string
	Type string
	Run  writ.RunID
	Body []byte
}

// Events returns up to limit events (0 means 100, at most 1000) stored
// after position after, in commit order. An event at a position is visible
// only once committed, and no later commit puts an event before it: the
// one writer assigns positions in commit order, so a reader that resumes
// after the last position it saw never misses one.
func (db *DB) Events(ctx context.Context, after int64, limit int) ([]StoredEvent, error) {
	if db.isClosed() {
		return nil, ErrClosed
	}
	switch {
	case limit <= 0:
		limit = defaultListLimit
	case limit > maxListLimit:
		limit = maxListLimit
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q("SELECT pos, id, type, run, body FROM outbox WHERE pos > ? ORDER BY pos LIMIT ?"), after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: events: %w", err)
	}
	defer rows.Close()
	evs := []StoredEvent{}
	for rows.Next() {
		var (
			e   StoredEvent
			run sql.NullString
		)
		if err := rows.Scan(&e.Pos, &e.ID, &e.Type, &run, &e.Body); err != nil {
			return nil, fmt.Errorf("sqlstore: events: %w", err)
		}
		e.Run = writ.RunID(run.String)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: events: %w", err)
	}
	return evs, nil
}

// EventsOfTypes calls fn with every stored event whose type is one of
// types, in commit order, decoded from the outbox's bytes. It reads the
// whole outbox (there is no index by type): for start-up work such as the
// git gateway's reconciliation of its refs with the log, not for requests.
func (db *DB) EventsOfTypes(ctx context.Context, types []string, fn func(*writ.Event) error) error {
	if db.isClosed() {
		return ErrClosed
	}
	if len(types) == 0 {
		return nil
	}
	q := "SELECT body FROM outbox WHERE type IN (?" + strings.Repeat(", ?", len(types)-1) + ") ORDER BY pos"
	args := make([]any, len(types))
	for i, t := range types {
		args[i] = t
	}
	rows, err := db.rdb.QueryContext(ctx, db.d.q(q), args...)
	if err != nil {
		return fmt.Errorf("sqlstore: events of types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return fmt.Errorf("sqlstore: events of types: %w", err)
		}
		var ev writ.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			return fmt.Errorf("sqlstore: events of types: decoding an event: %w", err)
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: events of types: %w", err)
	}
	return nil
}
