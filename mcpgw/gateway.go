package mcpgw

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
)

// upstreamProtocol is the protocol version writ asks its upstreams for.
const upstreamProtocol = "2025-11-25"

// Event types of the gateway (docs/design.md §4.6).
const (
	EventQuarantined = "mcp.quarantined"
	EventAccepted    = "mcp.accepted"
)

// Upstream is one configured upstream MCP server.
type Upstream struct {
	// Name is the server's name: /mcp/<name>, tools mcp:<name>/<tool>.
	Name string
	// Command is a stdio server writ starts and holds (argv, no shell).
	Command []string
	// Env is added to the command's environment (KEY=VALUE).
	Env []string
	// URL is a Streamable HTTP server (instead of Command).
	URL string
	// Tools pins descriptor digests by tool name ("sha256:<hex>").
	Tools map[string]string
	// Workspace is the directory path arguments must stay inside; "{run}"
	// in it is replaced by the run id. Empty: every path argument is
	// outside.
	Workspace string
	// Redact names tools ("*" for all) whose arguments are recorded only
	// as their digest and size (they may hold what the record must not).
	Redact []string
	// SecretEnv (stdio) and SecretHeaders (HTTP) are writ's own
	// credentials towards the upstream: variable or header name → a static
	// secret of the broker ("environment/name"), unsealed when writ
	// connects. Runs never see them; a run's token is never passed on.
	SecretEnv     map[string]string
	SecretHeaders map[string]string
}

// Secrets opens writ's own static secrets (package broker/secret).
type Secrets interface {
	Open(ctx context.Context, full string) ([]byte, error)
}

// Tokens verifies run tokens and reads runs (package runs).
type Tokens interface {
	// VerifyResourceToken verifies raw as an unbound run token for
	// audience and returns its run and expiry.
	VerifyResourceToken(raw, audience string) (writ.RunID, time.Time, error)
	// Get returns the run as it is now.
	Get(ctx context.Context, id writ.RunID) (*writ.Run, error)
}

// Decider is the decision point.
type Decider interface {
	Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error)
}

// Events appends audit events.
type Events interface {
	AppendEvent(ctx context.Context, ev *writ.Event) error
}

// Outcomes records what an allowed call did (package sqlstore), with its
// decision.outcome event, as POST /v1/outcomes does for hooks.
type Outcomes interface {
	RecordOutcome(ctx context.Context, run writ.RunID, decision string, o *writ.Outcome, ev *writ.Event) error
}

// Config configures a [Gateway].
type Config struct {
	Servers   []Upstream
	PublicURL string
	Tokens    Tokens
	Decider   Decider
	Events    Events
	// Outcomes records each allowed call's outcome (success or error,
	// duration); nil records none.
	Outcomes Outcomes
	// StateDir holds the recorded and accepted digests, one file per
	// server; empty keeps them in memory only.
	StateDir string
	// MaxResultBytes caps a tool result (as JSON); default 1 MiB.
	MaxResultBytes int
	// CallTimeout bounds one upstream call; default 2 minutes.
	CallTimeout time.Duration
	// Transport, when set, connects an upstream instead of its Command or
	// URL (tests).
	Transport func(u Upstream) (mcp.Transport, error)
	// Advertise is the URL other replicas reach this one at (default:
	// PublicURL, right for one replica); SessionKey, shared by every
	// replica, authenticates session ids that name their owner (nil: a
	// random key, so sessions are this process's only). See replica.go.
	Advertise  string
	SessionKey []byte
	// Secrets opens the upstreams' SecretEnv and SecretHeaders; nil when
	// no broker key is configured (an upstream that names secrets then
	// cannot connect).
	Secrets Secrets
	Logger  *slog.Logger
	Now     func() time.Time
}

// Gateway holds the upstream servers and serves them to runs. It is safe
// for concurrent use.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	servers map[string]*upstream

	mu         sync.RWMutex
	publicURL  string
	advertised string // the URL other replicas reach this one at
	sessionKey []byte // MACs session ids (shared by the replicas)

	verified tokenCache
}

