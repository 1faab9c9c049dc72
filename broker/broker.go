package broker

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// Store is what the broker needs from storage.
type Store interface {
	InsertLease(ctx context.Context, l *writ.Lease, handle, verifier []byte, ev *writ.Event) error
	ActivateLease(ctx context.Context, l *writ.Lease, handle, verifier []byte, ev *writ.Event) error
	GetLease(ctx context.Context, id string) (*writ.Lease, error)
	LeaseVerifier(ctx context.Context, id string) (*writ.Lease, []byte, writ.RunState, error)
	ListLeases(ctx context.Context, f writ.LeaseFilter) ([]*writ.Lease, error)
	RequestRevoke(ctx context.Context, id, reason string) (*writ.Lease, error)
	LeasesDue(ctx context.Context, now time.Time) (bool, error)
	NextLeaseDue(ctx context.Context) (time.Time, bool, error)
	ClaimRevocations(ctx context.Context, now time.Time, hold time.Duration, limit int) ([]*writ.Revocation, error)
	FinishRevocations(ctx context.Context, results []writ.RevocationResult) error
}

// Decider is the policy decision point (package decision).
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
}

// Config holds the broker's dependencies.
type Config struct {
	Store   Store
	Decider Decider
	// Sources are the backends by credential kind.
	Sources map[string]Source
	// Sealer seals revocation handles at rest; nil stores them as they
	// are (allowed only when no source returns a handle that is a secret:
	// [New] checks the sources that declare it).
	Sealer *Sealer
	Logger *slog.Logger
	Now    func() time.Time
	// DefaultTTL is a lease's life when neither the request nor policy
	// says (default 5 minutes).
	DefaultTTL time.Duration
	// RevokeTimeout bounds one backend revocation (default 10 s).
	RevokeTimeout time.Duration
	// MaxBackoff caps the wait between attempts to revoke (default 1 min).
	MaxBackoff time.Duration
}

// SecretHandles is implemented by sources whose revocation handle is
// itself a secret (a token that revokes itself): the broker refuses to run
// them without a sealer.
type SecretHandles interface {
	HandleIsSecret() bool
}

// Broker issues leases and revokes them.
type Broker struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{}
}

// New returns a broker for cfg.
func New(cfg Config) (*Broker, error) {
	if cfg.Store == nil || cfg.Decider == nil {
		return nil, errors.New("broker: Store and Decider are required")
	}
	for kind, s := range cfg.Sources {
		if !writ.ValidName(kind) {
			return nil, fmt.Errorf("broker: credential kind %q: want a short lowercase name", kind)
		}
		if sh, ok := s.(SecretHandles); ok && sh.HandleIsSecret() && cfg.Sealer == nil {
			return nil, fmt.Errorf("broker: the %s backend's revocation handles are secrets: configure broker.key (or WRIT_BROKER_KEY) so they are sealed at rest", kind)
		}
	}
	b := &Broker{cfg: cfg, log: cfg.Logger, now: cfg.Now, wake: make(chan struct{}, 1)}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("component", "broker")
	if b.now == nil {
		b.now = time.Now
	}
	if b.cfg.DefaultTTL <= 0 {
		b.cfg.DefaultTTL = 5 * time.Minute
	}
	if b.cfg.RevokeTimeout <= 0 {
		b.cfg.RevokeTimeout = 10 * time.Second
	}
	if b.cfg.MaxBackoff <= 0 {
		b.cfg.MaxBackoff = time.Minute
	}
	return b, nil
}

