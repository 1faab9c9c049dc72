package mcpgw

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// Sessions across replicas (docs/design.md §5). A session of the 2025-11-25 era
// lives in the replica that created it (the SDK keeps it in memory, with
// the upstream connection behind it). Its id names that replica: "w1." +
// base64url(the replica's advertised URL) + "." + random + "." + a MAC
// under the key all replicas share. A replica that receives a request for
// another's session checks the MAC — so a client cannot point a replica at
// an address of its choosing — and proxies the request to the owner, which
// authenticates it again. A session id that does not verify is unknown.

const (
	sessionPrefix = "w1."
	// proxiedHeader marks a request one replica forwarded to another, so
	// a forwarded request is never forwarded again.
	proxiedHeader = "X-Writ-Mcp-Proxied"
)

// newSessionID returns a new session id owned by this replica.
func (g *Gateway) newSessionID() string {
	owner := base64.RawURLEncoding.EncodeToString([]byte(g.advertise()))
	body := sessionPrefix + owner + "." + rand.Text()
	return body + "." + g.sessionMAC(body)
}

func (g *Gateway) sessionMAC(body string) string {
	m := hmac.New(sha256.New, g.sessionKey)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// sessionOwner returns the advertised URL of the replica that owns
// session id, and whether id is a session id of this installation.
func (g *Gateway) sessionOwner(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, sessionPrefix)
	if !ok || len(id) > 512 {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", false
	}
	body, mac := id[:len(sessionPrefix)+i], rest[i+1:]
	if !hmac.Equal([]byte(mac), []byte(g.sessionMAC(body))) {
		return "", false
	}
	enc, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", false
	}
	owner, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(owner), true
}

func (g *Gateway) advertise() string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.advertised != "" {
		return g.advertised
	}
	return g.publicURL
}

// SetAdvertise sets the URL other replicas reach this one at (the bound
// address of a server that listened on port 0).
func (g *Gateway) SetAdvertise(u string) {
	g.mu.Lock()
	g.advertised = strings.TrimSuffix(u, "/")
	g.mu.Unlock()
}

// routeSession decides where a request carrying a session id goes: here
// (false), or — having answered it — proxied to its owner or refused
// (true).
func (g *Gateway) routeSession(w http.ResponseWriter, r *http.Request) bool {
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		return false
	}
	owner, ok := g.sessionOwner(id)
	if !ok {
		rpcHTTPError(w, http.StatusNotFound, jsonrpcInvalidRequest, "writ: unknown MCP session; initialize a new one")
		return true
	}
	if owner == g.advertise() {
		return false
	}
	if r.Header.Get(proxiedHeader) != "" {
		// Forwarded once already: the owner is gone or misconfigured.
		rpcHTTPError(w, http.StatusNotFound, jsonrpcInvalidRequest, "writ: the replica holding this MCP session does not have it; initialize a new one")
		return true
	}
	target, err := url.Parse(owner)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		rpcHTTPError(w, http.StatusNotFound, jsonrpcInvalidRequest, "writ: unknown MCP session; initialize a new one")
		return true
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = r.URL.Path, r.URL.RawPath
			pr.Out.Host = r.Host // the owner checks Origin against the public URL, as here
			pr.Out.Header.Set(proxiedHeader, "1")
		},
		FlushInterval: -1, // event streams go through as they come
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.WarnContext(r.Context(), "proxying an MCP session to its replica", "owner", owner, "error", err)
			rpcHTTPError(w, http.StatusBadGateway, jsonrpcInvalidRequest, "writ: the replica holding this MCP session cannot be reached; initialize a new one")
		},
	}
	rp.ServeHTTP(w, r)
	return true
}
