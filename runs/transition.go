package runs

import (
	"context"
	"log/slog"
	"time"

	"github.com/writ-dev/writ"
)

// verbs name each transition a caller asks for.
var verbs = map[writ.RunState]string{writ.RunEnded: "end", writ.RunSuspended: "suspend", writ.RunKilled: "kill", writ.RunActive: "resume"}

// Transition moves run id to state to (end, suspend, kill, resume) on
// behalf of p, with reason (empty: "<verb> by <actor>"). Kill and resume
// are for admins (docs/design.md §4.8). The store cascades a stop to the
// run's descendants in the same transaction; what is cached of them is
// dropped.
func (s *Service) Transition(ctx context.Context, p *writ.Principal, id writ.RunID, to writ.RunState, reason string) (*writ.Run, error) {
	verb, ok := verbs[to]
	if !ok {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_state", "a run cannot be moved to %q by a caller", to)
	}
	if to == writ.RunKilled || to == writ.RunActive {
		if err := RequireAdmin(p, verb+" a run"); err != nil {
			return nil, err
		}
	}
	if _, err := writ.ParseRunID(string(id)); err != nil {
		return nil, err
	}
	if len(reason) > 1024 {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_reason", "reason is over 1024 bytes")
	}
	if reason == "" {
		reason = verb + " by " + p.Actor()
	}
	ev := &writ.Event{Type: to.EventType(), Actor: p.Actor(), Details: map[string]any{"reason": reason}}
	run, err := s.cfg.Store.TransitionRun(ctx, id, to, reason, ev)
	s.Changed(id)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "run "+verb, slog.String("run", string(id)), slog.String("actor", p.Actor()))
	return run, nil
}

// SuspendBySystem suspends run id on writ's own behalf (actor writ), for
// reason: a run that keeps hitting its rate limit counts toward its
// denial threshold (docs/design.md §4.11). A run that is no longer active
// is left as it is.
func (s *Service) SuspendBySystem(ctx context.Context, id writ.RunID, reason string) (*writ.Run, error) {
	ev := &writ.Event{Type: writ.RunSuspended.EventType(), Actor: writ.ActorSystem, Details: map[string]any{"reason": reason}}
	run, err := s.cfg.Store.TransitionRun(ctx, id, writ.RunSuspended, reason, ev)
	s.Changed(id)
	if err != nil {
		return nil, err
	}
	s.log.WarnContext(ctx, "run suspended", slog.String("run", string(id)), slog.String("reason", reason))
	return run, nil
}

func (s *Service) noLifecycle() error {
	return writ.Errorf(writ.KindUnavailable, "unavailable", "this server has no kill switch store")
}

// ExpireDue expires up to limit runs past their deadline and returns them.
func (s *Service) ExpireDue(ctx context.Context, limit int) ([]*writ.Run, error) {
	if s.cfg.Lifecycle == nil {
		return nil, s.noLifecycle()
	}
	expired, err := s.cfg.Lifecycle.ExpireRuns(ctx, s.now(), limit)
	for _, r := range expired {
		s.Changed(r.ID)
		s.log.InfoContext(ctx, "run expired", slog.String("run", string(r.ID)), slog.Time("deadline", r.Deadline))
	}
	return expired, err
}

// NextDeadline is the earliest deadline of a run not yet stopped.
func (s *Service) NextDeadline(ctx context.Context) (time.Time, bool, error) {
	if s.cfg.Lifecycle == nil {
		return time.Time{}, false, s.noLifecycle()
	}
	return s.cfg.Lifecycle.NextDeadline(ctx)
}

// KillSilent kills up to limit runs whose launcher announced heartbeats
// and then sent none for silence (it died, or was killed with SIGKILL).
// Runs started without a launcher never sent one and are left to their
// deadline. Several replicas may call it: the store's kill is
// conditional, so each run is killed once.
func (s *Service) KillSilent(ctx context.Context, silence time.Duration, limit int) ([]*writ.Run, error) {
	if s.cfg.Lifecycle == nil {
		return nil, s.noLifecycle()
	}
	killed, err := s.cfg.Lifecycle.KillSilentRuns(ctx, s.now().Add(-silence), limit)
	for _, r := range killed {
		s.Changed(r.ID)
		s.log.WarnContext(ctx, "run killed: its launcher missed its heartbeats", slog.String("run", string(r.ID)), slog.String("agent", r.Agent))
	}
	return killed, err
}

