package server

import (
	"context"
	"errors"
	"sort"
	"sync"
)

// health is what the server knows is wrong with itself beyond the
// store's ping: a failed integrity check, an audit tree under repair.
// Each problem has a name, is set while it lasts and cleared once it is
// fixed; /readyz fails while any is set (httpapi.Config.Ready).
type health struct {
	mu       sync.Mutex
	problems map[string]string
}

// set records (or replaces) the problem called name.
func (h *health) set(name, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.problems == nil {
		h.problems = map[string]string{}
	}
	h.problems[name] = msg
}

// clear forgets the problem called name.
func (h *health) clear(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.problems, name)
}

// ready returns nil when no problem is set, else one error listing every
// problem's message, in name order.
func (h *health) ready(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) == 0 {
		return nil
	}
	names := make([]string, 0, len(h.problems))
	for n := range h.problems {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = errors.New(h.problems[n])
	}
	return errors.Join(errs...)
}
