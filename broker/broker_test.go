package broker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
	"github.com/writ-dev/writ/broker/gitlease"
	"github.com/writ-dev/writ/broker/secret"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/sqlstore"
)

// scripted is a decision point that answers what the test says, and
// records what it was asked (unit tests; the server tests use the real
// decision point and policy).
type scripted struct {
	db      *sqlstore.DB // where an attached lease is stored, as the real point does
	mu      sync.Mutex
	verdict string
	reason  string
	approve string // approval id a "approved" allow names
	maxTTL  time.Duration
	asked   []writ.Action
}

func (s *scripted) Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, req.Action)
	d := &writ.Decision{ID: "dec_" + writ.NewULID(time.Now(), nil), Run: req.Run.ID, Action: req.Action, Verdict: s.verdict,
		Obligations: writ.Obligations{MaxTTL: writ.Duration(s.maxTTL)}}
	if s.reason != "" {
		d.Reasons = []writ.Reason{{Code: s.reason, Message: "because " + s.reason}}
	}
	switch {
	case s.verdict == writ.VerdictApprovalRequired:
		d.Approval = &writ.ApprovalRef{ID: "apr_1", Group: "maintainers", Count: 1}
	case s.approve != "":
		d.Approval = &writ.ApprovalRef{ID: s.approve, Group: "maintainers", Count: 1}
		d.Reasons = []writ.Reason{{Code: "approved", Message: "approved"}}
	}
	if req.Attach != nil && d.Verdict == writ.VerdictAllow {
		// The real point stores the lease in the decision's transaction.
		rec, err := req.Attach(d)
		if err != nil {
			return d, err
		}
		if err := s.db.InsertLease(ctx, rec.Lease, rec.Handle, rec.Verifier, rec.Event); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// flaky is a source whose revocations fail while down is set, and which
// counts what it did.
type flaky struct {
	down    atomic.Bool
	issued  atomic.Int64
	revoked atomic.Int64
	plan    bool
	failIss bool
}

func (f *flaky) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	if f.failIss {
		return nil, errors.New("backend exploded")
	}
	f.issued.Add(1)
	return &broker.Issued{Credential: writ.Credential{"token": "tok-" + req.Lease}, Handle: []byte("handle-" + req.Lease)}, nil
}

func (f *flaky) Revoke(ctx context.Context, l *writ.Lease, handle []byte) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	if string(handle) != "handle-"+l.ID {
		return fmt.Errorf("handle %q does not belong to %s", handle, l.ID)
	}
	f.revoked.Add(1)
	return nil
}

type planned struct{ *flaky }

func (p planned) Plan(req *broker.IssueRequest) ([]byte, error) {
	return []byte("handle-" + req.Lease), nil
}

