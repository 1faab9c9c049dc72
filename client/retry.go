package client

import (
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// RetryTransport returns a RoundTripper that sends requests through base
// (nil: http.DefaultTransport) and sends a request again while it is
// answered 503 or 429, as [Client] does: after the answer's Retry-After,
// at least an exponential backoff with jitter, for at most budget (0:
// [DefaultRetryFor]) or the request context's deadline. A request whose
// body cannot be sent again (no GetBody) is not retried. The last answer
// is returned as it is: the caller sees the 503 or 429 and its
// Retry-After. `writ mcp proxy` relays MCP through it.
func RetryTransport(base http.RoundTripper, budget time.Duration) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if budget == 0 {
		budget = DefaultRetryFor
	}
	return &retryTransport{base: base, budget: budget}
}

type retryTransport struct {
	base   http.RoundTripper
	budget time.Duration
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	giveUp := time.Now().Add(rt.budget)
	if dl, ok := req.Context().Deadline(); ok && dl.Before(giveUp) {
		giveUp = dl
	}
	backoff := 100 * time.Millisecond
	for {
		resp, err := rt.base.RoundTrip(req)
		if err != nil || (resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests) ||
			(req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
			return resp, err
		}
		wait := max(backoff/2+rand.N(backoff/2+1), retryAfter(resp.Header.Get("Retry-After")))
		backoff = min(2*backoff, 5*time.Second)
		if time.Now().Add(wait).After(giveUp) {
			return resp, nil
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		t := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		case <-t.C:
		}
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}
