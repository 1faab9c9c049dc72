package sqlstore

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestAuditTree(t *testing.T) {
	forEachDialect(t, testAuditTree)
}

// testAuditTree: the reads and repairs of the audit log's tree check.
func testAuditTree(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	createRun(t, db, time.Now())
	createRun(t, db, time.Now())
	evs := allEvents(t, db)
	size := appendAll(t, db)
	if size != int64(len(evs)) || size < 3 {
		t.Fatalf("logged %d of %d events", size, len(evs))
	}

	ls, err := db.LogLeaves(ctx, 0, size+10, true)
	if err != nil || int64(len(ls)) != size {
		t.Fatalf("LogLeaves = %d entries, %v; want %d", len(ls), err, size)
	}
	for i, e := range ls {
		if e.Seq != int64(i) || e.Leaf != leafOf(e.Body) || !bytes.Equal(e.Body, evs[i].Body) {
			t.Fatalf("LogLeaves[%d] = seq %d, leaf %x, body %q", i, e.Seq, e.Leaf, e.Body)
		}
	}
	ls, err = db.LogLeaves(ctx, 1, 3, false)
	if err != nil || len(ls) != 2 || ls[0].Seq != 1 || ls[1].Seq != 2 || ls[0].Body != nil || ls[0].Leaf != leafOf(evs[1].Body) {
		t.Fatalf("LogLeaves(1, 3, no bodies) = %+v, %v", ls, err)
	}

	// appendAll stores the leaves as hashes 1000000+i.
	const base = 1000000
	hs, err := db.LogHashRange(ctx, base, base+size)
	if err != nil || int64(len(hs)) != size {
		t.Fatalf("LogHashRange = %d hashes, %v; want %d", len(hs), err, size)
	}
	for i, h := range hs {
		if h.Index != base+int64(i) || h.Hash != leafOf(evs[i].Body) {
			t.Fatalf("LogHashRange[%d] = %d %x", i, h.Index, h.Hash)
		}
	}
	// A value that is not 32 bytes is as good as missing.
	if err := db.write(ctx, func(tx *wtx) error {
		_, err := tx.exec("UPDATE tlog_hashes SET hash = ? WHERE idx = ?", []byte{1, 2, 3}, base+1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hs, err = db.LogHashRange(ctx, base, base+3)
	if err != nil || len(hs) != 2 || hs[0].Index != base || hs[1].Index != base+2 {
		t.Fatalf("LogHashRange over a short value = %+v, %v", hs, err)
	}

	roots, err := db.CheckpointRoots(ctx, 0, size)
	if err != nil || len(roots) != 1 || roots[0].Size != size || roots[0].Root != [32]byte{byte(size)} {
		t.Fatalf("CheckpointRoots = %+v, %v", roots, err)
	}
	if roots, err = db.CheckpointRoots(ctx, size, size+100); err != nil || len(roots) != 0 {
		t.Fatalf("CheckpointRoots after the last = %+v, %v", roots, err)
	}

	// Repairs change a row only if it still holds the damaged value.
	good0, good2 := leafOf(evs[0].Body), leafOf(evs[2].Body)
	wrong := [32]byte{9}
	n, err := db.RepairLog(ctx, []LogHashRepair{
		{Index: base, Old: &wrong, New: [32]byte{7}},          // not the stored value: untouched
		{Index: base + 1, Old: nil, New: leafOf(evs[1].Body)}, // the short value
		{Index: base + 2, Old: &good2, New: [32]byte{8}},      // changed
		{Index: 5, Old: nil, New: [32]byte{6}},                // missing: inserted
	}, []LogLeafRepair{
		{Seq: 0, Old: good0, New: [32]byte{5}}, // changed
		{Seq: 1, Old: wrong, New: [32]byte{5}}, // untouched
	})
	if err != nil || n != 4 {
		t.Fatalf("RepairLog = %d, %v; want 4 rows changed", n, err)
	}
	got, err := db.ReadLogHashes(ctx, []int64{base, base + 1, base + 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != good0 || got[1] != leafOf(evs[1].Body) || got[2] != [32]byte{8} || got[3] != [32]byte{6} {
		t.Fatalf("after RepairLog: %x", got)
	}
	ls, err = db.LogLeaves(ctx, 0, 2, false)
	if err != nil || ls[0].Leaf != [32]byte{5} || ls[1].Leaf != leafOf(evs[1].Body) {
		t.Fatalf("leaves after RepairLog: %+v, %v", ls, err)
	}
}
