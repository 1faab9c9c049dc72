package sqlstore

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCreateRunSerial creates runs one after another: every CreateRun
// is its own commit.
func BenchmarkCreateRunSerial(b *testing.B) {
	for _, durability := range []string{DurabilityNormal, DurabilityFull} {
		b.Run(durability, func(b *testing.B) {
			db := openSQLite(b, Config{Durability: durability})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r, trig, evs := testRun(time.Now())
				if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
					b.Fatal(err)
				}
			}
			reportBatches(b, db)
		})
	}
}

// BenchmarkCreateRunParallel creates runs from many goroutines at once:
// their requests share commits (group commit).
func BenchmarkCreateRunParallel(b *testing.B) {
	for _, durability := range []string{DurabilityNormal, DurabilityFull} {
		b.Run(durability, func(b *testing.B) {
			db := openSQLite(b, Config{Durability: durability})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(32) // 32 × GOMAXPROCS concurrent callers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, trig, evs := testRun(time.Now())
					if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportBatches(b, db)
		})
	}
}

func reportBatches(b *testing.B, db *DB) {
	if n := db.nBatches.Load(); n > 0 {
		b.ReportMetric(float64(db.nRequests.Load())/float64(n), "reqs/batch")
	}
}
