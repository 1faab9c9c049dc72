package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
)

func keyEvent(kid string) *writ.Event {
	return &writ.Event{Type: "key.rotated", Actor: "human:alice", Subject: "key:identity/" + kid}
}

func testSigningKeys(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	t0 := time.Now()
	add := func(kid string) (bool, error) {
		return db.AddSigningKey(ctx, &writ.SigningKey{Kind: "identity", ID: kid, Public: []byte("der-" + kid)}, 20*time.Minute, keyEvent(kid))
	}
	ids := func(at time.Time) []string {
		ks, err := db.SigningKeys(ctx, "identity", at)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range ks {
			out = append(out, k.ID)
		}
		return out
	}
	if added, err := add("k1"); err != nil || !added {
		t.Fatalf("add k1 = %v, %v; want added", added, err)
	}
	before := len(allEvents(t, db))
	if added, err := add("k1"); err != nil || added {
		t.Fatalf("re-adding the current key = %v, %v; want a no-op", added, err)
	}
	if n := len(allEvents(t, db)); n != before {
		t.Errorf("re-adding the current key wrote %d events", n-before)
	}
	if added, err := add("k2"); err != nil || !added {
		t.Fatalf("add k2 = %v, %v", added, err)
	}
	// k2 is current (first); k1 stays published for publishFor, then not.
	if diff := cmp.Diff([]string{"k2", "k1"}, ids(time.Now())); diff != "" {
		t.Errorf("keys now (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"k2"}, ids(t0.Add(time.Hour))); diff != "" {
		t.Errorf("keys after the publish window (-want +got):\n%s", diff)
	}
	// A retired key never comes back.
	if _, err := add("k1"); writ.ErrorCode(err) != "key_retired" {
		t.Errorf("re-adding retired k1 = %v; want key_retired", err)
	}
	if diff := cmp.Diff([]string{"k2", "k1"}, ids(time.Now())); diff != "" {
		t.Errorf("keys after refused re-add (-want +got):\n%s", diff)
	}
	// Kinds are separate histories.
	if ks, err := db.SigningKeys(ctx, "attest", time.Now()); err != nil || len(ks) != 0 {
		t.Errorf("attest keys = %v, %v; want none", ks, err)
	}
	evs := allEvents(t, db)
	if got := eventTypes(evs); len(got) != 2 || got[0] != "key.rotated" || got[1] != "key.rotated" {
		t.Errorf("events = %v; want two key.rotated", got)
	}
}

func testUseProof(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	exp := time.Now().Add(time.Minute)
	if err := db.UseProof(ctx, "jktA", "jti1", exp); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := db.UseProof(ctx, "jktA", "jti1", exp); writ.ErrorCode(err) != "dpop_replay" || writ.ErrorKind(err) != writ.KindUnauthenticated {
		t.Errorf("replayed proof = %v; want dpop_replay (unauthenticated)", err)
	}
	// The same jti under another key is another proof.
	if err := db.UseProof(ctx, "jktB", "jti1", exp); err != nil {
		t.Errorf("same jti, other key: %v", err)
	}
	if err := db.UseProof(ctx, "jktA", "", exp); writ.ErrorCode(err) != "invalid_dpop_proof" {
		t.Errorf("empty jti = %v; want invalid_dpop_proof", err)
	}
	// Pruning forgets only expired proofs.
	if err := db.UseProof(ctx, "jktA", "old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatalf("use of a proof remembered until a minute ago: %v", err)
	}
	if n, err := db.PruneProofs(ctx, 0); err != nil || n != 1 {
		t.Errorf("prune = %d, %v; want 1 (only the expired proof)", n, err)
	}
	if err := db.UseProof(ctx, "jktA", "jti1", exp); writ.ErrorCode(err) != "dpop_replay" {
		t.Errorf("replayed proof after the prune = %v; want dpop_replay", err)
	}
	if len(allEvents(t, db)) != 0 {
		t.Errorf("proof uses wrote events")
	}
}

func testAppendEvent(t *testing.T, open func(t *testing.T) *DB) {
	ctx := context.Background()
	db := open(t)
	if err := db.AppendEvent(ctx, &writ.Event{Type: writ.EventTokenIssued, Actor: "writ", Details: map[string]any{"jti": "x"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendEvent(ctx, nil); err == nil {
		t.Error("AppendEvent(nil) = nil; want an error")
	}
	if got := eventTypes(allEvents(t, db)); len(got) != 1 || got[0] != writ.EventTokenIssued {
		t.Errorf("events = %v; want one token.issued", got)
	}
}