// Kinds returns the configured credential kinds, sorted.
func (b *Broker) Kinds() []string {
	out := make([]string, 0, len(b.cfg.Sources))
	for k := range b.cfg.Sources {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Limits on a request.
const (
	maxTarget      = 256
	maxPermissions = 32
	maxPermission  = 64
)

// Local is implemented by sources that issue without any effect outside
// writ (a random secret, a value unsealed from the store): the broker
// issues their credential while the decision is being recorded and stores
// the lease in the decision's own transaction — one write per lease, and
// nothing to undo if the write fails.
type Local interface {
	Local() bool
}

// Request decides and, when policy allows, issues a credential for run.
// The decision is recorded first (one decision event, whatever the
// verdict); a denial is a KindDenied error with the policy's reason code
// and the decision id, a gate a KindApprovalPending error naming the
// approval. actor is who asks (the run itself).
func (b *Broker) Request(ctx context.Context, run *writ.Run, req *writ.CredentialRequest, actor string) (*writ.IssuedCredential, error) {
	if req.Kind == writ.CredentialEgress {
		return b.issueEgress(ctx, run, actor)
	}
	perms, err := checkRequest(req)
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(req.TTL)
	if ttl == 0 {
		ttl = b.cfg.DefaultTTL
	}
	action, err := credentialAction(req.Kind, req.Target, perms, ttl)
	if err != nil {
		return nil, err
	}
	src := b.cfg.Sources[req.Kind]
	dreq := &decision.Request{Run: run, Action: action, Via: "broker", Actor: actor}
	var out *writ.IssuedCredential
	if l, ok := src.(Local); ok && l.Local() {
		dreq.Attach = func(d *writ.Decision) (*writ.LeaseRecord, error) {
			lease, ireq, err := b.prepare(run, req, perms, ttl, d)
			if err != nil {
				return nil, err
			}
			issued, err := src.Issue(ctx, ireq)
			if err != nil {
				return nil, b.issueError(ctx, req.Kind, lease, err)
			}
			rec, err := b.record(lease, issued, nil, actor)
			if err != nil {
				return nil, err
			}
			lease.State = writ.LeaseActive
			out = &writ.IssuedCredential{Lease: lease, Credential: issued.Credential}
			return rec, nil
		}
	}
	d, err := b.cfg.Decider.Decide(ctx, dreq)
	if err != nil {
		// A failed Attach's error already names the decision (prepare,
		// issueError).
		return nil, err
	}
	if err := writ.DecisionError(d); err != nil {
		return nil, err
	}
	if out != nil {
		b.issuedLog(ctx, out.Lease)
		return out, nil
	}
	if src == nil {
		// Policy allowed a kind no backend serves (a custom bundle).
		we := writ.Errorf(writ.KindInvalid, "credential_kind_unknown", "no %q backend is configured; configured: %s", req.Kind, strings.Join(b.Kinds(), ", "))
		we.Decision = d.ID
		return nil, we
	}
	lease, ireq, err := b.prepare(run, req, perms, ttl, d)
	if err != nil {
		return nil, err
	}

	// A source with outside effects gets its lease written ahead, so that
	// the revoker finds whatever a crash leaves behind.
	planner, ahead := src.(Planner)
	if ahead {
		h, err := planner.Plan(ireq)
		if err != nil {
			return nil, err
		}
		ireq.Handle = h
		sealed, err := b.seal(lease.ID, h)
		if err != nil {
			return nil, err
		}
		lease.State = writ.LeaseIssuing
		if err := b.cfg.Store.InsertLease(ctx, lease, sealed, nil, nil); err != nil {
			return nil, err
		}
	}
	issued, err := src.Issue(ctx, ireq)
	if err != nil {
		if ahead {
			// Revoke whatever the failed issue left; the revoker retries.
			if _, rerr := b.cfg.Store.RequestRevoke(context.WithoutCancel(ctx), lease.ID, "issue_failed"); rerr == nil {
				b.Wake()
			}
		}
		return nil, b.issueError(ctx, req.Kind, lease, err)
	}
	rec, err := b.record(lease, issued, ireq.Handle, actor)
	if err != nil {
		b.revokeNow(ctx, lease, issued.Handle)
		return nil, err
	}
	if ahead {
		err = b.cfg.Store.ActivateLease(ctx, lease, rec.Handle, rec.Verifier, rec.Event)
	} else {
		lease.State = writ.LeaseActive
		err = b.cfg.Store.InsertLease(ctx, lease, rec.Handle, rec.Verifier, rec.Event)
	}
	if err != nil {
		// The run stopped meanwhile (or the store failed): the credential
		// must not outlive this request.
		if ahead {
			if _, rerr := b.cfg.Store.RequestRevoke(context.WithoutCancel(ctx), lease.ID, "issue_failed"); rerr == nil {
				b.Wake()
			}
		} else {
			b.revokeNow(ctx, lease, issued.Handle)
		}
		return nil, err
	}
	lease.State = writ.LeaseActive
	b.issuedLog(ctx, lease)
	return &writ.IssuedCredential{Lease: lease, Credential: issued.Credential}, nil
}

// prepare checks what the broker itself requires of an allowed decision
// and returns the lease to issue, not yet stored: its TTL is the least of
// the request's, policy's cap, MaxLeaseTTL and the run's remaining time.
func (b *Broker) prepare(run *writ.Run, req *writ.CredentialRequest, perms []string, ttl time.Duration, d *writ.Decision) (*writ.Lease, *IssueRequest, error) {
	refuse := func(kind writ.Kind, code, format string, args ...any) error {
		we := writ.Errorf(kind, code, format, args...)
		we.Decision = d.ID
		return we
	}
	approved := d.Approval != nil && d.Approval.ID != "" && len(d.Reasons) > 0 && d.Reasons[0].Code == "approved"
	if req.Kind == writ.CredentialSecret && !approved {
		// A static secret is handed out only after a human approved it,
		// whatever a custom policy says (docs/threat-model.md C-ID4, INV-5).
		return nil, nil, refuse(writ.KindDenied, "secret_requires_approval", "a static secret is handed to a run only after a human approval; this policy allowed it without one, so the broker refuses")
	}
	now := b.now()
	if max := time.Duration(d.Obligations.MaxTTL); max > 0 && ttl > max {
		ttl = max
	}
	ttl = min(ttl, writ.MaxLeaseTTL)
	if left := run.Deadline.Sub(now); left < ttl {
		ttl = left
	}
	if ttl < time.Second {
		return nil, nil, refuse(writ.KindConflict, "run_ending", "run %s reaches its deadline in under a second; no credential is issued", run.ID)
	}
	lease := &writ.Lease{
		ID: "lse_" + writ.NewULID(now, nil), Run: run.ID, Kind: req.Kind, Target: req.Target, Permissions: perms,
		Decision: d.ID, ExpiresAt: now.Add(ttl).Truncate(time.Second),
	}
	if approved {
		lease.Approval = d.Approval.ID
	}
	return lease, &IssueRequest{Lease: lease.ID, Run: run, Target: req.Target, Permissions: perms, ExpiresAt: lease.ExpiresAt}, nil
}

// record completes lease with what the source issued and returns what the
// store keeps: the sealed handle, the verifier and credential.issued.
func (b *Broker) record(lease *writ.Lease, issued *Issued, planned []byte, actor string) (*writ.LeaseRecord, error) {
	if !issued.ExpiresAt.IsZero() && issued.ExpiresAt.Before(lease.ExpiresAt) {
		lease.ExpiresAt = issued.ExpiresAt
	}
	lease.Details, lease.Static = issued.Details, issued.Static
	handle := issued.Handle
	if handle == nil {
		handle = planned
	}
	sealed, err := b.seal(lease.ID, handle)
	if err != nil {
		return nil, err
	}
	var verifier []byte
	if len(issued.Verifier) > 0 {
		verifier = issued.Verifier
	}
	lease.State = writ.LeaseActive
	ev := issuedEvent(lease, actor)
	return &writ.LeaseRecord{Lease: lease, Handle: sealed, Verifier: verifier, Event: ev}, nil
}

// issueError is what a caller is told when a backend failed to issue: its
// own safe error, or that the backend is unavailable.
func (b *Broker) issueError(ctx context.Context, kind string, lease *writ.Lease, err error) error {
	b.log.WarnContext(ctx, "backend failed to issue", slog.String("lease", lease.ID), slog.String("kind", kind), slog.Any("error", err))
	we := (*writ.Error)(nil)
	if errors.As(err, &we) {
		c := *we
		if c.Decision == "" {
			c.Decision = lease.Decision
		}
		return &c
	}
	out := writ.Errorf(writ.KindUnavailable, "backend_unavailable", "the %s backend could not issue the credential; try again later", kind)
	out.Decision = lease.Decision
	return out
}

func (b *Broker) issuedLog(ctx context.Context, l *writ.Lease) {
	b.log.InfoContext(ctx, "lease issued", slog.String("lease", l.ID), slog.String("run", string(l.Run)), slog.String("kind", l.Kind),
		slog.String("target", l.Target), slog.Time("expires", l.ExpiresAt))
}

// revokeNow revokes a credential that never got an active lease row.
func (b *Broker) revokeNow(ctx context.Context, l *writ.Lease, handle []byte) {
	src := b.cfg.Sources[l.Kind]
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.RevokeTimeout)
	defer cancel()
	if err := src.Revoke(ctx, l, handle); err != nil {
		b.log.ErrorContext(ctx, "could not revoke a credential that was issued but not recorded", slog.String("lease", l.ID),
			slog.String("kind", l.Kind), slog.Any("error", err))
	}
}

func issuedEvent(l *writ.Lease, actor string) *writ.Event {
	details := map[string]any{
		"kind": l.Kind, "target": l.Target, "permissions": l.Permissions,
		"expiresAt": l.ExpiresAt.UTC().Format(time.RFC3339),
	}
	if l.Approval != "" {
		details["approval"] = l.Approval
	}
	if l.Static {
		details["static"] = true
	}
	if len(l.Details) > 0 {
		details["backend"] = l.Details
	}
	return &writ.Event{Type: writ.EventCredentialIssued, Run: l.Run, Actor: actor, Action: writ.ActionCredential,
		Decision: l.Decision, Subject: l.ID, Details: details}
}

// checkRequest checks a request's syntax and returns its permissions,
// sorted and without duplicates.
func checkRequest(req *writ.CredentialRequest) ([]string, error) {
	if !writ.ValidName(req.Kind) {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_kind", "kind %q: want a credential kind such as git, secret, postgres, vault or github", req.Kind)
	}
	if req.Target == "" || len(req.Target) > maxTarget || strings.ContainsFunc(req.Target, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_target", "target: want what the credential is for (a repo owner/repo, a secret environment/name, a database or a path), at most %d printable characters", maxTarget)
	}
	if req.TTL < 0 {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_ttl", "ttl %s: want a positive duration such as \"5m\", or none", time.Duration(req.TTL))
	}
	if len(req.Permissions) > maxPermissions {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_permissions", "at most %d permissions", maxPermissions)
	}
	perms := slices.Clone(req.Permissions)
	for _, p := range perms {
		if p == "" || len(p) > maxPermission || strings.ContainsFunc(p, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == ':' || r == '-' || r == '.' || r == '/')
		}) {
			return nil, writ.Errorf(writ.KindInvalid, "invalid_permissions", "permission %q: want lowercase names such as read, write, read:public or issues:write", p)
		}
	}
	slices.Sort(perms)
	perms = slices.Compact(perms)
	if len(perms) == 0 {
		perms = defaultPermissions(req.Kind)
	}
	return perms, nil
}

