package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
)

// TreeStore is what re-deriving the stored tree from the leaves needs
// beyond [Store]: reading entries and stored hashes by range, the stored
// signed roots, and repairing rows. A Store that also implements it gets
// [Log.CheckTree] and [Log.RepairTree], and proofs computed from the
// leaves when the stored hashes fail a proof's self-check; without it, a
// proof that fails its self-check is refused.
type TreeStore interface {
	// LogLeaves returns the logged entries with index in [start, end),
	// in index order: the leaf hash recorded when each was logged and,
	// when bodies is true, its exact stored bytes.
	LogLeaves(ctx context.Context, start, end int64, bodies bool) ([]LoggedLeaf, error)
	// HashRange returns the stored hashes whose stored-hash index is in
	// [start, end), in index order; an index with no stored hash is
	// absent.
	HashRange(ctx context.Context, start, end int64) ([]IndexedHash, error)
	// SignedRoots returns the roots of the stored signed checkpoints
	// whose size is in (after, upto], by size.
	SignedRoots(ctx context.Context, after, upto int64) ([]SignedRoot, error)
	// RepairLog, in one transaction, sets each stored hash hashes[i]
	// (inserting it when Old is nil) and each entry's recorded leaf
	// leaves[i] to New, but only where the stored value is still Old. It
	// returns how many rows it changed.
	RepairLog(ctx context.Context, hashes []HashRepair, leaves []LeafRepair) (int, error)
}

// LoggedLeaf is one logged entry as [TreeStore.LogLeaves] returns it.
type LoggedLeaf struct {
	Seq  int64
	Leaf Hash   // recorded when it was logged
	Body []byte // nil unless asked for
}

// IndexedHash is a stored tree hash and its tlog stored-hash index.
type IndexedHash struct {
	Index int64
	Hash  Hash
}

// SignedRoot is the size and root of a stored signed checkpoint.
type SignedRoot struct {
	Size int64
	Root Hash
}

// HashRepair sets stored hash Index from Old (nil: missing) to New.
type HashRepair struct {
	Index int64
	Old   *Hash
	New   Hash
}

// LeafRepair sets the recorded leaf of entry Seq from Old to New.
type LeafRepair struct {
	Seq      int64
	Old, New Hash
}

// errProofCheck marks a proof (or tile) that did not check against the
// signed tree: the hashes it was computed from are damaged.
var errProofCheck = errors.New("audit log: a proof computed from the stored tree hashes does not check against the signed checkpoint")

// recentRoots is how many of the newest published checkpoints a Log keeps
// to check proofs against without reading or recomputing a root.
const recentRoots = 64

// treeState is what a Log knows about the health of its stored tree.
type treeState struct {
	mu sync.Mutex
	// damaged is set when a proof failed its self-check or a check found
	// damage, and cleared by a clean check or a complete repair.
	damaged bool
	// fixes are stored hashes a check found wrong, with the values
	// re-derived from the leaves; proofs read them instead of the rows
	// until RepairTree has written them.
	fixes map[int64]Hash
	// altered are entries whose stored bytes are not what was signed: no
	// inclusion proof is served for them.
	altered map[int64]bool
	// roots are the newest published checkpoints, by size.
	roots map[int64]Hash
	order []int64

	wanted chan struct{} // buffered(1): a check is wanted
	slow   sync.Mutex    // one computation from the leaves at a time

	tileMu sync.Mutex
	tiles  map[tileAt][]byte // tiles authenticated against a signed root, the widest of each place
}

// maxCachedTiles bounds the authenticated tiles a Log keeps (each at most
// 8 KiB). Tiles are immutable for their width, so a cached one stays right.
const maxCachedTiles = 512

// TreeCheckWanted returns a channel that receives when a proof failed its
// self-check (or the integrator found the stored tree does not reproduce
// its checkpoint): whoever runs [Log.CheckTree] should run it now.
func (l *Log) TreeCheckWanted() <-chan struct{} { return l.tree.wanted }

// wantCheck marks the tree damaged and asks for a check.
func (l *Log) wantCheck() {
	l.tree.mu.Lock()
	l.tree.damaged = true
	l.tree.mu.Unlock()
	select {
	case l.tree.wanted <- struct{}{}:
	default:
	}
}

// Damaged reports whether the Log currently believes its stored tree is
// damaged: a proof failed its self-check, or the last check found damage
// not yet repaired.
func (l *Log) Damaged() bool {
	l.tree.mu.Lock()
	defer l.tree.mu.Unlock()
	return l.tree.damaged
}

