package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// DefaultIntegrityBudget is how long start-up waits for the store's
// integrity check before going on with the check in the background.
const DefaultIntegrityBudget = 3 * time.Second

// maxIntegrityProblems caps what PRAGMA quick_check reports.
const maxIntegrityProblems = 20

// integrityResult is what the integrity check found.
type integrityResult struct {
	problems []string
	err      error
}

// DamagedStoreError is the refusal of a store whose integrity check failed.
type DamagedStoreError struct {
	Path     string
	Problems []string
}

func (e *DamagedStoreError) Error() string {
	shown := e.Problems
	if len(shown) > 5 {
		shown = shown[:5]
	}
	return fmt.Sprintf("the store %s is damaged: PRAGMA quick_check reports %d problem(s): %s. writ refuses to serve from it: stop writ and restore the newest backup with `writ restore` (docs/operations.md)",
		e.Path, len(e.Problems), strings.Join(shown, "; "))
}

// checkIntegrity starts the store's integrity check and waits for it up
// to budget: a damaged store is refused. When the budget runs out first,
// the check goes on; [Server.integrityLater] reports what it finds.
func (s *Server) checkIntegrity(ctx context.Context, budget time.Duration) error {
	if !s.store.IsSQLite() {
		return nil
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan integrityResult, 1)
	start := time.Now()
	go func() {
		p, err := s.store.QuickCheck(cctx, maxIntegrityProblems)
		done <- integrityResult{p, err}
	}()
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		select {
		case r := <-done:
			cancel()
			if r.err != nil {
				return fmt.Errorf("store integrity check: %w", r.err)
			}
			if len(r.problems) > 0 {
				return &DamagedStoreError{Path: s.store.Path(), Problems: r.problems}
			}
			s.log.DebugContext(ctx, "store integrity check passed", slog.Duration("took", time.Since(start)))
			return nil
		case <-t.C:
		}
	}
	s.log.InfoContext(ctx, "the store's integrity check goes on in the background", slog.Duration("budget", budget))
	s.integrity = done
	s.integrityCancel = cancel
	return nil
}

// integrityLater waits for a check that outlived its start-up budget: a
// damaged store is an alert and a /readyz problem from then on.
func (s *Server) integrityLater(ctx context.Context) error {
	if s.integrity == nil {
		return nil
	}
	defer s.integrityCancel()
	var r integrityResult
	select {
	case <-ctx.Done():
		return nil
	case r = <-s.integrity:
	}
	if r.err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "store integrity check", slog.Any("error", r.err))
		}
		return nil
	}
	if len(r.problems) == 0 {
		s.log.InfoContext(ctx, "store integrity check passed")
		return nil
	}
	e := &DamagedStoreError{Path: s.store.Path(), Problems: r.problems}
	s.health.set("store_integrity", e.Error())
	s.log.ErrorContext(ctx, "store integrity check failed", slog.Any("problems", r.problems))
	alert := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: "store", Details: map[string]any{
		"code": "store_damaged", "message": e.Error(), "problems": r.problems}}
	if err := s.store.AppendEvent(ctx, alert); err != nil {
		s.log.ErrorContext(ctx, "recording the store_damaged alert", slog.Any("error", err))
	}
	return nil
}
