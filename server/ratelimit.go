package server

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/writ-dev/writ"
)

// limitStrikes counts the seconds in which each run was refused for its
// rate limit, toward its denial threshold (policy.denials): each second a
// run spends over its limit counts as one denial, and policy.denials.max
// such seconds within policy.denials.window suspend it, as that many
// enforced denials do (docs/design.md §4.11).
type limitStrikes struct {
	mu   sync.Mutex
	runs map[writ.RunID][]time.Time // the seconds, oldest first
}

// runLimited is called by the API each time a run is refused for its
// rate limit.
func (s *Server) runLimited(id writ.RunID) {
	d := s.cfg.Policy.Denials
	if d.Max <= 0 {
		return
	}
	now := s.now().Truncate(time.Second)
	st := &s.strikes
	st.mu.Lock()
	if st.runs == nil || len(st.runs) > 10000 {
		st.runs = map[writ.RunID][]time.Time{}
	}
	secs := st.runs[id]
	if n := len(secs); n > 0 && secs[n-1].Equal(now) {
		st.mu.Unlock()
		return
	}
	for len(secs) > 0 && now.Sub(secs[0]) >= d.Window {
		secs = secs[1:]
	}
	secs = append(secs, now)
	suspend := len(secs) >= d.Max
	if suspend {
		delete(st.runs, id)
	} else {
		st.runs[id] = secs
	}
	st.mu.Unlock()
	if !suspend {
		return
	}
	reason := fmt.Sprintf("suspended by writ: over its rate limit in %d seconds within %v (policy.denials)", d.Max, d.Window)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.runs.SuspendBySystem(ctx, id, reason); err != nil && writ.ErrorKind(err) != writ.KindConflict {
			s.log.WarnContext(ctx, "suspend a run over its rate limit", slog.String("run", string(id)), slog.Any("error", err))
		}
	}()
}