func defaultPermissions(kind string) []string {
	switch kind {
	case writ.CredentialGitHub:
		return []string{"contents:read", "metadata:read"}
	default:
		return []string{"read"}
	}
}

// credentialAction is the action policy decides for a request. The broker
// builds it (the run cannot put its own facts in it); the request's
// target also goes in the target fields policy already knows: the repo
// of a git or GitHub credential, the environment and name of a secret.
func credentialAction(kind, target string, perms []string, ttl time.Duration) (writ.Action, error) {
	a := writ.Action{Kind: writ.ActionCredential, Name: kind}
	switch kind {
	case writ.CredentialGit, writ.CredentialGitHub:
		if !writ.ValidRepoName(target) {
			return a, writ.Errorf(writ.KindInvalid, "invalid_target", "target %q: a %s credential is for one repository, owner/repo", target, kind)
		}
		a.Target.Repo = target
	case writ.CredentialSecret:
		env, name, ok := strings.Cut(target, "/")
		if !ok || !writ.ValidName(env) || !validSecretName(name) {
			return a, writ.Errorf(writ.KindInvalid, "invalid_target", "target %q: a secret is named environment/name, such as production/stripe-key", target)
		}
		a.Target.Environment, a.Target.Secret = env, name
	}
	args, err := json.Marshal(map[string]any{"target": target, "permissions": perms, "ttl": ttl.String(), "ttlSeconds": int64(ttl / time.Second)})
	if err != nil {
		return a, err
	}
	a.Args = args
	return a, a.Validate()
}