type fixture struct {
	db      *sqlstore.DB
	b       *broker.Broker
	dec     *scripted
	src     *flaky
	secrets *secret.Source
	clock   *clock
	logs    *bytes.Buffer
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFixture(t *testing.T, extra map[string]broker.Source) *fixture {
	t.Helper()
	f := &fixture{dec: &scripted{verdict: writ.VerdictAllow}, src: &flaky{}, clock: &clock{t: time.Now().UTC()}, logs: &bytes.Buffer{}}
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: "sqlite://" + filepath.Join(t.TempDir(), "writ.db"), Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f.db = db
	f.dec.db = db
	key := make([]byte, broker.KeySize)
	sealer, err := broker.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	f.secrets, err = secret.New(db, sealer)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]broker.Source{"git": gitlease.Source{}, "flaky": f.src, "secret": f.secrets}
	for k, v := range extra {
		sources[k] = v
	}
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.b, err = broker.New(broker.Config{Store: db, Decider: f.dec, Sources: sources, Sealer: sealer, Now: f.clock.now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) run(t *testing.T, repos ...string) *writ.Run {
	t.Helper()
	now := f.clock.now()
	id := writ.RunID(writ.NewULID(now, nil))
	tid := writ.NewULID(now, nil)
	r := &writ.Run{ID: id, Agent: "refactor-bot", Profile: "refactor", Ticket: writ.Ticket{System: "jira", ID: "ENG-1"},
		Scope:       writ.Scope{MaxDuration: writ.Duration(30 * time.Minute)},
		ScopeDigest: "sha256:x", TriggerID: tid, TriggerDigest: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(tid))), Issuer: "alice",
		SignerKey: "SHA256:x", State: writ.RunActive, CreatedAt: now, Deadline: now.Add(30 * time.Minute)}
	for _, repo := range repos {
		r.Scope.Repos = append(r.Scope.Repos, writ.RepoScope{Name: repo, Base: "main", Write: true})
	}
	trig := writ.TriggerRecord{ID: tid, Digest: r.TriggerDigest, ExpiresAt: now.Add(time.Hour)}
	if err := f.db.CreateRun(context.Background(), r, trig, &writ.Event{Type: writ.EventRunStarted, Run: id, Actor: "signer:alice"}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) end(t *testing.T, r *writ.Run, to writ.RunState) {
	t.Helper()
	if _, err := f.db.TransitionRun(context.Background(), r.ID, to, "test", &writ.Event{Actor: "human:alice"}); err != nil {
		t.Fatal(err)
	}
}

// events returns every stored event, decoded, with its raw bytes.
func (f *fixture) events(t *testing.T) ([]*writ.Event, []byte) {
	t.Helper()
	var out []*writ.Event
	var raw []byte
	var pos int64
	for {
		evs, err := f.db.Events(context.Background(), pos, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out, raw
		}
		for _, se := range evs {
			var ev writ.Event
			if err := json.Unmarshal(se.Body, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, &ev)
			raw = append(raw, se.Body...)
		}
		pos = evs[len(evs)-1].Pos
	}
}

func count(evs []*writ.Event, typ string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestGitCredentialChecks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	r := f.run(t, "acme/api", "acme/web")
	other := f.run(t, "acme/api")
	read, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "git", Target: "acme/api"}, "run:"+string(r.ID))
	if err != nil {
		t.Fatal(err)
	}
	write, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"write"}}, "run:"+string(r.ID))
	if err != nil {
		t.Fatal(err)
	}
	user, pw := read.Credential["username"], read.Credential["password"]
	if user != string(r.ID) || !strings.HasPrefix(pw, "writ_git_") {
		t.Fatalf("git credential = %q / %q", user, pw)
	}
	if _, err := f.b.CheckGit(ctx, user, pw, "acme/api", false); err != nil {
		t.Errorf("fetch of its repo = %v", err)
	}
	for _, tt := range []struct {
		name, user, pw, repo string
		write                bool
		code                 string
	}{
		{"another repo", user, pw, "acme/web", false, "credential_not_for_repo"},
		{"push with a read lease", user, pw, "acme/api", true, "credential_read_only"},
		{"another run's user", string(other.ID), pw, "acme/api", false, "invalid_credential"},
		{"tampered secret", user, tamper(pw), "acme/api", false, "invalid_credential"},
		{"not a writ credential", user, "hunter2", "acme/api", false, "invalid_credential"},
		{"another lease id", user, "writ_git_" + writ.NewULID(time.Now(), nil) + pw[len("writ_git_")+26:], "acme/api", false, "invalid_credential"},
	} {
		if _, err := f.b.CheckGit(ctx, tt.user, tt.pw, tt.repo, tt.write); writ.ErrorCode(err) != tt.code {
			t.Errorf("%s: CheckGit = %v, want %s", tt.name, err, tt.code)
		}
	}
	if _, err := f.b.CheckGit(ctx, user, write.Credential["password"], "acme/api", true); err != nil {
		t.Errorf("push with a write lease = %v", err)
	}
	// Expired: refused even before the revoker gets to it.
	f.clock.add(6 * time.Minute)
	if _, err := f.b.CheckGit(ctx, user, pw, "acme/api", false); writ.ErrorCode(err) != "credential_expired" {
		t.Errorf("after expiry: %v", err)
	}
	f.clock.add(-6 * time.Minute)
	// The run ends: refused at once, then revoked.
	f.end(t, r, writ.RunEnded)
	if _, err := f.b.CheckGit(ctx, user, pw, "acme/api", false); writ.ErrorCode(err) != "run_not_active" {
		t.Errorf("after the run ended, before revocation: %v", err)
	}
	if n := f.b.RevokeDue(ctx); n != 2 {
		t.Errorf("RevokeDue revoked %d, want the run's 2 leases", n)
	}
	if _, err := f.b.CheckGit(ctx, user, pw, "acme/api", false); writ.ErrorCode(err) != "credential_revoked" {
		t.Errorf("after revocation: %v", err)
	}
	evs, raw := f.events(t)
	if count(evs, writ.EventCredentialIssued) != 2 || count(evs, writ.EventCredentialRevoked) != 2 {
		t.Errorf("events: %d issued, %d revoked; want 2 and 2", count(evs, writ.EventCredentialIssued), count(evs, writ.EventCredentialRevoked))
	}
	secretPart := pw[len("writ_git_")+27:]
	if bytes.Contains(raw, []byte(secretPart)) || strings.Contains(f.logs.String(), secretPart) {
		t.Error("a git credential's secret reached an event or a log line")
	}
}

func TestRefusedRequestsIssueNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	r := f.run(t, "acme/api")
	f.dec.verdict, f.dec.reason = writ.VerdictDeny, "repo_not_in_scope"
	_, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "flaky", Target: "acme/api"}, "run:x")
	var we *writ.Error
	if !errors.As(err, &we) || we.Kind != writ.KindDenied || we.Code != "repo_not_in_scope" || we.Decision == "" {
		t.Errorf("denied request = %#v", err)
	}
	// The refusal carries the one sentence of writ.DecisionMessage.
	if _, want := writ.DecisionMessage(&writ.Decision{Verdict: writ.VerdictDeny, Reasons: []writ.Reason{{Code: "repo_not_in_scope", Message: "because repo_not_in_scope"}}}); we == nil || we.Message != want {
		t.Errorf("denied request says %q; want %q", we.Message, want)
	}
	f.dec.verdict, f.dec.reason = writ.VerdictDeny, ""
	_, err = f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "flaky", Target: "acme/api"}, "run:x")
	if !errors.As(err, &we) || we.Kind != writ.KindDenied || we.Code != "denied" || we.Message != "denied by policy" {
		t.Errorf("request denied without a reason = %#v", err)
	}
	f.dec.verdict, f.dec.reason = writ.VerdictApprovalRequired, "secret_requires_approval"
	_, err = f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "flaky", Target: "x"}, "run:x")
	if !errors.As(err, &we) || we.Kind != writ.KindApprovalPending || we.Approval != "apr_1" {
		t.Errorf("gated request = %#v", err)
	}
	if _, want := writ.DecisionMessage(&writ.Decision{Verdict: writ.VerdictApprovalRequired, Reasons: []writ.Reason{{Code: "secret_requires_approval", Message: "because secret_requires_approval"}},
		Approval: &writ.ApprovalRef{ID: "apr_1", Group: "maintainers", Count: 1}}); we.Code != "approval_required" || we.Message != want {
		t.Errorf("gated request says %s: %q; want approval_required: %q", we.Code, we.Message, want)
	}
	f.dec.verdict, f.dec.reason = writ.VerdictAllow, ""
	for _, tt := range []struct {
		req  writ.CredentialRequest
		code string
	}{
		{writ.CredentialRequest{Kind: "Git", Target: "acme/api"}, "invalid_kind"},
		{writ.CredentialRequest{Kind: "git", Target: ""}, "invalid_target"},
		{writ.CredentialRequest{Kind: "git", Target: "../etc"}, "invalid_target"},
		{writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"WRITE"}}, "invalid_permissions"},
		{writ.CredentialRequest{Kind: "git", Target: "acme/api", TTL: writ.Duration(-time.Second)}, "invalid_ttl"},
		{writ.CredentialRequest{Kind: "secret", Target: "nodash"}, "invalid_target"},
		{writ.CredentialRequest{Kind: "unknown", Target: "x"}, "credential_kind_unknown"},
	} {
		if _, err := f.b.Request(ctx, r, &tt.req, "run:x"); writ.ErrorCode(err) != tt.code {
			t.Errorf("Request(%+v) = %v, want %s", tt.req, err, tt.code)
		}
	}
	if f.src.issued.Load() != 0 {
		t.Errorf("the backend issued %d credentials for refused requests", f.src.issued.Load())
	}
	ls, _ := f.b.Leases(ctx, writ.LeaseFilter{Run: r.ID})
	if len(ls) != 0 {
		t.Errorf("refused requests left leases: %v", ls)
	}
}

func TestTTLCaps(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	r := f.run(t, "acme/api")
	now := f.clock.now()
	f.dec.maxTTL = 2 * time.Minute
	out, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "git", Target: "acme/api", TTL: writ.Duration(10 * time.Minute)}, "run:x")
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Lease.ExpiresAt.Sub(now); got > 2*time.Minute || got < 2*time.Minute-time.Second {
		t.Errorf("lease lives %s; policy capped it at 2m", got)
	}
	// Near the deadline the run's remaining time caps it.
	f.dec.maxTTL = 0
	f.clock.add(29 * time.Minute)
	out, err = f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "git", Target: "acme/api"}, "run:x")
	if err != nil {
		t.Fatal(err)
	}
	if out.Lease.ExpiresAt.After(r.Deadline) {
		t.Errorf("lease expires %s, after the run's deadline %s", out.Lease.ExpiresAt, r.Deadline)
	}
}

