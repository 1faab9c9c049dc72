package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/writ-dev/writ"
)

// fileHeartbeat is runs.heartbeat in writ.yaml.
type fileHeartbeat struct {
	Interval writ.Duration `json:"interval"` // how often a launcher sends one; default 10s
	Missed   int           `json:"missed"`   // how many may be missed before the run is killed; default 3
}

// HeartbeatConfig is runs.heartbeat: launchers send a heartbeat every
// Interval; a run whose launcher announced heartbeats and then missed
// Missed of them in a row is killed (reason missed_heartbeats).
type HeartbeatConfig struct {
	Interval time.Duration
	Missed   int
}

func (h *HeartbeatConfig) parse(fh *fileHeartbeat) {
	if fh == nil {
		return
	}
	if fh.Interval != 0 {
		h.Interval = fh.Interval.D()
	}
	if fh.Missed != 0 {
		h.Missed = fh.Missed
	}
}

func (h HeartbeatConfig) validate() error {
	if h.Interval < 100*time.Millisecond || h.Interval > 10*time.Minute {
		return fmt.Errorf("runs.heartbeat.interval %v: must be between 100ms and 10m", h.Interval)
	}
	if h.Missed < 1 || h.Missed > 100 {
		return fmt.Errorf("runs.heartbeat.missed %d: must be between 1 and 100", h.Missed)
	}
	return nil
}

// silence is how long a run may go without a heartbeat: the missed
// intervals plus half of one, so a launcher that beats on time is never
// caught between two of its beats.
func (h HeartbeatConfig) silence() time.Duration {
	return time.Duration(h.Missed)*h.Interval + h.Interval/2
}

// heartbeatLoop kills the runs whose launcher stopped sending heartbeats
// (it died, or was killed with SIGKILL): [runs.Service.KillSilent].
func (s *Server) heartbeatLoop(ctx context.Context) error {
	every := max(s.cfg.Heartbeat.Interval/2, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.runs.KillSilent(ctx, s.cfg.Heartbeat.silence(), 500); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "kill silent runs", slog.Any("error", err))
		}
	}
}
