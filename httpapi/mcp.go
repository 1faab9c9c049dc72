package httpapi

import (
	"context"
	"net/http"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// MCP is the MCP gateway (package mcpgw) as the API mounts it.
type MCP interface {
	// ServeHTTP serves /mcp/{server} (Streamable HTTP).
	ServeHTTP(w http.ResponseWriter, r *http.Request)
	// ServeMetadata serves /.well-known/oauth-protected-resource/mcp/{server}.
	ServeMetadata(w http.ResponseWriter, r *http.Request)
	// ServeDocs serves the guide for MCP clients at /docs/mcp-clients.md,
	// the metadata's resource_documentation.
	ServeDocs(w http.ResponseWriter, r *http.Request)
	// Known reports whether server is configured.
	Known(server string) bool
	// Accept records the descriptors server presents now as accepted.
	Accept(ctx context.Context, server, actor string) (map[string]string, error)
}

// mcpRoutes mounts the MCP gateway's endpoints (docs/design.md §4.8). The
// gateway writes its own responses: Streamable HTTP streams, and the
// status and WWW-Authenticate answers MCP clients expect.
func (a *API) mcpRoutes() {
	a.mount("/mcp/{server}", func(w http.ResponseWriter, r *http.Request) {
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
	a.mux.HandleFunc("GET /docs/mcp-clients.md", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.MCP == nil {
			a.writeError(w, r, writ.Errorf(writ.KindNotFound, "unknown_mcp_server", "this writ has no MCP servers configured"))
			return
		}
		a.cfg.MCP.ServeDocs(w, r)
	})
	a.route("POST /v1/mcp/{server}/accept", a.human(a.acceptMCP))
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
	return writeJSON(w, http.StatusOK, api.MCPAcceptResponse{Server: name, Tools: tools})
}