func TestRevocationRetriedAndAlerted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	r := f.run(t)
	out, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "flaky", Target: "db", TTL: writ.Duration(time.Minute)}, "run:x")
	if err != nil {
		t.Fatal(err)
	}
	f.src.down.Store(true)
	f.end(t, r, writ.RunKilled)
	if n := f.b.RevokeDue(ctx); n != 0 {
		t.Fatalf("revoked %d with the backend down", n)
	}
	l, _ := f.b.Lease(ctx, out.Lease.ID)
	if l.State != writ.LeaseActive || l.LastError == "" || l.Attempts != 1 {
		t.Fatalf("lease after a failed attempt = %+v", l)
	}
	// Not retried before its backoff; retried after.
	if n := f.b.RevokeDue(ctx); n != 0 || f.src.revoked.Load() != 0 {
		t.Fatal("retried before the backoff")
	}
	evs, _ := f.events(t)
	if count(evs, writ.EventAlert) != 0 {
		t.Error("alerted before the lease's expiry was at stake")
	}
	// Past the lease's expiry, still failing: one alert, however many attempts.
	for i := 0; i < 5; i++ {
		f.clock.add(70 * time.Second)
		f.b.RevokeDue(ctx)
	}
	evs, _ = f.events(t)
	if n := count(evs, writ.EventAlert); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
	f.src.down.Store(false)
	f.clock.add(2 * time.Minute)
	if n := f.b.RevokeDue(ctx); n != 1 {
		t.Fatalf("revoked %d once the backend is back, want 1", n)
	}
	l, _ = f.b.Lease(ctx, out.Lease.ID)
	if l.State != writ.LeaseRevoked || l.RevokeReason != "run_killed" || l.Attempts < 3 {
		t.Errorf("lease = %+v", l)
	}
	evs, _ = f.events(t)
	if count(evs, writ.EventCredentialRevoked) != 1 {
		t.Error("no credential.revoked event")
	}
}

func TestPlannedLeaseSurvivesCrash(t *testing.T) {
	ctx := context.Background()
	src := planned{&flaky{failIss: true}}
	f := newFixture(t, map[string]broker.Source{"planned": src})
	r := f.run(t)
	// The backend fails mid-issue: the lease written ahead is revoked.
	if _, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "planned", Target: "db"}, "run:x"); writ.ErrorCode(err) != "backend_unavailable" {
		t.Fatalf("failed issue = %v", err)
	}
	if n := f.b.RevokeDue(ctx); n != 1 || src.revoked.Load() != 1 {
		t.Errorf("RevokeDue = %d (backend revoked %d); the half-issued credential must be revoked", n, src.revoked.Load())
	}
}

func TestHundredLeasesDieWithTheRun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	r := f.run(t, "acme/api")
	for i := 0; i < 100; i++ {
		kind := "git"
		if i%2 == 0 {
			kind = "flaky"
		}
		if _, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: kind, Target: "acme/api"}, "run:x"); err != nil {
			t.Fatal(err)
		}
	}
	f.end(t, r, writ.RunEnded)
	if n := f.b.RevokeDue(ctx); n != 100 {
		t.Errorf("revoked %d of 100", n)
	}
	ls, _ := f.b.Leases(ctx, writ.LeaseFilter{Run: r.ID, State: writ.LeaseActive, Limit: 1000})
	if len(ls) != 0 || f.src.revoked.Load() != 50 {
		t.Errorf("%d leases still active; backend revoked %d of 50", len(ls), f.src.revoked.Load())
	}
}

func TestStaticSecret(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	const canary = "canary-5f1e0c7a-do-not-leak"
	if _, err := f.secrets.Put(ctx, "production/stripe-key", []byte(canary), "human:alice"); err != nil {
		t.Fatal(err)
	}
	r := f.run(t)
	// A policy that allows a static secret without an approval is not
	// enough: the broker refuses.
	if _, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "secret", Target: "production/stripe-key"}, "run:x"); writ.ErrorCode(err) != "secret_requires_approval" {
		t.Errorf("unapproved secret = %v", err)
	}
	f.dec.approve = "apr_7"
	out, err := f.b.Request(ctx, r, &writ.CredentialRequest{Kind: "secret", Target: "production/stripe-key"}, "run:x")
	if err != nil {
		t.Fatal(err)
	}
	if out.Credential["value"] != canary || !out.Lease.Static || out.Lease.Approval != "apr_7" {
		t.Errorf("secret lease = %+v", out.Lease)
	}
	if s := fmt.Sprint(out.Credential) + fmt.Sprintf("%v %#v", out.Credential, out.Credential); strings.Contains(s, canary) {
		t.Error("fmt prints the credential")
	}
	_, raw := f.events(t)
	if bytes.Contains(raw, []byte(canary)) || strings.Contains(f.logs.String(), canary) {
		t.Error("the canary secret reached an event or a log line")
	}
	stored, _ := f.db.GetSecret(ctx, "production", "stripe-key")
	if bytes.Contains(stored.Sealed, []byte(canary)) {
		t.Error("the secret is stored in the clear")
	}
}

// tamper changes one character of a credential's secret part, always: the
// second-to-last (the last base64url character of 32 bytes carries only
// four bits, so some changes of it decode to the same bytes), to a
// character it is not.
func tamper(pw string) string {
	i := len(pw) - 2
	c := byte('A')
	if pw[i] == c {
		c = 'B'
	}
	return pw[:i] + string(c) + pw[i+1:]
}
