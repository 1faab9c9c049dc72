package auditlog_test

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
)

// memStore is an in-memory auditlog.Store with the exact semantics the
// interface documents, strict about what AppendLog is given: it is the
// fake the sqlstore implementation must behave like.
type memStore struct {
	mu sync.Mutex

	bodies     [][]byte // by outbox position
	seq        []int64  // by outbox position; -1 while unsequenced
	first      int      // no position before it is unsequenced
	logged     []int64  // outbox positions, by log index
	leaves     []auditlog.Hash
	hashes     []auditlog.Hash // stored hashes, dense, by tlog.StoredHashIndex
	notes      [][]byte        // signed checkpoints, oldest first
	keepBodies bool            // false: drop a body once it is logged (benchmarks)

	failAppend error // when set, AppendLog returns it and changes nothing
	appends    int   // successful AppendLog calls
}

func newMemStore() *memStore { return &memStore{keepBodies: true} }

// add commits events (the outbox side of a state change).
func (s *memStore) add(bodies ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bodies {
		s.bodies = append(s.bodies, b)
		s.seq = append(s.seq, -1)
	}
}

func (s *memStore) Unsequenced(ctx context.Context, limit int) ([]auditlog.Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auditlog.Pending
	for p := s.first; p < len(s.seq) && len(out) < limit; p++ {
		if s.seq[p] < 0 {
			out = append(out, auditlog.Pending{Pos: int64(p), Body: s.bodies[p]})
		}
	}
	return out, nil
}

func (s *memStore) LogSize(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.logged)), nil
}

func (s *memStore) ReadHashes(ctx context.Context, indexes []int64) ([]auditlog.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]auditlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("memstore: tree hash %d is not stored", x)
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

func (s *memStore) AppendLog(ctx context.Context, from int64, pos []int64, hashes map[int64]auditlog.Hash, size int64, root auditlog.Hash, signedNote []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAppend != nil {
		return s.failAppend
	}
	// Check everything before changing anything: one transaction.
	if from != int64(len(s.logged)) {
		return writ.Errorf(writ.KindConflict, "log_moved", "the log has %d entries, not %d", len(s.logged), from)
	}
	if size != from+int64(len(pos)) || len(pos) == 0 {
		return fmt.Errorf("memstore: from %d + %d positions != size %d", from, len(pos), size)
	}
	lo, hi := tlog.StoredHashIndex(0, from), tlog.StoredHashIndex(0, size)
	if int64(len(s.hashes)) != lo {
		return fmt.Errorf("memstore: %d hashes stored, want %d", len(s.hashes), lo)
	}
	if int64(len(hashes)) != hi-lo {
		return fmt.Errorf("memstore: %d hashes given, want %d (indexes [%d, %d))", len(hashes), hi-lo, lo, hi)
	}
	for x := lo; x < hi; x++ {
		if _, ok := hashes[x]; !ok {
			return fmt.Errorf("memstore: hash %d missing", x)
		}
	}
	seen := map[int64]bool{}
	for _, p := range pos {
		if p < 0 || p >= int64(len(s.seq)) || s.seq[p] >= 0 || seen[p] {
			return fmt.Errorf("memstore: outbox position %d is missing, repeated or already logged", p)
		}
		seen[p] = true
	}
	if len(signedNote) == 0 {
		return fmt.Errorf("memstore: no checkpoint note")
	}
	for i, p := range pos {
		s.seq[p] = from + int64(i)
		s.logged = append(s.logged, p)
		s.leaves = append(s.leaves, hashes[tlog.StoredHashIndex(0, from+int64(i))])
		if !s.keepBodies {
			s.bodies[p] = nil
		}
	}
	for s.first < len(s.seq) && s.seq[s.first] >= 0 {
		s.first++
	}
	for x := lo; x < hi; x++ {
		s.hashes = append(s.hashes, hashes[x])
	}
	s.notes = append(s.notes, slices.Clone(signedNote))
	s.appends++
	return nil
}

func (s *memStore) LatestCheckpoint(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.notes) == 0 {
		return nil, nil
	}
	return s.notes[len(s.notes)-1], nil
}

// entries returns the logged entries as the read API serves them: bytes
// and the leaf hash recorded at logging time.
func (s *memStore) entries() []auditlog.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]auditlog.Entry, len(s.logged))
	for i, p := range s.logged {
		leaf := s.leaves[i]
		out[i] = auditlog.Entry{Seq: int64(i), Body: slices.Clone(s.bodies[p]), LeafHash: &leaf}
	}
	return out
}

// checkpoints returns every stored signed checkpoint, oldest first.
func (s *memStore) checkpoints() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.notes)
}

// snapshot and restore stand for a database backup and its restore.
func (s *memStore) snapshot() *memStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &memStore{
		bodies: slices.Clone(s.bodies), seq: slices.Clone(s.seq), first: s.first,
		logged: slices.Clone(s.logged), leaves: slices.Clone(s.leaves), hashes: slices.Clone(s.hashes),
		notes: slices.Clone(s.notes), keepBodies: s.keepBodies,
	}
}

func (s *memStore) restore(from *memStore) {
	c := from.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies, s.seq, s.first, s.logged, s.leaves, s.hashes, s.notes = c.bodies, c.seq, c.first, c.logged, c.leaves, c.hashes, c.notes
}