// rememberRoot records a published checkpoint's root (l.mu held).
func (l *Log) rememberRoot(cp Checkpoint) {
	t := &l.tree
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.roots == nil {
		t.roots = map[int64]Hash{}
	}
	if _, ok := t.roots[cp.Size]; ok {
		return
	}
	t.roots[cp.Size] = cp.Root
	t.order = append(t.order, cp.Size)
	if len(t.order) > recentRoots {
		delete(t.roots, t.order[0])
		t.order = slices.Delete(t.order, 0, 1)
	}
}

// knownRoot returns the signed root of size when it is one of the newest
// published checkpoints.
func (l *Log) knownRoot(size int64) (Hash, bool) {
	l.tree.mu.Lock()
	defer l.tree.mu.Unlock()
	h, ok := l.tree.roots[size]
	return h, ok
}

// storedReader reads stored hashes, with the values a check re-derived in
// place of the rows it found wrong.
func (l *Log) storedReader(ctx context.Context) tlog.HashReader {
	l.tree.mu.Lock()
	fixes := l.tree.fixes
	l.tree.mu.Unlock()
	return tlog.HashReaderFunc(func(indexes []int64) ([]Hash, error) {
		if len(fixes) == 0 {
			return readHashes(ctx, l.store, indexes)
		}
		// Rows a check found wrong (or missing) are not read.
		out := make([]Hash, len(indexes))
		var miss []int64
		var at []int
		for i, x := range indexes {
			if h, ok := fixes[x]; ok {
				out[i] = h
			} else {
				miss, at = append(miss, x), append(at, i)
			}
		}
		if len(miss) > 0 {
			hs, err := readHashes(ctx, l.store, miss)
			if err != nil {
				return nil, err
			}
			for k, h := range hs {
				out[at[k]] = h
			}
		}
		return out, nil
	})
}

// batched runs f twice: first against a reader that only records the
// indexes asked for, then, after reading all of them from r in one call,
// against those hashes. tlog's functions ask for the same indexes
// whatever the hashes are, so a proof and its self-check cost one read.
// f must not judge the hashes it reads: its first run sees zeros.
func batched(r tlog.HashReader, f func(tlog.HashReader) error) error {
	var want []int64
	rec := tlog.HashReaderFunc(func(ix []int64) ([]Hash, error) {
		want = append(want, ix...)
		return make([]Hash, len(ix)), nil
	})
	if err := f(rec); err != nil {
		return err
	}
	hs, err := r.ReadHashes(want)
	if err != nil {
		return err
	}
	if len(hs) != len(want) {
		return fmt.Errorf("audit log: read tree hashes: asked for %d, got %d", len(want), len(hs))
	}
	// The second run asks for the same indexes in the same order.
	next := 0
	return f(tlog.HashReaderFunc(func(ix []int64) ([]Hash, error) {
		if next+len(ix) <= len(want) && slices.Equal(ix, want[next:next+len(ix)]) {
			out := hs[next : next+len(ix) : next+len(ix)]
			next += len(ix)
			return out, nil
		}
		return r.ReadHashes(ix) // not expected: tlog asked for something else
	}))
}

// rootOf returns the root of the tree of size entries to check a proof
// against, given the newest signed checkpoint latest (size ≤ latest.Size)
// and reader r, in the same batch as the proof. For a size whose signed
// root the Log holds, that root; otherwise the root r yields, which
// check then proves consistent with latest's signed root — so a root
// that passes is the signed tree's, whatever r read.
// signedRoot returns the signed root of the tree of size entries when the
// Log holds it: latest's, or one of the newest published checkpoints'.
func (l *Log) signedRoot(latest Checkpoint, size int64) (Hash, bool) {
	if size == latest.Size {
		return latest.Root, true
	}
	return l.knownRoot(size)
}

func (l *Log) rootOf(r tlog.HashReader, latest Checkpoint, size int64) (root func() Hash, check func() error, err error) {
	if h, ok := l.signedRoot(latest, size); ok {
		return func() Hash { return h }, func() error { return nil }, nil
	}
	th, err := tlog.TreeHash(size, r)
	if err != nil {
		return nil, nil, err
	}
	p, err := tlog.ProveTree(latest.Size, size, r)
	if err != nil {
		return nil, nil, err
	}
	return func() Hash { return th }, func() error {
		if tlog.CheckTree(p, latest.Size, latest.Root, size, th) != nil {
			return errProofCheck
		}
		return nil
	}, nil
}

