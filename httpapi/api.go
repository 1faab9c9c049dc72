package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/internal/strictjson"
	"github.com/writ-dev/writ/runs"
)

// Store is what the API reads from storage besides what package runs
// owns.
type Store interface {
	GetRun(ctx context.Context, id writ.RunID) (*writ.Run, error)
	ListRuns(ctx context.Context, f writ.RunFilter) ([]*writ.Run, error)
	CountRuns(ctx context.Context) (map[writ.RunState]int, error)
	Ping(ctx context.Context) error
	// Writable reports whether the store can commit a write now (a tiny
	// probe write, not only a ping); /readyz fails while it cannot.
	Writable(ctx context.Context) error
	DecisionByCallRef(ctx context.Context, run writ.RunID, via, callRef string) (*writ.Decision, error)
	RecordOutcome(ctx context.Context, run writ.RunID, id string, o *writ.Outcome, ev *writ.Event) error
}

// Config holds the API's dependencies.
type Config struct {
	Store Store
	// Runs is the life of runs: starting, delegation, transitions, tokens,
	// and who is calling. Every route authenticates through it.
	Runs *runs.Service
	// Audit is the audit log; AuditStore its read side.
	Audit      AuditLog
	AuditStore AuditStore
	Tiles      TileLog
	// AuditKey is the log's public note verifier key; AuditOrigin its
	// checkpoint origin (<trustDomain>/audit).
	AuditKey, AuditOrigin string
	// RotateIdentity makes a new identity key current and returns its kid.
	RotateIdentity func(ctx context.Context, actor string) (string, error)
	Logger         *slog.Logger
	Now            func() time.Time
	Registry       *prometheus.Registry // metrics are registered here; nil makes a private one
	// Decider is the policy decision point behind /v1/decide.
	Decider Decider
	// Approvals resolves approval requests; ApprovalStore reads them.
	Approvals     Approvals
	ApprovalStore ApprovalStore
	// SensitiveEnvironments names the environments configured sensitive,
	// for the risk an approver is shown.
	SensitiveEnvironments map[string]bool
	// Broker issues and revokes credentials; Secrets manages static
	// secrets (nil without a broker key).
	Broker  Broker
	Secrets Secrets
	// MCP is the MCP gateway; nil when no MCP server is configured.
	MCP MCP
	// Git is the git gateway; nil when there is none.
	Git Git
	// Heartbeat is the launchers' heartbeat schedule.
	Heartbeat HeartbeatConfig
	// Ready reports why the server should not take traffic (a damaged
	// store, an audit tree being repaired), beyond the store's own ping;
	// nil when there is no such check. Its error's message is served.
	Ready func(ctx context.Context) error
	// AttestKey is the attest key's public half, PEM, served at
	// GET /v1/attest/key.
	AttestKey []byte
	// Artifacts is the builder and release gate; nil: none.
	Artifacts Artifacts
	// Limits bound each route class's in-flight requests and each
	// caller's rate (docs/design.md §4.11); nil: no limits.
	Limits Limits
	// OnRunLimited, when set, is called each time a run is refused for
	// its rate limit, so a run that keeps hitting it counts toward its
	// denial threshold.
	OnRunLimited func(writ.RunID)
	// StoreError, when set, maps an error the store returned to what the
	// caller is told: an outage of the database (a full disk, a database
	// down) becomes 503 store_unavailable with Retry-After
	// (sqlstore.Unavailable).
	StoreError func(error) error
}

// API serves writ's HTTP API.
type API struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	mux     *http.ServeMux
	runs    *runs.Service
	limits  *limiter
}

// Body limits.
const (
	maxTriggerBody = 64 << 10
	maxBody        = 1 << 20
)