// New returns a gateway for cfg. It connects nothing: call [Gateway.Start].
func New(cfg Config) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: cfg.Logger, now: cfg.Now, servers: map[string]*upstream{}, publicURL: strings.TrimSuffix(cfg.PublicURL, "/")}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.log = g.log.With("component", "mcpgw")
	if g.now == nil {
		g.now = time.Now
	}
	if g.cfg.MaxResultBytes <= 0 {
		g.cfg.MaxResultBytes = 1 << 20
	}
	if g.cfg.CallTimeout <= 0 {
		g.cfg.CallTimeout = 2 * time.Minute
	}
	g.verified.max = 10000
	g.advertised = strings.TrimSuffix(cfg.Advertise, "/")
	g.sessionKey = cfg.SessionKey
	if len(g.sessionKey) == 0 {
		g.sessionKey = make([]byte, 32)
		if _, err := rand.Read(g.sessionKey); err != nil {
			return nil, err
		}
	}
	for _, s := range cfg.Servers {
		if err := ValidateUpstream(s); err != nil {
			return nil, err
		}
		if g.servers[s.Name] != nil {
			return nil, fmt.Errorf("mcp server %q is configured twice", s.Name)
		}
		u := &upstream{gw: g, cfg: s, log: g.log.With("server", s.Name)}
		if err := u.loadState(); err != nil {
			return nil, err
		}
		u.serve()
		g.servers[s.Name] = u
	}
	return g, nil
}

// ValidateUpstream checks one server's configuration.
func ValidateUpstream(s Upstream) error {
	if !writ.ValidName(s.Name) {
		return fmt.Errorf("mcp server name %q: want [a-z0-9][a-z0-9._-]*", s.Name)
	}
	if (len(s.Command) == 0) == (s.URL == "") {
		return fmt.Errorf("mcp server %q: set exactly one of command and url", s.Name)
	}
	if s.URL != "" && !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
		return fmt.Errorf("mcp server %q: url %q is not http(s)", s.Name, s.URL)
	}
	for tool, d := range s.Tools {
		if err := writ.ValidateToolPattern("mcp:" + s.Name + "/" + tool); err != nil || strings.Contains(tool, "*") {
			return fmt.Errorf("mcp server %q: tool name %q is not a valid tool name", s.Name, tool)
		}
		if h, ok := strings.CutPrefix(d, "sha256:"); !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return fmt.Errorf("mcp server %q: tool %q pin %q: want sha256:<64 lowercase hex>", s.Name, tool, d)
		}
	}
	if len(s.SecretEnv) > 0 && len(s.Command) == 0 || len(s.SecretHeaders) > 0 && s.URL == "" {
		return fmt.Errorf("mcp server %q: secretEnv is for a command, secretHeaders for a url", s.Name)
	}
	for k, full := range s.SecretEnv {
		if k == "" || strings.ContainsAny(k, "= \x00") || !strings.Contains(full, "/") {
			return fmt.Errorf("mcp server %q: secretEnv %q: %q: want VARIABLE: environment/name of a static secret", s.Name, k, full)
		}
	}
	for k, full := range s.SecretHeaders {
		if k == "" || strings.ContainsAny(k, ": \r\n") || !strings.Contains(full, "/") {
			return fmt.Errorf("mcp server %q: secretHeaders %q: %q: want Header-Name: environment/name of a static secret", s.Name, k, full)
		}
	}
	if s.Workspace != "" && !filepath.IsAbs(s.Workspace) {
		return fmt.Errorf("mcp server %q: workspace %q must be an absolute path", s.Name, s.Workspace)
	}
	return nil
}

// SetPublicURL changes the public URL (a server that listened on port 0).
func (g *Gateway) SetPublicURL(u string) {
	g.mu.Lock()
	g.publicURL = strings.TrimSuffix(u, "/")
	g.mu.Unlock()
}

func (g *Gateway) public() string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.publicURL
}

// Resource returns the resource URI (token audience) of server name.
func (g *Gateway) Resource(name string) string { return g.public() + "/mcp/" + name }

// Known reports whether name is a configured server.
func (g *Gateway) Known(name string) bool { return g.servers[name] != nil }

// Start connects every upstream and reads its tools. An upstream that
// cannot be reached is logged and retried on its next use.
func (g *Gateway) Start(ctx context.Context) {
	var wg sync.WaitGroup
	for _, u := range g.servers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, err := u.refresh(cctx); err != nil {
				u.log.ErrorContext(ctx, "mcp upstream not ready", slog.Any("error", err))
			}
		})
	}
	wg.Wait()
}

