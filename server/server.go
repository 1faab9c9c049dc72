// Package server is the composition root of `writ serve`: it turns a
// [Config] into a running server — store, keys, trigger rules, HTTP API and
// the background loops (run expiry, replay-cache pruning) — and orders
// their shutdown. It owns no business logic. It is part of the writ server
// and has no API stability.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/approval"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/broker"
	"github.com/writ-dev/writ/builder"
	"github.com/writ-dev/writ/builder/gate"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/egress"
	"github.com/writ-dev/writ/gitgw"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/mcpgw"
	"github.com/writ-dev/writ/notify"
	"github.com/writ-dev/writ/runs"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/trigger"
)

// Server is a configured, not yet running writ server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	store *sqlstore.DB
	keys  *Keys
	ids   *identityKeys
	audit *auditlog.Log
	// auditRef lets the store's commit hook reach the log, which is built
	// after the store.
	auditRef atomic.Pointer[auditlog.Log]
	// notifier sends webhook notifications; notifyRef lets the store's
	// commit hook reach it, as auditRef does the log.
	notifier  *notify.Notifier
	notifyRef atomic.Pointer[notify.Notifier]
	// runs is the life of runs every edge shares; runsRef lets the
	// store's notifications of other replicas' run changes reach it, as
	// auditRef does the log.
	runs      *runs.Service
	runsRef   atomic.Pointer[runs.Service]
	api       *httpapi.API
	strikes   limitStrikes // rate-limit refusals per run, toward the denial threshold
	http      *http.Server
	ln        net.Listener
	wake      chan struct{}
	policy    *policyState
	decider   *decision.Point
	approvals *approval.Service
	broker    *brokerParts
	// brokerRef lets the store's commit hook reach the broker's revoker.
	brokerRef atomic.Pointer[broker.Broker]
	mcp       *mcpgw.Gateway // nil when no MCP server is configured
	git       *gitgw.Gateway // nil without a git binary
	gitFault  func(string) error
	// health is what /readyz reports beyond the store's ping.
	health health
	pin    *pinKeeper // keeps the checkpoint pin (pin.go)
	lock   *storeLock // the SQLite store's process lock; nil on PostgreSQL
	// integrity delivers the store's integrity check when it outlived its
	// start-up budget (integrity.go); nil otherwise.
	integrity       chan integrityResult
	integrityCancel context.CancelFunc
	egress          *egress.Proxy
	gates           *gate.Gates
	attester        *gate.Attester
	// nextSweep is when the expiry loop will next look (unix ns); a new
	// run wakes it only when its deadline comes before that.
	nextSweep atomic.Int64
}

// Options are the parts of a server that are not configuration.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// Sandbox confines build recipes (`writ serve` passes the Landlock
	// helper); nil: builds are refused unless builds.unsandboxedUnsafe.
	Sandbox builder.Sandbox
	// GitFault is the git gateway's fault hook (gitgw.Config.Fault): for
	// crash-recovery tests only; nil in production.
	GitFault func(point string) error
	// AcceptRollback starts on a store the checkpoint pin refuses
	// (`writ serve --accept-rollback`): an alert is recorded, the trigger
	// horizon raised to the pin's and the pin reset.
	AcceptRollback bool
	// IntegrityBudget is how long start-up waits for the store's
	// integrity check before it goes on in the background; 0 means
	// DefaultIntegrityBudget, and a negative one does not wait at all
	// (the check runs in the background only).
	IntegrityBudget time.Duration
}

