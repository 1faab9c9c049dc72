package server

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/sqlstore"
)

// auditStore adapts the SQL store to the audit log integrator's Store: the
// store speaks plain [32]byte hashes and outbox positions, the log tlog's
// types.
type auditStore struct{ db *sqlstore.DB }

func (a auditStore) Unsequenced(ctx context.Context, limit int) ([]auditlog.Pending, error) {
	evs, err := a.db.Unsequenced(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]auditlog.Pending, len(evs))
	for i, e := range evs {
		out[i] = auditlog.Pending{Pos: e.Pos, Body: e.Body}
	}
	return out, nil
}

func (a auditStore) LogSize(ctx context.Context) (int64, error) { return a.db.LogSize(ctx) }

func (a auditStore) ReadHashes(ctx context.Context, indexes []int64) ([]auditlog.Hash, error) {
	hs, err := a.db.ReadLogHashes(ctx, indexes)
	if err != nil {
		return nil, err
	}
	out := make([]auditlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = auditlog.Hash(h)
	}
	return out, nil
}

func (a auditStore) AppendLog(ctx context.Context, from int64, pos []int64, hashes map[int64]auditlog.Hash, size int64, root auditlog.Hash, signedNote []byte) error {
	leaves := make([][32]byte, len(pos))
	for i := range pos {
		h, ok := hashes[tlog.StoredHashIndex(0, from+int64(i))]
		if !ok {
			return fmt.Errorf("audit log: no leaf hash for entry %d", from+int64(i))
		}
		leaves[i] = h
	}
	hm := make(map[int64][32]byte, len(hashes))
	for k, v := range hashes {
		hm[k] = v
	}
	return a.db.AppendLog(ctx, from, pos, leaves, hm, size, root, signedNote)
}

func (a auditStore) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	return a.db.LatestCheckpoint(ctx)
}
