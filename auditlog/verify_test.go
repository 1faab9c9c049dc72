package auditlog_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ/auditlog"
)

// testLog is a log of n events integrated in batches of the given sizes,
// with everything a verifier fetches: the latest checkpoint (opened), the
// entries with their recorded leaf hashes, and the older checkpoints.
type testLog struct {
	store   *memStore
	log     *auditlog.Log
	cp      auditlog.Checkpoint
	entries []auditlog.Entry
	older   []auditlog.Checkpoint
}

func newLogOf(t testing.TB, batches ...int) *testLog {
	t.Helper()
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	total := 0
	for _, k := range batches {
		s.add(events(total, total+k)...)
		total += k
		if _, err := l.Integrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cps := openAll(t, s.checkpoints())
	return &testLog{store: s, log: l, cp: cps[len(cps)-1], entries: s.entries(), older: cps[:len(cps)-1]}
}

// fifty is a log of 50 entries with checkpoints at 10, 20, 30, 40 and 50.
func fifty(t testing.TB) *testLog { return newLogOf(t, 10, 10, 10, 10, 10) }

func TestVerifyIntact(t *testing.T) {
	tl := fifty(t)
	v, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
	if err != nil {
		t.Fatal(err)
	}
	if v.Entries != 50 || v.Checkpoint != tl.cp {
		t.Errorf("Verify = %+v; want 50 entries under %v", v, tl.cp)
	}
	// Without recorded hashes (an export of bytes only) and without older
	// checkpoints.
	for i := range tl.entries {
		tl.entries[i].LeafHash = nil
	}
	if _, err := auditlog.Verify(tl.cp, tl.entries, nil); err != nil {
		t.Fatal(err)
	}
}

// Attack: one event's bytes are edited in the database (the recorded leaf
// hash is left as it was). Verify fails and names the entry.
func TestVerifyEditedBytes(t *testing.T) {
	tl := fifty(t)
	tl.entries[17].Body = []byte(strings.Replace(string(tl.entries[17].Body), "decision", "decisioN", 1))
	_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
	if ve := verifyErr(t, err); ve.Index != 17 || !strings.Contains(ve.Reason, "altered") {
		t.Errorf("Verify(entry 17 edited) = %v; want entry 17 altered", err)
	}
}

// Attack: two events are swapped. However it is done, verification fails
// and points at the first.
func TestVerifySwapped(t *testing.T) {
	t.Run("rows served out of order", func(t *testing.T) {
		tl := fifty(t)
		tl.entries[17], tl.entries[30] = tl.entries[30], tl.entries[17]
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		if ve := verifyErr(t, err); ve.Index != 17 || !strings.Contains(ve.Reason, "out of order") {
			t.Errorf("Verify(17 and 30 swapped) = %v; want entry 17 out of order", err)
		}
	})
	t.Run("bodies swapped, recorded hashes left", func(t *testing.T) {
		tl := fifty(t)
		tl.entries[17].Body, tl.entries[30].Body = tl.entries[30].Body, tl.entries[17].Body
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		if ve := verifyErr(t, err); ve.Index != 17 {
			t.Errorf("Verify(bodies of 17 and 30 swapped) = %v; want entry 17", err)
		}
	})
	t.Run("sequence numbers swapped", func(t *testing.T) {
		// The attacker renumbers the rows: the log serves them in seq
		// order, each with its own (matching) recorded hash.
		tl := fifty(t)
		e := tl.entries
		e[17].Body, e[30].Body = e[30].Body, e[17].Body
		e[17].LeafHash, e[30].LeafHash = e[30].LeafHash, e[17].LeafHash
		_, err := auditlog.Verify(tl.cp, e, tl.older)
		if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "[10, 20)") {
			t.Errorf("Verify(rows 17 and 30 renumbered) = %v; want the range [10, 20) that holds 17", err)
		}
	})
}

// Attack: the newest events are deleted after a checkpoint was saved.
func TestVerifyTailTruncated(t *testing.T) {
	tl := fifty(t)
	_, err := auditlog.Verify(tl.cp, tl.entries[:45], tl.older)
	ve := verifyErr(t, err)
	if ve.Index != 45 || !strings.Contains(ve.Reason, "the log serves 45 entries but its checkpoint commits to 50") {
		t.Errorf("Verify(last 5 deleted) = %v; want entry 45 and the sizes", err)
	}
	// The attacker also deletes the newer checkpoints and serves the older
	// one of size 40 as the latest: a valid signed log on its own, but not
	// to a client that saw size 50 (its trust file).
	cp40 := tl.older[3]
	if _, err := auditlog.Verify(cp40, tl.entries[:40], tl.older[:3]); err != nil {
		t.Fatalf("Verify(first 40 under the checkpoint of 40) = %v", err)
	}
	err = auditlog.CheckTrusted(tl.cp, cp40, tl.entries[:40])
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "rolled back") || !strings.Contains(ve.Reason, "[40, 50)") {
		t.Errorf("CheckTrusted(trusted 50, served 40) = %v; want a rollback of [40, 50)", err)
	}
}

