package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

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
