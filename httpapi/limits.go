package httpapi

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ"
)

// Class is a route class: the unit of admission control and of rate
// limits (docs/design.md §4.11).
type Class string

// Route classes. Every route belongs to one; ClassControl (health, kill
// switches, heartbeats, run transitions) is never shed, so an operator can
// stop runs and a launcher keep its run alive on an overloaded server.
const (
	ClassDecide   Class = "decide"   // POST /v1/decide
	ClassRunStart Class = "runStart" // POST /v1/runs, POST /v1/runs/{id}/delegate
	ClassGit      Class = "git"      // /git/…, merges
	ClassMCP      Class = "mcp"      // /mcp/{server}
	ClassUI       Class = "ui"       // /ui/…
	ClassAudit    Class = "audit"    // /v1/audit/…, /v1/trace/…
	ClassAPI      Class = "api"      // every other API route
	ClassApproval Class = "approval" // POST /v1/approvals/{id}/approve|deny: rate only, tighter
	ClassSignIn   Class = "signIn"   // the web UI's sign-in: rate only, per address, tighter
	ClassControl  Class = "control"  // never limited
)

// Classes lists the classes a [Limits] configures, in a stable order.
var Classes = []Class{ClassDecide, ClassRunStart, ClassGit, ClassMCP, ClassUI, ClassAudit, ClassAPI, ClassApproval, ClassSignIn}

// Limit bounds one route class. InFlight is how many requests of the
// class are served at once; one more is answered 503 overloaded at once,
// before any work (0: unbounded). Rate and Burst are a token bucket per
// caller — per human, per run, per trigger signer, and per source address
// for a request without a credential: Rate requests a second on average,
// Burst at once; beyond it the caller gets 429 rate_limited (Rate 0: no
// limit).
type Limit struct {
	InFlight int
	Rate     float64
	Burst    int
}

// Limits are the limits of every route class; a class not in the map is
// not limited.
type Limits map[Class]Limit

// DefaultLimits are the limits of a server whose config sets none: bounds
// a 2-core server sheds above, and per-caller rates no well-behaved agent
// or human reaches.
func DefaultLimits() Limits {
	return Limits{
		ClassDecide:   {InFlight: 64, Rate: 100, Burst: 200},
		ClassRunStart: {InFlight: 16, Rate: 10, Burst: 40},
		ClassGit:      {InFlight: 16, Rate: 20, Burst: 60},
		ClassMCP:      {InFlight: 64},                          // callers authenticate inside the gateway: no rate
		ClassUI:       {InFlight: 32, Rate: 50, Burst: 200},    // per address: a page load fetches assets, and users share addresses
		ClassAudit:    {InFlight: 16, Rate: 1000, Burst: 2000}, // a verifier pulls many tiles; reads are cheap
		ClassAPI:      {InFlight: 128, Rate: 50, Burst: 100},
		ClassApproval: {Rate: 1, Burst: 10},
		ClassSignIn:   {Rate: 1, Burst: 20},
	}
}

// shedRetryAfter is the Retry-After of a request shed for overload: a
// second, long enough for a burst to drain, short enough for a retry to
// land within a hook's deadline.
const shedRetryAfter = time.Second

// limiter applies Limits: one in-flight counter and one set of buckets
// per class.
type limiter struct {
	classes map[Class]*classLimiter
	now     func() time.Time
	shed    *prometheus.CounterVec // class, reason
}

type classLimiter struct {
	class    Class
	limit    Limit
	inFlight atomic.Int64
	mu       sync.Mutex
	buckets  map[callerKey]*bucket
}

// callerKey names a caller's bucket: its kind (human, run, signer,
// address) and name.
type callerKey struct{ kind, name string }

func newLimiter(l Limits, now func() time.Time, reg prometheus.Registerer) *limiter {
	lim := &limiter{classes: map[Class]*classLimiter{}, now: now,
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_http_shed_total",
			Help: "Requests refused before any work, by route class and reason (overloaded: 503, rate_limited: 429) and caller kind (human, run, signer, address; \"\" for overload).",
		}, []string{"class", "reason", "caller"})}
	for c, v := range l {
		lim.classes[c] = &classLimiter{class: c, limit: v, buckets: map[callerKey]*bucket{}}
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "writ_http_in_flight", Help: "Requests being served by admitted route classes, summed over classes.",
	}, func() float64 {
		var n int64
		for _, c := range lim.classes {
			n += c.inFlight.Load()
		}
		return float64(n)
	})
	reg.MustRegister(lim.shed, inFlight)
	return lim
}