// ValidSecretName reports whether s is a secret's name: lowercase letters,
// digits, and . _ - between them, up to 128 characters.
func validSecretName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// ValidSecretName is the grammar of secret names (environment/name).
func ValidSecretName(env, name string) bool { return writ.ValidName(env) && validSecretName(name) }

func (b *Broker) seal(leaseID string, handle []byte) ([]byte, error) {
	if handle == nil || b.cfg.Sealer == nil {
		return handle, nil
	}
	return b.cfg.Sealer.Seal(handle, []byte("writ-lease-handle\x00"+leaseID))
}

func (b *Broker) open(leaseID string, sealed []byte) ([]byte, error) {
	if sealed == nil || b.cfg.Sealer == nil {
		return sealed, nil
	}
	return b.cfg.Sealer.Open(sealed, []byte("writ-lease-handle\x00"+leaseID))
}

// Lease returns lease id.
func (b *Broker) Lease(ctx context.Context, id string) (*writ.Lease, error) {
	return b.cfg.Store.GetLease(ctx, id)
}

// Leases lists leases.
func (b *Broker) Leases(ctx context.Context, f writ.LeaseFilter) ([]*writ.Lease, error) {
	return b.cfg.Store.ListLeases(ctx, f)
}

// Revoke asks for lease id to be revoked now and waits up to wait for the
// revoker to do it. The lease returned is revoked, or still active with its
// revoke reason set when the backend has not answered yet (the revoker
// keeps trying).
func (b *Broker) Revoke(ctx context.Context, id string, wait time.Duration) (*writ.Lease, error) {
	l, err := b.cfg.Store.RequestRevoke(ctx, id, "revoked")
	if err != nil || l.State == writ.LeaseRevoked {
		return l, err
	}
	b.Wake()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return b.cfg.Store.GetLease(ctx, id)
		case <-tick.C:
			l, err := b.cfg.Store.GetLease(ctx, id)
			if err != nil || l.State == writ.LeaseRevoked {
				return l, err
			}
		}
	}
}

