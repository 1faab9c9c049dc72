package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/builder/gate"
	"github.com/writ-dev/writ/sqlstore"
)

// attestLoop signs run attestations. It runs on the replica that holds the
// sequencer lock (as the webhook notifier does), so one replica signs. It
// walks the outbox after its cursor; at each run end event it waits until
// the event is in a signed checkpoint, then signs the run's attestation
// (with the checkpoint and the inclusion proof of that event), records it
// as an attestation.signed event and moves the cursor past it.
func (s *Server) attestLoop(ctx context.Context) {
	for {
		busy, pending, err := s.attester.Batch(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "run attestations", slog.Any("error", err))
		}
		wait := time.Second
		switch {
		case busy && err == nil:
			wait = 0
		case pending:
			wait = 200 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// attestStore adapts the SQL store to the run attester's Store: the
// outbox events it walks, without their bodies.
type attestStore struct{ *sqlstore.DB }

func (a attestStore) Outbox(ctx context.Context, after int64, limit int) ([]gate.Outboxed, error) {
	evs, err := a.Events(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]gate.Outboxed, len(evs))
	for i, e := range evs {
		out[i] = gate.Outboxed{Pos: e.Pos, ID: e.ID, Type: e.Type, Run: e.Run}
	}
	return out, nil
}

// attestPublicPEM is the attest key's public half, PEM (nil if it cannot
// be encoded, which a loaded P-256 key always can).
func attestPublicPEM(k *Keys) []byte {
	b, _ := attest.MarshalPublicKey(&k.Attest.PublicKey)
	return b
}