// Close closes every upstream session (stopping stdio servers).
func (g *Gateway) Close() error {
	var errs []error
	for _, u := range g.servers {
		u.mu.Lock()
		cs := u.session
		u.session = nil
		u.mu.Unlock()
		if cs != nil {
			if err := cs.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close mcp upstream %s: %w", u.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ServerStatus is what [Gateway.Status] reports of one server.
type ServerStatus struct {
	Name        string            `json:"name"`
	Connected   bool              `json:"connected"`
	Quarantined bool              `json:"quarantined"`
	Accepted    map[string]string `json:"accepted"`
	Current     map[string]string `json:"current"`
	// UpstreamCalls counts the tools/call requests sent upstream.
	UpstreamCalls int64 `json:"upstreamCalls"`
}

// Status reports the state of server name.
func (g *Gateway) Status(name string) (*ServerStatus, bool) {
	u := g.servers[name]
	if u == nil {
		return nil, false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return &ServerStatus{Name: name, Connected: u.session != nil, Quarantined: u.quarantined,
		Accepted: maps.Clone(u.known), Current: maps.Clone(u.digests), UpstreamCalls: u.calls}, true
}

// Accept records the descriptors server name presents now as its accepted
// digests and lifts its quarantine (admins; event mcp.accepted).
func (g *Gateway) Accept(ctx context.Context, name, actor string) (map[string]string, error) {
	u := g.servers[name]
	if u == nil {
		return nil, writ.Errorf(writ.KindNotFound, "unknown_mcp_server", "mcp server %q is not configured", name)
	}
	return u.accept(ctx, actor)
}

// ToolDigest is the digest a tool descriptor is pinned by: sha256 over the
// canonical JSON of its name, description and input schema.
func ToolDigest(name, description string, inputSchema any) (string, error) {
	var schema any
	if inputSchema != nil {
		// Through JSON and back, so every schema representation (a struct,
		// raw JSON, a map) gives one form, with sorted keys.
		b, err := json.Marshal(inputSchema)
		if err != nil {
			return "", err
		}
		if err := json.Unmarshal(b, &schema); err != nil {
			return "", err
		}
	}
	b, err := json.Marshal(map[string]any{"name": name, "description": description, "inputSchema": schema})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// upstream is one upstream server and the MCP server writ serves for it.
type upstream struct {
	gw  *Gateway
	cfg Upstream
	log *slog.Logger

	// connMu serializes connecting.
	connMu sync.Mutex

	mu          sync.Mutex
	session     *mcp.ClientSession
	tools       map[string]*mcp.Tool // as the upstream presents them now
	digests     map[string]string    // their digests
	known       map[string]string    // accepted digests; nil before first use on an unpinned server
	quarantined bool
	calls       int64

	server    *mcp.Server
	stateful  *mcp.StreamableHTTPHandler
	stateless *mcp.StreamableHTTPHandler
}

// stateFile is what the state directory holds of a server.
type stateFile struct {
	// Config is the digest of the configured pins the accepted digests
	// were recorded under: a change of configuration discards them.
	Config string            `json:"config"`
	Tools  map[string]string `json:"tools"`
}

func (u *upstream) configDigest() string {
	b, _ := json.Marshal(u.cfg.Tools) // map keys are sorted
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (u *upstream) statePath() string {
	if u.gw.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(u.gw.cfg.StateDir, u.cfg.Name+".json")
}

func (u *upstream) loadState() error {
	if len(u.cfg.Tools) > 0 {
		u.known = maps.Clone(u.cfg.Tools)
	}
	p := u.statePath()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mcp server %s state: %w", u.cfg.Name, err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("mcp server %s state %s: %w", u.cfg.Name, p, err)
	}
	if st.Config == u.configDigest() && st.Tools != nil {
		u.known = st.Tools
	}
	return nil
}

func (u *upstream) saveState(known map[string]string) error {
	p := u.statePath()
	if p == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(stateFile{Config: u.configDigest(), Tools: known}, "", "  ")
	if err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// connect returns the upstream session, connecting when there is none.
func (u *upstream) connect(ctx context.Context) (*mcp.ClientSession, error) {
	u.mu.Lock()
	cs := u.session
	u.mu.Unlock()
	if cs != nil {
		return cs, nil
	}
	u.connMu.Lock()
	defer u.connMu.Unlock()
	u.mu.Lock()
	cs = u.session
	u.mu.Unlock()
	if cs != nil {
		return cs, nil
	}
	var t mcp.Transport
	switch {
	case u.gw.cfg.Transport != nil:
		var err error
		if t, err = u.gw.cfg.Transport(u.cfg); err != nil {
			return nil, err
		}
	case len(u.cfg.Command) > 0:
		// Not CommandContext: the process outlives the request that
		// happened to start it; Close (or writ's exit) stops it.
		cmd := exec.Command(u.cfg.Command[0], u.cfg.Command[1:]...)
		env, err := u.environment(ctx)
		if err != nil {
			return nil, err
		}
		cmd.Env = env
		cmd.Stderr = &logWriter{log: u.log}
		t = &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	default:
		hdr, err := u.headers(ctx)
		if err != nil {
			return nil, err
		}
		ct := &mcp.StreamableClientTransport{Endpoint: u.cfg.URL, DisableStandaloneSSE: true}
		if len(hdr) > 0 {
			ct.HTTPClient = &http.Client{Timeout: 0, Transport: headerTransport{hdr: hdr, base: http.DefaultTransport}}
		}
		t = ct
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "writ-mcp-gateway", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(ctx context.Context, _ *mcp.ToolListChangedRequest) {
			// Re-read at once, off the session's reading goroutine.
			go func() {
				rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := u.refresh(rctx); err != nil {
					u.log.Warn("re-reading tools after tools/list_changed", slog.Any("error", err))
				}
			}()
		},
	})
	// The session era most upstreams speak today. (The SDK's default,
	// 2026-07-28 with a fallback, fails against a stateful Streamable HTTP
	// upstream that answers the new era with a plain 400.)
	cs, err := client.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: upstreamProtocol})
	if err != nil {
		return nil, fmt.Errorf("connect mcp upstream %s: %w", u.cfg.Name, err)
	}
	u.mu.Lock()
	u.session = cs
	u.mu.Unlock()
	go func() {
		err := cs.Wait()
		u.mu.Lock()
		if u.session == cs {
			u.session = nil
		}
		u.mu.Unlock()
		u.log.Info("mcp upstream session ended", slog.Any("error", err))
	}()
	u.log.Info("mcp upstream connected")
	return cs, nil
}

// detach returns a context for a call upstream made while serving a run's
// request: cancelled with ctx and bounded by timeout, but carrying none of
// ctx's values. The SDK keeps the inbound request's protocol version in
// its context, and its client would send that version upstream.
func detach(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	stop := context.AfterFunc(ctx, cancel)
	return c, func() { stop(); cancel() }
}

// listUpstream reads every tool the upstream presents now.
func (u *upstream) listUpstream(ctx context.Context) ([]*mcp.Tool, error) {
	ctx, cancel := detach(ctx, 30*time.Second)
	defer cancel()
	cs, err := u.connect(ctx)
	if err != nil {
		return nil, err
	}
	var out []*mcp.Tool
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list tools of mcp upstream %s: %w", u.cfg.Name, err)
		}
		if t == nil {
			continue
		}
		out = append(out, t)
		if len(out) > 10000 {
			return nil, fmt.Errorf("mcp upstream %s lists more than 10000 tools", u.cfg.Name)
		}
	}
	return out, nil
}

// refresh re-reads the upstream's tools, compares them with the accepted
// digests, quarantines the server on a change, and returns the tools
// visible to runs (nil while quarantined).
func (u *upstream) refresh(ctx context.Context) ([]*mcp.Tool, error) {
	list, err := u.listUpstream(ctx)
	if err != nil {
		return nil, err
	}
	return u.observe(ctx, list)
}

type change struct {
	Tool     string `json:"tool"`
	Accepted string `json:"accepted,omitempty"`
	Got      string `json:"got"`
}

func (u *upstream) observe(ctx context.Context, list []*mcp.Tool) ([]*mcp.Tool, error) {
	tools := make(map[string]*mcp.Tool, len(list))
	digests := make(map[string]string, len(list))
	for _, t := range list {
		d, err := ToolDigest(t.Name, t.Description, t.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("mcp upstream %s tool %q: %w", u.cfg.Name, t.Name, err)
		}
		tools[t.Name], digests[t.Name] = t, d
	}
	u.mu.Lock()
	u.tools, u.digests = tools, digests
	var record map[string]string
	if u.known == nil {
		// First use of a server without pins: what it presents now is what
		// later listings are held to.
		u.known = maps.Clone(digests)
		record = u.known
	}
	var changes []change
	for _, name := range slices.Sorted(maps.Keys(digests)) {
		k, ok := u.known[name]
		switch {
		case ok && k != digests[name]:
			changes = append(changes, change{Tool: name, Accepted: k, Got: digests[name]})
		case !ok && len(u.cfg.Tools) == 0:
			changes = append(changes, change{Tool: name, Got: digests[name]})
		}
	}
	newly := len(changes) > 0 && !u.quarantined
	if len(changes) > 0 {
		u.quarantined = true
	}
	quarantined := u.quarantined
	var visible []*mcp.Tool
	if !quarantined {
		for _, name := range slices.Sorted(maps.Keys(tools)) {
			if k, ok := u.known[name]; ok && k == digests[name] {
				visible = append(visible, tools[name])
			}
		}
	}
	u.mu.Unlock()
	if record != nil {
		if err := u.saveState(record); err != nil {
			u.log.ErrorContext(ctx, "recording mcp tool digests", slog.Any("error", err))
		}
		u.log.InfoContext(ctx, "mcp tool digests recorded on first use", slog.Int("tools", len(record)))
	}
	if newly {
		u.log.WarnContext(ctx, "mcp server quarantined: a tool descriptor changed", slog.Any("changes", changes))
		ev := &writ.Event{Type: EventQuarantined, Actor: writ.ActorSystem, Subject: "mcp:" + u.cfg.Name,
			Details: map[string]any{"server": u.cfg.Name, "changes": changes}}
		if err := u.gw.cfg.Events.AppendEvent(ctx, ev); err != nil {
			// The quarantine holds whether or not it is on the record.
			u.log.ErrorContext(ctx, "recording mcp.quarantined", slog.Any("error", err))
		}
	}
	return visible, nil
}

func (u *upstream) accept(ctx context.Context, actor string) (map[string]string, error) {
	list, err := u.listUpstream(ctx)
	if err != nil {
		return nil, writ.Errorf(writ.KindUnavailable, "mcp_upstream_unavailable", "mcp server %q cannot be reached to read its tools; nothing was accepted", u.cfg.Name)
	}
	digests := map[string]string{}
	for _, t := range list {
		d, err := ToolDigest(t.Name, t.Description, t.InputSchema)
		if err != nil {
			return nil, err
		}
		digests[t.Name] = d
	}
	u.mu.Lock()
	was := u.quarantined
	u.mu.Unlock()
	ev := &writ.Event{Type: EventAccepted, Actor: actor, Subject: "mcp:" + u.cfg.Name,
		Details: map[string]any{"server": u.cfg.Name, "tools": digests, "wasQuarantined": was}}
	if err := u.gw.cfg.Events.AppendEvent(ctx, ev); err != nil {
		return nil, err
	}
	if err := u.saveState(digests); err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.known = digests
	u.quarantined = false
	u.mu.Unlock()
	if _, err := u.observe(ctx, list); err != nil {
		return nil, err
	}
	u.log.InfoContext(ctx, "mcp server descriptors accepted", slog.String("actor", actor), slog.Int("tools", len(digests)))
	return digests, nil
}

// logWriter sends an upstream's stderr to the log, a line at a time.
type logWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if len(line) > 2000 {
			line = line[:2000]
		}
		w.log.Debug("mcp upstream stderr", slog.String("line", line))
	}
	if len(w.buf) > 64<<10 {
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// inheritedEnv are the only variables of writ's own environment a stdio
// upstream gets: never writ's keys (WRIT_BROKER_KEY), tokens or cloud
// credentials.
var inheritedEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "NODE_OPTIONS", "NODE_PATH"}