// Git credentials: "writ_git_" + the lease's ULID + "_" + 43 characters of
// base64url randomness. The prefix makes a leaked one easy to find with a
// secret scanner (and writ's own push scan refuses it).
const (
	gitPrefix    = "writ_git_"
	gitSecretLen = 43
)

// CheckGit checks a git credential presented to writ's git gateway as
// Basic auth (user = run id, password = the lease's secret) for repo,
// reading or (write) pushing. It returns the lease and the run's id; every
// refusal is a KindUnauthenticated or KindDenied error saying why.
func (b *Broker) CheckGit(ctx context.Context, user, password, repo string, write bool) (*writ.Lease, error) {
	bad := func(code, format string, args ...any) error {
		return writ.Errorf(writ.KindUnauthenticated, code, format, args...)
	}
	rest, ok := strings.CutPrefix(password, gitPrefix)
	if !ok || len(rest) != 26+1+gitSecretLen || rest[26] != '_' {
		return nil, bad("invalid_credential", "not a writ git credential; run git through writ's credential helper (writ git-credential)")
	}
	ulid, secret := rest[:26], rest[27:]
	if _, err := writ.ParseULID(ulid); err != nil {
		return nil, bad("invalid_credential", "not a writ git credential")
	}
	l, verifier, runState, err := b.cfg.Store.LeaseVerifier(ctx, "lse_"+ulid)
	if writ.ErrorKind(err) == writ.KindNotFound {
		return nil, bad("invalid_credential", "unknown git credential")
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(secret))
	if len(verifier) != sha256.Size || subtle.ConstantTimeCompare(sum[:], verifier) != 1 || l.Kind != writ.CredentialGit ||
		subtle.ConstantTimeCompare([]byte(user), []byte(l.Run)) != 1 {
		return nil, bad("invalid_credential", "unknown git credential")
	}
	now := b.now()
	switch {
	case l.State != writ.LeaseActive:
		return nil, bad("credential_revoked", "this git credential was revoked (%s); fetch a new one", l.RevokeReason)
	case runState != writ.RunActive:
		return nil, bad("run_not_active", "run %s is %s; its credentials no longer work", l.Run, runState)
	case !now.Before(l.ExpiresAt):
		return nil, bad("credential_expired", "this git credential expired at %s; git fetches a new one through writ git-credential", l.ExpiresAt.Format(time.RFC3339))
	case l.RevokeReason != "":
		return nil, bad("credential_revoked", "this git credential is being revoked; fetch a new one")
	case l.Target != repo:
		return nil, writ.Errorf(writ.KindDenied, "credential_not_for_repo", "this git credential is for %s, not %s; fetch one for %s", l.Target, repo, repo)
	case write && !slices.Contains(l.Permissions, "write"):
		return nil, writ.Errorf(writ.KindDenied, "credential_read_only", "this git credential may only fetch %s; ask for one with write permission", repo)
	}
	return l, nil
}

// Wake makes the revoker look for due leases now (a run stopped).
func (b *Broker) Wake() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// revokeHold is how long a claim on a lease keeps other revokers away.
const revokeHold = 30 * time.Second

// revokeBatch is how many leases one claim takes.
const revokeBatch = 100

// revokeParallel is how many backend revocations run at once.
const revokeParallel = 16