// New returns an API serving cfg.
func New(cfg Config) *API {
	a := &API{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "httpapi")
	if a.now == nil {
		a.now = time.Now
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a.metrics = newMetrics(reg, cfg.Store)
	a.limits = newLimiter(cfg.Limits, a.now, reg)
	a.runs = cfg.Runs
	a.mux = http.NewServeMux()
	a.routes(reg)
	return a
}

// handlerFunc is a handler that returns an error, written by [API.handle].
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// routes is the one table of every endpoint this package serves.
func (a *API) routes(reg *prometheus.Registry) {
	a.route("GET /healthz", a.public(a.healthz))
	a.route("GET /readyz", a.public(a.readyz))
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	a.route("GET /.well-known/openid-configuration", a.public(a.openIDConfiguration))
	a.route("GET /.well-known/jwks.json", a.public(a.jwks))

	a.route("POST /v1/runs", a.public(a.startRun))
	a.route("GET /v1/runs", a.human(a.listRuns))
	a.route("GET /v1/runs/{id}", a.auth(humans|ownRun, a.showRun))
	a.route("POST /v1/runs/{id}/end", a.auth(humans|ownRun|ownRunSuspended, a.transition(writ.RunEnded)))
	a.route("POST /v1/runs/{id}/suspend", a.human(a.transition(writ.RunSuspended)))
	a.route("POST /v1/runs/{id}/kill", a.human(a.transition(writ.RunKilled)))
	a.route("POST /v1/runs/{id}/resume", a.human(a.transition(writ.RunActive)))
	a.route("POST /v1/runs/{id}/token", a.auth(ownRun, a.mintToken))
	a.route("POST /v1/runs/{id}/delegate", a.auth(ownRun, a.delegate))

	a.route("POST /v1/runs/{id}/credentials", a.auth(ownRun, a.requestCredential))
	a.route("GET /v1/runs/{id}/credentials", a.auth(humans|ownRun, a.listCredentials))
	a.route("GET /v1/leases/{id}", a.auth(humans|tokenRun, a.showLease))
	a.route("POST /v1/leases/{id}/revoke", a.auth(humans|tokenRun, a.revokeLease))
	a.route("GET /v1/secrets", a.human(a.listSecrets))
	a.route("PUT /v1/secrets/{env}/{name}", a.human(a.putSecret))
	a.route("DELETE /v1/secrets/{env}/{name}", a.human(a.deleteSecret))

	a.route("POST /v1/decide", a.auth(humans|tokenRun, a.decide))
	a.route("POST /v1/decisions/{id}/outcome", a.auth(tokenRun, a.decisionOutcome))
	a.route("POST /v1/outcomes", a.auth(tokenRun, a.callOutcome))

	a.route("GET /v1/approvals", a.human(a.listApprovals))
	a.route("GET /v1/approvals/{id}", a.human(a.showApproval))
	a.route("GET /v1/approvals/{id}/statement", a.human(a.approvalStatement))
	a.route("POST /v1/approvals/{id}/approve", a.human(a.submitApproval("approve")))
	a.route("POST /v1/approvals/{id}/deny", a.human(a.submitApproval("deny")))

	a.route("POST /v1/tokens", a.human(a.createToken))
	a.route("POST /v1/keys/{kind}/rotate", a.human(a.rotateKey))

	a.route("GET /v1/audit/checkpoint", a.human(a.auditCheckpoint))
	a.route("GET /v1/audit/key", a.human(a.auditKey))
	a.route("GET /v1/audit/checkpoints", a.human(a.auditCheckpoints))
	a.route("GET /v1/audit/entries", a.human(a.auditEntries))
	a.route("GET /v1/audit/proof/inclusion", a.human(a.auditInclusion))
	a.route("GET /v1/audit/proof/consistency", a.human(a.auditConsistency))
	a.route("GET /v1/trace/{id}", a.human(a.trace))
	a.route("GET /v1/audit/tlog/checkpoint", a.human(a.tlogCheckpoint))
	a.route("GET /v1/audit/tlog/tile/entries/{path...}", a.human(a.tlogEntries))
	a.route("GET /v1/audit/tlog/tile/{level}/{path...}", a.human(a.tlogTile))

	a.mcpRoutes()        // /mcp/{server}, its resource metadata, POST /v1/mcp/{server}/accept
	a.gitRoutes()        // /git/{owner}/{repo}.git/…, POST /v1/repos, POST /v1/repos/{owner}/{repo}/merge
	a.killSwitchRoutes() // heartbeat, agent disable/enable, freeze
	a.attestRoutes()     // the attest key, run attestations
	a.artifactRoutes()   // builds, releases
}

func (a *API) route(pattern string, h handlerFunc) {
	_, path, _ := strings.Cut(pattern, " ")
	a.mux.Handle(pattern, a.instrument(path, a.admitted(routeClass(pattern), rateClass(pattern, routeClass(pattern)), h)))
}

// rateClassKey holds the class whose rate limit applies to the request,
// for auth (after authentication) and public (per source address).
const rateClassKey ctxKey = 1

// admitted admits a request of class c before any work: beyond the
// class's in-flight bound it is answered 503 overloaded, with
// Retry-After. The per-caller rate of class rc is applied once the caller
// is known (auth, public).
func (a *API) admitted(c, rc Class, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		slot, err := a.limits.admit(c)
		if err != nil {
			return err
		}
		defer slot.release()
		return h(w, r.WithContext(context.WithValue(r.Context(), rateClassKey, rc)))
	}
}