// Heartbeat records that run id's launcher is alive — one column update
// and no event — and returns the run as it is now, so a launcher learns
// of a kill.
func (s *Service) Heartbeat(ctx context.Context, id writ.RunID) (*writ.Run, time.Time, error) {
	if s.cfg.Lifecycle == nil {
		return nil, time.Time{}, s.noLifecycle()
	}
	at, err := s.cfg.Lifecycle.Heartbeat(ctx, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	run, err := s.cache.get(ctx, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	return run, at, nil
}

// DisableAgent kills agent name's live runs and refuses new ones until it
// is enabled again (admins). It returns the runs killed.
func (s *Service) DisableAgent(ctx context.Context, p *writ.Principal, name, reason string) ([]writ.RunID, error) {
	if err := RequireAdmin(p, "disabling an agent"); err != nil {
		return nil, err
	}
	if s.cfg.Lifecycle == nil {
		return nil, s.noLifecycle()
	}
	if !writ.ValidName(name) {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_agent", "agent %q: want a configured agent's name", name)
	}
	reason, err := killSwitchReason(p, reason, "disabled")
	if err != nil {
		return nil, err
	}
	killed, err := s.cfg.Lifecycle.DisableAgent(ctx, name, p.Actor(), reason)
	s.changedMany(killed)
	if err != nil {
		return nil, err
	}
	s.log.WarnContext(ctx, "agent disabled", slog.String("agent", name), slog.String("actor", p.Actor()), slog.Int("killed", len(killed)))
	return killed, nil
}

// EnableAgent lets agent name start runs again (admins); it reports
// whether the agent was disabled.
func (s *Service) EnableAgent(ctx context.Context, p *writ.Principal, name string) (bool, error) {
	if err := RequireAdmin(p, "enabling an agent"); err != nil {
		return false, err
	}
	if s.cfg.Lifecycle == nil {
		return false, s.noLifecycle()
	}
	if !writ.ValidName(name) {
		return false, writ.Errorf(writ.KindInvalid, "invalid_agent", "agent %q: want a configured agent's name", name)
	}
	was, err := s.cfg.Lifecycle.EnableAgent(ctx, name, p.Actor())
	if err != nil {
		return false, err
	}
	s.log.InfoContext(ctx, "agent enabled", slog.String("agent", name), slog.String("actor", p.Actor()), slog.Bool("was_disabled", was))
	return was, nil
}

// Freeze suspends every active run and refuses run starts, resumes and
// the suspended runs' tokens until [Service.Unfreeze] (admins). It returns
// the runs suspended.
func (s *Service) Freeze(ctx context.Context, p *writ.Principal, reason string) ([]writ.RunID, error) {
	if err := RequireAdmin(p, "freezing writ"); err != nil {
		return nil, err
	}
	if s.cfg.Lifecycle == nil {
		return nil, s.noLifecycle()
	}
	reason, err := killSwitchReason(p, reason, "frozen")
	if err != nil {
		return nil, err
	}
	suspended, err := s.cfg.Lifecycle.Freeze(ctx, p.Actor(), reason)
	s.changedMany(suspended)
	if err != nil {
		return nil, err
	}
	s.log.WarnContext(ctx, "writ frozen", slog.String("actor", p.Actor()), slog.Int("suspended", len(suspended)))
	return suspended, nil
}

// Unfreeze lifts the freeze and resumes the runs it suspended (admins);
// it returns them and whether writ was frozen.
func (s *Service) Unfreeze(ctx context.Context, p *writ.Principal) ([]writ.RunID, bool, error) {
	if err := RequireAdmin(p, "lifting the freeze"); err != nil {
		return nil, false, err
	}
	if s.cfg.Lifecycle == nil {
		return nil, false, s.noLifecycle()
	}
	resumed, was, err := s.cfg.Lifecycle.Unfreeze(ctx, p.Actor())
	s.changedMany(resumed)
	if err != nil {
		return nil, false, err
	}
	s.log.WarnContext(ctx, "writ freeze lifted", slog.String("actor", p.Actor()), slog.Int("resumed", len(resumed)))
	return resumed, was, nil
}

// KillSwitches is the state of the kill switches.
func (s *Service) KillSwitches(ctx context.Context) (*writ.KillSwitchState, error) {
	if s.cfg.Lifecycle == nil {
		return nil, s.noLifecycle()
	}
	return s.cfg.Lifecycle.KillSwitches(ctx)
}

func killSwitchReason(p *writ.Principal, reason, what string) (string, error) {
	if len(reason) > 1024 {
		return "", writ.Errorf(writ.KindInvalid, "invalid_reason", "reason is over 1024 bytes")
	}
	if reason == "" {
		reason = what + " by " + p.Actor()
	}
	return reason, nil
}