// proveInclusion computes the proof of entry index in the tree of size
// from r and checks it against the signed tree; it returns errProofCheck
// (wrapped) when the check fails.
func (l *Log) proveInclusion(r tlog.HashReader, latest Checkpoint, index, size int64) (tlog.RecordProof, error) {
	if root, ok := l.signedRoot(latest, size); ok {
		// The common case, a proof in a signed tree: the entry's leaf is
		// read with the proof, and the proof computed once.
		var (
			leaf Hash
			read bool
		)
		p, err := tlog.ProveRecord(size, index, tlog.HashReaderFunc(func(ix []int64) ([]Hash, error) {
			if read {
				return r.ReadHashes(ix)
			}
			read = true
			hs, err := r.ReadHashes(append(ix[:len(ix):len(ix)], tlog.StoredHashIndex(0, index)))
			if err != nil {
				return nil, err
			}
			leaf = hs[len(ix)]
			return hs[:len(ix)], nil
		}))
		if err != nil {
			return nil, err
		}
		if !read {
			hs, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
			if err != nil {
				return nil, err
			}
			leaf = hs[0]
		}
		if tlog.CheckRecord(p, size, root, index, leaf) != nil {
			return nil, errProofCheck
		}
		return p, nil
	}
	var (
		p     tlog.RecordProof
		leaf  Hash
		root  func() Hash
		check func() error
	)
	err := batched(r, func(r tlog.HashReader) error {
		var err error
		if p, err = tlog.ProveRecord(size, index, r); err != nil {
			return err
		}
		hs, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, index)})
		if err != nil {
			return err
		}
		leaf = hs[0]
		root, check, err = l.rootOf(r, latest, size)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := check(); err != nil {
		return nil, err
	}
	if tlog.CheckRecord(p, size, root(), index, leaf) != nil {
		return nil, errProofCheck
	}
	return p, nil
}