// RunRevoker revokes due leases until ctx ends: at start (leases of runs
// that stopped while writ was down), when woken, at the next expiry or
// retry, and at least every poll.
func (b *Broker) RunRevoker(ctx context.Context, poll time.Duration) {
	if poll <= 0 {
		poll = time.Second
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-timer.C:
		}
		b.RevokeDue(ctx)
		wait := poll
		if t, ok, err := b.cfg.Store.NextLeaseDue(ctx); err == nil && ok {
			wait = min(wait, max(t.Sub(b.now()), 10*time.Millisecond))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// RevokeDue revokes every lease due now, in batches, and reports how many
// it revoked.
func (b *Broker) RevokeDue(ctx context.Context) int {
	total := 0
	for ctx.Err() == nil {
		now := b.now()
		due, err := b.cfg.Store.LeasesDue(ctx, now)
		if err != nil {
			if ctx.Err() == nil {
				b.log.ErrorContext(ctx, "revoker: looking for due leases", slog.Any("error", err))
			}
			return total
		}
		if !due {
			return total
		}
		tasks, err := b.cfg.Store.ClaimRevocations(ctx, now, revokeHold, revokeBatch)
		if err != nil {
			if ctx.Err() == nil {
				b.log.ErrorContext(ctx, "revoker: claiming leases", slog.Any("error", err))
			}
			return total
		}
		if len(tasks) == 0 {
			return total
		}
		results := make([]writ.RevocationResult, len(tasks))
		var wg sync.WaitGroup
		sem := make(chan struct{}, revokeParallel)
		for i, t := range tasks {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				results[i] = b.revokeOne(ctx, t)
			}()
		}
		wg.Wait()
		if err := b.cfg.Store.FinishRevocations(context.WithoutCancel(ctx), results); err != nil {
			b.log.ErrorContext(ctx, "revoker: recording revocations", slog.Any("error", err))
			return total
		}
		for _, r := range results {
			if r.Revoked {
				total++
			}
		}
		if len(tasks) < revokeBatch {
			return total
		}
	}
	return total
}

// revokeOne revokes one claimed lease and says what happened.
func (b *Broker) revokeOne(ctx context.Context, t *writ.Revocation) writ.RevocationResult {
	l := t.Lease
	res := writ.RevocationResult{ID: l.ID, Reason: t.Reason}
	err := func() error {
		src := b.cfg.Sources[l.Kind]
		if src == nil {
			return fmt.Errorf("no %s backend is configured any more", l.Kind)
		}
		handle, err := b.open(l.ID, t.Handle)
		if err != nil {
			return fmt.Errorf("the lease's handle does not open with the broker key (was the key changed?)")
		}
		rctx, cancel := context.WithTimeout(ctx, b.cfg.RevokeTimeout)
		defer cancel()
		return src.Revoke(rctx, l, handle)
	}()
	now := b.now()
	if err == nil {
		res.Revoked = true
		res.Event = &writ.Event{Type: writ.EventCredentialRevoked, Run: l.Run, Actor: writ.ActorSystem, Action: writ.ActionCredential,
			Decision: l.Decision, Subject: l.ID, Details: map[string]any{"kind": l.Kind, "target": l.Target, "reason": t.Reason, "attempts": l.Attempts}}
		return res
	}
	b.log.WarnContext(ctx, "revocation failed; will retry", slog.String("lease", l.ID), slog.String("kind", l.Kind),
		slog.Int("attempt", l.Attempts), slog.Any("error", err))
	res.Error = truncate(err.Error(), 500)
	res.NextAttempt = now.Add(b.backoff(l.Attempts))
	if !t.Alerted && !res.NextAttempt.Before(l.ExpiresAt) {
		res.Alert = &writ.Event{Type: writ.EventAlert, Run: l.Run, Actor: writ.ActorSystem, Subject: l.ID, Details: map[string]any{
			"alert":    fmt.Sprintf("lease %s (%s %s) could not be revoked by its expiry at %s; writ keeps trying", l.ID, l.Kind, l.Target, l.ExpiresAt.UTC().Format(time.RFC3339)),
			"reason":   "revocation_failed",
			"attempts": l.Attempts,
			"error":    res.Error,
		}}
	}
	return res
}

// backoff is the wait before attempt n+1: 1 s doubling to MaxBackoff,
// with up to 20 % jitter so that replicas and leases spread out.
func (b *Broker) backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < b.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, b.cfg.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
