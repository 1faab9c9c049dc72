package auditlog_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/writ-dev/writ/auditlog"
)

// BenchmarkTileData serves random full level-0 tiles of the
// 1,000,000-entry tree, each authenticated against the signed checkpoint
// before it is served (the parents and right edge it needs come from the
// Log's cache of authenticated tiles once read).
func BenchmarkTileData(b *testing.B) {
	_, l := bigLog(b)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		n := r.Int64N(benchSize / auditlog.TileWidth)
		t0 := time.Now()
		if _, err := l.TileData(ctx, 0, n, auditlog.TileWidth); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportPercentiles(b, durs)
}
