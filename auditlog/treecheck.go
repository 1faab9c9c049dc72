package auditlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// EventTreeRepaired is the type of the event recorded when stored tree
// hashes (or recorded leaf hashes) a check found damaged were rewritten
// with the values re-derived from the leaves (docs/design.md §4.6).
const EventTreeRepaired = "audit.tree.repaired"

// The alert codes of a damaged stored tree (docs/design.md §4.6).
const (
	// AlertTreeDamaged: stored tree hashes or recorded leaf hashes differ
	// from those re-derived from the entries' bytes, which reproduce every
	// signed checkpoint; they are repaired.
	AlertTreeDamaged = "audit_tree_damaged"
	// AlertEntriesAltered: entries' bytes are not those the log signed,
	// or the log does not reproduce a signed checkpoint; nothing is
	// repaired.
	AlertEntriesAltered = "audit_entries_altered"
)

// maxRepairs bounds the repairs one check keeps in memory; a check that
// finds more sets More, and the next check (after RepairTree) finds the
// rest.
const maxRepairs = 1 << 16

// maxListed is how many damaged indexes a report names.
const maxListed = 10

// TreeReport is the outcome of one [Log.CheckTree].
type TreeReport struct {
	// Size is how many entries were checked: the size of the latest
	// signed checkpoint when the check began.
	Size int64
	// Hashes counts the stored tree hashes that differ from those
	// re-derived from the leaves (or are missing); HashIndexes names the
	// first few (tlog stored-hash indexes).
	Hashes      int
	HashIndexes []int64
	// Leaves counts the entries whose recorded leaf hash is not
	// SHA-256(0x00 || their stored bytes); LeafEntries names the first
	// few (log indexes).
	Leaves      int
	LeafEntries []int64
	// Altered counts the entries whose stored bytes are not those the log
	// signed (a subset of Leaves, when the recorded leaves reproduce the
	// signed checkpoints and the bytes do not); AlteredEntries names the
	// first few. Nothing repairs them.
	Altered        int
	AlteredEntries []int64
	// Unreproduced counts the stored signed checkpoints that neither the
	// entries' bytes nor their recorded leaves reproduce, the smallest
	// being of size FirstUnreproduced. Nothing is repaired then.
	Unreproduced      int
	FirstUnreproduced int64
	// More is set when there was more to repair than one report holds:
	// check again after [Log.RepairTree].
	More bool

	hashFixes []HashRepair
	leafFixes []LeafRepair
	altered   map[int64]bool
}

// Damaged reports whether the check found anything wrong.
func (r *TreeReport) Damaged() bool {
	return r.Hashes > 0 || r.Leaves > 0 || r.Unreproduced > 0
}

// Repairable reports how many rows [Log.RepairTree] would rewrite: stored
// hashes and recorded leaves whose right values the signed checkpoints
// prove.
func (r *TreeReport) Repairable() int { return len(r.hashFixes) + len(r.leafFixes) }

// Unrepairable reports whether damage remains that no repair can undo:
// altered entries or a log that does not reproduce a signed checkpoint.
func (r *TreeReport) Unrepairable() bool { return r.Altered > 0 || r.Unreproduced > 0 }

// Message is one sentence for an operator: what the check found.
func (r *TreeReport) Message() string {
	switch {
	case !r.Damaged():
		return fmt.Sprintf("the audit log's %d entries reproduce their stored tree hashes and every signed checkpoint", r.Size)
	case r.Unreproduced > 0:
		return fmt.Sprintf("the audit log does not reproduce %d of its signed checkpoints (the first of size %d) from its entries' bytes or their recorded leaf hashes: entries were altered or removed; nothing was repaired — run writ audit verify",
			r.Unreproduced, r.FirstUnreproduced)
	case r.Altered > 0:
		s := fmt.Sprintf("the stored bytes of %d audit log entries (the first %v) are not those the log signed: they were altered after logging and cannot be repaired; their inclusion proofs are refused", r.Altered, r.AlteredEntries)
		if r.Hashes > 0 {
			s += fmt.Sprintf("; %d stored tree hashes are damaged too (the first at %v), repaired from the recorded leaves", r.Hashes, r.HashIndexes)
		}
		return s
	default:
		s := fmt.Sprintf("%d stored audit log tree hashes differ from those re-derived from the leaves (the first at stored-hash indexes %v)", r.Hashes, r.HashIndexes)
		if r.Leaves > 0 {
			s = fmt.Sprintf("%s and %d recorded leaf hashes from the entries' bytes (the first of entries %v)", s, r.Leaves, r.LeafEntries)
		}
		return s + "; the entries' bytes reproduce every signed checkpoint, so they are repaired from the leaves — proofs are computed from the leaves meanwhile"
	}
}

