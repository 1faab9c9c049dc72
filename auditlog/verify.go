package auditlog

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// Entry is one log entry as a log or an export serves it.
type Entry struct {
	// Seq is the entry's log index.
	Seq int64
	// Body is the exact stored event bytes; the leaf hash is computed from
	// them.
	Body []byte
	// LeafHash is the leaf hash the server recorded when it logged the
	// entry, if the source provides it. It is never trusted: it only lets
	// [Verify] name the entry whose bytes changed.
	LeafHash *Hash
}

// VerifyError reports a failed check: the log, a checkpoint or a proof is
// not what the signed checkpoint commits to.
type VerifyError struct {
	// Index is the first bad log index, or -1 when the failure is not
	// about one entry (a signature, a fork, a range of entries).
	Index int64
	// Reason says what is wrong, in words fit for an auditor.
	Reason string

	cause error
}

// Error returns "audit log: entry 17: <reason>", or "audit log: <reason>"
// when the error is not about one entry.
func (e *VerifyError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("audit log: entry %d: %s", e.Index, e.Reason)
	}
	return "audit log: " + e.Reason
}

// Unwrap returns the underlying error, such as a note error for a bad
// signature, or nil.
func (e *VerifyError) Unwrap() error { return e.cause }

func verifyErr(index int64, format string, args ...any) *VerifyError {
	return &VerifyError{Index: index, Reason: fmt.Sprintf(format, args...)}
}

// Verification is the result of a successful [Verify].
type Verification struct {
	Checkpoint Checkpoint // the checkpoint the entries reproduce
	Entries    int64      // the number of entries verified, Checkpoint.Size
}

// Verify checks a whole log against its signed checkpoint cp, which the
// caller has opened with [OpenCheckpoint]. entries must be the log's
// entries 0 … cp.Size-1, in order: a gap, a repeat, a swap, a missing tail
// or entries beyond cp.Size are errors naming the first bad index. Verify
// recomputes every leaf hash from the exact bytes, rebuilds the tree with
// tlog and compares the root with cp.Root.
//
// When the root does not match, Verify names the first entry whose bytes
// no longer hash to the leaf hash recorded for it ([Entry.LeafHash]); when
// it matches, a recorded hash that differs from its bytes still fails. If
// every recorded hash matches — whoever altered an entry rewrote its
// recorded hash too — it narrows the change down with older: the range
// between the last older checkpoint the entries reproduce and the first
// one they do not ("an entry in [a, b) was altered").
//
// older are earlier checkpoints of the same log, each opened (signature
// checked) by the caller, in any order. Verify also checks that the
// entries reproduce every one of them when they reproduce cp: two signed
// checkpoints that no single history explains are a fork.
//
// Every failure is a [*VerifyError].
func Verify(cp Checkpoint, entries []Entry, older []Checkpoint) (*Verification, error) {
	if err := checkCheckpoint(cp); err != nil {
		return nil, err
	}
	sorted, err := sortOlder(cp, older)
	if err != nil {
		return nil, err
	}
	if err := checkSeqs(entries); err != nil {
		return nil, err
	}
	n := int64(len(entries))
	switch {
	case n < cp.Size:
		return nil, verifyErr(n, "missing: the log serves %d entries but its checkpoint commits to %d (the last %d were removed)", n, cp.Size, cp.Size-n)
	case n > cp.Size:
		return nil, verifyErr(cp.Size, "not signed: the log serves %d entries but its checkpoint commits to %d; entries from %d on are not covered by it", n, cp.Size, cp.Size)
	}

	t, err := buildTree(entries)
	if err != nil {
		return nil, err
	}
	root, err := t.root(cp.Size)
	if err != nil {
		return nil, err
	}
	if root == cp.Root {
		if t.firstBad >= 0 {
			return nil, verifyErr(t.firstBad, "the leaf hash recorded for this entry does not match its bytes, though the bytes match the signed checkpoint: the recorded hash was altered")
		}
		for _, o := range sorted {
			r, err := t.root(o.Size)
			if err != nil {
				return nil, err
			}
			if r != o.Root {
				return nil, verifyErr(-1, "forked: the signed checkpoints of size %d and %d are inconsistent (no single history reproduces both)", o.Size, cp.Size)
			}
		}
		return &Verification{Checkpoint: cp, Entries: n}, nil
	}
	if t.firstBad >= 0 {
		return nil, verifyErr(t.firstBad, "altered: its bytes do not hash to the leaf hash recorded when it was logged")
	}

	// Every recorded hash matches its bytes, or none was given: narrow the
	// change down with the older checkpoints.
	a, b := int64(0), cp.Size
	for _, o := range sorted {
		r, err := t.root(o.Size)
		if err != nil {
			return nil, err
		}
		if r != o.Root {
			b = o.Size
			break
		}
		a = o.Size
	}
	rewritten := ""
	if t.recorded(a, b) {
		rewritten = " and its recorded leaf hash rewritten to match"
	}
	if b-a == 1 {
		return nil, verifyErr(a, "altered%s: the entries reproduce the signed checkpoint of size %d but not the one of size %d", rewritten, a, b)
	}
	narrowed := ""
	if a == 0 && b == cp.Size {
		narrowed = "; no older checkpoint narrows it down"
	}
	return nil, verifyErr(-1, "the entries do not reproduce the root of the signed checkpoint of size %d: an entry in [%d, %d) was altered%s%s", cp.Size, a, b, rewritten, narrowed)
}

