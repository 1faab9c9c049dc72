package sqlstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

func leafOf(b []byte) [32]byte { return sha256.Sum256(append([]byte{0}, b...)) }

// appendAll logs every unsequenced event with fake tree hashes: the store
// does not interpret them, the auditlog package does.
func appendAll(t *testing.T, db *DB) int64 {
	t.Helper()
	ctx := context.Background()
	from, err := db.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pend, err := db.Unsequenced(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	pos := make([]int64, len(pend))
	leaves := make([][32]byte, len(pend))
	hashes := map[int64][32]byte{}
	for i, p := range pend {
		pos[i] = p.Pos
		leaves[i] = leafOf(p.Body)
		hashes[1000000+from+int64(i)] = leaves[i]
	}
	size := from + int64(len(pend))
	note := []byte(fmt.Sprintf("test/audit\n%d\nroot\n", size))
	if err := db.AppendLog(ctx, from, pos, leaves, hashes, size, [32]byte{byte(size)}, note); err != nil {
		t.Fatalf("AppendLog(from %d): %v", from, err)
	}
	return size
}

func testAuditLog(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	if n, err := db.LogSize(ctx); err != nil || n != 0 {
		t.Fatalf("empty LogSize = %d, %v", n, err)
	}
	if cp, err := db.LatestCheckpoint(ctx); err != nil || cp != nil {
		t.Fatalf("empty LatestCheckpoint = %q, %v; want nil", cp, err)
	}
	r := createRun(t, db, time.Now())
	evs := allEvents(t, db)
	pend, err := db.Unsequenced(ctx, 100)
	if err != nil || len(pend) != len(evs) {
		t.Fatalf("Unsequenced = %d events, %v; want %d", len(pend), err, len(evs))
	}
	// Before logging, entries are pending (seq -1) but visible by run.
	re, err := db.RunEntries(ctx, r.ID)
	if err != nil || len(re) != len(evs) || re[0].Seq != -1 {
		t.Fatalf("RunEntries before logging = %+v, %v", re, err)
	}
	size := appendAll(t, db)
	if size != int64(len(evs)) {
		t.Fatalf("size = %d; want %d", size, len(evs))
	}
	if pend, _ := db.Unsequenced(ctx, 100); len(pend) != 0 {
		t.Errorf("Unsequenced after logging = %d", len(pend))
	}
	es, err := db.LogEntries(ctx, 0, size)
	if err != nil || int64(len(es)) != size {
		t.Fatalf("LogEntries = %d, %v", len(es), err)
	}
	for i, e := range es {
		if e.Seq != int64(i) || e.Leaf != leafOf(e.Body) || e.ID != evs[i].ID {
			t.Errorf("entry %d = seq %d id %s; want seq %d id %s and its leaf hash", i, e.Seq, e.ID, i, evs[i].ID)
		}
	}
	if e, err := db.EntryByLeaf(ctx, es[1].Leaf); err != nil || e.Seq != 1 {
		t.Errorf("EntryByLeaf = %+v, %v; want seq 1", e, err)
	}
	if _, err := db.EntryByLeaf(ctx, [32]byte{1}); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("EntryByLeaf(unknown) = %v; want not found", err)
	}
	if e, err := db.EntryByID(ctx, evs[0].ID); err != nil || e.Seq != 0 {
		t.Errorf("EntryByID = %+v, %v", e, err)
	}
	hs, err := db.ReadLogHashes(ctx, []int64{1000000, 1000001})
	if err != nil || hs[0] != es[0].Leaf || hs[1] != es[1].Leaf {
		t.Errorf("ReadLogHashes = %v, %v", hs, err)
	}
	if _, err := db.ReadLogHashes(ctx, []int64{42}); err == nil {
		t.Error("ReadLogHashes(missing) = nil error; a missing hash must be an error")
	}
	cp, err := db.LatestCheckpoint(ctx)
	if err != nil || string(cp) != fmt.Sprintf("test/audit\n%d\nroot\n", size) {
		t.Errorf("LatestCheckpoint = %q, %v", cp, err)
	}

	// One sequencer at a time: appending from a stale size is refused and
	// changes nothing.
	createRun(t, db, time.Now())
	pend, _ = db.Unsequenced(ctx, 100)
	err = db.AppendLog(ctx, size-1, []int64{pend[0].Pos}, [][32]byte{{9}}, map[int64][32]byte{7: {9}}, size, [32]byte{}, []byte("x"))
	if writ.ErrorCode(err) != "log_moved" {
		t.Errorf("AppendLog from a stale size = %v; want log_moved", err)
	}
	if n, _ := db.LogSize(ctx); n != size {
		t.Errorf("LogSize after a refused append = %d; want %d", n, size)
	}
	// Logging a position twice is refused.
	err = db.AppendLog(ctx, size, []int64{es[0].Seq + 1}, [][32]byte{{9}}, nil, size+1, [32]byte{}, []byte("x"))
	if err == nil {
		t.Error("AppendLog of an already logged position = nil error")
	}
	appendAll(t, db)
	re, _ = db.RunEntries(ctx, r.ID)
	for _, e := range re {
		if e.Seq < 0 {
			t.Errorf("RunEntries after logging: %s still pending", e.ID)
		}
	}
}

func testPruneCheckpoints(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	for i := 0; i < 5; i++ {
		createRun(t, db, time.Now())
		appendAll(t, db)
	}
	before, _ := db.Checkpoints(ctx, 100)
	if len(before) != 5 {
		t.Fatalf("checkpoints = %d; want 5", len(before))
	}
	n, err := db.PruneCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := db.Checkpoints(ctx, 100)
	// All five were made within a minute (or two, across a boundary): the
	// newest and the first of each minute stay.
	if len(after) < 2 || len(after) > 3 || int64(len(after))+n != 5 {
		t.Errorf("after prune: %d kept, %d pruned; want the newest and the first of each minute", len(after), n)
	}
	if string(after[0]) != string(before[0]) {
		t.Errorf("the newest checkpoint was pruned")
	}
}
