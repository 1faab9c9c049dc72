package server

import (
	"context"

	"github.com/writ-dev/writ/notify"
	"github.com/writ-dev/writ/sqlstore"
)

// notifyStore adapts the SQL store to the webhook notifier's Store.
type notifyStore struct{ db *sqlstore.DB }

func (s notifyStore) Events(ctx context.Context, after int64, limit int) ([]notify.Event, error) {
	evs, err := s.db.Events(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]notify.Event, len(evs))
	for i, e := range evs {
		out[i] = notify.Event{Pos: e.Pos, ID: e.ID, Type: e.Type, Body: e.Body}
	}
	return out, nil
}

func (s notifyStore) StartNotifyCursor(ctx context.Context, name string) (int64, error) {
	return s.db.StartNotifyCursor(ctx, name)
}

func (s notifyStore) SetNotifyCursor(ctx context.Context, name string, pos int64) error {
	return s.db.SetNotifyCursor(ctx, name, pos)
}