// CheckTrusted compares latest, a checkpoint whose entries the caller has
// just verified with [Verify], with trusted, a checkpoint of the same log
// that this client verified and saved before (its trust file). The log
// must only have grown:
//
//   - latest smaller than trusted: the log was truncated or rolled back;
//   - the same size with another root: the log forked;
//   - larger: the first trusted.Size entries must rebuild trusted.Root,
//     else the log's history was rewritten (a fork).
//
// entries are latest's entries (at least the first trusted.Size of them).
// Every failure is a [*VerifyError]. A client that does not hold the
// entries checks a consistency proof with [CheckConsistency] instead.
func CheckTrusted(trusted, latest Checkpoint, entries []Entry) error {
	if err := checkCheckpoint(trusted); err != nil {
		return err
	}
	if err := checkCheckpoint(latest); err != nil {
		return err
	}
	if trusted.Origin != latest.Origin {
		return verifyErr(-1, "the trusted checkpoint is for log %q, the latest for %q", trusted.Origin, latest.Origin)
	}
	switch {
	case latest.Size < trusted.Size:
		return verifyErr(-1, "rolled back: the log's checkpoint commits to %d entries, but this client already trusted a checkpoint of %d (entries [%d, %d) were removed)", latest.Size, trusted.Size, latest.Size, trusted.Size)
	case latest.Size == trusted.Size:
		if latest.Root != trusted.Root {
			return verifyErr(-1, "forked: two signed checkpoints of size %d have different roots (trusted %s, now %s)", latest.Size, trusted.Root, latest.Root)
		}
		return nil
	}
	if trusted.Size == 0 {
		if trusted.Root != emptyRoot {
			return verifyErr(-1, "the trusted checkpoint of size 0 does not have the empty tree's root")
		}
		return nil
	}
	if int64(len(entries)) < trusted.Size {
		return verifyErr(int64(len(entries)), "missing: %d entries given, but the trusted checkpoint commits to %d", len(entries), trusted.Size)
	}
	prefix := entries[:trusted.Size]
	if err := checkSeqs(prefix); err != nil {
		return err
	}
	t, err := buildTree(prefix)
	if err != nil {
		return err
	}
	root, err := t.root(trusted.Size)
	if err != nil {
		return err
	}
	if root != trusted.Root {
		return verifyErr(-1, "forked: the log's first %d entries do not reproduce the checkpoint this client trusted (root %s): its history was rewritten", trusted.Size, trusted.Root)
	}
	return nil
}