// treeScan is one pass over the log: the tree rebuilt from one source of
// leaves, compared with the stored hashes and signed roots.
type treeScan struct {
	hashes      int
	hashIndexes []int64
	hashFixes   []HashRepair
	leaves      int
	leafEntries []int64
	leafFixes   []LeafRepair
	altered     map[int64]bool
	roots       int
	firstRoot   int64
	more        bool
}

// CheckTree re-derives the stored tree from the leaves: it walks the
// logged entries of the latest signed checkpoint in order, scanChunk at a
// time, recomputes each entry's leaf hash from its stored bytes and every
// stored hash exactly as tlog writes it (keeping only the tree's right
// edge in memory, O(log n)), and compares them with the stored ones, and
// the roots with every stored signed checkpoint. A root the bytes do not
// reproduce makes it rebuild the tree once more from the recorded leaf
// hashes, to tell a damaged stored hash (repairable: the recorded leaves
// are the signed ones) from altered entries (not repairable).
//
// Damage the check finds changes how proofs are served at once: proofs
// read the re-derived values in place of the damaged rows, and inclusion
// proofs of altered entries are refused. A clean check clears what a
// failed proof self-check set. CheckTree and RepairTree are meant for one
// goroutine (the server's tree check loop); the stored tree they check is
// written only below the checked size, by RepairTree, so the integrator
// may run meanwhile. A check while no damage is known rests between chunks
// as long as it worked, so it takes at most about half a core.
func (l *Log) CheckTree(ctx context.Context) (*TreeReport, error) {
	ts, ok := l.store.(TreeStore)
	if !ok {
		return nil, errors.New("audit log: the store cannot be re-derived (it is not a TreeStore)")
	}
	latest, _, err := l.refresh(ctx)
	if err != nil {
		return nil, err
	}
	rep := &TreeReport{Size: latest.Size}
	byBody, err := l.scan(ctx, ts, latest, true)
	if err != nil {
		return nil, err
	}
	rep.Leaves, rep.LeafEntries = byBody.leaves, byBody.leafEntries
	switch {
	case byBody.roots == 0:
		// The bytes reproduce every signed root: each stored hash and
		// recorded leaf that differs is re-derived from them.
		rep.Hashes, rep.HashIndexes, rep.hashFixes, rep.leafFixes = byBody.hashes, byBody.hashIndexes, byBody.hashFixes, byBody.leafFixes
		rep.More = byBody.more
	case byBody.leaves > 0:
		byLeaf, err := l.scan(ctx, ts, latest, false)
		if err != nil {
			return nil, err
		}
		rep.Altered, rep.AlteredEntries, rep.altered = byBody.leaves, byBody.leafEntries, byBody.altered
		rep.Hashes, rep.HashIndexes = byLeaf.hashes, byLeaf.hashIndexes
		if byLeaf.roots == 0 {
			// The recorded leaves are the signed ones: the bytes were
			// altered; the stored hashes are repaired from the leaves.
			rep.hashFixes, rep.More = byLeaf.hashFixes, byLeaf.more
		} else {
			rep.Unreproduced, rep.FirstUnreproduced = byBody.roots, byBody.firstRoot
		}
	default:
		rep.Hashes, rep.HashIndexes = byBody.hashes, byBody.hashIndexes
		rep.Unreproduced, rep.FirstUnreproduced = byBody.roots, byBody.firstRoot
	}
	l.tree.mu.Lock()
	l.tree.damaged = rep.Damaged()
	l.tree.fixes, l.tree.altered = nil, rep.altered
	if len(rep.hashFixes) > 0 {
		l.tree.fixes = make(map[int64]Hash, len(rep.hashFixes))
		for _, f := range rep.hashFixes {
			l.tree.fixes[f.Index] = f.New
		}
	}
	l.tree.mu.Unlock()
	return rep, nil
}