// Admit wraps h, a handler mounted beside the API (the web UI), with the
// admission control of class c and the per-address rate of class rc.
func (a *API) Admit(c, rc Class, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := a.admitted(c, rc, func(w http.ResponseWriter, r *http.Request) error {
			if err := a.rateAddress(r); err != nil {
				return err
			}
			h.ServeHTTP(w, r)
			return nil
		})(w, r)
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

// mount serves h (a gateway that writes its own responses) at pattern,
// behind its class's admission control. Its callers authenticate inside
// the gateway (a git lease, an MCP token), and the agents of one host
// share an address, so no per-address rate applies.
func (a *API) mount(pattern string, h http.HandlerFunc) {
	a.mux.Handle(pattern, a.Admit(routeClass(pattern), ClassControl, h))
}

// rateAddress applies the request's rate class per source address: the
// limit of callers without a credential.
func (a *API) rateAddress(r *http.Request) error {
	rc, _ := r.Context().Value(rateClassKey).(Class)
	return a.limits.allow(rc, "address", sourceAddress(r))
}

// ratePrincipal applies the request's rate class to p, once
// authenticated.
func (a *API) ratePrincipal(r *http.Request, p *writ.Principal) error {
	rc, _ := r.Context().Value(rateClassKey).(Class)
	var err error
	switch p.Kind {
	case writ.PrincipalRun:
		err = a.limits.allow(rc, "run", string(p.Run))
		if err != nil && a.cfg.OnRunLimited != nil {
			a.cfg.OnRunLimited(p.Run)
		}
	default:
		err = a.limits.allow(rc, "human", p.Name)
	}
	return err
}

// ServeHTTP serves the API. Unknown routes get a JSON 404.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// mux.Handler finds the pattern; mux.ServeHTTP (not the handler it
	// returned) sets the request's path values.
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.instrument("unmatched", func(w http.ResponseWriter, r *http.Request) error {
			if r.Method != http.MethodGet && r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodDelete {
				return writ.Errorf(writ.KindNotFound, "no_route", "%s %s is not a writ API route", r.Method, r.URL.Path)
			}
			return writ.Errorf(writ.KindNotFound, "no_route", "%s is not a writ API route; see docs/design.md §4.8", r.URL.Path)
		}).ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

type ctxKey int

const requestIDKey ctxKey = 0

// instrument wraps a handler with a request id, panic recovery, metrics,
// body limits and the error adapter.
func (a *API) instrument(route string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var idb [8]byte
		_, _ = rand.Read(idb[:])
		rid := hex.EncodeToString(idb[:])
		w.Header().Set("X-Request-Id", rid)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, rid))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				a.log.ErrorContext(r.Context(), "panic in handler", slog.String("request_id", rid), slog.String("route", route), slog.Any("panic", p))
				if sw.status == 0 {
					a.writeError(sw, r, errors.New("panic"))
				}
			}
			a.metrics.observe(route, r.Method, sw.status, time.Since(start))
		}()
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, _ := mime.ParseMediaType(ct)
			if mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data" {
				a.writeError(sw, r, writ.Errorf(writ.KindInvalid, "unsupported_media_type", "form-encoded bodies are not accepted; send application/json"))
				return
			}
		}
		limit := int64(maxBody)
		if (route == "/v1/runs" || strings.HasPrefix(route, "/v1/approvals/")) && r.Method == http.MethodPost {
			limit = maxTriggerBody // a signed statement is as small as a signed trigger
		}
		// The original writer, not sw: MaxBytesReader tells net/http through
		// it to close the connection after a 413 rather than drain the rest.
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := h(sw, r); err != nil {
			a.writeError(sw, r, err)
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if a.cfg.StoreError != nil {
		err = a.cfg.StoreError(err)
	}
	var we *writ.Error
	var mbe *http.MaxBytesError
	switch {
	case r.Context().Err() != nil && (errors.Is(err, context.Canceled) || writ.ErrorCode(err) == "canceled"):
		// The client went away: nobody reads this answer, and it is no
		// error of writ's (a debug line and a metric).
		rid, _ := r.Context().Value(requestIDKey).(string)
		a.log.DebugContext(r.Context(), "client disconnected", slog.String("request_id", rid), slog.String("path", r.URL.Path), slog.Any("error", err))
		a.metrics.canceled.Inc()
		w.WriteHeader(statusClientClosed)
		return
	case errors.As(err, &we):
	case errors.As(err, &mbe):
		we = writ.Errorf(writ.KindTooLarge, "too_large", "request body is over the %d-byte limit", mbe.Limit)
	default:
		rid, _ := r.Context().Value(requestIDKey).(string)
		a.log.ErrorContext(r.Context(), "internal error", slog.String("request_id", rid), slog.String("path", r.URL.Path), slog.Any("error", err))
		we = &writ.Error{Kind: writ.KindInternal, Code: "internal", Message: "internal error (request " + rid + ")"}
	}
	status := we.Kind.HTTPStatus()
	switch we.Kind {
	case writ.KindUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
	case writ.KindUnavailable, writ.KindRateLimited:
		// Every "retry later" says when (docs/design.md §4.8).
		w.Header().Set("Retry-After", retryAfterSeconds(we.RetryAfter))
	}
	writeJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: we.Code, Message: we.Message, Items: we.Items, Decision: we.Decision, Approval: we.Approval}})
}

