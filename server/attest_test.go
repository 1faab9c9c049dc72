package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
)

// waitAttestation polls until writ has signed run's attestation.
func waitAttestation(t *testing.T, c *client.Client, run writ.RunID) []byte {
	t.Helper()
	var env []byte
	poll(t, "the run attestation of "+string(run), func() bool {
		var err error
		env, err = c.RunAttestation(context.Background(), string(run))
		if err != nil && writ.ErrorKind(err) != writ.KindUnavailable {
			t.Fatalf("run attestation: %v", err)
		}
		return err == nil
	})
	return env
}

// verifyRun verifies a run attestation as `writ attest verify` does, with
// the keys the server publishes.
func verifyRun(t *testing.T, c *client.Client, env []byte) (*attest.Statement, *attest.RunPredicate, error) {
	t.Helper()
	ctx := context.Background()
	pemKey, err := c.AttestKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := attest.ParsePublicKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := c.AuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return attest.VerifyRun(env, pub, func(p *attest.LogProof) error {
		_, err := auditlog.CheckEntryProof([]byte(p.Checkpoint), logKey, "", p.Index, p.Entry, p.Proof)
		return err
	})
}

// TestRunAttestation: a run that pushed, had its change approved and
// merged, and ended is attested: signed by the attest key, its subjects
// the commits it pushed, the approval and merge witnessed, and its end
// event proved in a signed checkpoint. A killed run is attested too.
func TestRunAttestation(t *testing.T) {
	a := startApprovals(t, nil)
	g := newGitRun(t, a.policyRig, map[string][]byte{"src/a.go": []byte("package src\n")})
	ctx := context.Background()
	head := g.commit("src/b.go", "package src\n// b\n")
	g.push()
	_, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run})
	we, ok := err.(*writ.Error)
	if !ok || we.Kind != writ.KindApprovalPending {
		t.Fatalf("merge: %v; want a pending approval", err)
	}
	if _, err := a.approve("bob", we.Approval); err != nil {
		t.Fatal(err)
	}
	if _, err := a.human.Merge(ctx, "acme/api", &writ.MergeRequest{Run: g.run}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.human.RunAttestation(ctx, string(g.run)); writ.ErrorKind(err) != writ.KindConflict {
		t.Errorf("attestation of a live run: %v; want a conflict", err)
	}
	if _, err := g.runC.Transition(ctx, string(g.run), "end", "done, all tests pass"); err != nil {
		t.Fatal(err)
	}
	env := waitAttestation(t, a.human, g.run)
	st, p, err := verifyRun(t, a.human, env)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(st.Subject) != 1 || st.Subject[0].Digest[attest.DigestGitCommit] != head || st.Subject[0].Name != "acme/api@"+head {
		t.Errorf("subjects %+v; want the pushed commit %s", st.Subject, head)
	}
	w := p.Witnessed
	if p.Run != string(g.run) || w.EndState != "ended" || w.EndedBy != "run:"+string(g.run) || w.Trigger.Digest == "" || w.ScopeDigest == "" {
		t.Errorf("predicate %+v", p)
	}
	if len(w.Approvals) != 1 || w.Approvals[0].Approver != "bob" || w.Approvals[0].ID != we.Approval || w.Approvals[0].LogIndex < 0 {
		t.Errorf("approvals %+v; want bob's, by log index", w.Approvals)
	}
	if len(w.Merges) != 1 || w.Merges[0].Head != head || w.Merges[0].Approval != we.Approval {
		t.Errorf("merges %+v", w.Merges)
	}
	if len(w.Credentials) != 1 || w.Credentials[0].Kind != "git" {
		t.Errorf("credentials %+v; want the git credential", w.Credentials)
	}
	if w.Actions.Allowed == 0 || len(w.PolicyDigest) == 0 {
		t.Errorf("actions %+v, policy digests %v", w.Actions, w.PolicyDigest)
	}
	// The reason the run gave is its own say, not writ's.
	if w.EndReason != "" || p.AgentAsserted.EndReason != "done, all tests pass" {
		t.Errorf("end reason witnessed %q, asserted %q", w.EndReason, p.AgentAsserted.EndReason)
	}
	// An attestation.signed event records it, once.
	signed := 0
	for _, e := range runEventsAll(t, a.r.srv.Store(), g.run) {
		if strings.HasPrefix(e, attest.EventSigned+" ") {
			signed++
		}
	}
	if signed != 1 {
		t.Errorf("%d attestation.signed events; want 1", signed)
	}

	// A killed run, which pushed nothing, is attested under its end event.
	_, killed := a.run(nil)
	if _, err := a.human.Transition(ctx, string(killed), "kill", "runaway"); err != nil {
		t.Fatal(err)
	}
	st2, p2, err := verifyRun(t, a.human, waitAttestation(t, a.human, killed))
	if err != nil {
		t.Fatal(err)
	}
	if p2.Witnessed.EndState != "killed" || p2.Witnessed.EndReason != "runaway" || st2.Subject[0].Name != "run:"+string(killed) {
		t.Errorf("killed run: %+v %+v", st2.Subject, p2.Witnessed)
	}

	t.Run("attacks", func(t *testing.T) {
		attackRunAttestation(t, a.human, env)
	})
	t.Run("log proof attacks", func(t *testing.T) {
		logKey, err := a.human.AuditKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lp := p.LogProof
		if _, err := auditlog.CheckEntryProof([]byte(lp.Checkpoint), logKey, "", lp.Index, lp.Entry, lp.Proof); err != nil {
			t.Fatal(err)
		}
		// A key of the same name that is not the log's.
		_, otherKey, err := note.GenerateKey(rand.Reader, strings.Split(logKey, "+")[0])
		if err != nil {
			t.Fatal(err)
		}
		flipped := append([]string(nil), lp.Proof...)
		if len(flipped) > 0 {
			b, _ := base64.StdEncoding.DecodeString(flipped[0])
			b[0] ^= 1
			flipped[0] = base64.StdEncoding.EncodeToString(b)
		}
		for name, c := range map[string]struct {
			cp, key string
			index   int64
			body    []byte
			proof   []string
		}{
			"another log key":      {lp.Checkpoint, otherKey, lp.Index, lp.Entry, lp.Proof},
			"a changed event":      {lp.Checkpoint, logKey, lp.Index, []byte(strings.Replace(string(lp.Entry), "run.ended", "run.killed", 1)), lp.Proof},
			"another index":        {lp.Checkpoint, logKey, lp.Index - 1, lp.Entry, lp.Proof},
			"a changed proof hash": {lp.Checkpoint, logKey, lp.Index, lp.Entry, flipped},
			"a changed checkpoint": {strings.Replace(lp.Checkpoint, "\n", "\n1", 1), logKey, lp.Index, lp.Entry, lp.Proof},
		} {
			if _, err := auditlog.CheckEntryProof([]byte(c.cp), c.key, "", c.index, c.body, c.proof); err == nil {
				t.Errorf("%s: the log proof verified", name)
			}
		}
	})
}