// New opens the store, loads the keys and builds the API. Call Close if
// Run is never called.
func New(ctx context.Context, cfg Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.normalize()
	s := &Server{cfg: cfg, log: o.Logger, now: o.Now, wake: make(chan struct{}, 1), gitFault: o.GitFault}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	keys, err := LoadKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	s.keys = keys
	ring, rules, err := TriggerRules(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if path, err := sqlitePath(cfg, "serve"); err == nil {
		// One process at a time on an SQLite store (writ restore waits
		// for this lock too).
		if s.lock, err = lockStore(path); err != nil {
			return nil, err
		}
	}
	built := false
	defer func() {
		if !built {
			s.lock.release()
		}
	}()
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: cfg.Store, Durability: cfg.Durability, Logger: s.log, Now: s.now,
		OnEvents: func() {
			if l := s.auditRef.Load(); l != nil {
				l.Wake()
			}
			if n := s.notifyRef.Load(); n != nil {
				n.Wake()
			}
		},
		// On PostgreSQL, a run another replica (or this one) changed:
		// forget what the run cache holds of it at once rather than when
		// the entry's TTL runs out.
		OnRunChanged: func(id writ.RunID) {
			if r := s.runsRef.Load(); r != nil {
				r.Changed(id)
			}
			if b := s.brokerRef.Load(); b != nil {
				b.Wake()
			}
		},
		// A run stopped (or resumed): its leases may be due.
		OnRunsChanged: func() {
			if b := s.brokerRef.Load(); b != nil {
				b.Wake()
			}
		},
	})
	if err != nil {
		if sqlstore.IsCorrupt(err) {
			return nil, fmt.Errorf("open store %s: %w: the file is damaged; restore the newest backup with `writ restore` (docs/operations.md)", redactDSN(cfg.Store), err)
		}
		return nil, fmt.Errorf("open store %s: %w", cfg.Store, err)
	}
	s.store = store
	budget := o.IntegrityBudget
	if budget == 0 {
		budget = DefaultIntegrityBudget
	}
	if err := s.checkIntegrity(ctx, budget); err != nil {
		store.Close()
		return nil, err
	}
	s.audit, err = auditlog.New(auditlog.Config{Store: auditStore{store}, Signer: keys.Log, Origin: cfg.TrustDomain + "/audit", Logger: s.log})
	if err != nil {
		store.Close()
		return nil, err
	}
	s.auditRef.Store(s.audit)
	if s.pin, err = newPinKeeper(cfg, keys, store, s.audit, s.log, s.now); err != nil {
		store.Close()
		return nil, err
	}
	if err := s.pin.check(ctx, o.AcceptRollback); err != nil {
		store.Close()
		return nil, err
	}
	s.ids = &identityKeys{store: store, path: cfg.Keys.Identity, now: s.now}
	if err := s.ids.register(ctx, keys.Identity); err != nil {
		store.Close()
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if err := s.ids.reload(ctx, keys.Identity); err != nil {
		store.Close()
		return nil, err
	}
	s.policy, err = newPolicyState(ctx, cfg, s.log, s.now)
	if err != nil {
		store.Close()
		return nil, err
	}
	s.policy.events = store.AppendEvent
	if err := store.AppendEvent(ctx, loadedEvent(s.policy.engine.Bundle(), writ.ActorSystem)); err != nil {
		store.Close()
		return nil, err
	}
	humans := map[string]*writ.Signer{}
	for i := range cfg.Signers {
		if cfg.Signers[i].Kind == writ.SignerHuman {
			humans[cfg.Signers[i].Name] = &cfg.Signers[i].Signer
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.notifier, err = notify.New(notify.Config{Webhooks: cfg.Notify, Store: notifyStore{store}, Logger: s.log,
		PublicURL: cfg.PublicURL, Registerer: reg})
	if err != nil {
		store.Close()
		return nil, err
	}
	s.notifyRef.Store(s.notifier)
	s.decider = decision.New(decision.Config{
		Store: store, Policy: s.policy.engine, Environments: cfg.Environments, Repos: cfg.Repos, Denials: cfg.Policy.Denials,
		ApprovalTTL: cfg.Policy.ApprovalTTL, Logger: s.log, Now: s.now,
		// Replicas decide for the same runs: budgets and thresholds count
		// every replica's decisions.
		Shared: store.Shared(),
		// Decisions are made only once the server serves, after s.runs
		// is set.
		OnRunChanged: func(id writ.RunID) { s.runs.Changed(id) },
	})
	s.approvals = approval.New(approval.Config{
		Store: store, Ring: ring, Humans: humans, Attest: keys.Attest, SelfApproval: cfg.Policy.SelfApproval,
		PolicyDigest: func() string { return s.policy.engine.Bundle().Digest }, Logger: s.log, Now: s.now,
	})
	// Vault's JWT login mints the run's own token; runs mint (built
	// below, before any request can reach the broker).
	mint := func(ctx context.Context, run *writ.Run, aud string) (string, error) {
		return s.runs.MintDownstream(ctx, run, aud, writ.ActorSystem)
	}
	s.broker, err = newBroker(cfg, store, store, s.decider, mint, s.log, s.now)
	if err != nil {
		store.Close()
		return nil, err
	}
	s.brokerRef.Store(s.broker.broker)
	var secrets httpapi.Secrets
	if s.broker.secrets != nil {
		secrets = s.broker.secrets
	}
	s.runs = runs.New(runs.Config{
		Store: store, Lifecycle: store, Ring: ring, Rules: rules, Humans: humans, TrustDomain: cfg.TrustDomain,
		PublicURL: cfg.PublicURL, Identity: s.ids, Audiences: cfg.Audiences, MCPServer: s.mcpKnown, // s.mcp is set below, before serving
		Decider: s.decider, MaxDepth: cfg.MaxDepth, Logger: s.log, Now: s.now, Registerer: reg,
		OnRunCreated: func(r *writ.Run) {
			if r.Deadline.UnixNano() < s.nextSweep.Load() {
				s.poke()
			}
		},
	})
	s.runsRef.Store(s.runs)
	if s.mcp, err = s.newMCP(); err != nil {
		s.broker.close()
		store.Close()
		return nil, err
	}
	if s.git, err = s.newGit(); err != nil {
		s.broker.close()
		store.Close()
		return nil, err
	}
	s.attester = gate.NewAttester(gate.AttesterConfig{Store: attestStore{store}, Log: s.audit, Key: keys.Attest,
		TrustDomain: cfg.TrustDomain, Logger: s.log})
	if s.gates, err = s.newGates(o.Sandbox); err != nil {
		s.broker.close()
		store.Close()
		return nil, err
	}
	sensitive := map[string]bool{}
	for _, e := range cfg.Environments {
		sensitive[e.Name] = e.Sensitive
	}
	s.api = httpapi.New(httpapi.Config{
		Store: store, Runs: s.runs, Broker: s.broker.broker, Secrets: secrets,
		Decider: s.decider, Approvals: s.approvals, ApprovalStore: store, SensitiveEnvironments: sensitive,
		Audit: s.audit, AuditStore: store, Tiles: s.audit, AuditKey: keys.LogKey, AuditOrigin: cfg.TrustDomain + "/audit",
		RotateIdentity: func(ctx context.Context, actor string) (string, error) {
			return s.ids.rotate(ctx, s.keys.Identity, actor)
		},
		Logger: s.log, Now: s.now, Registry: reg, MCP: s.mcpHandler(), Git: s.gitHandler(),
		AttestKey: attestPublicPEM(keys), Artifacts: s.gates,
		Heartbeat: httpapi.HeartbeatConfig{Interval: cfg.Heartbeat.Interval, Missed: cfg.Heartbeat.Missed},
		Ready:     s.health.ready,
		Limits:    cfg.Limits, OnRunLimited: s.runLimited, StoreError: sqlstore.Unavailable,
	})
	s.egress = egress.New(cfg.Egress, s.broker.broker, s.runs, s.decider, s.log)
	s.http = &http.Server{
		Handler:           s.egress.Wrap(s.withUI(s.api)), // CONNECT: the egress proxy; /ui/: the web UI; the rest: the API
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	built = true
	return s, nil
}

// TriggerRules turns the configured signers, agents and profiles into the
// trigger key ring and rules.
func TriggerRules(cfg Config) (*trigger.KeyRing, *trigger.Rules, error) {
	ring := trigger.NewKeyRing()
	rules := &trigger.Rules{
		Signers: map[string]*writ.Signer{}, Agents: map[string]*writ.Agent{}, Profiles: map[string]*writ.Profile{},
		Leeway: cfg.TriggerLeeway, MaxLifetime: cfg.TriggerMaxLifetime,
	}
	for i := range cfg.Signers {
		sc := &cfg.Signers[i]
		for j, k := range sc.Keys {
			if _, err := ring.Add(sc.Name, k); err != nil {
				return nil, nil, fmt.Errorf("signers[%d] %q keys[%d]: %w", i, sc.Name, j, err)
			}
		}
		rules.Signers[sc.Name] = &sc.Signer
	}
	for _, a := range cfg.Agents {
		rules.Agents[a.Name] = a
	}
	for _, p := range cfg.Profiles {
		rules.Profiles[p.Name] = p
	}
	return ring, rules, nil
}

// ReloadPolicy re-reads the policy bundle directory now (SIGHUP), even if
// its files did not change.
func (s *Server) ReloadPolicy(ctx context.Context) error { return s.policy.reload(ctx, true) }

// PolicyDigest returns the digest of the bundle in force.
func (s *Server) PolicyDigest() string { return s.policy.engine.Bundle().Digest }

// Store returns the server's store (for `writ token create --bootstrap`
// and tests).
func (s *Server) Store() *sqlstore.DB { return s.store }

// Listen binds the configured address (port 0 picks a free port) and
// returns the URL the server answers on.
func (s *Server) Listen() (string, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	url := "http://" + ln.Addr().String()
	// A config that asked for any free port cannot have known the public
	// URL: it is the address actually bound.
	if strings.HasSuffix(s.cfg.PublicURL, ":0") {
		s.cfg.PublicURL = url
		s.runs.SetPublicURL(url)
		s.notifier.SetPublicURL(url)
		if s.mcp != nil {
			s.mcp.SetPublicURL(url)
		}
	}
	return url, nil
}

// Run serves until ctx is done, then shuts down gracefully: the HTTP
// server stops accepting and drains (up to 10 s), the loops stop, and the
// store is closed last, so every acknowledged write is committed.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	s.log.InfoContext(ctx, "writ serving", slog.String("addr", s.ln.Addr().String()), slog.String("public_url", s.cfg.PublicURL),
		slog.String("trust_domain", s.cfg.TrustDomain), slog.String("store", redactDSN(s.cfg.Store)))
	start := s.now()
	s.reconcileGit(ctx, start)
	loopCtx, stopLoops := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(loopCtx)
	g.Go(func() error { return s.reconcileGitLater(gctx, start) })
	g.Go(func() error { return s.expiryLoop(gctx) })
	g.Go(func() error { return s.pruneLoop(gctx) })
	g.Go(func() error { return s.keyLoop(gctx) })
	g.Go(func() error { return s.sequence(gctx) })
	g.Go(func() error { return s.pin.loop(gctx) })
	g.Go(func() error { return s.integrityLater(gctx) })
	g.Go(func() error { s.sweepOrphans(gctx); return nil })
	g.Go(func() error { return s.auditTreeLoop(gctx) }) // re-derives the stored audit tree (audittree.go)
	g.Go(func() error { return s.policy.loop(gctx) })
	g.Go(func() error { return s.approvalLoop(gctx) })
	g.Go(func() error { s.broker.broker.RunRevoker(gctx, time.Second); return nil })
	g.Go(func() error { return s.heartbeatLoop(gctx) })
	g.Go(func() error { s.egress.Watch(gctx, time.Second); return nil })
	if s.mcp != nil {
		g.Go(func() error { s.mcp.Start(gctx); return nil }) // connects the MCP upstreams
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case <-gctx.Done():
		err = g.Wait()
	}
	s.log.Info("writ shutting down")
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e := s.http.Shutdown(shCtx); e != nil && err == nil {
		err = e
	}
	stopLoops()
	if e := g.Wait(); e != nil && !errors.Is(e, context.Canceled) && err == nil {
		err = e
	}
	// The last checkpoint this process saw signed, pinned before the
	// store closes.
	if e := s.pin.write(context.Background(), false); e != nil {
		s.log.Error("checkpoint pin", slog.Any("error", e))
	}
	s.broker.close()
	if s.mcp != nil {
		if e := s.mcp.Close(); e != nil {
			s.log.Warn("closing MCP upstreams", slog.Any("error", e))
		}
	}
	if e := s.store.Close(); e != nil && err == nil {
		err = e
	}
	s.lock.release()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// sequence runs the audit log's integrator while this server holds the
// store's sequencer lock (always, on SQLite; on PostgreSQL, one replica at
// a time), and follows the log the holder writes while it does not.
func (s *Server) sequence(ctx context.Context) error {
	for {
		fctx, stopFollow := context.WithCancel(ctx)
		followed := make(chan struct{})
		go func() {
			defer close(followed)
			s.audit.Follow(fctx)
		}()
		held, release, err := s.store.SequencerLock(ctx)
		stopFollow()
		<-followed
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.ErrorContext(ctx, "sequencer lock", slog.Any("error", err))
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		s.log.DebugContext(ctx, "sequencing the audit log")
		// The webhook notifier delivers from the replica that sequences,
		// so several replicas do not send every event several times.
		nctx, stopNotify := context.WithCancel(held)
		notified := make(chan struct{})
		go func() {
			defer close(notified)
			if err := s.notifier.Run(nctx); err != nil {
				s.log.ErrorContext(ctx, "webhook notifier", slog.Any("error", err))
			}
		}()
		// So does the run attestation queue: one replica signs.
		attested := make(chan struct{})
		go func() {
			defer close(attested)
			s.attestLoop(nctx)
		}()
		err = s.audit.Run(held)
		stopNotify()
		<-notified
		<-attested
		release()
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.WarnContext(ctx, "lost the sequencer lock; following the audit log until it is held again")
	}
}

// Close releases the store when Run was never called.
func (s *Server) Close() error {
	if s.integrityCancel != nil {
		s.integrityCancel()
	}
	s.broker.close()
	err := s.store.Close()
	s.lock.release()
	return err
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// expiryLoop expires runs at their deadline. It sleeps until the earliest
// deadline, at most ExpiryInterval, and wakes early when a run starts.
func (s *Server) expiryLoop(ctx context.Context) error {
	for {
		expired, err := s.runs.ExpireDue(ctx, 500)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.ErrorContext(ctx, "expire runs", slog.Any("error", err))
		}
		wait := s.cfg.ExpiryInterval
		if len(expired) == 500 {
			wait = 0
		} else if next, ok, err := s.runs.NextDeadline(ctx); err == nil && ok {
			if d := next.Sub(s.now()); d < wait {
				wait = max(d, 0)
			}
		}
		s.nextSweep.Store(s.now().Add(wait).UnixNano())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.wake:
			t.Stop()
		}
	}
}

// pruneLoop runs prune every minute.
func (s *Server) pruneLoop(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		s.prune(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// prune forgets trigger ids and DPoP proof jtis once they can no longer be
// accepted (their expiry plus the verifier's leeway has passed, by the
// database's clock, not this replica's) and raises their replay horizons
// in the same transactions, so a forgotten id stays refused
// (docs/design.md §5); and prunes old checkpoints.
func (s *Server) prune(ctx context.Context) {
	if _, err := s.store.PruneTriggers(ctx, s.cfg.TriggerLeeway+time.Minute); err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "prune triggers", slog.Any("error", err))
	}
	// A proof's recorded expiry already covers its maximum age, the
	// leeway and a margin (runs.proofMemory).
	if _, err := s.store.PruneProofs(ctx, 0); err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "prune dpop proofs", slog.Any("error", err))
	}
	if _, err := s.store.PruneCheckpoints(ctx); err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "prune checkpoints", slog.Any("error", err))
	}
}

// approvalLoop expires approval requests past their expiry (each with an
// approval.voided event); gates check expiry on use as well.
func (s *Server) approvalLoop(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if _, err := s.approvals.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "expire approvals", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// keyLoop re-reads the identity key history, so a rotation made through
// another replica reaches this one's signer and JWKS within seconds, and
// retired keys leave the JWKS once every token they signed has expired.
func (s *Server) keyLoop(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.ids.reload(ctx, s.keys.Identity); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "reload identity keys", slog.Any("error", err))
		}
	}
}

// redactDSN hides a password in a database URL.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			if colon := strings.Index(dsn[i+3:at], ":"); colon >= 0 {
				return dsn[:i+3+colon] + ":REDACTED" + dsn[at:]
			}
		}
	}
	return dsn
}

// NewLogger returns the slog logger the config asks for, writing to w.
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
