package sqlstore

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

func TestLeases(t *testing.T) {
	forEachDialect(t, func(t *testing.T, open func(t *testing.T) *DB) {
		for _, tt := range []struct {
			name string
			fn   func(t *testing.T, db *DB)
		}{
			{"RoundTrip", testLeaseRoundTrip},
			{"InactiveRunRefused", testLeaseInactiveRun},
			{"QueueDueAfterRunStops", testLeaseQueue},
			{"ClaimExcludesOtherClaimants", testLeaseClaimOnce},
			{"RetryAndAlert", testLeaseRetry},
			{"IssuingAbandoned", testLeaseIssuingAbandoned},
			{"Secrets", testSecrets},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				tt.fn(t, open(t))
			})
		}
	})
}

func newLease(run writ.RunID, now time.Time, ttl time.Duration) *writ.Lease {
	return &writ.Lease{ID: "lse_" + writ.NewULID(now, nil), Run: run, Kind: "git", Target: "acme/api", Permissions: []string{"read"},
		Decision: "dec_x", State: writ.LeaseActive, ExpiresAt: now.Add(ttl).Truncate(time.Second)}
}

func issuedEv(l *writ.Lease) *writ.Event {
	return &writ.Event{Type: writ.EventCredentialIssued, Run: l.Run, Actor: "run:" + string(l.Run), Subject: l.ID}
}

func testLeaseRoundTrip(t *testing.T, db *DB) {
	ctx := context.Background()
	r := runIn(t, db, writ.RunActive)
	l := newLease(r.ID, time.Now(), 5*time.Minute)
	l.Details = map[string]string{"repo": "acme/api"}
	if err := db.InsertLease(ctx, l, []byte("handle"), []byte("verifier"), issuedEv(l)); err != nil {
		t.Fatal(err)
	}
	got, verifier, state, err := db.LeaseVerifier(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Run != r.ID || got.State != writ.LeaseActive || got.Target != "acme/api" || got.Details["repo"] != "acme/api" ||
		!got.ExpiresAt.Equal(l.ExpiresAt) || got.IssuedAt.IsZero() || string(verifier) != "verifier" || state != writ.RunActive {
		t.Errorf("LeaseVerifier = %+v, %q, %s", got, verifier, state)
	}
	if err := db.InsertLease(ctx, l, nil, nil, nil); writ.ErrorCode(err) != "lease_exists" {
		t.Errorf("second InsertLease = %v, want lease_exists", err)
	}
	list, err := db.ListLeases(ctx, writ.LeaseFilter{Run: r.ID})
	if err != nil || len(list) != 1 || list[0].ID != l.ID {
		t.Errorf("ListLeases = %v, %v", list, err)
	}
	if _, err := db.GetLease(ctx, "lse_nope"); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("GetLease(unknown) = %v", err)
	}
	evs := eventsOf(t, db, r.ID, writ.EventCredentialIssued)
	if len(evs) != 1 || evs[0].Subject != l.ID {
		t.Errorf("credential.issued events = %v", evs)
	}
}

