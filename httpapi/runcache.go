package httpapi

import (
	"context"
	"sync"
	"time"

	"github.com/writ-dev/writ"
)

// runCache keeps the runs whose tokens are being checked, so the state
// check on every request does not read the store every time. Entries are
// dropped when this API changes the run and whenever [API.RunChanged] is
// called (the expiry loop, and later other replicas' notifications); the
// TTL bounds how stale an entry can be if a change comes from elsewhere.
// A run's deadline needs no invalidation: [writ.Run.LiveAt] checks it.
type runCache struct {
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

func newRunCache(store Store) *runCache {
	return &runCache{store: store, ttl: time.Second, max: 10000, m: map[writ.RunID]cachedRun{}}
}

// get returns the run, from the cache when the entry is younger than the
// TTL (measured on the monotonic clock, not the injectable one).
func (c *runCache) get(ctx context.Context, id writ.RunID) (*writ.Run, error) {
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

func (c *runCache) forget(id writ.RunID) {
	c.mu.Lock()
	delete(c.m, id)
	c.gen++
	c.mu.Unlock()
}

// RunChanged tells the API that run id changed state outside it (the
// expiry loop, another replica), so its next request re-reads the run.
func (a *API) RunChanged(id writ.RunID) {
	a.forgetRun(id)
	// A change cascades to the run's descendants (sqlstore does it in the
	// same transaction): their cached states are stale too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kids, err := a.cfg.Store.Descendants(ctx, id)
	if err != nil {
		// Without the list, drop everything: a stale "active" must not
		// outlive a kill.
		a.runs.forgetAll()
		return
	}
	for _, k := range kids {
		a.forgetRun(k)
	}
}

func (a *API) forgetRun(id writ.RunID) {
	a.runs.forget(id)
	if a.cfg.Decider != nil {
		a.cfg.Decider.Forget(id)
	}
}

func (c *runCache) forgetAll() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

// SetPublicURL sets the public URL once the server knows the address it
// bound (a config asking for port 0). Call it before serving.
func (a *API) SetPublicURL(u string) { a.cfg.PublicURL = u }
