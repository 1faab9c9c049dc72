package runs

import (
	"context"
	"sync"
	"time"

	"github.com/writ-dev/writ"
)

// cache keeps the runs whose tokens are being checked, so the state check
// on every request does not read the store every time. Entries are
// dropped when this Service changes the run and whenever [Service.Changed]
// is called (the expiry loop, a decision that suspended the run, other
// replicas' notifications); the TTL bounds how stale an entry can be if a
// change comes from elsewhere. A run's deadline needs no invalidation:
// [writ.Run.LiveAt] checks it.
type cache struct {
	store Store
	ttl   time.Duration
	max   int
	mu    sync.Mutex
	m     map[writ.RunID]cachedRun
	// gen counts invalidations. A read that raced with one (it started
	// before a forget and finished after) must not be cached: it may hold
	// the state from before the change.
	gen uint64
}

type cachedRun struct {
	run *writ.Run
	at  time.Time
}

func newCache(store Store) *cache {
	return &cache{store: store, ttl: time.Second, max: 10000, m: map[writ.RunID]cachedRun{}}
}

// get returns the run, from the cache when the entry is younger than the
// TTL (measured on the monotonic clock, not the injectable one).
func (c *cache) get(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e.run, nil
	}
	run, err := c.store.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[id] = cachedRun{run: run, at: time.Now()}
	}
	c.mu.Unlock()
	return run, nil
}

func (c *cache) forget(id writ.RunID) {
	c.mu.Lock()
	delete(c.m, id)
	c.gen++
	c.mu.Unlock()
}

func (c *cache) forgetAll() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

// Get returns run id as it is now, through the run-state cache that every
// change invalidates. Every enforcement point reads runs this way.
func (s *Service) Get(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	return s.cache.get(ctx, id)
}

// Changed tells the Service that run id changed state outside it (the
// expiry loop, a decision that suspended it, another replica), so its next
// read re-reads the run, and so do its descendants'.
func (s *Service) Changed(id writ.RunID) {
	s.forget(id)
	// A change cascades to the run's descendants (sqlstore does it in the
	// same transaction): their cached states are stale too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kids, err := s.cfg.Store.Descendants(ctx, id)
	if err != nil {
		// Without the list, drop everything: a stale "active" must not
		// outlive a kill.
		s.cache.forgetAll()
		return
	}
	for _, k := range kids {
		s.forget(k)
	}
}

// changedMany drops what is cached of ids, which a kill switch changed
// (and, through their cascades, of every other run).
func (s *Service) changedMany(ids []writ.RunID) {
	if len(ids) == 0 {
		return
	}
	s.cache.forgetAll()
	if s.cfg.Decider != nil {
		for _, id := range ids {
			s.cfg.Decider.Forget(id)
		}
	}
}

func (s *Service) forget(id writ.RunID) {
	s.cache.forget(id)
	if s.cfg.Decider != nil {
		s.cfg.Decider.Forget(id)
	}
}

// Stale drops the cached state of run id alone: a decision about it may
// have suspended it (the decision point forgets its own history).
func (s *Service) Stale(id writ.RunID) { s.cache.forget(id) }
