package server

import "context"

// Prune runs one pass of the prune loop now, so tests move the replay
// horizons deterministically instead of waiting for the loop's ticker.
func (s *Server) Prune(ctx context.Context) { s.prune(ctx) }
