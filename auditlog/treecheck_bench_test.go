package auditlog_test

import (
	"context"
	"testing"
)

// BenchmarkCheckTree re-derives a tree of 1,000,000 entries of about 300
// bytes from their bytes (auditlog.Log.CheckTree over the in-memory
// store): leaf hashes, every stored hash and every checkpoint's root.
func BenchmarkCheckTree(b *testing.B) {
	s := newMemStore()
	l := newTestLog(b, s, 0)
	ctx := context.Background()
	for n := 0; n < benchSize; n += 100_000 {
		for i := n; i < n+100_000; i++ {
			s.add(benchEvent(i))
		}
		if _, err := l.Integrate(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rep, err := l.CheckTree(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Damaged() || rep.Size != benchSize {
			b.Fatalf("report %+v", rep)
		}
	}
	b.ReportMetric(float64(benchSize*b.N)/b.Elapsed().Seconds(), "entries/s")
}
