package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ"
)

// TestTokenBucket: a caller gets its burst at once, then one request per
// 1/rate, and is told exactly when the next token is there; callers and
// classes do not share buckets.
func TestTokenBucket(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter(Limits{ClassDecide: {Rate: 2, Burst: 3}, ClassAPI: {Rate: 1, Burst: 1}}, func() time.Time { return now }, prometheus.NewRegistry())
	for i := range 3 {
		if err := l.allow(ClassDecide, "run", "a"); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	err := l.allow(ClassDecide, "run", "a")
	var we *writ.Error
	if !errors.As(err, &we) || we.Kind != writ.KindRateLimited || we.RetryAfter != 500*time.Millisecond {
		t.Fatalf("over the burst: %#v; want rate_limited, retry after 500ms", err)
	}
	if err := l.allow(ClassDecide, "run", "b"); err != nil {
		t.Errorf("another run: %v", err)
	}
	if err := l.allow(ClassDecide, "human", "a"); err != nil {
		t.Errorf("a human of the same name: %v", err)
	}
	if err := l.allow(ClassAPI, "run", "a"); err != nil {
		t.Errorf("another class: %v", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := l.allow(ClassDecide, "run", "a"); err != nil {
		t.Errorf("after Retry-After: %v", err)
	}
	if err := l.allow(ClassDecide, "run", "a"); err == nil {
		t.Error("a second request in the same instant passed")
	}
	now = now.Add(time.Hour)
	for i := range 3 {
		if err := l.allow(ClassDecide, "run", "a"); err != nil {
			t.Errorf("burst after a long pause, %d: %v", i, err)
		}
	}
	if err := l.allow(ClassUI, "human", "a"); err != nil {
		t.Errorf("an unconfigured class: %v", err)
	}
	if retryAfterSeconds(500*time.Millisecond) != "1" || retryAfterSeconds(2500*time.Millisecond) != "3" || retryAfterSeconds(0) != "1" {
		t.Error("Retry-After is whole seconds, rounded up, at least 1")
	}
}

// TestInFlightBound: a class serves at most its bound at once; a slot
// given back is taken again; unbounded classes never refuse.
func TestInFlightBound(t *testing.T) {
	l := newLimiter(Limits{ClassRunStart: {InFlight: 2}}, time.Now, prometheus.NewRegistry())
	a, err1 := l.admit(ClassRunStart)
	b, err2 := l.admit(ClassRunStart)
	if err1 != nil || err2 != nil {
		t.Fatalf("within the bound: %v %v", err1, err2)
	}
	if _, err := l.admit(ClassRunStart); writ.ErrorCode(err) != "overloaded" || writ.ErrorKind(err) != writ.KindUnavailable {
		t.Fatalf("over the bound: %v; want 503 overloaded", err)
	}
	a.release()
	c, err := l.admit(ClassRunStart)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	b.release()
	c.release()
	if n := l.classes[ClassRunStart].inFlight.Load(); n != 0 {
		t.Errorf("%d in flight after every release", n)
	}
	for range 100 {
		s, err := l.admit(ClassDecide)
		if err != nil || s != nil {
			t.Fatalf("unbounded class: %v %v", s, err)
		}
	}
}

// TestSweepBoundsMemory: callers beyond maxBuckets do not grow memory.
func TestSweepBoundsMemory(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter(Limits{ClassAPI: {Rate: 1, Burst: 1}}, func() time.Time { return now }, prometheus.NewRegistry())
	cl := l.classes[ClassAPI]
	for i := range maxBuckets + 10 {
		cl.take(callerKey{"address", string(rune(i))}, now)
	}
	if n := len(cl.buckets); n > maxBuckets {
		t.Errorf("%d buckets; want at most %d", n, maxBuckets)
	}
}

// TestRouteClasses: the class of every kind of route (docs/design.md
// §4.11); kill switches and heartbeats are never limited.
func TestRouteClasses(t *testing.T) {
	for pattern, want := range map[string]Class{
		"POST /v1/decide":                     ClassDecide,
		"POST /v1/runs":                       ClassRunStart,
		"GET /v1/runs":                        ClassAPI,
		"POST /v1/runs/{id}/delegate":         ClassRunStart,
		"GET /v1/audit/entries":               ClassAudit,
		"GET /v1/trace/{id}":                  ClassAudit,
		"/git/":                               ClassGit,
		"POST /v1/repos/{owner}/{repo}/merge": ClassGit,
		"/mcp/{server}":                       ClassMCP,
		"POST /v1/runs/{id}/heartbeat":        ClassControl,
		"POST /v1/runs/{id}/kill":             ClassControl,
		"POST /v1/freeze":                     ClassControl,
		"DELETE /v1/freeze":                   ClassControl,
		"POST /v1/agents/{name}/disable":      ClassControl,
		"GET /readyz":                         ClassControl,
		"POST /v1/approvals/{id}/approve":     ClassAPI,
	} {
		if got := routeClass(pattern); got != want {
			t.Errorf("routeClass(%q) = %s; want %s", pattern, got, want)
		}
	}
	if got := rateClass("POST /v1/approvals/{id}/deny", ClassAPI); got != ClassApproval {
		t.Errorf("approval verdicts rate as %s; want approval", got)
	}
}

// TestShedAnswer: a shed request is a 503 with Retry-After and the JSON
// envelope, before authentication (no credential needed to be shed).
func TestShedAnswer(t *testing.T) {
	a := New(Config{Limits: Limits{ClassDecide: {InFlight: 1}}})
	a.limits.classes[ClassDecide].inFlight.Store(1)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/decide", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("%d Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if want := `"code": "overloaded"`; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("body %s; want %s", rec.Body, want)
	}
}
