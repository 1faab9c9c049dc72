// Package runs is the life of a run as plain Go values, outside any
// transport: starting a run from a verified trigger, delegation, every
// transition (end, kill, suspend, resume, expire, the kill switches and
// missed heartbeats) with its cascade, token minting and verification for
// every audience, authenticating a caller — a human's API token or a
// run's JWT-SVID with its DPoP proof — from strings, and the run-state
// cache every enforcement point reads through (docs/design.md §3, §4.2).
//
// The HTTP API (package httpapi), the git and MCP gateways, the egress
// proxy and the web UI all take the same [*Service], wired by package
// server. runs imports no HTTP server package.
//
// Part of the writ server; no API stability.
package runs

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// Store is what runs need from storage (package sqlstore).
type Store interface {
	CreateRun(ctx context.Context, run *writ.Run, trig writ.TriggerRecord, events ...*writ.Event) error
	CreateChildRun(ctx context.Context, run *writ.Run, events ...*writ.Event) error
	GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error)
	TransitionRun(ctx context.Context, id writ.RunID, to writ.RunState, reason string, ev *writ.Event) (*writ.Run, error)
	Descendants(ctx context.Context, id writ.RunID) ([]writ.RunID, error)
	RecordRefusal(ctx context.Context, digest, code string, expiresAt time.Time, ev *writ.Event) (bool, error)
	CreateToken(ctx context.Context, t *writ.HumanToken, ev *writ.Event) error
	GetToken(ctx context.Context, id string) (*writ.HumanToken, error)
	UseProof(ctx context.Context, jkt, jti string, expiresAt time.Time) error
	AppendEvent(ctx context.Context, ev *writ.Event) error
}

// Lifecycle is what the transitions made outside a request need from
// storage: deadlines, heartbeats and the kill switches (package sqlstore).
// A Service without one answers those calls unavailable.
type Lifecycle interface {
	ExpireRuns(ctx context.Context, now time.Time, limit int) ([]*writ.Run, error)
	NextDeadline(ctx context.Context) (time.Time, bool, error)
	KillSilentRuns(ctx context.Context, before time.Time, limit int) ([]*writ.Run, error)
	Heartbeat(ctx context.Context, id writ.RunID) (time.Time, error)
	DisableAgent(ctx context.Context, name, actor, reason string) ([]writ.RunID, error)
	EnableAgent(ctx context.Context, name, actor string) (bool, error)
	Freeze(ctx context.Context, actor, reason string) ([]writ.RunID, error)
	Unfreeze(ctx context.Context, actor string) ([]writ.RunID, bool, error)
	KillSwitches(ctx context.Context) (*writ.KillSwitchState, error)
}

// Decider is the policy decision point (package decision): delegation is
// decided like any other action, and a run's cached history is dropped
// when the run changes.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
	Forget(id writ.RunID)
}

// IdentityKeys is the identity key set that signs and verifies run
// identities.
type IdentityKeys interface {
	Current() *token.Signer
	Lookup(kid string) (*ecdsa.PublicKey, bool)
	Published() []token.PublicKey
}

// Config holds a Service's dependencies.
type Config struct {
	Store     Store
	Lifecycle Lifecycle // nil: no deadlines loop, heartbeats or kill switches
	Ring      *trigger.KeyRing
	Rules     *trigger.Rules
	// Humans are the configured human signers by name: a human API token
	// authenticates only while its human is configured.
	Humans      map[string]*writ.Signer
	TrustDomain string
	// PublicURL is the issuer of run identities; API tokens have audience
	// PublicURL+"/v1".
	PublicURL string
	Identity  IdentityKeys
	// Audiences are the downstream audiences (Vault, cloud STS, …) a run
	// may get tokens for besides writ's own API.
	Audiences []string
	// MCPServer reports whether an MCP server of that name is configured:
	// a run may hold a token for its resource, <publicURL>/mcp/<server>.
	// nil: none is.
	MCPServer func(name string) bool
	// Decider decides delegations; nil refuses them.
	Decider Decider
	// MaxDepth is how deep delegation may go (a top-level run is at 0).
	MaxDepth int
	// OnRunCreated is called after a run is committed, so background loops
	// (the expiry loop) can wake; may be nil.
	OnRunCreated func(*writ.Run)
	Logger       *slog.Logger
	Now          func() time.Time
	// Registerer receives the metrics (auth failures, trigger refusals,
	// runs started); nil: a private registry.
	Registerer prometheus.Registerer
}

// Service runs the life of runs. Its methods are safe for concurrent use.
type Service struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	junkLog  *limiter
	cache    *cache
	verified verifiedTokens
}

// New returns a Service over cfg.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "runs")
	if s.now == nil {
		s.now = time.Now
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg)
	s.junkLog = &limiter{every: time.Second}
	s.cache = newCache(cfg.Store)
	s.verified.max = 100000
	return s
}

// SetPublicURL sets the public URL once the server knows the address it
// bound (a config asking for port 0). Call it before serving.
func (s *Service) SetPublicURL(u string) { s.cfg.PublicURL = u }

// PublicURL is writ's public URL, the issuer of run identities.
func (s *Service) PublicURL() string { return s.cfg.PublicURL }

// SPIFFEID is run's identity in the trust domain.
func (s *Service) SPIFFEID(run *writ.Run) string { return run.SPIFFEID(s.cfg.TrustDomain) }

// APIAudience is the audience of run API tokens: <publicURL>/v1.
func (s *Service) APIAudience() string { return s.cfg.PublicURL + "/v1" }

// metrics are the runs' counters, under the names the API always had.
type metrics struct {
	refusals     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	runsStarted  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_trigger_refusals_total", Help: "Triggers refused, by reason code.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_auth_failures_total", Help: "Requests whose credential was refused, by cause.",
		}, []string{"cause"}),
		runsStarted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_runs_started_total", Help: "Runs started from accepted triggers.",
		}),
	}
	reg.MustRegister(m.refusals, m.authFailures, m.runsStarted)
	return m
}

// limiter lets one log line through per interval and counts the rest.
type limiter struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one that was.
func (l *limiter) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// RequireAdmin refuses callers outside the admins group; what names the
// act ("killing a run").
func RequireAdmin(p *writ.Principal, what string) error {
	if p == nil || !p.InGroup(writ.GroupAdmins) {
		return writ.Errorf(writ.KindDenied, "admin_required", "%s needs a human in the %q group", what, writ.GroupAdmins)
	}
	return nil
}

// resourceAllowed reports whether aud is the resource of a configured MCP
// server: <publicURL>/mcp/<server>.
func (s *Service) resourceAllowed(aud string) bool {
	name, ok := strings.CutPrefix(aud, s.cfg.PublicURL+"/mcp/")
	return ok && s.cfg.MCPServer != nil && s.cfg.MCPServer(name)
}
