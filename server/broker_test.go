package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// secretRun is a release run whose scope names the staging deploy key.
func secretRun(tr *writ.Trigger) {
	releaseRun(tr)
	tr.Scope.Environments = []string{"staging"}
	tr.Scope.Secrets = []string{"deploy-key"}
}

// waitRevoked polls lease id until the revoker has revoked it.
func waitRevoked(t *testing.T, c *client.Client, id string) *writ.Lease {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := c.GetLease(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if l.State == writ.LeaseRevoked {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s still %s after 10 s (last error %q)", id, l.State, l.LastError)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSecretCanary: a static secret reaches only the run a human approved
// it for, never another run's response, an event or a log line; the lease
// dies with the run.
func TestSecretCanary(t *testing.T) {
	ctx := context.Background()
	a := startApprovals(t, nil)
	const canary = "canary-4b1d9e-never-log-me"
	if _, err := a.human.PutSecret(ctx, "staging", "deploy-key", []byte(canary)); err != nil {
		t.Fatal(err)
	}
	// Only admins manage secrets.
	if _, err := a.humans["bob"].c.PutSecret(ctx, "staging", "deploy-key", []byte("x")); writ.ErrorCode(err) != "admin_required" {
		t.Errorf("bob (no admin) puts a secret: %v", err)
	}
	runA, idA := a.run(secretRun)
	runB, idB := a.run(secretRun)
	refactor, idR := a.run(nil)
	req := &writ.CredentialRequest{Kind: "secret", Target: "staging/deploy-key"}

	var responses []string
	ask := func(c *client.Client, id writ.RunID) (*writ.IssuedCredential, error) {
		out, err := c.RequestCredential(ctx, string(id), req)
		if err != nil {
			responses = append(responses, err.Error())
		} else {
			responses = append(responses, strings.Join([]string{out.Lease.ID, out.Credential["value"]}, " "))
		}
		return out, err
	}
	_, err := ask(runA, idA)
	var we *writ.Error
	if !errors.As(err, &we) || we.Kind != writ.KindApprovalPending || we.Approval == "" {
		t.Fatalf("first request: %v, want approval_required", err)
	}
	if _, err := a.approve("bob", we.Approval); err != nil {
		t.Fatal(err)
	}
	out, err := ask(runA, idA)
	if err != nil {
		t.Fatalf("approved request: %v", err)
	}
	if out.Credential["value"] != canary || !out.Lease.Static || out.Lease.Approval != we.Approval {
		t.Fatalf("lease %+v", out.Lease)
	}
	responses = responses[:len(responses)-1] // the one response that may hold it
	// The approval was used: asking again is gated again.
	if _, err := ask(runA, idA); writ.ErrorKind(err) != writ.KindApprovalPending {
		t.Errorf("second request with a used approval: %v", err)
	}
	// Another run, and another profile, do not get it.
	if _, err := ask(runB, idB); writ.ErrorKind(err) != writ.KindApprovalPending {
		t.Errorf("run B: %v", err)
	}
	if _, err := ask(refactor, idR); writ.ErrorKind(err) != writ.KindDenied || !strings.Contains(err.Error(), "may not obtain secrets") {
		t.Errorf("refactor run: %v", err)
	}
	// Nor by asking on A's path with B's token.
	if _, err := runB.RequestCredential(ctx, string(idA), req); writ.ErrorCode(err) != "not_own_run" {
		t.Errorf("B asks as A: %v", err)
	}
	// B cannot read A's lease either.
	if _, err := runB.GetLease(ctx, out.Lease.ID); writ.ErrorKind(err) != writ.KindNotFound {
		t.Errorf("B reads A's lease: %v", err)
	}
	for _, r := range responses {
		if strings.Contains(r, canary) {
			t.Errorf("a response other than the approved one holds the canary: %s", r)
		}
	}
	// A's lease dies with A.
	if _, err := runA.Transition(ctx, string(idA), "end", "done"); err != nil {
		t.Fatal(err)
	}
	l := waitRevoked(t, a.human, out.Lease.ID)
	if l.RevokeReason != "run_ended" {
		t.Errorf("revoked for %q, want run_ended", l.RevokeReason)
	}
	// Nothing on the record or in the log holds it. The revocation's event
	// is committed with the lease's state, and reaches the log when the
	// integrator next sequences: wait for it there.
	var issued, revoked int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		entries, err := a.human.AuditEntries(ctx, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		issued, revoked = 0, 0
		for _, e := range entries {
			if strings.Contains(string(e.Body), canary) {
				t.Errorf("event %s holds the canary", e.Type)
			}
			switch e.Type {
			case writ.EventCredentialIssued:
				issued++
			case writ.EventCredentialRevoked:
				revoked++
			}
		}
		if revoked > 0 || time.Now().After(deadline) {
			break
		}
	}
	if issued != 1 || revoked != 1 {
		t.Errorf("%d credential.issued and %d credential.revoked events, want 1 and 1", issued, revoked)
	}
	if strings.Contains(a.logs.String(), canary) {
		t.Error("the server's log holds the canary")
	}
	if !strings.Contains(a.logs.String(), "lease issued") {
		t.Error("the log capture saw nothing (is the logger wired?)")
	}
}

// TestCredentialRefusals: each bad request is refused with a clear error
// and issues nothing; policy refusals are one decision each.
func TestCredentialRefusals(t *testing.T) {
	ctx := context.Background()
	a := startApprovals(t, nil)
	for _, tt := range []struct {
		name string
		req  writ.CredentialRequest
		want string // the reason's code, or a part of its message
	}{
		{"unknown backend", writ.CredentialRequest{Kind: "aws", Target: "prod"}, `no "aws" credential backend is configured`},
		{"repo outside scope", writ.CredentialRequest{Kind: "git", Target: "acme/billing"}, "repo_not_in_scope"},
		{"permissions too wide", writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"admin"}}, "credential_permissions_not_allowed"},
		{"ttl beyond the cap", writ.CredentialRequest{Kind: "git", Target: "acme/api", TTL: writ.Duration(time.Hour)}, "credential_ttl_too_long"},
		{"database not configured", writ.CredentialRequest{Kind: "postgres", Target: "billing", Permissions: []string{"read:public"}}, `no PostgreSQL database "billing" is configured`},
	} {
		c, id := a.run(nil) // refactor, acme/api writable; a run per case, below the denial threshold
		_, err := c.RequestCredential(ctx, string(id), &tt.req)
		var we *writ.Error
		if !errors.As(err, &we) || we.Kind != writ.KindDenied || we.Decision == "" {
			t.Errorf("%s: %v, want a denial with a decision id", tt.name, err)
			continue
		}
		if we.Code != tt.want && !strings.Contains(we.Message, tt.want) {
			t.Errorf("%s: %s (%s), want %s", tt.name, we.Code, we.Message, tt.want)
		}
		ls, err := a.human.ListLeases(ctx, string(id), "")
		if err != nil || len(ls) != 0 {
			t.Errorf("%s left leases: %v %v", tt.name, ls, err)
		}
	}
	c, id := a.run(nil)
	if _, err := c.RequestCredential(ctx, string(id), &writ.CredentialRequest{Kind: "git", Target: "not a repo"}); writ.ErrorCode(err) != "invalid_target" {
		t.Errorf("malformed target: %v", err)
	}
	ls, err := a.human.ListLeases(ctx, string(id), "")
	if err != nil || len(ls) != 0 {
		t.Errorf("refused requests left leases: %v %v", ls, err)
	}
	// The one good request works, and its lease belongs to its run.
	out, err := c.RequestCredential(ctx, string(id), &writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Lease.Run != id || out.Credential["username"] != string(id) || out.Lease.ExpiresAt.After(time.Now().Add(5*time.Minute+time.Second)) {
		t.Errorf("git lease %+v", out.Lease)
	}
	// A run revokes its own lease; a non-admin human may not.
	if _, err := a.humans["bob"].c.RevokeLease(ctx, out.Lease.ID); writ.ErrorCode(err) != "admin_required" {
		t.Errorf("bob revokes: %v", err)
	}
	l, err := c.RevokeLease(ctx, out.Lease.ID)
	if err != nil || l.State != writ.LeaseRevoked || l.RevokeReason != "revoked" {
		t.Errorf("the run revokes its lease: %+v %v", l, err)
	}
}

// TestLeasesDieAcrossRestart: a run that expires while writ is down has
// its leases revoked when writ starts again.
func TestLeasesDieAcrossRestart(t *testing.T) {
	ctx := context.Background()
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(t, time.Now(), func(tr *writ.Trigger) {
		tr.Scope.MaxDuration = writ.Duration(3 * time.Second)
	}), key)
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewRun(r.url, run.Token, key)
	out, err := c.RequestCredential(ctx, string(run.ID), &writ.CredentialRequest{Kind: "git", Target: "acme/api"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(run.Deadline) + 500*time.Millisecond)
	r2 := start(t, d.cfg, server.Options{}, nil)
	l := waitRevoked(t, client.New(r2.url, d.env.Token), out.Lease.ID)
	if l.RevokeReason != "run_expired" {
		t.Errorf("revoked for %q, want run_expired", l.RevokeReason)
	}
}
