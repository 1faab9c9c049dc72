package auditlog_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
)

// Integrating in batches of any size gives the root an independent RFC 6962
// implementation computes from the same bytes, and every stored checkpoint
// opens with the log key and commits to the entries it covers.
func TestIntegrateBatches(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		maxBatch int
		adds     []int // events committed before each Integrate
	}{
		{"one", 0, []int{1}},
		{"seven", 0, []int{7}},
		{"thousand", 0, []int{1000}},
		{"one at a time", 0, []int{1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"uneven", 0, []int{3, 1, 7, 64, 1, 129, 1000, 5}},
		{"across batch boundaries", 7, []int{1, 6, 7, 8, 13, 14, 15, 100}},
		{"batch of one", 1, []int{5, 1, 2}},
		{"batch of 4096 plus", 0, []int{4097, 4095, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore()
			l := newTestLog(t, s, tc.maxBatch)
			ref := newRefTree()
			total := 0
			for _, k := range tc.adds {
				bodies := events(total, total+k)
				s.add(bodies...)
				ref.add(bodies...)
				total += k
				n, err := l.Integrate(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n != k {
					t.Errorf("Integrate() = %d; want %d", n, k)
				}
				cp := latest(t, l)
				if cp.Size != int64(total) || cp.Root != ref.roots[total] {
					t.Fatalf("after %d events: checkpoint %v; want size %d root %v", total, cp, total, ref.roots[total])
				}
				if l.Size() != int64(total) {
					t.Errorf("Size() = %d; want %d", l.Size(), total)
				}
			}
			for i, cp := range openAll(t, s.checkpoints()) {
				if cp.Root != ref.roots[cp.Size] {
					t.Errorf("stored checkpoint %d (size %d) has root %v; the reference tree has %v", i, cp.Size, cp.Root, ref.roots[cp.Size])
				}
			}
			// A pass with nothing new signs nothing.
			before := len(s.checkpoints())
			if n, err := l.Integrate(ctx); n != 0 || err != nil {
				t.Errorf("Integrate() with nothing pending = %d, %v", n, err)
			}
			if after := len(s.checkpoints()); after != before {
				t.Errorf("a pass with nothing pending stored %d checkpoints", after-before)
			}
		})
	}
}

// The leaf is SHA-256(0x00 || the exact stored bytes): bytes that no
// encoder would produce are hashed as they are.
func TestIntegrateHashesExactBytes(t *testing.T) {
	s := newMemStore()
	l := newTestLog(t, s, 0)
	body := []byte("{ \"type\" :\"decision\",  \"id\":\"x\"}\n\x00\xff")
	s.add(body)
	if _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(append([]byte{0}, body...))
	if got := latest(t, l).Root; got != want {
		t.Errorf("root of a one-entry log = %x; want SHA-256(0x00 || body) = %x", got[:], want[:])
	}
	if got := s.entries()[0].LeafHash; *got != want {
		t.Errorf("recorded leaf hash = %x; want %x", got[:], want[:])
	}
}

// The empty log has a signed checkpoint too: size 0 and the root
// SHA-256("") of RFC 6962 §2.1.
func TestEmptyLog(t *testing.T) {
	s := newMemStore()
	l := newTestLog(t, s, 0)
	if n, err := l.Integrate(context.Background()); n != 0 || err != nil {
		t.Fatalf("Integrate(empty) = %d, %v", n, err)
	}
	cp := latest(t, l)
	if got, want := hex.EncodeToString(cp.Root[:]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; cp.Size != 0 || got != want {
		t.Errorf("empty log checkpoint = size %d root %s; want 0 and %s", cp.Size, got, want)
	}
	if len(s.checkpoints()) != 0 {
		t.Error("the empty checkpoint was stored; LatestCheckpoint must stay nil for an empty log")
	}
	if v, err := auditlog.Verify(cp, nil, nil); err != nil || v.Entries != 0 {
		t.Errorf("Verify(empty) = %v, %v", v, err)
	}
}

// Published RFC 6962 test vectors (the Certificate Transparency ones, as
// transparency-dev/merkle ships them): leaf inputs, every root from size 0
// to 8, and the audit paths and consistency proofs of its proof tests.
func TestRFC6962Vectors(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	leaves, roots := testonly.LeafInputs(), testonly.RootHashes()
	if cp := latest(t, l); cp.Root != toHash(roots[0]) {
		t.Errorf("empty root = %v; want %x", cp.Root, roots[0])
	}
	for i, in := range leaves {
		s.add(in)
		if _, err := l.Integrate(ctx); err != nil {
			t.Fatal(err)
		}
		if got := latest(t, l).Root; got != toHash(roots[i+1]) {
			t.Errorf("root of %d leaves = %x; want %x", i+1, got[:], roots[i+1])
		}
		if got := auditlog.LeafHash(in); got != toHash(testonly.NodeHashes()[0][i]) {
			t.Errorf("LeafHash(%x) = %x; want %x", in, got[:], testonly.NodeHashes()[0][i])
		}
	}

	h := func(s string) auditlog.Hash {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return toHash(b)
	}
	// Inclusion: index (0-based), size, audit path.
	for _, v := range []struct {
		index, size int64
		path        []auditlog.Hash
	}{
		{0, 1, nil},
		{0, 8, []auditlog.Hash{
			h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
			h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
			h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")}},
		{5, 8, []auditlog.Hash{
			h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
			h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
			h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
		{2, 3, []auditlog.Hash{
			h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")}},
		{1, 5, []auditlog.Hash{
			h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
			h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
			h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")}},
	} {
		p, err := l.InclusionProof(ctx, v.index, v.size)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v.path, []auditlog.Hash(p), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("InclusionProof(%d, %d) differs from the published path (-want +got):\n%s", v.index, v.size, diff)
		}
	}
	// Consistency: from, to, proof.
	for _, v := range []struct {
		from, to int64
		proof    []auditlog.Hash
	}{
		{1, 1, nil},
		{1, 8, []auditlog.Hash{
			h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
			h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
			h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")}},
		{6, 8, []auditlog.Hash{
			h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
			h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
			h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
		{2, 5, []auditlog.Hash{
			h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
			h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")}},
		{6, 7, []auditlog.Hash{
			h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
			h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
			h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
	} {
		p, err := l.ConsistencyProof(ctx, v.from, v.to)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v.proof, []auditlog.Hash(p), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ConsistencyProof(%d, %d) differs from the published proof (-want +got):\n%s", v.from, v.to, diff)
		}
	}
}

// Every inclusion and consistency proof writ serves is accepted by the
// independent implementation (transparency-dev/merkle), is the proof its
// reference tree builds, and is accepted by CheckInclusion and
// CheckConsistency.
func TestProofsInterop(t *testing.T) {
	ctx := context.Background()
	const n = 70
	s := newMemStore()
	l := newTestLog(t, s, 9) // several checkpoints, batches straddling subtrees
	ref := testonly.New(rfc6962.DefaultHasher)
	bodies := events(0, n)
	s.add(bodies...)
	ref.AppendData(bodies...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	hasher := rfc6962.DefaultHasher
	root := func(size int64) auditlog.Hash { return toHash(ref.HashAt(uint64(size))) }
	for size := int64(1); size <= n; size++ {
		cp := auditlog.Checkpoint{Origin: testOrigin, Size: size, Root: root(size)}
		for index := int64(0); index < size; index++ {
			p, err := l.InclusionProof(ctx, index, size)
			if err != nil {
				t.Fatal(err)
			}
			leaf := auditlog.LeafHash(bodies[index])
			if err := proof.VerifyInclusion(hasher, uint64(index), uint64(size), leaf[:], toBytes(p), cp.Root[:]); err != nil {
				t.Fatalf("merkle/proof rejects writ's inclusion proof of %d in %d: %v", index, size, err)
			}
			want, err := ref.InclusionProof(uint64(index), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, toBytes(p)); diff != "" {
				t.Fatalf("inclusion proof of %d in %d differs from the reference (-want +got):\n%s", index, size, diff)
			}
			if err := auditlog.CheckInclusion(p, cp, index, leaf); err != nil {
				t.Fatal(err)
			}
		}
		for from := int64(0); from <= size; from++ {
			p, err := l.ConsistencyProof(ctx, from, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(hasher, uint64(from), uint64(size), toBytes(p), ref.HashAt(uint64(from)), cp.Root[:]); err != nil {
				t.Fatalf("merkle/proof rejects writ's consistency proof from %d to %d: %v", from, size, err)
			}
			want, err := ref.ConsistencyProof(uint64(from), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			if len(want)+len(p) > 0 {
				if diff := cmp.Diff(want, toBytes(p)); diff != "" {
					t.Fatalf("consistency proof from %d to %d differs from the reference (-want +got):\n%s", from, size, diff)
				}
			}
			older := auditlog.Checkpoint{Origin: testOrigin, Size: from, Root: root(from)}
			if from == 0 {
				older.Root = toHash(hasher.EmptyRoot())
			}
			if err := auditlog.CheckConsistency(p, older, cp); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestProofArguments(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	s.add(events(0, 10)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"index = size", proofErr(l.InclusionProof(ctx, 5, 5))},
		{"index > size", proofErr(l.InclusionProof(ctx, 6, 5))},
		{"negative index", proofErr(l.InclusionProof(ctx, -1, 5))},
		{"size 0", proofErr(l.InclusionProof(ctx, 0, 0))},
		{"size > log", proofErr(l.InclusionProof(ctx, 0, 11))},
		{"from > to", proofErr(l.ConsistencyProof(ctx, 6, 5))},
		{"negative from", proofErr(l.ConsistencyProof(ctx, -1, 5))},
		{"to > log", proofErr(l.ConsistencyProof(ctx, 1, 11))},
	} {
		if writ.ErrorKind(tc.err) != writ.KindInvalid {
			t.Errorf("%s: error %v; want a *writ.Error of KindInvalid", tc.name, tc.err)
		}
	}
	if _, err := l.InclusionProof(ctx, 9, 10); err != nil {
		t.Errorf("InclusionProof(9, 10) = %v", err)
	}
	if _, err := l.ConsistencyProof(ctx, 10, 10); err != nil {
		t.Errorf("ConsistencyProof(10, 10) = %v", err)
	}
}

func proofErr[T any](_ T, err error) error { return err }

// A Log that has not integrated reads the store for proofs (a replica that
// is not the integrator).
func TestProofsOnAnotherReplica(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	s.add(events(0, 20)...)
	if _, err := newTestLog(t, s, 0).Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := newTestLog(t, s, 0).WaitFor(wctx, 19); err != nil { // no Run: it reads the store
		t.Errorf("WaitFor on a fresh Log = %v", err)
	}
	other := newTestLog(t, s, 0)
	if _, err := other.InclusionProof(ctx, 19, 20); err != nil {
		t.Errorf("InclusionProof on a fresh Log = %v", err)
	}
	if other.Size() != 20 {
		t.Errorf("Size() after reading the store = %d; want 20", other.Size())
	}
}

// WaitFor returns once the entry is in a signed checkpoint.
func TestWaitFor(t *testing.T) {
	s := newMemStore()
	l := newTestLog(t, s, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	for round := range 5 {
		s.add(events(round*10, round*10+10)...)
		l.Wake()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		err := l.WaitFor(wctx, int64(round*10+9))
		wcancel()
		if err != nil {
			t.Fatalf("round %d: WaitFor = %v", round, err)
		}
		if got := l.Size(); got < int64(round*10+10) {
			t.Fatalf("round %d: WaitFor returned at size %d", round, got)
		}
	}
	// Without Wake: WaitFor wakes the integrator itself.
	s.add(event(50))
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := l.WaitFor(wctx, 50); err != nil {
		t.Fatalf("WaitFor without Wake = %v", err)
	}
	// An entry that never comes: WaitFor returns the context's error.
	short, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer scancel()
	if err := l.WaitFor(short, 1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor(never) = %v; want the deadline", err)
	}
	if err := l.WaitFor(ctx, -1); writ.ErrorKind(err) != writ.KindInvalid {
		t.Errorf("WaitFor(-1) = %v; want KindInvalid", err)
	}
}

// Integrate may be called from several goroutines: the calls serialize
// and every event is sequenced exactly once.
func TestIntegrateConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 5)
	ref := newRefTree()
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := range 4 {
		wg.Go(func() {
			for i := range 10 {
				mu.Lock()
				b := event(1000*g + i)
				s.add(b)
				ref.add(b)
				total++
				mu.Unlock()
				if _, err := l.Integrate(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	cp := latest(t, l)
	if cp.Size != int64(total) || cp.Root != ref.roots[total] {
		t.Errorf("after concurrent integration: %v; want size %d root %v", cp, total, ref.roots[total])
	}
	if _, err := auditlog.Verify(cp, s.entries(), openAll(t, s.checkpoints())); err != nil {
		t.Error(err)
	}
}

// A failed AppendLog changes nothing; the next pass sequences the same
// events.
func TestIntegrateAppendFails(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	s.add(events(0, 5)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.add(events(5, 8)...)
	s.failAppend = errors.New("disk full")
	if n, err := l.Integrate(ctx); err == nil || n != 0 {
		t.Fatalf("Integrate with a failing store = %d, %v; want 0 and an error", n, err)
	}
	if l.Size() != 5 {
		t.Errorf("Size() after a failed append = %d; want 5", l.Size())
	}
	s.failAppend = nil
	if n, err := l.Integrate(ctx); err != nil || n != 3 {
		t.Fatalf("Integrate after recovery = %d, %v; want 3", n, err)
	}
	ref := newRefTree()
	ref.add(events(0, 8)...)
	if cp := latest(t, l); cp.Root != ref.roots[8] {
		t.Errorf("root after recovery = %v; want %v", cp.Root, ref.roots[8])
	}
}

// Attack: a stored tree hash is altered. The integrator must not sign a
// checkpoint on top of a tree that does not reproduce the last signed
// root — that would publish a fork.
func TestIntegrateRefusesCorruptTree(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	s.add(events(0, 13)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Alter the hash of the complete subtree [8, 12), on the right edge.
	s.mu.Lock()
	s.hashes[tlog.StoredHashIndex(2, 2)][0] ^= 1
	s.mu.Unlock()
	s.add(event(13))
	n, err := l.Integrate(ctx)
	if err == nil || n != 0 {
		t.Fatalf("Integrate over an altered tree = %d, %v; want a refusal", n, err)
	}
	if got := len(s.checkpoints()); got != 1 {
		t.Errorf("%d checkpoints stored; want the one before the corruption", got)
	}
}

// Attack: the database is restored from a backup behind what this server
// already signed. Continuing would sign a second, different tree of the
// same sizes (a fork); the Log refuses to integrate or serve.
func TestIntegrateRefusesRollback(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	s.add(events(0, 10)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	backup := s.snapshot()
	s.add(events(10, 20)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.restore(backup)
	s.add([]byte("a different event 10"))
	if n, err := l.Integrate(ctx); err == nil || n != 0 {
		t.Fatalf("Integrate after a rollback = %d, %v; want a refusal", n, err)
	}
	if _, err := l.Checkpoint(ctx); err == nil {
		t.Error("Checkpoint after a rollback passed; want a refusal")
	}
	if got := len(s.checkpoints()); got != 1 {
		t.Errorf("%d checkpoints stored after the rollback; want 1 (nothing new signed)", got)
	}
}

// Attack: the log size and the latest checkpoint disagree (entries were
// sequenced without a checkpoint, or a checkpoint deleted).
func TestIntegrateRefusesSizeMismatch(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	l := newTestLog(t, s, 0)
	s.add(events(0, 4)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.add(events(4, 8)...)
	if _, err := l.Integrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Delete the newest checkpoint: the store now claims 8 entries under
	// a checkpoint of 4. A fresh Log (a restarted server) must refuse.
	s.mu.Lock()
	s.notes = s.notes[:1]
	s.mu.Unlock()
	s.add(event(8))
	n, err := newTestLog(t, s, 0).Integrate(ctx)
	if err == nil || n != 0 {
		t.Fatalf("Integrate with a missing checkpoint = %d, %v; want a refusal", n, err)
	}
	if !strings.Contains(err.Error(), "holds 8 log entries but its latest checkpoint commits to 4") {
		t.Errorf("error %v; want the two sizes named", err)
	}
}

func TestNewRefuses(t *testing.T) {
	signer, _ := testKeys(t)
	for _, cfg := range []auditlog.Config{
		{Signer: signer, Origin: testOrigin},
		{Store: newMemStore(), Origin: testOrigin},
		{Store: newMemStore(), Signer: signer},
		{Store: newMemStore(), Signer: signer, Origin: "a\nb"},
		{Store: newMemStore(), Signer: signer, Origin: testOrigin, MaxBatch: -1},
		{Store: newMemStore(), Signer: signer, Origin: testOrigin, Interval: -time.Second},
	} {
		if _, err := auditlog.New(cfg); err == nil {
			t.Errorf("New(%+v) passed", cfg)
		}
	}
}

// Run returns nil once its context is done, also while the store fails.
func TestRunStops(t *testing.T) {
	s := newMemStore()
	s.failAppend = errors.New("store down")
	s.add(event(0))
	l := newTestLog(t, s, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	l.Wake()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v; want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
}
