package sqlstore

import (
	"context"
	"fmt"

	"github.com/writ-dev/writ"
)

// AppendArtifactEvent writes ev and files it under each of refs (an
// artifact digest, the kind of event and the environment), in one
// transaction.
func (db *DB) AppendArtifactEvent(ctx context.Context, ev *writ.Event, refs ...writ.ArtifactRef) error {
	if err := checkEvent("AppendArtifactEvent", ev); err != nil {
		return err
	}
	return db.write(ctx, func(tx *wtx) error {
		if err := tx.appendEvent(ev); err != nil {
			return err
		}
		for _, r := range refs {
			if r.Digest == "" || r.Kind == "" {
				return writ.Errorf(writ.KindInvalid, "invalid_artifact", "an artifact reference needs a digest and a kind")
			}
			if _, err := tx.exec("INSERT INTO artifact_events (digest, kind, environment, event) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
				r.Digest, r.Kind, r.Environment, ev.ID); err != nil {
				return fmt.Errorf("sqlstore: artifact event: %w", err)
			}
		}
		return nil
	})
}

// ArtifactEntries returns the events filed under digest, logged or not,
// in commit order; kind, when not empty, keeps only events of that kind.
func (db *DB) ArtifactEntries(ctx context.Context, digest, kind string) ([]writ.LogEntry, error) {
	if kind == "" {
		return db.logEntries(ctx, "id IN (SELECT event FROM artifact_events WHERE digest = ?) ORDER BY pos", digest)
	}
	return db.logEntries(ctx, "id IN (SELECT event FROM artifact_events WHERE digest = ? AND kind = ?) ORDER BY pos", digest, kind)
}