// environment is a stdio upstream's environment: the inherited allowlist,
// the configured Env, and its secrets.
func (u *upstream) environment(ctx context.Context) ([]string, error) {
	var env []string
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env, u.cfg.Env...)
	for k, full := range u.cfg.SecretEnv {
		v, err := u.openSecret(ctx, full)
		if err != nil {
			return nil, err
		}
		env = append(env, k+"="+string(v))
	}
	return env, nil
}

// headers are an HTTP upstream's secret headers.
func (u *upstream) headers(ctx context.Context) (http.Header, error) {
	h := http.Header{}
	for k, full := range u.cfg.SecretHeaders {
		v, err := u.openSecret(ctx, full)
		if err != nil {
			return nil, err
		}
		h.Set(k, string(v))
	}
	return h, nil
}

func (u *upstream) openSecret(ctx context.Context, full string) ([]byte, error) {
	if u.gw.cfg.Secrets == nil {
		return nil, fmt.Errorf("mcp upstream %s needs secret %s, but writ has no broker key (broker.key)", u.cfg.Name, full)
	}
	v, err := u.gw.cfg.Secrets.Open(ctx, full)
	if err != nil {
		return nil, fmt.Errorf("mcp upstream %s: secret %s: %w", u.cfg.Name, full, err)
	}
	return v, nil
}

// headerTransport adds writ's credential headers to every upstream request.
type headerTransport struct {
	hdr  http.Header
	base http.RoundTripper
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.hdr {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}
