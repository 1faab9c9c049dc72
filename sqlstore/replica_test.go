package sqlstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// openReplica opens another DB on the database of db, as a second replica
// would, closed when the test ends.
func openReplica(t *testing.T, db *DB, cfg Config) *DB {
	t.Helper()
	cfg.DSN = db.cfg.DSN
	r, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestPostgresReplicaNotifications: a run changed through one replica is
// reported to the other's OnRunChanged, cascaded children too, and events
// committed by one wake the other's OnEvents.
func TestPostgresReplicaNotifications(t *testing.T) {
	a := openPostgres(t, postgresTestDSN(t), Config{})
	var mu sync.Mutex
	changed := map[writ.RunID]bool{}
	events := 0
	b := openReplica(t, a, Config{
		OnRunChanged: func(id writ.RunID) { mu.Lock(); changed[id] = true; mu.Unlock() },
		OnEvents:     func() { mu.Lock(); events++; mu.Unlock() },
	})
	_ = b
	r := createRun(t, a, time.Now())
	waitFor(t, "B to hear of A's events", func() bool { mu.Lock(); defer mu.Unlock(); return events > 0 })
	if _, err := a.TransitionRun(context.Background(), r.ID, writ.RunKilled, "test", &writ.Event{Actor: writ.ActorSystem}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to hear of the kill", func() bool { mu.Lock(); defer mu.Unlock(); return changed[r.ID] })
}

// TestPostgresSequencerLock: one replica at a time holds the sequencer
// lock; when the holder releases it (or its session ends) another takes it.
func TestPostgresSequencerLock(t *testing.T) {
	a := openPostgres(t, postgresTestDSN(t), Config{})
	b := openReplica(t, a, Config{})
	ctx := context.Background()
	heldA, releaseA, err := a.SequencerLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		_, release, err := b.SequencerLock(ctx)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- release
	}()
	select {
	case <-got:
		t.Fatal("B took the sequencer lock A holds")
	case <-time.After(3 * sequencerRetry):
	}
	if heldA.Err() != nil {
		t.Fatal("A's lock context is done while A holds the lock")
	}
	releaseA()
	if heldA.Err() == nil {
		t.Fatal("A's lock context is not done after release")
	}
	select {
	case release := <-got:
		if release != nil {
			release()
		}
	case <-time.After(30 * time.Second):
		t.Fatal("B did not take the sequencer lock after A released it")
	}
}

// TestPostgresExpireOnce: two replicas sweeping at once expire each due
// run once, with one event.
func TestPostgresExpireOnce(t *testing.T) {
	a := openPostgres(t, postgresTestDSN(t), Config{})
	b := openReplica(t, a, Config{})
	now := time.Now()
	const n = 20
	for range n {
		createRun(t, a, now, func(r *writ.Run) { r.Deadline = now.Add(-time.Minute); r.CreatedAt = now.Add(-time.Hour) })
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, db := range []*DB{a, b} {
		wg.Go(func() {
			for range 5 {
				got, err := db.ExpireRuns(context.Background(), now, 3)
				if err != nil {
					t.Error(err)
					return
				}
				counts[i] += len(got)
			}
		})
	}
	wg.Wait()
	if counts[0]+counts[1] > n {
		t.Fatalf("the replicas expired %d + %d runs of %d", counts[0], counts[1], n)
	}
	evs, err := a.Events(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	expired := map[writ.RunID]int{}
	for _, e := range evs {
		if e.Type == writ.EventRunExpired {
			expired[e.Run]++
		}
	}
	for id, k := range expired {
		if k != 1 {
			t.Errorf("run %s has %d run.expired events", id, k)
		}
	}
	if len(expired) != counts[0]+counts[1] {
		t.Errorf("%d runs have a run.expired event, the sweeps returned %d", len(expired), counts[0]+counts[1])
	}
}

// waitFor calls cond until it returns true, or fails t after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