// statusClientClosed is the status recorded in metrics for a request whose
// client went away before the answer (nginx's 499); it is never sent.
const statusClientClosed = 499

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// decodeBody reads a JSON request body strictly into v. An empty body
// leaves v untouched.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := strictjson.Decode(data, v); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) {
			return writ.Errorf(writ.KindInvalid, se.Code, "request body: %s", se.Error())
		}
		return writ.Errorf(writ.KindInvalid, "invalid_body", "request body: %s", err)
	}
	return nil
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.Status{Status: "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.cfg.Store.Ping(ctx); err != nil {
		a.log.WarnContext(ctx, "not ready", slog.Any("error", err))
		return writ.Errorf(writ.KindUnavailable, "store_unavailable", "the store does not answer")
	}
	if err := a.cfg.Store.Writable(ctx); err != nil {
		a.log.WarnContext(ctx, "not ready: the store cannot write", slog.Any("error", err))
		return &writ.Error{Kind: writ.KindUnavailable, Code: "store_unavailable", RetryAfter: 2 * time.Second, Message: "the store cannot commit a write (a full disk, a read-only or unreachable database)"}
	}
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(ctx); err != nil {
			a.log.WarnContext(ctx, "not ready", slog.Any("error", err))
			return writ.Errorf(writ.KindUnavailable, "not_ready", "%s", err.Error())
		}
	}
	return writeJSON(w, http.StatusOK, api.Status{Status: "ready"})
}
