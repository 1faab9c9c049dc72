package server_test

import (
	"context"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
)

// Benchmarks of the store backends and of several replicas, side by side
// in one run: SQLite, PostgreSQL with one replica, PostgreSQL with two
// replicas on one database. bench/replicas.sh runs them next to pgbench on
// the same PostgreSQL server (what the database itself does); the numbers
// are in docs/performance.md. Nothing here asserts on time.

// benchBackends are the configurations measured; the PostgreSQL ones are
// skipped without WRIT_TEST_POSTGRES_DSN.
var benchBackends = []struct {
	name     string
	postgres bool
	replicas int
}{
	{"sqlite", false, 1},
	{"postgres-1", true, 1},
	{"postgres-2", true, 2},
}

// startBackend starts the replicas of one configuration and returns their
// URLs and the dev human's token.
func startBackend(b *testing.B, postgres bool, replicas int) ([]string, *dev) {
	b.Helper()
	d := prepareDev(b)
	if postgres {
		if os.Getenv("WRIT_TEST_POSTGRES_DSN") == "" {
			b.Skip("WRIT_TEST_POSTGRES_DSN is unset")
		}
		d.cfg.Store = postgresDatabase(b)
		d.cfg.PublicURL = "http://writ-replicas.test"
	}
	// Budgets off: the benchmark makes many decisions per run. The policy
	// timeout is wall time: on 2 loaded cores 100 ms is not always enough,
	// and a timeout would deny (policy_error) instead of measuring.
	d.cfg.Policy.Timeout = 5 * time.Second
	for _, p := range d.cfg.Profiles {
		p.Budgets = writ.Budgets{}
	}
	var urls []string
	for i := range replicas {
		before := d.finish(b)
		if i > 0 {
			before = nil
		}
		r := start(b, d.cfg, server.Options{}, before)
		urls = append(urls, r.url)
	}
	return urls, d
}

// BenchmarkBackendDecisions: POST /v1/decide over HTTP, 16 concurrent
// clients spread over 64 runs and over the replicas; decisions/s.
func BenchmarkBackendDecisions(b *testing.B) {
	for _, bk := range benchBackends {
		b.Run(bk.name, func(b *testing.B) {
			urls, d := startBackend(b, bk.postgres, bk.replicas)
			ctx := context.Background()
			var runs []*client.Client
			for i := range 64 {
				run, err := client.New(urls[i%len(urls)], "").StartRun(ctx, d.sign(b, time.Now(), nil), nil)
				if err != nil {
					b.Fatal(err)
				}
				runs = append(runs, client.New(urls[(i/2)%len(urls)], run.Token))
			}
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c := runs[int(next.Add(1))%len(runs)]
					d, err := c.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: "read"}})
					if err != nil || d.Decision != writ.VerdictAllow {
						b.Errorf("decide: %v %+v", err, d)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkBackendEvents: durable events through the store (group commit),
// 64 concurrent appenders spread over the replicas' stores; events/s.
func BenchmarkBackendEvents(b *testing.B) {
	for _, bk := range benchBackends {
		b.Run(bk.name, func(b *testing.B) {
			dsn := ""
			if bk.postgres {
				if os.Getenv("WRIT_TEST_POSTGRES_DSN") == "" {
					b.Skip("WRIT_TEST_POSTGRES_DSN is unset")
				}
				dsn = postgresDatabase(b)
			} else {
				dsn = "sqlite://" + b.TempDir() + "/writ.db"
			}
			var stores []*sqlstore.DB
			for range bk.replicas {
				db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { db.Close() })
				stores = append(stores, db)
			}
			var next atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				db := stores[int(next.Add(1))%len(stores)]
				for pb.Next() {
					ev := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Details: map[string]any{"bench": true}}
					if err := db.AppendEvent(context.Background(), ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRevocationFanout: a run ended through replica A; the time until
// replica B refuses its token (B learns through LISTEN/NOTIFY). p50 and
// p99 over b.N runs.
func BenchmarkRevocationFanout(b *testing.B) {
	urls, d := startBackend(b, true, 2)
	ctx := context.Background()
	admin := client.New(urls[0], d.env.Token)
	var lat []time.Duration
	for b.Loop() {
		run, err := client.New(urls[0], "").StartRun(ctx, d.sign(b, time.Now(), nil), nil)
		if err != nil {
			b.Fatal(err)
		}
		viaB := client.New(urls[1], run.Token)
		if _, err := viaB.GetRun(ctx, string(run.ID)); err != nil {
			b.Fatal(err) // B has it cached as active
		}
		start := time.Now()
		if _, err := admin.Transition(ctx, string(run.ID), "kill", "bench"); err != nil {
			b.Fatal(err)
		}
		giveUp := start.Add(10 * time.Second) // a liveness bound, not a goal
		for {
			if _, err := viaB.GetRun(ctx, string(run.ID)); err != nil {
				break
			}
			if time.Now().After(giveUp) {
				b.Fatal("gave up: B still accepts the killed run's token after 10 s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds()), "p99-µs")
}
