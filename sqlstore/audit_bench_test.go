package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the peer opens SQLite itself, with the store's driver

	"github.com/writ-dev/writ"
)

// The audit log's first speed figure (issue 4): durable events per second
// through the store, with group commit, beside a plain insert of the same
// rows into SQLite. bench/run.sh step j runs these with a fixed count,
//
//	go test -run='^$' -bench='^BenchmarkAudit' -benchtime=100000x ./sqlstore/
//
// and docs/performance.md ("Audit log") reports them. The integrator is not
// running here: server/audit_bench_test.go measures the same appends with
// it, as `writ serve` wires it.

// auditBenchEvent is an event like the ones writ appends on its own: a run
// token issued (httpapi's tokenEvent), about 450 bytes once stored.
func auditBenchEvent(i int) *writ.Event {
	run := writ.RunID(fmt.Sprintf("01kb3v4k5m6n7p8q9r%08d", i/8))
	return &writ.Event{
		Type:    writ.EventTokenIssued,
		Run:     run,
		Actor:   "spiffe://writ.bench/agent/claude/run/" + string(run),
		Subject: "spiffe://writ.bench/agent/claude/run/" + string(run),
		Details: map[string]any{
			"jti":   fmt.Sprintf("01kb3v4k5m6n7p8q9r%08d", i),
			"aud":   []string{"https://vault.example.org"},
			"exp":   1764100000 + i,
			"bound": true,
			"jkt":   "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiGQA4I",
		},
	}
}

// auditPeerRow is the row the store writes for auditBenchEvent(i), with
// the id and time the store would give it: the peer inserts the same bytes.
func auditPeerRow(i int, now time.Time) (id, typ string, run any, body []byte) {
	ev := auditBenchEvent(i)
	ev.ID = writ.NewULID(now, nil)
	ev.Time = now.UTC()
	body, err := ev.Marshal()
	if err != nil {
		panic(err)
	}
	return ev.ID, ev.Type, string(ev.Run), body
}

