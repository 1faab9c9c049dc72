package runs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/trigger"
)

// refusalMemory is how long past a refused trigger's expiry its refusal is
// remembered for de-duplication.
const refusalMemory = 24 * time.Hour

// StartRequest is a signed trigger (docs/design.md §4.1) presented as its
// own credential, with the DPoP proof of a client holding a key (the
// launcher, `writ run start`), whose first token is then bound to it.
type StartRequest struct {
	Trigger []byte
	Proof   Proof  // no headers: the first token is an unbound bearer token
	Remote  string // the caller's address, for the refusal log
	// Admit, when set, is asked once the trigger's signature verified,
	// before anything is written: a per-signer rate limit. Its error
	// (429 rate_limited) is the answer.
	Admit func(signer string) error
}

// Started is a new run and its first API token.
type Started struct {
	Run   *writ.Run
	Token *Token
}

// Start verifies a signed trigger, checks it against the rules, and starts
// its run: one transaction records the trigger (a one-time id), the
// trigger.accepted, run.started and token.issued events, and the run.
func (s *Service) Start(ctx context.Context, req StartRequest) (*Started, error) {
	now := s.now()
	v, err := trigger.Verify(req.Trigger, s.cfg.Ring)
	if req.Admit != nil && v != nil && v.Signer != "" {
		if err := req.Admit(v.Signer); err != nil {
			return nil, err
		}
	}
	if err != nil {
		if v == nil || v.Signer == "" {
			return nil, s.RefuseUnauthenticated(ctx, req.Remote, err)
		}
		// The signature verified, but the payload is not a valid trigger:
		// the signer is known, so this refusal is an audit event.
		return nil, s.refuse(ctx, v, err)
	}
	if err := s.cfg.Rules.Check(v, now); err != nil {
		return nil, s.refuse(ctx, v, err)
	}
	// The proof is checked only now that the trigger is authenticated, so
	// anonymous callers cannot write proofs into the store.
	jkt := ""
	if len(req.Proof.Headers) > 0 {
		pc, err := s.checkProof(ctx, req.Proof, "", "")
		if err != nil {
			return nil, err
		}
		jkt = pc.JKT
	}
	t := &v.Trigger
	digest, err := scopeDigest(t.Scope)
	if err != nil {
		return nil, err
	}
	run := &writ.Run{
		ID:            writ.RunID(writ.NewULID(now, nil)),
		Agent:         t.Agent,
		Profile:       t.Profile,
		Ticket:        t.Ticket,
		Task:          t.Task,
		Scope:         t.Scope,
		ScopeDigest:   digest,
		TriggerID:     t.ID,
		TriggerDigest: v.Digest,
		Issuer:        v.Signer,
		SignerKey:     v.KeyID,
		State:         writ.RunActive,
		CreatedAt:     now.UTC(),
		Deadline:      now.Add(t.Scope.MaxDuration.D()).UTC(),
	}
	actor := writ.SignerActor(v.Signer)
	accepted := &writ.Event{Type: writ.EventTriggerAccepted, Run: run.ID, Actor: actor, Subject: "trigger:" + t.ID,
		Details: map[string]any{"digest": v.Digest, "keyId": v.KeyID, "format": v.Format, "agent": t.Agent, "profile": t.Profile,
			"ticket": t.Ticket.System + ":" + t.Ticket.ID}}
	started := &writ.Event{Type: writ.EventRunStarted, Run: run.ID, Actor: actor, Subject: run.SPIFFEID(s.cfg.TrustDomain),
		Details: map[string]any{"agent": run.Agent, "profile": run.Profile, "deadline": run.Deadline, "scopeDigest": run.ScopeDigest,
			"triggerDigest": run.TriggerDigest}}
	tok, claims, err := s.firstToken(run, jkt, now)
	if err != nil {
		return nil, err
	}
	rec := writ.TriggerRecord{ID: t.ID, Digest: v.Digest, Signer: v.Signer, ExpiresAt: t.ExpiresAt}
	if err := s.cfg.Store.CreateRun(ctx, run, rec, accepted, started, tokenEvent(run, claims, actor)); err != nil {
		if writ.ErrorCode(err) == "replay" {
			return nil, s.refuse(ctx, v, err)
		}
		return nil, err
	}
	s.metrics.runsStarted.Inc()
	if s.cfg.OnRunCreated != nil {
		s.cfg.OnRunCreated(run)
	}
	s.log.InfoContext(ctx, "run started", slog.String("run", string(run.ID)), slog.String("agent", run.Agent),
		slog.String("signer", v.Signer), slog.Time("deadline", run.Deadline))
	return &Started{Run: run, Token: tok}, nil
}

// scopeDigest is the digest of a scope as runs record it.
func scopeDigest(scope writ.Scope) (string, error) {
	b, err := json.Marshal(scope)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// RefuseUnauthenticated counts the refusal of a trigger whose signer is
// not known (or a body too large to read), logs it at most once a second,
// and returns err.
func (s *Service) RefuseUnauthenticated(ctx context.Context, remote string, err error) error {
	code := writ.ErrorCode(err)
	s.metrics.refusals.WithLabelValues(code).Inc()
	if ok, suppressed := s.junkLog.allow(s.now()); ok {
		s.log.WarnContext(ctx, "refused unauthenticated trigger", slog.String("reason", code),
			slog.String("remote", remote), slog.Int("suppressed_since_last", suppressed))
	}
	return err
}

// refuse records the refusal of a known signer's trigger: one audit event
// per distinct trigger and reason, so replaying a refused trigger cannot
// flood the log.
func (s *Service) refuse(ctx context.Context, v *trigger.Verified, cause error) error {
	code := writ.ErrorCode(cause)
	s.metrics.refusals.WithLabelValues(code).Inc()
	var we *writ.Error
	if !errors.As(cause, &we) {
		return cause
	}
	details := map[string]any{"digest": v.Digest, "keyId": v.KeyID, "code": code, "message": we.Message}
	if len(we.Items) > 0 {
		details["items"] = we.Items
	}
	subject := "trigger:" + v.Trigger.ID
	if v.Trigger.ID == "" {
		subject = "trigger:" + v.Digest
	}
	ev := &writ.Event{Type: writ.EventTriggerRefused, Actor: writ.SignerActor(v.Signer), Subject: subject, Details: details}
	// The dedup row outlives the trigger by a day, so even an expired
	// trigger replayed in a loop yields at most one event a day.
	exp := v.Trigger.ExpiresAt
	if exp.IsZero() || exp.Before(s.now()) {
		exp = s.now()
	}
	if _, err := s.cfg.Store.RecordRefusal(ctx, v.Digest, code, exp.Add(refusalMemory), ev); err != nil {
		return err
	}
	return cause
}