// proveConsistency computes the proof that the tree of from entries is a
// prefix of the tree of to from r and checks it against the signed tree.
func (l *Log) proveConsistency(r tlog.HashReader, latest Checkpoint, from, to int64) (tlog.TreeProof, error) {
	var (
		p     tlog.TreeProof
		root  func() Hash
		check func() error
	)
	oldRoot, haveOld := l.knownRoot(from)
	if root, ok := l.signedRoot(latest, to); ok && haveOld {
		p, err := tlog.ProveTree(to, from, r)
		if err != nil {
			return nil, err
		}
		if tlog.CheckTree(p, to, root, from, oldRoot) != nil {
			return nil, errProofCheck
		}
		return p, nil
	}
	err := batched(r, func(r tlog.HashReader) error {
		var err error
		if p, err = tlog.ProveTree(to, from, r); err != nil {
			return err
		}
		if !haveOld {
			if oldRoot, err = tlog.TreeHash(from, r); err != nil {
				return err
			}
		}
		root, check, err = l.rootOf(r, latest, to)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := check(); err != nil {
		return nil, err
	}
	// A consistency proof fixes both roots: one that checks against the
	// signed root of to proves oldRoot is the tree of from's, too.
	if tlog.CheckTree(p, to, root(), from, oldRoot) != nil {
		return nil, errProofCheck
	}
	return p, nil
}

// latestCheckpoint returns the newest checkpoint the Log has published.
func (l *Log) latestCheckpoint() Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest
}

// withFallback runs prove with the stored hashes; when its self-check
// fails it marks the tree damaged, asks for a check and runs prove again
// with hashes computed from the leaves. A proof is returned only if it
// passed its check.
func (l *Log) withFallback(ctx context.Context, what func() string, prove func(tlog.HashReader) error) error {
	err := prove(l.storedReader(ctx))
	if err == nil {
		return nil
	}
	ts, ok := l.store.(TreeStore)
	if !errors.Is(err, errProofCheck) {
		// A stored hash that cannot be read (a missing or mangled row) is
		// damage too — unless the leaves cannot be read either: then the
		// store is failing, and its error is the answer.
		if !ok || ctx.Err() != nil {
			return err
		}
		l.tree.slow.Lock()
		defer l.tree.slow.Unlock()
		if prove(leafReader(ctx, ts)) != nil {
			return err
		}
		l.log.LogAttrs(ctx, slog.LevelWarn, "audit log: stored tree hashes could not be read; computed from the leaves", slog.String("proof", what()), slog.Any("error", err))
		l.wantCheck()
		return nil
	}
	l.log.LogAttrs(ctx, slog.LevelWarn, "audit log: a proof from the stored tree hashes failed its self-check; computing it from the leaves", slog.String("proof", what()))
	l.wantCheck()
	if !ok {
		return damagedErr(what)
	}
	l.tree.slow.Lock()
	defer l.tree.slow.Unlock()
	if err := prove(leafReader(ctx, ts)); err != nil {
		if errors.Is(err, errProofCheck) {
			return damagedErr(what)
		}
		return err
	}
	return nil
}

func damagedErr(what func() string) error {
	return writ.Errorf(writ.KindUnavailable, "audit_log_damaged",
		"the audit log's stored tree is damaged and %s could not be computed so that it checks against the signed checkpoint; the tree is being re-derived from the leaves", what())
}

// leafReader is a tlog.HashReader that computes every hash it is asked
// for from the recorded leaves: the hash at (level L, index k) from the
// leaves [k·2^L, (k+1)·2^L), streamed from the store in chunks, with
// O(log n) memory. One call computes all its hashes in one pass over the
// leaves of the largest subtrees asked for.
func leafReader(ctx context.Context, ts TreeStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]Hash, error) {
		type node struct {
			level int
			n     int64
		}
		nodes := make([]node, len(indexes))
		for i, x := range indexes {
			nodes[i].level, nodes[i].n = tlog.SplitStoredHashIndex(x)
		}
		// The subtrees to stream: those not inside another asked for.
		var tops []node
		for _, a := range nodes {
			inside := false
			for _, b := range nodes {
				if b.level > a.level && a.n>>(b.level-a.level) == b.n {
					inside = true
					break
				}
			}
			if !inside && !slices.Contains(tops, a) {
				tops = append(tops, a)
			}
		}
		want := make(map[int64]bool, len(indexes))
		for _, x := range indexes {
			want[x] = true
		}
		got := make(map[int64]Hash, len(indexes))
		for _, top := range tops {
			start := top.n << top.level
			end := start + 1<<top.level
			var f frontier
			for a := start; a < end; a += scanChunk {
				b := min(a+scanChunk, end)
				ls, err := ts.LogLeaves(ctx, a, b, false)
				if err != nil {
					return nil, fmt.Errorf("audit log: read leaves [%d, %d): %w", a, b, err)
				}
				if err := checkLeaves(ls, a, b); err != nil {
					return nil, err
				}
				for _, e := range ls {
					// Local index within the subtree: an aligned subtree
					// has the shape of a tree that starts at 0.
					j := e.Seq - start
					hs, err := tlog.StoredHashesForRecordHash(j, e.Leaf, &f)
					if err != nil {
						return nil, err
					}
					base := tlog.StoredHashIndex(0, j)
					for k, h := range hs {
						level, n := tlog.SplitStoredHashIndex(base + int64(k))
						f.set(level, n, h)
						g := tlog.StoredHashIndex(level, n+start>>level)
						if want[g] {
							got[g] = h
						}
					}
				}
			}
		}
		out := make([]Hash, len(indexes))
		for i, x := range indexes {
			h, ok := got[x]
			if !ok {
				return nil, fmt.Errorf("audit log: tree hash %d was not computed from the leaves", x)
			}
			out[i] = h
		}
		return out, nil
	})
}

// scanChunk is how many entries a check or a computation from the leaves
// reads at once.
const scanChunk = 4096

func checkLeaves(ls []LoggedLeaf, a, b int64) error {
	if int64(len(ls)) != b-a {
		return fmt.Errorf("audit log: the store returned %d entries for [%d, %d): entries are missing", len(ls), a, b)
	}
	for i, e := range ls {
		if e.Seq != a+int64(i) {
			return fmt.Errorf("audit log: the store returned entry %d where %d belongs: entries are missing", e.Seq, a+int64(i))
		}
	}
	return nil
}

// frontier is the right edge of a tree being built leaf by leaf: the
// newest stored hash of each level, all that tlog needs to add the next
// leaf or to compute the tree's root (O(log n) memory).
type frontier struct {
	n  [64]int64
	h  [64]Hash
	ok [64]bool
}

func (f *frontier) set(level int, n int64, h Hash) {
	f.n[level], f.h[level], f.ok[level] = n, h, true
}

func (f *frontier) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if !f.ok[level] || f.n[level] != n {
			return nil, fmt.Errorf("audit log: tree hash %d (level %d, %d) is not on the right edge", x, level, n)
		}
		out[i] = f.h[level]
	}
	return out, nil
}