// CheckInclusion verifies that proof shows the entry with leaf hash leaf
// (see [LeafHash]) at index in the tree of the signed checkpoint cp
// (tlog.CheckRecord). A failure is a [*VerifyError] naming index.
func CheckInclusion(proof tlog.RecordProof, cp Checkpoint, index int64, leaf Hash) error {
	if err := checkCheckpoint(cp); err != nil {
		return err
	}
	if index < 0 || index >= cp.Size {
		return verifyErr(index, "not in the tree: the checkpoint commits to %d entries", cp.Size)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, index, leaf); err != nil {
		return &VerifyError{Index: index, Reason: fmt.Sprintf("the inclusion proof does not lead to the root of the signed checkpoint of size %d", cp.Size), cause: err}
	}
	return nil
}

// CheckConsistency verifies that proof shows the tree of older is a prefix
// of the tree of newer (tlog.CheckTree): the log only grew between them.
// Both checkpoints must have been opened by the caller. A failure — a
// smaller newer (rollback), equal sizes with different roots (fork), or a
// proof that does not verify — is a [*VerifyError].
func CheckConsistency(proof tlog.TreeProof, older, newer Checkpoint) error {
	if err := checkCheckpoint(older); err != nil {
		return err
	}
	if err := checkCheckpoint(newer); err != nil {
		return err
	}
	if older.Origin != newer.Origin {
		return verifyErr(-1, "the checkpoints are of different logs (%q and %q)", older.Origin, newer.Origin)
	}
	switch {
	case newer.Size < older.Size:
		return verifyErr(-1, "rolled back: the newer checkpoint commits to %d entries, the older to %d", newer.Size, older.Size)
	case older.Size == 0:
		if older.Root != emptyRoot {
			return verifyErr(-1, "the checkpoint of size 0 does not have the empty tree's root")
		}
		if len(proof) != 0 {
			return verifyErr(-1, "the consistency proof from the empty tree must be empty")
		}
		return nil
	case newer.Size == older.Size:
		if newer.Root != older.Root {
			return verifyErr(-1, "forked: two signed checkpoints of size %d have different roots (%s and %s)", newer.Size, older.Root, newer.Root)
		}
		if len(proof) != 0 {
			return verifyErr(-1, "the consistency proof between equal trees must be empty")
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Root, older.Size, older.Root); err != nil {
		return &VerifyError{Index: -1, Reason: fmt.Sprintf("forked or rewritten: the consistency proof from size %d to %d does not verify", older.Size, newer.Size), cause: err}
	}
	return nil
}

// checkCheckpoint rejects a Checkpoint value that no signed note could
// have produced.
func checkCheckpoint(c Checkpoint) error {
	if err := checkOrigin(c.Origin); err != nil {
		return verifyErr(-1, "invalid checkpoint: %v", err)
	}
	if c.Size < 0 {
		return verifyErr(-1, "invalid checkpoint: negative size %d", c.Size)
	}
	return nil
}

// sortOlder checks the older checkpoints against cp and returns them
// sorted by size, without the empty tree.
func sortOlder(cp Checkpoint, older []Checkpoint) ([]Checkpoint, error) {
	sorted := make([]Checkpoint, 0, len(older))
	for _, o := range older {
		if err := checkCheckpoint(o); err != nil {
			return nil, err
		}
		switch {
		case o.Origin != cp.Origin:
			return nil, verifyErr(-1, "an older checkpoint is for log %q, not %q", o.Origin, cp.Origin)
		case o.Size > cp.Size:
			return nil, verifyErr(-1, "rolled back: an older signed checkpoint commits to %d entries, the checkpoint being verified to only %d", o.Size, cp.Size)
		case o.Size == cp.Size && o.Root != cp.Root:
			return nil, verifyErr(-1, "forked: two signed checkpoints of size %d have different roots (%s and %s)", o.Size, o.Root, cp.Root)
		case o.Size == 0:
			if o.Root != emptyRoot {
				return nil, verifyErr(-1, "an older checkpoint of size 0 does not have the empty tree's root")
			}
			continue
		}
		sorted = append(sorted, o)
	}
	slices.SortFunc(sorted, func(a, b Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	for i := 1; i < len(sorted); i++ {
		if a, b := sorted[i-1], sorted[i]; a.Size == b.Size && a.Root != b.Root {
			return nil, verifyErr(-1, "forked: two signed checkpoints of size %d have different roots (%s and %s)", a.Size, a.Root, b.Root)
		}
	}
	return sorted, nil
}

// checkSeqs checks that entries[i].Seq == i for every i and, at the first
// position where it is not, says whether an entry is missing, repeated or
// out of place.
func checkSeqs(entries []Entry) error {
	for i := range entries {
		if entries[i].Seq != int64(i) {
			return seqError(entries, int64(i))
		}
	}
	return nil
}

func seqError(entries []Entry, i int64) error {
	// Entries 0 … i-1 were in place, so a number below i is a repeat.
	s := entries[i].Seq
	switch {
	case s < 0:
		return verifyErr(i, "missing: an entry with the invalid index %d is served in its place", s)
	case s < i:
		return verifyErr(i, "missing: a second copy of entry %d is served in its place (a duplicate)", s)
	}
	for j := i + 1; j < int64(len(entries)); j++ {
		if entries[j].Seq == i {
			return verifyErr(i, "out of order: served at position %d, with entry %d in its place (entries swapped or reordered)", j, s)
		}
	}
	if i == 0 {
		return verifyErr(i, "missing: the log starts at entry %d", s)
	}
	return verifyErr(i, "missing: the log skips from entry %d to %d (%d removed)", i-1, s, s-i)
}

// tree is a tlog tree held in memory: the stored hashes, indexed by
// tlog.StoredHashIndex.
type tree struct {
	hashes   []Hash
	n        int64
	firstBad int64  // the first entry whose recorded leaf hash differs, -1 if none
	has      []bool // has[i]: entry i came with a recorded leaf hash
}

// buildTree hashes every entry's bytes and adds the leaves to a new tree,
// noting the first entry whose recorded leaf hash differs.
func buildTree(entries []Entry) (*tree, error) {
	n := int64(len(entries))
	t := &tree{hashes: make([]Hash, 0, tlog.StoredHashCount(n)), firstBad: -1, has: make([]bool, n)}
	for i := range entries {
		e := &entries[i]
		leaf := tlog.RecordHash(e.Body)
		if e.LeafHash != nil {
			t.has[i] = true
			if *e.LeafHash != leaf && t.firstBad < 0 {
				t.firstBad = int64(i)
			}
		}
		hs, err := tlog.StoredHashesForRecordHash(t.n, leaf, t)
		if err != nil {
			return nil, fmt.Errorf("audit log: build tree: %w", err)
		}
		t.hashes = append(t.hashes, hs...)
		t.n++
	}
	return t, nil
}

// ReadHashes implements tlog.HashReader.
func (t *tree) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, fmt.Errorf("audit log: tree hash %d is not stored (tree of %d entries)", x, t.n)
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// root returns the root of the tree's first n entries.
func (t *tree) root(n int64) (Hash, error) {
	h, err := tlog.TreeHash(n, t)
	if err != nil {
		return Hash{}, fmt.Errorf("audit log: tree hash: %w", err)
	}
	return h, nil
}

// recorded reports whether every entry in [a, b) came with a recorded leaf
// hash.
func (t *tree) recorded(a, b int64) bool {
	if a >= b {
		return false
	}
	for i := a; i < b; i++ {
		if !t.has[i] {
			return false
		}
	}
	return true
}