// Attack: an entry is removed from the middle.
func TestVerifyGap(t *testing.T) {
	tl := fifty(t)
	e := slices.Delete(tl.entries, 20, 21)
	_, err := auditlog.Verify(tl.cp, e, tl.older)
	if ve := verifyErr(t, err); ve.Index != 20 || !strings.Contains(ve.Reason, "missing") {
		t.Errorf("Verify(entry 20 removed) = %v; want entry 20 missing", err)
	}
	// Renumbered to hide the gap: the bytes no longer build the root.
	for i := range e {
		e[i].Seq = int64(i)
	}
	e = append(e, tl.entries[len(tl.entries)-1]) // keep the count
	e[len(e)-1].Seq = int64(len(e) - 1)
	_, err = auditlog.Verify(tl.cp, e, tl.older)
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "[20, 30)") {
		t.Errorf("Verify(entry 20 removed, renumbered) = %v; want the range [20, 30)", err)
	}
}

// Attack: an entry is served twice.
func TestVerifyDuplicate(t *testing.T) {
	tl := fifty(t)
	e := slices.Insert(slices.Clone(tl.entries), 21, tl.entries[20])
	_, err := auditlog.Verify(tl.cp, e, tl.older)
	if ve := verifyErr(t, err); ve.Index != 21 || !strings.Contains(ve.Reason, "duplicate") {
		t.Errorf("Verify(entry 20 twice) = %v; want entry 21 and a duplicate", err)
	}
	// In place of the last one, keeping the count.
	e = slices.Clone(tl.entries)
	e[49] = e[48]
	_, err = auditlog.Verify(tl.cp, e, tl.older)
	if ve := verifyErr(t, err); ve.Index != 49 {
		t.Errorf("Verify(entry 48 served as 49) = %v; want entry 49", err)
	}
}

// Entries beyond the checkpoint are not covered by a signature.
func TestVerifyUncoveredEntries(t *testing.T) {
	tl := fifty(t)
	_, err := auditlog.Verify(tl.older[3], tl.entries, tl.older[:3])
	if ve := verifyErr(t, err); ve.Index != 40 {
		t.Errorf("Verify(50 entries, checkpoint of 40) = %v; want entry 40 not signed", err)
	}
	if _, err := auditlog.Verify(tl.older[3], tl.entries[:40], tl.older[:3]); err != nil {
		t.Errorf("Verify(first 40, checkpoint of 40) = %v", err)
	}
}

// Attack: an event's bytes are edited and its recorded leaf hash
// recomputed to match. The root still gives it away; the older signed
// checkpoints narrow down where.
func TestVerifyRewrittenHashes(t *testing.T) {
	rewrite := func(tl *testLog, i int) {
		tl.entries[i].Body = append(tl.entries[i].Body, ' ')
		h := auditlog.LeafHash(tl.entries[i].Body)
		tl.entries[i].LeafHash = &h
	}
	t.Run("older checkpoints every 10", func(t *testing.T) {
		tl := fifty(t)
		rewrite(tl, 33)
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		if ve := verifyErr(t, err); ve.Index != -1 || !strings.Contains(ve.Reason, "an entry in [30, 40) was altered and its recorded leaf hash rewritten") {
			t.Errorf("Verify = %v; want the range [30, 40)", err)
		}
	})
	t.Run("in the newest batch", func(t *testing.T) {
		tl := fifty(t)
		rewrite(tl, 45)
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "[40, 50)") {
			t.Errorf("Verify = %v; want the range [40, 50)", err)
		}
	})
	t.Run("a checkpoint per entry", func(t *testing.T) {
		tl := newLogOf(t, slices.Repeat([]int{1}, 20)...)
		rewrite(tl, 13)
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		if ve := verifyErr(t, err); ve.Index != 13 {
			t.Errorf("Verify = %v; want exactly entry 13", err)
		}
	})
	t.Run("no older checkpoints", func(t *testing.T) {
		tl := fifty(t)
		rewrite(tl, 33)
		_, err := auditlog.Verify(tl.cp, tl.entries, nil)
		if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "[0, 50)") || !strings.Contains(ve.Reason, "no older checkpoint") {
			t.Errorf("Verify = %v; want the whole range", err)
		}
	})
	t.Run("older checkpoints in any order", func(t *testing.T) {
		tl := fifty(t)
		rewrite(tl, 12)
		slices.Reverse(tl.older)
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "[10, 20)") {
			t.Errorf("Verify = %v; want the range [10, 20)", err)
		}
	})
}