// attackRunAttestation: a changed payload, a statement signed by another
// key, a checkpoint not signed by the log key, a proof of another event,
// and subjects that are not the pushed commits all fail.
func attackRunAttestation(t *testing.T, c *client.Client, env []byte) {
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	var st attest.Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	reencode := func(p []byte) []byte {
		e2 := e
		e2.Payload = base64.StdEncoding.EncodeToString(p)
		b, _ := json.Marshal(e2)
		return b
	}
	// 1. A changed byte of the payload (the end state) under the old signature.
	tampered := strings.Replace(string(payload), `"endState":"ended"`, `"endState":"expired"`, 1)
	if tampered == string(payload) {
		t.Fatal("no endState to tamper with")
	}
	if _, _, err := verifyRun(t, c, reencode([]byte(tampered))); err == nil || !strings.Contains(err.Error(), "no signature verifies") {
		t.Errorf("tampered payload: %v; want a signature failure", err)
	}
	// 2. The same statement signed by a key that is not writ's.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged, err := attest.Sign(&st, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verifyRun(t, c, forged); err == nil {
		t.Error("an attestation signed by another key verified")
	}
	// 3. A truncated envelope, and one with its signature removed.
	if _, _, err := verifyRun(t, c, env[:len(env)/2]); err == nil {
		t.Error("a truncated envelope verified")
	}
	e.Signatures = nil
	if _, _, err := verifyRun(t, c, reencode(payload)); err == nil {
		t.Error("an unsigned envelope verified")
	}
}

