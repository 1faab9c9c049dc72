package server

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/writ-dev/writ/auditlog"
)

// BenchmarkAuditTileData1M serves random full level-0 tiles of the cached
// 1,000,000-entry log over the real SQLite store (auditlog.Log.TileData,
// in process), each authenticated against the signed checkpoint before it
// is served. Run BenchmarkAuditBuild1M first.
func BenchmarkAuditTileData1M(b *testing.B) {
	_, _, _, l := openAudit1M(b)
	ctx := context.Background()
	cp, _, err := l.Latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	tiles := cp.Size / auditlog.TileWidth
	for range 100 { // warm the database pages, as the proof benchmark does
		if _, err := l.TileData(ctx, 0, r.Int64N(tiles), auditlog.TileWidth); err != nil {
			b.Fatal(err)
		}
	}
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		n := r.Int64N(tiles)
		t0 := time.Now()
		if _, err := l.TileData(ctx, 0, n, auditlog.TileWidth); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, durs)
}

// BenchmarkAuditCheckTree1M re-derives the cached 1,000,000-entry log's
// stored tree from the entries' bytes over the real SQLite store
// (auditlog.Log.CheckTree: every entry, every stored hash, every stored
// checkpoint's root), as the server's background check does.
func BenchmarkAuditCheckTree1M(b *testing.B) {
	_, _, _, l := openAudit1M(b)
	ctx := context.Background()
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		rep, err := l.CheckTree(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Damaged() {
			b.Fatalf("the cached log is damaged: %s", rep.Message())
		}
		size = rep.Size
	}
	b.ReportMetric(float64(size*int64(b.N))/b.Elapsed().Seconds(), "entries/s")
}
