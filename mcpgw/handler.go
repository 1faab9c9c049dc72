package mcpgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/docs"
)

// Limits of the HTTP side.
const (
	maxRequestBody = 1 << 20
	sessionIdle    = 30 * time.Minute
	// newEra is the first protocol version without sessions, whose
	// requests name their method (and tool) in headers.
	newEra = "2026-07-28"
)

// serve builds the MCP server writ presents for u and its two handlers.
func (u *upstream) serve() {
	u.server = mcp.NewServer(&mcp.Implementation{Name: "writ/" + u.cfg.Name, Version: "1"}, &mcp.ServerOptions{
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{ListChanged: true}},
		Logger:       u.log,
		GetSessionID: u.gw.newSessionID,
	})
	u.server.AddReceivingMiddleware(u.enforce)
	get := func(*http.Request) *mcp.Server { return u.server }
	// Origin and Host are checked by ServeHTTP against the public URL, so
	// the SDK's loopback-only Host check (which refuses a reverse proxy's
	// Host header) is off.
	u.stateful = mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{
		SessionTimeout: sessionIdle, MaxRequestBodyBytes: maxRequestBody, DisableLocalhostProtection: true, Logger: u.log,
	})
	u.stateless = mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{
		Stateless: true, MaxRequestBodyBytes: maxRequestBody, DisableLocalhostProtection: true, Logger: u.log,
	})
}

// ServeHTTP serves /mcp/{server}.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/mcp/")
	u := g.servers[name]
	if !ok || u == nil {
		// Unregistered servers do not exist for agents.
		httpError(w, http.StatusNotFound, "unknown_mcp_server", fmt.Sprintf("%s is not an MCP server of this writ", r.URL.Path))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, g.public()) {
		httpError(w, http.StatusForbidden, "origin_not_allowed", "requests from a browser page of another origin are refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	uw := &unauthorizedWriter{ResponseWriter: w, g: g, name: name, hadToken: r.Header.Get("Authorization") != ""}
	defer uw.finish()
	auth.RequireBearerToken(g.verifier(name), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: g.public() + "/.well-known/oauth-protected-resource/mcp/" + name,
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uw.passed = true
		if err := checkHeaders(r); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				httpError(w, http.StatusRequestEntityTooLarge, "too_large", err.Error())
				return
			}
			rpcHTTPError(w, http.StatusBadRequest, jsonrpcInvalidRequest, err.Error())
			return
		}
		if r.Header.Get("Mcp-Protocol-Version") >= newEra {
			u.stateless.ServeHTTP(w, r)
			return
		}
		if g.routeSession(w, r) {
			return
		}
		u.stateful.ServeHTTP(w, r)
	})).ServeHTTP(uw, r)
}

// DocsPath is where writ serves the guide for MCP clients (docs.MCPClients),
// named by the metadata's resource_documentation.
const DocsPath = "/docs/mcp-clients.md"

// tokenHelp says how a run gets the token the gateway wants; it stands in
// a WWW-Authenticate quoted string, so it holds no '"' or '\'.
func tokenHelp(g *Gateway, name string) string {
	return "writ is not an OAuth authorization server: this MCP server takes a writ run's token for " + g.Resource(name) +
		". A run started with 'writ run' finds it in its run directory (mcp-" + name + ".token, kept fresh); " +
		"'writ run token --audience " + g.Resource(name) + "' mints one; a stdio client starts 'writ mcp proxy', " +
		"whose entry 'writ mcp config --client CLIENT --server " + name + "' prints. See " + g.public() + DocsPath
}

// unauthorizedWriter turns the SDK's bare 401 into one a client can act
// on: WWW-Authenticate with realm, resource_metadata and an
// error_description naming how a run gets its token, and a JSON body
// saying the same. Every other answer passes through untouched.
type unauthorizedWriter struct {
	http.ResponseWriter
	g        *Gateway
	name     string
	hadToken bool
	passed   bool // the request reached the MCP handler
	status   int
	msg      bytes.Buffer
}

func (w *unauthorizedWriter) WriteHeader(code int) {
	if !w.passed && code == http.StatusUnauthorized {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *unauthorizedWriter) Write(p []byte) (int, error) {
	if w.status == http.StatusUnauthorized {
		if w.msg.Len() < 4096 {
			w.msg.Write(p)
		}
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets streamed answers through.
func (w *unauthorizedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && w.status == 0 {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *unauthorizedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *unauthorizedWriter) finish() {
	if w.status != http.StatusUnauthorized {
		return
	}
	help := tokenHelp(w.g, w.name)
	code, why := "missing_credential", "no bearer token"
	params := `Bearer realm="writ", resource_metadata="` + w.g.public() + "/.well-known/oauth-protected-resource/mcp/" + w.name + `"`
	if w.hadToken {
		code, why = "invalid_token", strings.TrimSpace(w.msg.String())
		params += `, error="invalid_token"`
	}
	params += `, error_description="` + help + `"`
	h := w.ResponseWriter.Header()
	h.Set("WWW-Authenticate", params)
	h.Set("Content-Type", "application/json")
	h.Del("X-Content-Type-Options")
	h.Set("X-Content-Type-Options", "nosniff")
	w.ResponseWriter.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w.ResponseWriter).Encode(map[string]any{"error": map[string]any{"code": code, "message": why + ". " + help}})
}

// ServeDocs serves the guide for MCP clients at [DocsPath].
func (g *Gateway) ServeDocs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, docs.MCPClients)
}

// ServeMetadata serves the RFC 9728 protected resource metadata of a
// server at /.well-known/oauth-protected-resource/mcp/{server}.
func (g *Gateway) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/.well-known/oauth-protected-resource/mcp/")
	if !ok || g.servers[name] == nil {
		httpError(w, http.StatusNotFound, "unknown_mcp_server", fmt.Sprintf("%s is not an MCP server of this writ", name))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"resource":                 g.Resource(name),
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "writ MCP gateway: " + name,
		"resource_documentation":   g.public() + DocsPath,
		// Tokens are the run's JWT-SVIDs from writ itself (POST
		// /v1/runs/{id}/token with this resource as audience); writ is not
		// an OAuth authorization server, so none is listed, and the
		// documentation says where a run's token comes from.
		"resource_signing_alg_values_supported": []string{"ES256"},
	})
}

