package auditlog_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
)

// The memStore as an auditlog.TreeStore.

func (s *memStore) LogLeaves(ctx context.Context, start, end int64, bodies bool) ([]auditlog.LoggedLeaf, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auditlog.LoggedLeaf
	for i := start; i < end && i < int64(len(s.logged)); i++ {
		e := auditlog.LoggedLeaf{Seq: i, Leaf: s.leaves[i]}
		if bodies {
			e.Body = slices.Clone(s.bodies[s.logged[i]])
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *memStore) HashRange(ctx context.Context, start, end int64) ([]auditlog.IndexedHash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auditlog.IndexedHash
	for x := start; x < end && x < int64(len(s.hashes)); x++ {
		out = append(out, auditlog.IndexedHash{Index: x, Hash: s.hashes[x]})
	}
	return out, nil
}

func (s *memStore) SignedRoots(ctx context.Context, after, upto int64) ([]auditlog.SignedRoot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auditlog.SignedRoot
	for _, n := range s.notes {
		lines := strings.Split(string(n), "\n")
		size, err := strconv.ParseInt(lines[1], 10, 64)
		if err != nil {
			return nil, err
		}
		root, err := base64.StdEncoding.DecodeString(lines[2])
		if err != nil {
			return nil, err
		}
		if size > after && size <= upto {
			out = append(out, auditlog.SignedRoot{Size: size, Root: toHash(root)})
		}
	}
	return out, nil
}

func (s *memStore) RepairLog(ctx context.Context, hashes []auditlog.HashRepair, leaves []auditlog.LeafRepair) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range hashes {
		if r.Old != nil && r.Index < int64(len(s.hashes)) && s.hashes[r.Index] == *r.Old {
			s.hashes[r.Index] = r.New
			n++
		}
	}
	for _, r := range leaves {
		if r.Seq < int64(len(s.leaves)) && s.leaves[r.Seq] == r.Old {
			s.leaves[r.Seq] = r.New
			n++
		}
	}
	return n, nil
}

// noTreeStore hides the memStore's TreeStore methods.
type noTreeStore struct{ auditlog.Store }

// treeLog returns a store holding n logged entries in checkpoints of
// batch, and a fresh Log on it that has seen only its latest checkpoint
// (a server started on the store).
func treeLog(t *testing.T, n, batch int) (*memStore, *auditlog.Log) {
	t.Helper()
	s := newMemStore()
	w := newTestLog(t, s, batch)
	s.add(events(0, n)...)
	if _, err := w.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, newTestLog(t, s, batch)
}

// damage overwrites stored hash x with h (what a flipped or zeroed row
// is).
func (s *memStore) damage(x int64, h auditlog.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hashes[x] = h
}

// checkAllProofs fetches inclusion proofs in the latest tree (a sample
// and those of near), and
// consistency proofs and tiles of every kind, and verifies each as a
// client does, against the signed checkpoint (and, for tiles, the tiles of
// want, the undamaged stored hashes).
func checkAllProofs(t *testing.T, s *memStore, l *auditlog.Log, want []auditlog.Hash, near ...int64) {
	t.Helper()
	ctx := context.Background()
	_, v := testKeys(t)
	msg, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := auditlog.OpenCheckpoint(msg, v, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	es := s.entries()
	for i := range cp.Size {
		if i%(1+cp.Size/40) != 0 && !slices.Contains(near, i) && i != cp.Size-1 {
			continue // a sample: each costs a pass over the leaves while damaged
		}
		p, err := l.InclusionProof(ctx, i, cp.Size)
		if err != nil {
			t.Fatalf("inclusion proof of %d: %v", i, err)
		}
		if err := auditlog.CheckInclusion(p, cp, i, auditlog.LeafHash(es[i].Body)); err != nil {
			t.Fatalf("the served inclusion proof of entry %d does not verify: %v", i, err)
		}
	}
	// Older trees: their roots from the store's signed checkpoints.
	cps := openAll(t, s.checkpoints())
	for _, old := range cps {
		for _, i := range []int64{0, old.Size / 2, old.Size - 1} {
			p, err := l.InclusionProof(ctx, i, old.Size)
			if err != nil {
				t.Fatalf("inclusion proof of %d in %d: %v", i, old.Size, err)
			}
			if err := auditlog.CheckInclusion(p, old, i, auditlog.LeafHash(es[i].Body)); err != nil {
				t.Fatalf("the served inclusion proof of entry %d in tree %d does not verify: %v", i, old.Size, err)
			}
		}
		p, err := l.ConsistencyProof(ctx, old.Size, cp.Size)
		if err != nil {
			t.Fatalf("consistency proof %d → %d: %v", old.Size, cp.Size, err)
		}
		if err := auditlog.CheckConsistency(p, old, cp); err != nil {
			t.Fatalf("the served consistency proof %d → %d does not verify: %v", old.Size, cp.Size, err)
		}
	}
	// Tiles: every one the tree has, full and partial, as served against
	// the tiles of the undamaged hashes.
	good := tlog.HashReaderFunc(func(ix []int64) ([]auditlog.Hash, error) {
		out := make([]auditlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = want[x]
		}
		return out, nil
	})
	for level := 0; cp.Size>>(8*level) > 0; level++ {
		have := cp.Size >> (8 * level)
		for n := int64(0); n*auditlog.TileWidth < have; n++ {
			for _, w := range []int64{1, min(have-n*auditlog.TileWidth, auditlog.TileWidth)} {
				got, err := l.TileData(ctx, level, n, int(w))
				if err != nil {
					t.Fatalf("tile %d/%d.p/%d: %v", level, n, w, err)
				}
				exp, err := tlog.ReadTileData(tlog.Tile{H: auditlog.TileHeight, L: level, N: n, W: int(w)}, good)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, exp) {
					t.Fatalf("tile %d/%d.p/%d served with damaged hashes", level, n, w)
				}
			}
		}
	}
}

// TestCheckTreeRepairsStoredHashes: zeroed and flipped stored hashes
// (a leaf's row, an interior node, the right edge) are found by the
// check; every proof and tile served meanwhile — before the check, after
// it and after the repair — verifies; the repair restores the exact
// original rows.
func TestCheckTreeRepairsStoredHashes(t *testing.T) {
	ctx := context.Background()
	const n = 70000 // a level-2 tile's worth of levels, several chunks
	s, l := treeLog(t, n, 9000)
	orig := slices.Clone(s.hashes)
	origLeaves := slices.Clone(s.leaves)

	var flipped auditlog.Hash
	copy(flipped[:], orig[tlog.StoredHashIndex(3, 17)][:])
	flipped[5] ^= 0x40
	bad := map[int64]auditlog.Hash{
		tlog.StoredHashIndex(0, 4242):       {},      // a leaf's row, zeroed
		tlog.StoredHashIndex(3, 17):         flipped, // an interior node, one bit
		tlog.StoredHashIndex(16, 0):         {},      // the node of 65,536 entries
		tlog.StoredHashIndex(2, (n-1)>>2):   {},      // on the right edge
		tlog.StoredHashIndex(0, n-1):        {},      // the newest leaf
		tlog.StoredHashIndex(8, 200):        {},      // inside a level-1 tile
		tlog.StoredHashIndex(12, n>>12-1):   {},      // right edge, high
		tlog.StoredHashIndex(1, 30000>>1+1): {},
	}
	for x, h := range bad {
		s.damage(x, h)
	}

	// Before any check: the proofs' self-check finds the damage and the
	// proofs are computed from the leaves.
	if l.Damaged() {
		t.Fatal("Damaged before anything was read")
	}
	near := []int64{4241, 4242, 4243, 51200, 30002, 30003, 65535, 65536, n - 2}
	checkAllProofs(t, s, l, orig, near...)
	if !l.Damaged() {
		t.Fatal("no proof noticed the damage")
	}
	select {
	case <-l.TreeCheckWanted():
	default:
		t.Fatal("a failed self-check did not ask for a tree check")
	}

	rep, err := l.CheckTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for x := range bad {
		want = append(want, x)
	}
	slices.Sort(want)
	if rep.Size != n || rep.Hashes != len(bad) || !slices.Equal(rep.HashIndexes, want) || rep.Leaves != 0 ||
		rep.Unrepairable() || rep.Repairable() != len(bad) || rep.More {
		t.Fatalf("report %+v; want %d damaged hashes at %v, all repairable", rep, len(bad), want)
	}
	if !strings.Contains(rep.Message(), "8 stored audit log tree hashes differ") {
		t.Errorf("message %q", rep.Message())
	}
	// Found but not yet repaired: proofs read the re-derived values.
	checkAllProofs(t, s, l, orig, near...)

	changed, err := l.RepairTree(ctx, rep)
	if err != nil || changed != len(bad) {
		t.Fatalf("RepairTree = %d, %v; want %d", changed, err, len(bad))
	}
	if !slices.Equal(s.hashes, orig) || !slices.Equal(s.leaves, origLeaves) {
		t.Fatal("the repair did not restore the exact original rows")
	}
	if l.Damaged() {
		t.Fatal("still Damaged after a complete repair")
	}
	rep, err = l.CheckTree(ctx)
	if err != nil || rep.Damaged() {
		t.Fatalf("check after the repair: %+v, %v", rep, err)
	}
	checkAllProofs(t, s, l, orig)

	// The integrator builds on the repaired tree.
	s.add(events(n, n+10)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCheckTreeSmallTrees checks and repairs every stored hash of small
// trees of every shape, one at a time: the frontier arithmetic at each
// size.
func TestCheckTreeSmallTrees(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 2, 3, 5, 8, 13, 64, 255, 256, 257} {
		s, l := treeLog(t, n, 7)
		orig := slices.Clone(s.hashes)
		for x := range int64(len(orig)) {
			s.damage(x, auditlog.Hash{1})
			p, err := l.InclusionProof(ctx, int64(n-1), int64(n))
			if err != nil {
				t.Fatalf("size %d, hash %d: %v", n, x, err)
			}
			cp := latest(t, l)
			if err := auditlog.CheckInclusion(p, cp, int64(n-1), auditlog.LeafHash(event(n-1))); err != nil {
				t.Fatalf("size %d, hash %d damaged: the served proof does not verify: %v", n, x, err)
			}
			rep, err := l.CheckTree(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Hashes != 1 || rep.HashIndexes[0] != x || rep.Repairable() != 1 {
				t.Fatalf("size %d, hash %d damaged: report %+v", n, x, rep)
			}
			if _, err := l.RepairTree(ctx, rep); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.hashes, orig) {
				t.Fatalf("size %d, hash %d: not repaired", n, x)
			}
		}
	}
}

// TestCheckTreeDamagedLeaf: an entry whose bytes no longer hash to its
// logged leaf is reported and never "repaired" — its bytes are not those
// signed, and no inclusion proof is served for it — while a recorded leaf
// hash that is wrong next to bytes that reproduce the signed root is
// repaired.
func TestCheckTreeDamagedLeaf(t *testing.T) {
	ctx := context.Background()
	const n = 5000
	t.Run("altered bytes", func(t *testing.T) {
		s, l := treeLog(t, n, 1000)
		orig := s.snapshot()
		s.mu.Lock()
		s.bodies[s.logged[1234]] = []byte(`{"id":"forged"}`)
		s.mu.Unlock()
		s.damage(tlog.StoredHashIndex(4, 100), auditlog.Hash{}) // and a stored hash
		rep, err := l.CheckTree(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Altered != 1 || !slices.Equal(rep.AlteredEntries, []int64{1234}) || !rep.Unrepairable() ||
			rep.Hashes != 1 || rep.Repairable() != 1 || rep.Unreproduced != 0 {
			t.Fatalf("report %+v", rep)
		}
		if !strings.Contains(rep.Message(), "1 audit log entries (the first [1234]) are not those the log signed") {
			t.Errorf("message %q", rep.Message())
		}
		_, err = l.InclusionProof(ctx, 1234, n)
		if writ.ErrorCode(err) != "audit_entry_altered" {
			t.Fatalf("proof of the altered entry: %v; want audit_entry_altered", err)
		}
		if _, err := l.RepairTree(ctx, rep); err != nil {
			t.Fatal(err)
		}
		// The stored hash is back; the altered entry's leaf is untouched.
		if !slices.Equal(s.hashes, orig.hashes) || !slices.Equal(s.leaves, orig.leaves) {
			t.Fatal("the repair changed the wrong rows")
		}
		if !l.Damaged() {
			t.Fatal("an altered entry is not damage any more after a repair")
		}
		cp := latest(t, l)
		for _, i := range []int64{0, 1233, 1235, n - 1} {
			p, err := l.InclusionProof(ctx, i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := auditlog.CheckInclusion(p, cp, i, auditlog.LeafHash(event(int(i)))); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("wrong recorded leaf", func(t *testing.T) {
		s, l := treeLog(t, n, 1000)
		orig := s.snapshot()
		s.mu.Lock()
		s.leaves[77] = auditlog.Hash{7}
		s.mu.Unlock()
		s.damage(tlog.StoredHashIndex(0, 77), auditlog.Hash{7})
		rep, err := l.CheckTree(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Leaves != 1 || rep.LeafEntries[0] != 77 || rep.Altered != 0 || rep.Unrepairable() || rep.Repairable() != 2 {
			t.Fatalf("report %+v", rep)
		}
		if _, err := l.RepairTree(ctx, rep); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.hashes, orig.hashes) || !slices.Equal(s.leaves, orig.leaves) || l.Damaged() {
			t.Fatal("not repaired")
		}
	})
	t.Run("rewritten log", func(t *testing.T) {
		// Bytes and recorded leaf rewritten together: neither reproduces
		// the signed checkpoints. Reported; nothing repaired.
		s, l := treeLog(t, n, 1000)
		s.mu.Lock()
		s.bodies[s.logged[10]] = []byte(`{"id":"forged"}`)
		s.leaves[10] = auditlog.LeafHash(s.bodies[s.logged[10]])
		s.mu.Unlock()
		before := s.snapshot()
		rep, err := l.CheckTree(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Unreproduced == 0 || rep.FirstUnreproduced != 1000 || rep.Repairable() != 0 || !rep.Unrepairable() {
			t.Fatalf("report %+v", rep)
		}
		if _, err := l.RepairTree(ctx, rep); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.hashes, before.hashes) || !slices.Equal(s.leaves, before.leaves) {
			t.Fatal("a rewritten log was repaired")
		}
	})
}

// TestProofSelfCheck: the proofs and tiles a Log serves are checked
// against the signed tree before they leave it. With a damaged stored
// hash in their path and no check run, they still verify (computed from
// the leaves); a store that cannot be read by the leaves gets a refusal,
// never a wrong proof. This test fails if the self-check is removed.
func TestProofSelfCheck(t *testing.T) {
	ctx := context.Background()
	const n = 1000
	s, l := treeLog(t, n, 300)
	orig := slices.Clone(s.hashes)
	cp := latest(t, l)
	// Hashes entry 5's proof in the tree of n reads.
	for _, x := range []int64{tlog.StoredHashIndex(0, 4), tlog.StoredHashIndex(1, 3), tlog.StoredHashIndex(8, 2)} {
		s.damage(x, auditlog.Hash{})
	}
	p, err := l.InclusionProof(ctx, 5, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckInclusion(p, cp, 5, auditlog.LeafHash(event(5))); err != nil {
		t.Fatalf("the served proof does not verify: %v", err)
	}
	old := openAll(t, s.checkpoints())[0]
	tp, err := l.ConsistencyProof(ctx, old.Size, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckConsistency(tp, old, cp); err != nil {
		t.Fatalf("the served consistency proof does not verify: %v", err)
	}
	tile, err := l.TileData(ctx, 0, 0, auditlog.TileWidth)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tile[4*32:5*32], orig[tlog.StoredHashIndex(0, 4)][:]) {
		t.Fatal("the served tile holds the damaged hash")
	}

	// Without a way to compute from the leaves: refused, not wrong.
	plain := newTestLog(t, noTreeStore{s}, 300)
	_, err = plain.InclusionProof(ctx, 5, n)
	if writ.ErrorCode(err) != "audit_log_damaged" || writ.ErrorKind(err) != writ.KindUnavailable {
		t.Fatalf("proof over a damaged store without leaves: %v; want audit_log_damaged", err)
	}
	_, err = plain.TileData(ctx, 0, 0, auditlog.TileWidth)
	if writ.ErrorCode(err) != "audit_log_damaged" {
		t.Fatalf("tile over a damaged store without leaves: %v; want audit_log_damaged", err)
	}
	// Undamaged parts are served as before.
	if p, err = plain.InclusionProof(ctx, 600, n); err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckInclusion(p, cp, 600, auditlog.LeafHash(event(600))); err != nil {
		t.Fatal(err)
	}
}
