package auditlog_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ/auditlog"
)

// The benchmarks measure this package's work — hashing, tree arithmetic,
// signing — over the in-memory store; the SQL round trips of sqlstore come
// on top and are measured in its own benchmarks.

const benchSize = 1_000_000

// benchEvent is an event body of about 300 bytes, the size of a typical
// writ decision event.
func benchEvent(i int) []byte {
	return fmt.Appendf(nil, `{"id":"ev_%012d","time":"2026-01-02T03:04:05.123456789Z","type":"decision","run":"run_%08d","actor":"spiffe://example.com/agent/a%d","action":"git.push","decision":"dec_%012d","subject":"refs/heads/main","details":{"policy_revision":"r%d","paths":["src/main.go","README.md"],"outcome":"allow"}}`, i, i/50, i%7, i, i%3)
}

// big is one log of benchSize entries, built once and shared by the
// benchmarks (building it takes a few seconds).
var big struct {
	once  sync.Once
	store *memStore
	log   *auditlog.Log
	err   error
}

func bigLog(b *testing.B) (*memStore, *auditlog.Log) {
	b.Helper()
	big.once.Do(func() {
		s := newMemStore()
		s.keepBodies = false
		signer, err := note.NewSigner(testSkey)
		if err != nil {
			big.err = err
			return
		}
		l, err := auditlog.New(auditlog.Config{Store: s, Signer: signer, Origin: testOrigin})
		if err != nil {
			big.err = err
			return
		}
		start := time.Now()
		for n := 0; n < benchSize; n += 100_000 {
			for i := n; i < n+100_000; i++ {
				s.add(benchEvent(i))
			}
			if _, err := l.Integrate(context.Background()); err != nil {
				big.err = err
				return
			}
		}
		b.Logf("built a log of %d entries in %v", benchSize, time.Since(start).Round(time.Millisecond))
		big.store, big.log = s, l
	})
	if big.err != nil {
		b.Fatal(big.err)
	}
	return big.store, big.log
}

// BenchmarkIntegrate appends batches to the 1,000,000-entry tree: one
// Integrate pass per batch (leaf and tree hashes, one signature, one
// AppendLog).
func BenchmarkIntegrate(b *testing.B) {
	for _, batch := range []int{1, 1000, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, l := bigLog(b)
			ctx := context.Background()
			next := int(l.Size())
			bodies := make([][]byte, batch)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				for i := range bodies {
					bodies[i] = benchEvent(next + i)
				}
				s.add(bodies...)
				next += batch
				b.StartTimer()
				n, err := l.Integrate(ctx)
				if err != nil || n != batch {
					b.Fatalf("Integrate = %d, %v; want %d", n, err, batch)
				}
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkInclusionProof proves random entries in the tree of 1,000,000
// entries. The goal is p99 < 1 ms.
func BenchmarkInclusionProof(b *testing.B) {
	_, l := bigLog(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		i := r.Int64N(benchSize)
		t0 := time.Now()
		if _, err := l.InclusionProof(ctx, i, benchSize); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, durs)
}

// BenchmarkCheckInclusion is the client's side of an inclusion proof at
// 1,000,000 entries.
func BenchmarkCheckInclusion(b *testing.B) {
	s, l := bigLog(b)
	ctx := context.Background()
	// The signed checkpoint of exactly benchSize entries (the building
	// passes end there).
	var cp auditlog.Checkpoint
	for _, c := range openAll(b, s.checkpoints()) {
		if c.Size == benchSize {
			cp = c
		}
	}
	if cp.Size != benchSize {
		b.Fatal("no checkpoint of size 1,000,000")
	}
	const index = 765_432
	p, err := l.InclusionProof(ctx, index, benchSize)
	if err != nil {
		b.Fatal(err)
	}
	leaf := auditlog.LeafHash(benchEvent(index))
	for b.Loop() {
		if err := auditlog.CheckInclusion(p, cp, index, leaf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify verifies a whole export: every leaf from its bytes, the
// tree, the root. The goal is < 20 s for 1,000,000 entries.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			cp, entries, older := exportOf(b, n)
			b.ResetTimer()
			for range b.N {
				v, err := auditlog.Verify(cp, entries, older)
				if err != nil || v.Entries != int64(n) {
					b.Fatal(v, err)
				}
			}
			per := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(n)/per, "entries/s")
			b.ReportMetric(per*1e6/float64(n), "s/1M-entries")
		})
	}
}

// exportOf builds a log of n entries and returns what an export holds:
// the latest checkpoint, the entries with their recorded leaf hashes, and
// the older checkpoints (one per 4096-entry batch).
func exportOf(b *testing.B, n int) (auditlog.Checkpoint, []auditlog.Entry, []auditlog.Checkpoint) {
	b.Helper()
	s := newMemStore()
	l := newTestLog(b, s, 0)
	for i := range n {
		s.add(benchEvent(i))
	}
	if _, err := l.Integrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	cps := openAll(b, s.checkpoints())
	return cps[len(cps)-1], s.entries(), cps[:len(cps)-1]
}

func reportPercentiles(b *testing.B, durs []time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	at := func(q float64) float64 { return float64(durs[int(q*float64(len(durs)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}