// auditParallel calls fn(i) for every i in [0, n) from c goroutines and
// returns the first error.
func auditParallel(c, n int, fn func(i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func reportEventsPerSecond(b *testing.B) {
	// A rate reported, not asserted; the floor only avoids dividing by 0.
	b.ReportMetric(float64(b.N)/max(b.Elapsed().Seconds(), 1e-9), "events/s")
}

// BenchmarkAuditAppend appends b.N events through DB.AppendEvent, one event
// per request, from c concurrent callers: every call returns once its
// event is committed (durable at the configured level). The callers'
// requests share commits (group commit); reqs/batch says how many.
func BenchmarkAuditAppend(b *testing.B) {
	for _, durability := range []string{DurabilityNormal, DurabilityFull} {
		for _, c := range []int{1, 16, 64, 256} {
			b.Run(fmt.Sprintf("%s/c=%d", durability, c), func(b *testing.B) {
				db := openSQLite(b, Config{Durability: durability})
				ctx := context.Background()
				evs := make([]*writ.Event, b.N)
				for i := range evs {
					evs[i] = auditBenchEvent(i)
				}
				b0, r0 := db.nBatches.Load(), db.nRequests.Load()
				b.ReportAllocs()
				b.ResetTimer()
				err := auditParallel(c, b.N, func(i int) error { return db.AppendEvent(ctx, evs[i]) })
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				reportEventsPerSecond(b)
				if n := db.nBatches.Load() - b0; n > 0 {
					b.ReportMetric(float64(db.nRequests.Load()-r0)/float64(n), "reqs/batch")
				}
			})
		}
	}
}

// openAuditPeer opens a SQLite database of its own with the store's driver
// and the store's journal settings (WAL, synchronous NORMAL or FULL by
// durability), on one connection, and creates the peer's table: either a
// bare table of the outbox's four written columns and nothing else, or
// (schema "writ") writ's whole schema from its migrations, so the rows go
// into the real outbox with its indexes.
func openAuditPeer(b *testing.B, durability, schema string) *sql.DB {
	b.Helper()
	syncMode := "NORMAL"
	if durability == DurabilityFull {
		syncMode = "FULL"
	}
	path := filepath.Join(b.TempDir(), "peer.db")
	db, err := sql.Open("sqlite", sqliteDSN(path, "busy_timeout(10000)", "journal_mode(WAL)", "synchronous("+syncMode+")"))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	b.Cleanup(func() { db.Close() })
	switch schema {
	case "bare":
		if _, err := db.Exec(`CREATE TABLE outbox (pos INTEGER PRIMARY KEY, id TEXT NOT NULL, type TEXT NOT NULL, run TEXT, body BLOB NOT NULL)`); err != nil {
			b.Fatal(err)
		}
	case "writ":
		ms, err := sqliteDialect.loadMigrations()
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range ms {
			if _, err := db.Exec(m.sql); err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
		}
	default:
		b.Fatalf("schema %q", schema)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		b.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	return db
}

// BenchmarkAuditPeerInsert is the peer of BenchmarkAuditAppend: the same
// event bytes (marshalled before the timer, with the id and time the store
// would give them) inserted into SQLite directly.
//
//   - autocommit: one INSERT per row, each its own transaction, from c
//     callers sharing the one connection (database/sql queues them), so
//     every row pays a commit: "a plain insert of the same rows";
//   - onetx: every row in one transaction, one prepared INSERT, one commit:
//     the upper bound of inserting these rows into SQLite at all.
//
// Both use a bare table; onetx-writ-schema inserts into writ's own outbox
// table and indexes, created from the store's migrations, to separate what
// the schema costs from what the store's request path costs.
func BenchmarkAuditPeerInsert(b *testing.B) {
	const insert = "INSERT INTO outbox (id, type, run, body) VALUES (?, ?, ?, ?)"
	type row struct {
		id, typ string
		run     any
		body    []byte
	}
	var bodyBytes float64 // mean body size of the last rows made
	rows := func(n int) []row {
		now := time.Now()
		out := make([]row, n)
		size := 0
		for i := range out {
			out[i].id, out[i].typ, out[i].run, out[i].body = auditPeerRow(i, now)
			size += len(out[i].body)
		}
		bodyBytes = float64(size) / float64(max(n, 1))
		return out
	}
	for _, durability := range []string{DurabilityNormal, DurabilityFull} {
		for _, c := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/autocommit/c=%d", durability, c), func(b *testing.B) {
				db := openAuditPeer(b, durability, "bare")
				rs := rows(b.N)
				stmt, err := db.Prepare(insert)
				if err != nil {
					b.Fatal(err)
				}
				defer stmt.Close()
				b.ReportAllocs()
				b.ResetTimer()
				err = auditParallel(c, b.N, func(i int) error {
					_, err := stmt.Exec(rs[i].id, rs[i].typ, rs[i].run, rs[i].body)
					return err
				})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				reportEventsPerSecond(b)
				b.ReportMetric(bodyBytes, "body-B/event")
			})
		}
		for _, schema := range []string{"bare", "writ"} {
			name := durability + "/onetx"
			if schema == "writ" {
				if durability != DurabilityNormal {
					continue // one commit: durability hardly matters
				}
				name += "-writ-schema"
			}
			b.Run(name, func(b *testing.B) {
				db := openAuditPeer(b, durability, schema)
				rs := rows(b.N)
				b.ReportAllocs()
				b.ResetTimer()
				err := func() error {
					tx, err := db.Begin()
					if err != nil {
						return err
					}
					stmt, err := tx.Prepare(insert)
					if err != nil {
						return errors.Join(err, tx.Rollback())
					}
					for i := range rs {
						if _, err := stmt.Exec(rs[i].id, rs[i].typ, rs[i].run, rs[i].body); err != nil {
							return errors.Join(err, tx.Rollback())
						}
					}
					stmt.Close()
					return tx.Commit()
				}()
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				reportEventsPerSecond(b)
				b.ReportMetric(bodyBytes, "body-B/event")
			})
		}
	}
}