// BenchmarkTraceRun10k measures GET /v1/trace/{run} for a run with 10,000
// events (issue 12's goal: under 200 ms), end to end through the API and
// the client.
func BenchmarkTraceRun10k(b *testing.B) {
	d := prepareDev(b)
	r := start(b, d.cfg, server.Options{}, d.finish(b))
	ctx := context.Background()
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(b, time.Now(), nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	store := r.srv.Store()
	for i := range 10000 {
		ev := &writ.Event{Type: writ.EventDecision, Run: run.ID, Actor: "run:" + string(run.ID), Action: "tool", Decision: "allow",
			Subject: fmt.Sprintf("dec_%05d", i), Details: map[string]any{"name": "shell:test", "reasons": []any{}, "policyDigest": "sha256:" + strings.Repeat("a", 64)}}
		if err := store.AppendEvent(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	human := client.New(r.url, d.env.Token)
	for b.Loop() {
		t, err := human.Trace(ctx, string(run.ID))
		if err != nil {
			b.Fatal(err)
		}
		if len(t.Events) < 10000 {
			b.Fatalf("%d events", len(t.Events))
		}
	}
}

// BenchmarkRunAttestationVerify measures a full offline verification of
// a real run attestation, as `writ attest verify` does it: the DSSE
// signature, the predicate, and the end event's inclusion proof against a
// checkpoint whose signature is checked with the log key.
func BenchmarkRunAttestationVerify(b *testing.B) {
	d := prepareDev(b)
	r := start(b, d.cfg, server.Options{}, d.finish(b))
	ctx := context.Background()
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(b, time.Now(), nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	human := client.New(r.url, d.env.Token)
	if _, err := human.Transition(ctx, string(run.ID), "end", "done"); err != nil {
		b.Fatal(err)
	}
	var env []byte
	for deadline := time.Now().Add(pollTimeout); ; time.Sleep(20 * time.Millisecond) {
		if env, err = human.RunAttestation(ctx, string(run.ID)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
	}
	pemKey, _ := human.AttestKey(ctx)
	pub, _ := attest.ParsePublicKey(pemKey)
	logKey, _ := human.AuditKey(ctx)
	for b.Loop() {
		if _, _, err := attest.VerifyRun(env, pub, func(p *attest.LogProof) error {
			_, err := auditlog.CheckEntryProof([]byte(p.Checkpoint), logKey, "", p.Index, p.Entry, p.Proof)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReplicasAttestEachRunOnce: two replicas on one PostgreSQL database;
// runs ended through either are each attested exactly once (by the
// replica holding the sequencer lock), and when that replica stops the
// other signs what ends afterwards.
func TestReplicasAttestEachRunOnce(t *testing.T) {
	dsn := postgresDatabase(t)
	d := prepareDev(t)
	d.cfg.Store = dsn
	d.cfg.PublicURL = "http://writ-replicas.test"
	a := start(t, d.cfg, server.Options{}, d.finish(t))
	b := start(t, d.cfg, server.Options{}, nil)
	ctx := context.Background()
	adminB := client.New(b.url, d.env.Token)
	end := func(via string, n int) []writ.RunID {
		var ids []writ.RunID
		for i := range n {
			run, err := client.New(via, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			verb := []string{"end", "kill"}[i%2]
			if _, err := client.New(via, d.env.Token).Transition(ctx, string(run.ID), verb, "replica test"); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, run.ID)
		}
		return ids
	}
	runs := append(end(a.url, 3), end(b.url, 3)...)
	for _, id := range runs {
		if _, _, err := verifyRun(t, adminB, waitAttestation(t, adminB, id)); err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
	}
	// A (started first) sequences and signs; it stops, B takes over.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	later := end(b.url, 2)
	for _, id := range later {
		if _, _, err := verifyRun(t, adminB, waitAttestation(t, adminB, id)); err != nil {
			t.Fatalf("run %s after the takeover: %v", id, err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a second signer, if any, would have signed by now
	for _, id := range append(runs, later...) {
		n := 0
		for _, e := range runEventsAll(t, b.srv.Store(), id) {
			if strings.HasPrefix(e, attest.EventSigned+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("run %s: %d attestation.signed events; want 1", id, n)
		}
	}
}