// Attack: the recorded leaf hash alone is changed. The bytes still match
// the signed root, but the served log is inconsistent: fail, name it.
func TestVerifyRecordedHashAltered(t *testing.T) {
	tl := fifty(t)
	h := *tl.entries[8].LeafHash
	h[0] ^= 1
	tl.entries[8].LeafHash = &h
	_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
	if ve := verifyErr(t, err); ve.Index != 8 || !strings.Contains(ve.Reason, "recorded hash was altered") {
		t.Errorf("Verify = %v; want entry 8's recorded hash", err)
	}
}

// Attack: an attacker rewrites the log and signs a checkpoint for it with
// a key of its own. The client opens checkpoints with the log's key only.
func TestVerifyForgedCheckpoint(t *testing.T) {
	tl := fifty(t)
	tl.entries[3].Body = []byte(`{"forged":true}`)
	forged := newRefTree()
	for _, e := range tl.entries {
		forged.add(e.Body)
	}
	evil, _ := otherKeys(t, testOrigin)
	msg, err := auditlog.Sign(auditlog.Checkpoint{Origin: testOrigin, Size: 50, Root: forged.roots[50]}, evil)
	if err != nil {
		t.Fatal(err)
	}
	_, v := testKeys(t)
	_, err = auditlog.OpenCheckpoint(msg, v, testOrigin)
	verifyErr(t, err)
}

// Attack: signed checkpoints that no single history explains (a fork),
// and a log shorter than what the client trusted (a rollback).
func TestCheckTrusted(t *testing.T) {
	tl := fifty(t)
	cp30 := tl.older[2]

	// The log grew honestly.
	if err := auditlog.CheckTrusted(cp30, tl.cp, tl.entries); err != nil {
		t.Errorf("CheckTrusted(30 → 50) = %v", err)
	}
	if err := auditlog.CheckTrusted(tl.cp, tl.cp, tl.entries); err != nil {
		t.Errorf("CheckTrusted(same) = %v", err)
	}
	empty := latest(t, newTestLog(t, newMemStore(), 0))
	if err := auditlog.CheckTrusted(empty, tl.cp, tl.entries); err != nil {
		t.Errorf("CheckTrusted(empty → 50) = %v", err)
	}

	// Fork: another log of the same size, with a different event 5.
	forkedEntries := slices.Clone(tl.entries)
	forkedEntries[5] = auditlog.Entry{Seq: 5, Body: []byte("a different event 5")}
	forked := newRefTree()
	for _, e := range forkedEntries {
		forked.add(e.Body)
	}
	fork50 := auditlog.Checkpoint{Origin: testOrigin, Size: 50, Root: forked.roots[50]}
	err := auditlog.CheckTrusted(tl.cp, fork50, forkedEntries)
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "forked: two signed checkpoints of size 50") {
		t.Errorf("CheckTrusted(fork of the same size) = %v; want a fork", err)
	}
	// The forked log grew past what the client trusted.
	forkedEntries = append(forkedEntries, auditlog.Entry{Seq: 50, Body: []byte("more")})
	forked.add([]byte("more"))
	fork51 := auditlog.Checkpoint{Origin: testOrigin, Size: 51, Root: forked.roots[51]}
	if _, err := auditlog.Verify(fork51, forkedEntries, nil); err != nil {
		t.Fatal(err) // the forked log is self-consistent...
	}
	err = auditlog.CheckTrusted(cp30, fork51, forkedEntries)
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "first 30 entries do not reproduce") {
		t.Errorf("CheckTrusted(30 → forked 51) = %v; want a rewritten history", err) // ...but not with what the client saw
	}

	// Rollback / truncation: the client trusted 50, the log now shows 40.
	err = auditlog.CheckTrusted(tl.cp, tl.older[3], tl.entries[:40])
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "rolled back") {
		t.Errorf("CheckTrusted(50 → 40) = %v; want a rollback", err)
	}
	// Another log altogether.
	err = auditlog.CheckTrusted(auditlog.Checkpoint{Origin: "other/audit", Size: 1}, tl.cp, tl.entries)
	verifyErr(t, err)
	// Too few entries to check the trusted prefix.
	err = auditlog.CheckTrusted(cp30, tl.cp, tl.entries[:20])
	if ve := verifyErr(t, err); ve.Index != 20 {
		t.Errorf("CheckTrusted with 20 entries = %v; want entry 20 missing", err)
	}
}

