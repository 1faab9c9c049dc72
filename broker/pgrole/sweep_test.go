package pgrole

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/sqlstore"
)

// TestSweepRevokesRolesTheStoreForgot is what a restore leaves behind: a
// role made for a lease the (restored) store does not know. The sweep
// finds it by listing, records an alert first and drops it; roles of
// another installation on the same cluster (roles are cluster-wide) and
// roles of leases the store knows are left alone.
func TestSweepRevokesRolesTheStoreForgot(t *testing.T) {
	ctx := context.Background()
	dsn := testDatabase(t)
	// Roles are cluster-wide and outlive the test's database: owners of
	// this run's own.
	var rnd [6]byte
	rand.Read(rnd[:])
	tag := hex.EncodeToString(rnd[:])
	mine, err := New([]Database{{Name: "app", DSN: dsn, Allow: []string{"read:appdata"}, Owner: "mine-" + tag + ".test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mine.Close)
	theirs, err := New([]Database{{Name: "app", DSN: dsn, Allow: []string{"read:appdata"}, Owner: "theirs-" + tag + ".test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(theirs.Close)
	forgotten, _, err := issue(t, mine, []string{"read:appdata"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mine.Revoke(context.Background(), &writ.Lease{ID: forgotten.Lease}, forgotten.Handle) })
	other, _, err := issue(t, theirs, []string{"read:appdata"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { theirs.Revoke(context.Background(), &writ.Lease{ID: other.Lease}, other.Handle) })

	found, err := mine.Outstanding(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leases []string
	for _, o := range found {
		leases = append(leases, o.Lease)
	}
	if !slices.Equal(leases, []string{forgotten.Lease}) {
		t.Fatalf("Outstanding = %v; want only this installation's %s (not %s, another installation's)", leases, forgotten.Lease, other.Lease)
	}

	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: "sqlite://" + filepath.Join(t.TempDir(), "writ.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := broker.New(broker.Config{Store: store, Decider: refuseAll{}, Sources: map[string]broker.Source{writ.CredentialPostgres: mine}})
	if err != nil {
		t.Fatal(err)
	}
	var recorded []*writ.Event
	record := func(ctx context.Context, ev *writ.Event) error {
		// The alert is written before the role is dropped.
		if !roleExists(t, dsn, forgotten) {
			t.Error("the role was dropped before its alert was recorded")
		}
		recorded = append(recorded, ev)
		return store.AppendEvent(ctx, ev)
	}
	n, err := b.SweepOrphans(ctx, record)
	if err != nil || n != 1 {
		t.Fatalf("SweepOrphans = %d, %v; want 1 revoked", n, err)
	}
	if roleExists(t, dsn, forgotten) {
		t.Error("the forgotten lease's role still exists after the sweep")
	}
	if !roleExists(t, dsn, other) {
		t.Error("the sweep dropped another installation's role")
	}
	if len(recorded) != 1 || recorded[0].Type != writ.EventAlert || recorded[0].Details["code"] != "orphan_credential_revoked" || recorded[0].Subject != forgotten.Lease {
		t.Errorf("recorded %+v; want one orphan_credential_revoked alert for %s", recorded, forgotten.Lease)
	}
	// Idempotent: nothing left to sweep.
	if n, err := b.SweepOrphans(ctx, record); err != nil || n != 0 {
		t.Errorf("second sweep = %d, %v; want 0", n, err)
	}
}

func roleExists(t *testing.T, dsn string, req *broker.IssueRequest) bool {
	t.Helper()
	role, err := roleName(req.Lease)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var ok bool
	if err := c.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// refuseAll is a decision point that refuses every request: the sweep
// decides nothing (it only revokes), so no decision is ever asked for.
type refuseAll struct{}

func (refuseAll) Decide(context.Context, *decision.Request) (*writ.Decision, error) {
	return nil, writ.Errorf(writ.KindDenied, "no_decisions_here", "the sweep test decides nothing")
}