// admit takes an in-flight slot of class c, or says the class is full.
// The returned slot's release must be called once the request is served.
func (l *limiter) admit(c Class) (*classLimiter, error) {
	cl := l.classes[c]
	if cl == nil || cl.limit.InFlight <= 0 {
		return nil, nil
	}
	if cl.inFlight.Add(1) > int64(cl.limit.InFlight) {
		cl.inFlight.Add(-1)
		l.shed.WithLabelValues(string(c), "overloaded", "").Inc()
		return nil, &writ.Error{Kind: writ.KindUnavailable, Code: "overloaded", RetryAfter: shedRetryAfter,
			Message: "writ is overloaded: too many " + string(c) + " requests at once; nothing was done, retry after the Retry-After delay"}
	}
	return cl, nil
}

// release gives back the slot admit took; nil (an unbounded class) is a
// no-op.
func (cl *classLimiter) release() {
	if cl != nil {
		cl.inFlight.Add(-1)
	}
}

// allow takes a token from the bucket of caller (kind:name) in class c,
// or says when the next one will be there.
func (l *limiter) allow(c Class, kind, name string) error {
	cl := l.classes[c]
	if cl == nil || cl.limit.Rate <= 0 {
		return nil
	}
	wait := cl.take(callerKey{kind, name}, l.now())
	if wait == 0 {
		return nil
	}
	l.shed.WithLabelValues(string(c), "rate_limited", kind).Inc()
	return &writ.Error{Kind: writ.KindRateLimited, Code: "rate_limited", RetryAfter: wait,
		Message: "rate limit of " + string(c) + " requests for this " + kind + " reached (" +
			strconv.FormatFloat(cl.limit.Rate, 'f', -1, 64) + "/s, burst " + strconv.Itoa(max(cl.limit.Burst, 1)) +
			"); retry after the Retry-After delay"}
}

// maxBuckets bounds the callers remembered per class; beyond it, buckets
// that have refilled (callers idle long enough) are forgotten.
const maxBuckets = 100_000

// take takes one token of key's bucket at now and returns 0, or returns
// how long until a token is there.
func (cl *classLimiter) take(key callerKey, now time.Time) time.Duration {
	burst := float64(max(cl.limit.Burst, 1))
	cl.mu.Lock()
	defer cl.mu.Unlock()
	b := cl.buckets[key]
	if b == nil {
		if len(cl.buckets) >= maxBuckets {
			cl.sweep(now, burst)
		}
		b = &bucket{tokens: burst, last: now}
		cl.buckets[key] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*cl.limit.Rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration(math.Ceil((1 - b.tokens) / cl.limit.Rate * float64(time.Second)))
}

// sweep forgets the buckets that are full again; if none is, it forgets
// them all (an attacker cycling addresses resets everyone's buckets
// rather than growing memory).
func (cl *classLimiter) sweep(now time.Time, burst float64) {
	for k, b := range cl.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*cl.limit.Rate >= burst {
			delete(cl.buckets, k)
		}
	}
	if len(cl.buckets) >= maxBuckets {
		clear(cl.buckets)
	}
}

// bucket is one caller's token bucket.
type bucket struct {
	tokens float64
	last   time.Time
}

// sourceAddress is the request's socket peer address without its port:
// the key of per-address limits (no trusted reverse proxies yet).
func sourceAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfterSeconds is the Retry-After header value for d: whole seconds,
// at least 1.
func retryAfterSeconds(d time.Duration) string {
	return (&writ.Error{RetryAfter: d}).RetryAfterHeader()
}

// routeClass is the class of a route pattern of the table in routes.
func routeClass(pattern string) Class {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	switch {
	case path == "/healthz" || path == "/readyz" || path == "/metrics":
		return ClassControl
	case path == "/v1/decide":
		return ClassDecide
	case path == "/v1/runs" && method == http.MethodPost, strings.HasSuffix(path, "/delegate"):
		return ClassRunStart
	case strings.HasPrefix(path, "/v1/audit/"), strings.HasPrefix(path, "/v1/trace/"):
		return ClassAudit
	case strings.HasPrefix(path, "/git/"), strings.HasSuffix(path, "/merge"):
		return ClassGit
	case strings.HasPrefix(path, "/mcp/"):
		return ClassMCP
	case strings.HasSuffix(path, "/heartbeat"), strings.HasSuffix(path, "/end"), strings.HasSuffix(path, "/kill"),
		strings.HasSuffix(path, "/suspend"), strings.HasSuffix(path, "/resume"), strings.HasSuffix(path, "/disable"),
		strings.HasSuffix(path, "/enable"), path == "/v1/freeze":
		return ClassControl
	}
	return ClassAPI
}

// rateClass is the class whose per-caller rate applies to a route of
// class c: approval verdicts have their own, tighter one.
func rateClass(pattern string, c Class) Class {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	if method == http.MethodPost && strings.HasPrefix(path, "/v1/approvals/") {
		return ClassApproval
	}
	return c
}