// eventsOf returns run's stored events of type typ.
func eventsOf(t *testing.T, db *DB, run writ.RunID, typ string) []*writ.Event {
	t.Helper()
	all, err := db.Events(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []*writ.Event
	for _, se := range all {
		if se.Run != run || se.Type != typ {
			continue
		}
		var ev writ.Event
		if err := json.Unmarshal(se.Body, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, &ev)
	}
	return out
}

func testLeaseInactiveRun(t *testing.T, db *DB) {
	ctx := context.Background()
	r := runIn(t, db, writ.RunEnded)
	l := newLease(r.ID, time.Now(), time.Minute)
	if err := db.InsertLease(ctx, l, nil, nil, issuedEv(l)); writ.ErrorCode(err) != "run_not_active" {
		t.Fatalf("InsertLease for an ended run = %v, want run_not_active", err)
	}
	if len(eventsOf(t, db, r.ID, writ.EventCredentialIssued)) != 0 {
		t.Error("a refused lease left a credential.issued event")
	}
	// Activation after the run stopped is refused too.
	r2 := runIn(t, db, writ.RunActive)
	l2 := newLease(r2.ID, time.Now(), time.Minute)
	l2.State = writ.LeaseIssuing
	if err := db.InsertLease(ctx, l2, []byte("h"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TransitionRun(ctx, r2.ID, writ.RunKilled, "test", &writ.Event{Actor: "human:alice"}); err != nil {
		t.Fatal(err)
	}
	if err := db.ActivateLease(ctx, l2, []byte("h"), nil, issuedEv(l2)); writ.ErrorCode(err) != "run_not_active" {
		t.Errorf("ActivateLease after kill = %v, want run_not_active", err)
	}
}

func testLeaseQueue(t *testing.T, db *DB) {
	ctx := context.Background()
	now := time.Now()
	r := runIn(t, db, writ.RunActive)
	other := runIn(t, db, writ.RunActive)
	var leases []*writ.Lease
	for i := 0; i < 3; i++ {
		l := newLease(r.ID, now, 5*time.Minute)
		if err := db.InsertLease(ctx, l, []byte{byte(i)}, nil, issuedEv(l)); err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	keep := newLease(other.ID, now, 5*time.Minute)
	if err := db.InsertLease(ctx, keep, nil, nil, issuedEv(keep)); err != nil {
		t.Fatal(err)
	}
	if due, err := db.LeasesDue(ctx, now); err != nil || due {
		t.Fatalf("LeasesDue before anything stopped = %v, %v", due, err)
	}
	if _, err := db.TransitionRun(ctx, r.ID, writ.RunSuspended, "test", &writ.Event{Actor: "human:alice"}); err != nil {
		t.Fatal(err)
	}
	if due, err := db.LeasesDue(ctx, now); err != nil || !due {
		t.Fatalf("LeasesDue after suspension = %v, %v", due, err)
	}
	tasks, err := db.ClaimRevocations(ctx, now, 30*time.Second, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3 {
		t.Fatalf("claimed %d leases, want the suspended run's 3", len(tasks))
	}
	var results []writ.RevocationResult
	for _, tk := range tasks {
		if tk.Reason != "run_suspended" || tk.Lease.Run != r.ID || tk.Lease.Attempts != 1 || len(tk.Handle) != 1 {
			t.Errorf("task = %+v (reason %s)", tk.Lease, tk.Reason)
		}
		results = append(results, writ.RevocationResult{ID: tk.Lease.ID, Revoked: true, Reason: tk.Reason,
			Event: &writ.Event{Type: writ.EventCredentialRevoked, Run: r.ID, Actor: writ.ActorSystem, Subject: tk.Lease.ID}})
	}
	if err := db.FinishRevocations(ctx, results); err != nil {
		t.Fatal(err)
	}
	// Finishing twice (a replica that also revoked) adds no second event.
	if err := db.FinishRevocations(ctx, results); err != nil {
		t.Fatal(err)
	}
	if n := len(eventsOf(t, db, r.ID, writ.EventCredentialRevoked)); n != 3 {
		t.Errorf("%d credential.revoked events, want 3", n)
	}
	for _, l := range leases {
		got, err := db.GetLease(ctx, l.ID)
		if err != nil || got.State != writ.LeaseRevoked || got.RevokeReason != "run_suspended" || got.RevokedAt.IsZero() {
			t.Errorf("lease after revocation = %+v, %v", got, err)
		}
	}
	if due, _ := db.LeasesDue(ctx, now); due {
		t.Error("leases still due after all were revoked")
	}
	// The other run's lease falls due at its expiry, and on request.
	if due, _ := db.LeasesDue(ctx, keep.ExpiresAt); !due {
		t.Error("an expired lease is not due")
	}
	if next, ok, err := db.NextLeaseDue(ctx); err != nil || !ok || !next.Equal(keep.ExpiresAt) {
		t.Errorf("NextLeaseDue = %v, %v, %v; want %v", next, ok, err, keep.ExpiresAt)
	}
	if _, err := db.RequestRevoke(ctx, keep.ID, "revoked"); err != nil {
		t.Fatal(err)
	}
	tasks, err = db.ClaimRevocations(ctx, now, 30*time.Second, 100)
	if err != nil || len(tasks) != 1 || tasks[0].Reason != "revoked" {
		t.Fatalf("claim after RequestRevoke = %v, %v", tasks, err)
	}
}

func testLeaseClaimOnce(t *testing.T, db *DB) {
	ctx := context.Background()
	now := time.Now()
	r := runIn(t, db, writ.RunActive)
	for i := 0; i < 20; i++ {
		l := newLease(r.ID, now, time.Minute)
		if err := db.InsertLease(ctx, l, nil, nil, issuedEv(l)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.TransitionRun(ctx, r.ID, writ.RunEnded, "done", &writ.Event{Actor: "run:x"}); err != nil {
		t.Fatal(err)
	}
	// Several claimants at once (replicas' revokers): each lease is
	// claimed by exactly one.
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tasks, err := db.ClaimRevocations(ctx, now, time.Minute, 7)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, tk := range tasks {
				seen[tk.Lease.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("lease %s claimed %d times", id, n)
		}
	}
	if len(seen) != 20 {
		t.Errorf("%d leases claimed, want 20 (4 claimants × 7 ≥ 20)", len(seen))
	}
	// Claimed leases are not due again until the claim runs out.
	if due, _ := db.LeasesDue(ctx, now); due {
		t.Error("claimed leases are due again before their claim ends")
	}
	if due, _ := db.LeasesDue(ctx, now.Add(time.Minute)); !due {
		t.Error("leases whose claim ran out (a revoker died) are not due again")
	}
}

func testLeaseRetry(t *testing.T, db *DB) {
	ctx := context.Background()
	now := time.Now()
	r := runIn(t, db, writ.RunActive)
	l := newLease(r.ID, now, time.Minute)
	if err := db.InsertLease(ctx, l, nil, nil, issuedEv(l)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RequestRevoke(ctx, l.ID, "revoked"); err != nil {
		t.Fatal(err)
	}
	tasks, err := db.ClaimRevocations(ctx, now, time.Minute, 10)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("claim = %v, %v", tasks, err)
	}
	alert := &writ.Event{Type: writ.EventAlert, Run: r.ID, Actor: writ.ActorSystem, Subject: l.ID}
	next := now.Add(2 * time.Second)
	if err := db.FinishRevocations(ctx, []writ.RevocationResult{{ID: l.ID, Error: "backend down", NextAttempt: next, Alert: alert}}); err != nil {
		t.Fatal(err)
	}
	got, _ := db.GetLease(ctx, l.ID)
	if got.State != writ.LeaseActive || got.LastError != "backend down" || got.Attempts != 1 {
		t.Errorf("lease after a failed attempt = %+v", got)
	}
	if due, _ := db.LeasesDue(ctx, now.Add(time.Second)); due {
		t.Error("due before its next attempt")
	}
	tasks, err = db.ClaimRevocations(ctx, next, time.Minute, 10)
	if err != nil || len(tasks) != 1 || !tasks[0].Alerted || tasks[0].Lease.Attempts != 2 {
		t.Fatalf("second claim = %+v, %v", tasks, err)
	}
	if n := len(eventsOf(t, db, r.ID, writ.EventAlert)); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
}

func testLeaseIssuingAbandoned(t *testing.T, db *DB) {
	ctx := context.Background()
	now := time.Now()
	r := runIn(t, db, writ.RunActive)
	l := newLease(r.ID, now, 5*time.Minute)
	l.State = writ.LeaseIssuing
	if err := db.InsertLease(ctx, l, []byte("role"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.LeasesDue(ctx, now); due {
		t.Error("a lease being issued is due at once")
	}
	later := now.Add(issueGrace + time.Second)
	tasks, err := db.ClaimRevocations(ctx, later, time.Minute, 10)
	if err != nil || len(tasks) != 1 || tasks[0].Reason != "issue_incomplete" || !bytes.Equal(tasks[0].Handle, []byte("role")) {
		t.Fatalf("claim of an abandoned issue = %+v, %v", tasks, err)
	}
	// The issuer that comes back late cannot activate what is being revoked.
	if err := db.FinishRevocations(ctx, []writ.RevocationResult{{ID: l.ID, Revoked: true, Reason: "issue_incomplete",
		Event: &writ.Event{Type: writ.EventCredentialRevoked, Run: r.ID, Actor: writ.ActorSystem, Subject: l.ID}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.ActivateLease(ctx, l, []byte("role"), nil, issuedEv(l)); writ.ErrorCode(err) != "lease_not_issuing" {
		t.Errorf("ActivateLease of a revoked lease = %v, want lease_not_issuing", err)
	}
}

func testSecrets(t *testing.T, db *DB) {
	ctx := context.Background()
	seal := func(v string) func(int) ([]byte, error) {
		return func(version int) ([]byte, error) { return []byte(v + "@" + string(rune('0'+version))), nil }
	}
	ev := func() *writ.Event {
		return &writ.Event{Type: writ.EventSecretChanged, Actor: "human:alice", Subject: "prod/db"}
	}
	v, err := db.PutSecret(ctx, "prod", "db", "human:alice", seal("a"), ev())
	if err != nil || v != 1 {
		t.Fatalf("PutSecret = %d, %v", v, err)
	}
	if v, err = db.PutSecret(ctx, "prod", "db", "human:bob", seal("b"), ev()); err != nil || v != 2 {
		t.Fatalf("second PutSecret = %d, %v", v, err)
	}
	s, err := db.GetSecret(ctx, "prod", "db")
	if err != nil || s.Version != 2 || string(s.Sealed) != "b@2" || s.UpdatedBy != "human:bob" {
		t.Errorf("GetSecret = %+v, %v", s, err)
	}
	list, err := db.ListSecrets(ctx)
	if err != nil || len(list) != 1 || list[0].Sealed != nil {
		t.Errorf("ListSecrets = %+v, %v (never the sealed value)", list, err)
	}
	if err := db.DeleteSecret(ctx, "prod", "db", ev()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSecret(ctx, "prod", "db"); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("GetSecret after delete = %v", err)
	}
	if err := db.DeleteSecret(ctx, "prod", "db", ev()); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("second delete = %v", err)
	}
}