func sameOrigin(origin, public string) bool {
	o, err := url.Parse(origin)
	if err != nil {
		return false
	}
	p, err := url.Parse(public)
	if err != nil {
		return false
	}
	return strings.EqualFold(o.Scheme, p.Scheme) && strings.EqualFold(o.Host, p.Host)
}

// checkHeaders checks the Mcp-Method and Mcp-Name headers of a POST
// against its body: a request of the 2026-07-28 era must carry them, and
// any request that carries them must match. The body is restored for the
// SDK.
func checkHeaders(r *http.Request) error {
	if r.Method != http.MethodPost {
		return nil
	}
	method, hasMethod := r.Header["Mcp-Method"]
	name, hasName := r.Header["Mcp-Name"]
	era := r.Header.Get("Mcp-Protocol-Version") >= newEra
	if !era && !hasMethod && !hasName {
		return nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var msg struct {
		Method *string         `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		return fmt.Errorf("the body is not one JSON-RPC message: %v", err)
	}
	if msg.Method == nil {
		// A response or an error the client sends back: nothing to name.
		if hasMethod || hasName {
			return errors.New("Mcp-Method/Mcp-Name headers on a message that is not a request")
		}
		return nil
	}
	if len(method) != 1 || method[0] != *msg.Method {
		if !hasMethod {
			return fmt.Errorf("a %s request must carry the Mcp-Method header", newEra)
		}
		return fmt.Errorf("the Mcp-Method header %q does not match the body's method %q", strings.Join(method, ","), *msg.Method)
	}
	var want string
	named := true
	switch *msg.Method {
	case "tools/call", "prompts/get":
		var p struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(msg.Params, &p)
		want = p.Name
	case "resources/read":
		var p struct {
			URI string `json:"uri"`
		}
		_ = json.Unmarshal(msg.Params, &p)
		want = p.URI
	default:
		named = false
	}
	switch {
	case named && (len(name) != 1 || name[0] != want):
		if !hasName {
			return fmt.Errorf("a %s request must carry the Mcp-Name header", *msg.Method)
		}
		return fmt.Errorf("the Mcp-Name header %q does not match the body's %q", strings.Join(name, ","), want)
	case !named && hasName:
		return fmt.Errorf("the Mcp-Name header does not belong on a %s request", *msg.Method)
	}
	return nil
}

// verifier authenticates a request to server name: a run token for
// exactly its resource, of a run that is active now.
func (g *Gateway) verifier(name string) auth.TokenVerifier {
	return func(ctx context.Context, raw string, r *http.Request) (*auth.TokenInfo, error) {
		id, exp, err := g.verify(raw, g.Resource(name))
		if err != nil {
			msg := "the token is not valid for this MCP server"
			var we *writ.Error
			if errors.As(err, &we) {
				msg = we.Code + ": " + we.Message
			}
			return nil, fmt.Errorf("%w: %s (want a run token with audience %s)", auth.ErrInvalidToken, msg, g.Resource(name))
		}
		run, err := g.cfg.Tokens.Get(ctx, id)
		if err != nil {
			if writ.ErrorKind(err) == writ.KindNotFound {
				return nil, fmt.Errorf("%w: unknown run", auth.ErrInvalidToken)
			}
			g.log.ErrorContext(ctx, "reading run state", slog.String("run", string(id)), slog.Any("error", err))
			return nil, errors.New("the run's state could not be read")
		}
		now := g.now()
		if !run.LiveAt(now) {
			state := run.State
			if !now.Before(run.Deadline) && !state.Final() {
				state = writ.RunExpired
			}
			return nil, fmt.Errorf("%w: token_revoked: run %s is %s: its tokens are refused", auth.ErrInvalidToken, run.ID, state)
		}
		return &auth.TokenInfo{UserID: string(run.ID), Expiration: exp, Extra: map[string]any{"run": run}}, nil
	}
}

// tokenCache remembers verified tokens by SHA-256 of token and audience
// until they expire: the signature check is most of a request's cost. The
// run's state is still read on every request.
type tokenCache struct {
	mu  sync.Mutex
	m   map[[32]byte]verifiedToken
	max int
}

type verifiedToken struct {
	run writ.RunID
	exp time.Time
}

func (g *Gateway) verify(raw, audience string) (writ.RunID, time.Time, error) {
	key := sha256.Sum256([]byte(audience + "\x00" + raw))
	now := g.now()
	g.verified.mu.Lock()
	v, ok := g.verified.m[key]
	g.verified.mu.Unlock()
	if ok && now.Before(v.exp.Add(time.Minute)) {
		return v.run, v.exp, nil
	}
	id, exp, err := g.cfg.Tokens.VerifyResourceToken(raw, audience)
	if err != nil {
		return "", time.Time{}, err
	}
	g.verified.mu.Lock()
	if g.verified.m == nil || len(g.verified.m) >= g.verified.max {
		g.verified.m = make(map[[32]byte]verifiedToken)
	}
	g.verified.m[key] = verifiedToken{run: id, exp: exp}
	g.verified.mu.Unlock()
	return id, exp, nil
}

const jsonrpcInvalidRequest = -32600

func rpcHTTPError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": msg}})
}

func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}