// Two older checkpoints of the log that the entries cannot both reproduce
// — the log signed a fork — fail Verify even when the latest matches.
func TestVerifyForkedOlderCheckpoints(t *testing.T) {
	tl := fifty(t)
	bad := tl.older[1]
	bad.Root[0] ^= 1 // as if the log had signed another tree of size 20
	_, err := auditlog.Verify(tl.cp, tl.entries, append(slices.Clone(tl.older), bad))
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "forked") {
		t.Errorf("Verify(two older checkpoints of size 20) = %v; want a fork", err)
	}
	_, err = auditlog.Verify(tl.cp, tl.entries, []auditlog.Checkpoint{bad})
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "forked") {
		t.Errorf("Verify(an inconsistent older checkpoint) = %v; want a fork", err)
	}
	// An older checkpoint of the same size with another root.
	same := tl.cp
	same.Root[0] ^= 1
	_, err = auditlog.Verify(tl.cp, tl.entries, []auditlog.Checkpoint{same})
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "two signed checkpoints of size 50 have different roots") {
		t.Errorf("Verify(older of the same size, other root) = %v; want a fork", err)
	}
	// An "older" checkpoint larger than the one verified: a rollback.
	_, err = auditlog.Verify(tl.older[2], tl.entries[:30], []auditlog.Checkpoint{tl.cp})
	if ve := verifyErr(t, err); !strings.Contains(ve.Reason, "rolled back") {
		t.Errorf("Verify(30, older of 50) = %v; want a rollback", err)
	}
}

func TestCheckConsistencyAndInclusion(t *testing.T) {
	ctx := context.Background()
	tl := fifty(t)
	cp20, cp40 := tl.older[1], tl.older[3]
	p, err := tl.log.ConsistencyProof(ctx, 20, 40)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.CheckConsistency(p, cp20, cp40); err != nil {
		t.Fatal(err)
	}
	bad := slices.Clone(p)
	bad[0][0] ^= 1
	verifyErr(t, auditlog.CheckConsistency(bad, cp20, cp40))
	if ve := verifyErr(t, auditlog.CheckConsistency(p, cp40, cp20)); !strings.Contains(ve.Reason, "rolled back") {
		t.Errorf("CheckConsistency(40 → 20) = %v; want a rollback", ve)
	}
	forked := cp40
	forked.Root[0] ^= 1
	verifyErr(t, auditlog.CheckConsistency(p, cp20, forked))
	verifyErr(t, auditlog.CheckConsistency(nil, cp40, forked)) // fork, same size
	verifyErr(t, auditlog.CheckConsistency(p[:len(p)-1], cp20, cp40))

	ip, err := tl.log.InclusionProof(ctx, 7, 40)
	if err != nil {
		t.Fatal(err)
	}
	leaf := *tl.entries[7].LeafHash
	if err := auditlog.CheckInclusion(ip, cp40, 7, leaf); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		p     tlog.RecordProof
		cp    auditlog.Checkpoint
		index int64
		leaf  auditlog.Hash
	}{
		{"other leaf", ip, cp40, 7, *tl.entries[8].LeafHash},
		{"other index", ip, cp40, 6, leaf},
		{"other root", ip, forked, 7, leaf},
		{"index beyond size", ip, cp40, 40, leaf},
		{"short proof", ip[1:], cp40, 7, leaf},
		{"long proof", append(slices.Clone(ip), leaf), cp40, 7, leaf},
	} {
		err := auditlog.CheckInclusion(tc.p, tc.cp, tc.index, tc.leaf)
		if ve := verifyErr(t, err); ve.Index != tc.index {
			t.Errorf("%s: %v; want index %d named", tc.name, err, tc.index)
		}
	}
}

// Property: for random logs, changing any single byte of any entry makes
// Verify fail, and with recorded leaf hashes it names that entry.
func TestVerifyDetectsAnySingleByteTamper(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for round := range 200 {
		var batches []int
		for n := 1 + r.IntN(120); n > 0; {
			k := 1 + r.IntN(n)
			batches = append(batches, k)
			n -= k
		}
		tl := newLogOf(t, batches...)
		// Pick an entry with at least one byte.
		i := r.IntN(len(tl.entries))
		for len(tl.entries[i].Body) == 0 {
			i = r.IntN(len(tl.entries))
		}
		j := r.IntN(len(tl.entries[i].Body))
		tl.entries[i].Body[j] ^= byte(1 + r.IntN(255))
		withHashes := r.IntN(2) == 0
		if !withHashes {
			for k := range tl.entries {
				tl.entries[k].LeafHash = nil
			}
		}
		_, err := auditlog.Verify(tl.cp, tl.entries, tl.older)
		ve := verifyErr(t, err)
		if withHashes && ve.Index != int64(i) {
			t.Errorf("seed %d round %d: byte %d of entry %d changed: %v; want entry %d named", seed, round, j, i, err, i)
		}
	}
}

func TestVerifyError(t *testing.T) {
	if got := (&auditlog.VerifyError{Index: 17, Reason: "altered"}).Error(); got != "audit log: entry 17: altered" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&auditlog.VerifyError{Index: -1, Reason: "forked"}).Error(); got != "audit log: forked" {
		t.Errorf("Error() = %q", got)
	}
}
