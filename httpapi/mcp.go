package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// MCP is the MCP gateway (package mcpgw) as the API mounts it.
type MCP interface {
	// ServeHTTP serves /mcp/{server} (Streamable HTTP).
	ServeHTTP(w http.ResponseWriter, r *http.Request)
	// ServeMetadata serves /.well-known/oauth-protected-resource/mcp/{server}.
	ServeMetadata(w http.ResponseWriter, r *http.Request)
	// Known reports whether server is configured.
	Known(server string) bool
	// Accept records the descriptors server presents now as accepted.
	Accept(ctx context.Context, server, actor string) (map[string]string, error)
}

// mcpRoutes mounts the MCP gateway's endpoints (DESIGN.md §4.8). The
// gateway writes its own responses: Streamable HTTP streams, and the
// status and WWW-Authenticate answers MCP clients expect.
func (a *API) mcpRoutes() {
	a.mux.HandleFunc("/mcp/{server}", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.MCP == nil {
			a.writeError(w, r, writ.Errorf(writ.KindNotFound, "unknown_mcp_server", "this writ has no MCP servers configured"))
			return
		}
		a.cfg.MCP.ServeHTTP(w, r)
	})
	a.mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp/{server}", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.MCP == nil {
			a.writeError(w, r, writ.Errorf(writ.KindNotFound, "unknown_mcp_server", "this writ has no MCP servers configured"))
			return
		}
		a.cfg.MCP.ServeMetadata(w, r)
	})
	a.route("POST /v1/mcp/{server}/accept", a.human(a.acceptMCP))
}

// MCPAcceptResponse is the answer of POST /v1/mcp/{server}/accept.
type MCPAcceptResponse struct {
	Server string            `json:"server"`
	Tools  map[string]string `json:"tools"`
}

// acceptMCP is POST /v1/mcp/{server}/accept (admins).
func (a *API) acceptMCP(w http.ResponseWriter, r *http.Request) error {
	p := writ.PrincipalFromContext(r.Context())
	if err := requireAdmin(p, "accepting an MCP server's tool descriptors"); err != nil {
		return err
	}
	name := r.PathValue("server")
	if a.cfg.MCP == nil || !a.cfg.MCP.Known(name) {
		return writ.Errorf(writ.KindNotFound, "unknown_mcp_server", "mcp server %q is not configured", name)
	}
	tools, err := a.cfg.MCP.Accept(r.Context(), name, p.Actor())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, MCPAcceptResponse{Server: name, Tools: tools})
}

// mcpAudience reports whether aud is the resource of a configured MCP
// server: <publicURL>/mcp/<server>.
func (a *API) mcpAudience(aud string) bool {
	name, ok := strings.CutPrefix(aud, a.cfg.PublicURL+"/mcp/")
	return ok && a.cfg.MCP != nil && a.cfg.MCP.Known(name)
}

// VerifyResourceToken verifies raw as an unbound run token whose audience
// is exactly audience (an MCP server's resource), for the MCP gateway. A
// DPoP-bound token is an API token and is refused.
func (a *API) VerifyResourceToken(raw, audience string) (writ.RunID, time.Time, error) {
	c, err := a.verifier().Verify(raw, audience)
	if err != nil {
		a.metrics.authFailures.WithLabelValues("mcp_token").Inc()
		return "", time.Time{}, err
	}
	if c.JKT != "" {
		return "", time.Time{}, writ.Errorf(writ.KindUnauthenticated, "invalid_token", "a DPoP-bound token cannot be used as a bearer token")
	}
	id, err := writ.ParseRunID(c.Run)
	if err != nil {
		return "", time.Time{}, errBadToken
	}
	return id, c.Expiry, nil
}

// RunState returns run id as it is now (through the run cache, which
// state changes invalidate), for the MCP gateway.
func (a *API) RunState(ctx context.Context, id writ.RunID) (*writ.Run, error) {
	return a.runs.get(ctx, id)
}