// scan rebuilds the tree of latest from the leaves, SHA-256(0x00 || bytes)
// when fromBodies, else the recorded leaf hashes.
func (l *Log) scan(ctx context.Context, ts TreeStore, latest Checkpoint, fromBodies bool) (*treeScan, error) {
	s := &treeScan{}
	var f frontier
	for a := int64(0); a < latest.Size; a += scanChunk {
		began := time.Now()
		b := min(a+scanChunk, latest.Size)
		ls, err := ts.LogLeaves(ctx, a, b, true)
		if err != nil {
			return nil, fmt.Errorf("audit log: check: read entries [%d, %d): %w", a, b, err)
		}
		if err := checkLeaves(ls, a, b); err != nil {
			return nil, err
		}
		stored, err := ts.HashRange(ctx, tlog.StoredHashIndex(0, a), tlog.StoredHashIndex(0, b))
		if err != nil {
			return nil, fmt.Errorf("audit log: check: read tree hashes of entries [%d, %d): %w", a, b, err)
		}
		roots, err := ts.SignedRoots(ctx, a, b)
		if err != nil {
			return nil, fmt.Errorf("audit log: check: read checkpoints of sizes (%d, %d]: %w", a, b, err)
		}
		if b == latest.Size {
			roots = append(roots, SignedRoot{Size: latest.Size, Root: latest.Root})
		}
		p := 0 // next in stored
		for _, e := range ls {
			leaf := tlog.RecordHash(e.Body)
			if leaf != e.Leaf {
				if s.leaves < maxListed {
					s.leafEntries = append(s.leafEntries, e.Seq)
				}
				s.leaves++
				if fromBodies {
					if len(s.leafFixes) < maxRepairs {
						s.leafFixes = append(s.leafFixes, LeafRepair{Seq: e.Seq, Old: e.Leaf, New: leaf})
					} else {
						s.more = true
					}
					if s.altered == nil {
						s.altered = map[int64]bool{}
					}
					if len(s.altered) < maxRepairs {
						s.altered[e.Seq] = true
					}
				}
			}
			if !fromBodies {
				leaf = e.Leaf
			}
			hs, err := tlog.StoredHashesForRecordHash(e.Seq, leaf, &f)
			if err != nil {
				return nil, fmt.Errorf("audit log: check: hashes of entry %d: %w", e.Seq, err)
			}
			base := tlog.StoredHashIndex(0, e.Seq)
			for k, h := range hs {
				x := base + int64(k)
				level, n := tlog.SplitStoredHashIndex(x)
				f.set(level, n, h)
				for p < len(stored) && stored[p].Index < x {
					p++ // not expected: the range holds only these indexes
				}
				var old *Hash
				if p < len(stored) && stored[p].Index == x {
					if stored[p].Hash == h {
						p++
						continue
					}
					old = &stored[p].Hash
					p++
				}
				if s.hashes < maxListed {
					s.hashIndexes = append(s.hashIndexes, x)
				}
				s.hashes++
				if len(s.hashFixes) < maxRepairs {
					s.hashFixes = append(s.hashFixes, HashRepair{Index: x, Old: old, New: h})
				} else {
					s.more = true
				}
			}
			size := e.Seq + 1
			for len(roots) > 0 && roots[0].Size <= size {
				if roots[0].Size == size {
					th, err := tlog.TreeHash(size, &f)
					if err != nil {
						return nil, fmt.Errorf("audit log: check: root of %d: %w", size, err)
					}
					if th != roots[0].Root {
						if s.roots == 0 {
							s.firstRoot = size
						}
						s.roots++
					}
				}
				roots = roots[1:]
			}
		}
		// A routine check shares the machine: it rests as long as it
		// worked (half a core at most). One asked for by a failed proof
		// runs at full speed.
		if !l.Damaged() {
			rest := time.NewTimer(time.Since(began))
			select {
			case <-ctx.Done():
				rest.Stop()
				return nil, ctx.Err()
			case <-rest.C:
			}
		}
	}
	return s, nil
}

// RepairTree rewrites the rows rep found damaged with the values it
// re-derived from the leaves, in transactions of at most scanChunk rows,
// each row only if it still holds the damaged value. It returns how many
// rows changed. Once every repair rep holds is written and rep found no
// damage a repair cannot undo, proofs read the stored tree again.
func (l *Log) RepairTree(ctx context.Context, rep *TreeReport) (int, error) {
	ts, ok := l.store.(TreeStore)
	if !ok {
		return 0, errors.New("audit log: the store cannot be repaired (it is not a TreeStore)")
	}
	total := 0
	hs, ls := rep.hashFixes, rep.leafFixes
	for len(hs) > 0 || len(ls) > 0 {
		nh := min(len(hs), scanChunk)
		nl := min(len(ls), scanChunk-nh)
		n, err := ts.RepairLog(ctx, hs[:nh], ls[:nl])
		total += n
		if err != nil {
			return total, fmt.Errorf("audit log: repair the stored tree: %w", err)
		}
		hs, ls = hs[nh:], ls[nl:]
	}
	if !rep.More && !rep.Unrepairable() {
		l.tree.mu.Lock()
		l.tree.damaged, l.tree.fixes = false, nil
		l.tree.mu.Unlock()
	}
	return total, nil
}

// altered reports whether a check found entry i's bytes altered.
func (l *Log) altered(i int64) bool {
	l.tree.mu.Lock()
	defer l.tree.mu.Unlock()
	return l.tree.altered[i]
}
