package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/api"
)

// MCPAccepted is the answer of [Client.AcceptMCP]: the tool descriptor
// digests now accepted for the server.
type MCPAccepted = api.MCPAcceptResponse

// AcceptMCP accepts the tool descriptors MCP server name presents now and
// lifts its quarantine (admins).
func (c *Client) AcceptMCP(ctx context.Context, name string) (*MCPAccepted, error) {
	var out MCPAccepted
	err := c.do(ctx, http.MethodPost, "/v1/mcp/"+url.PathEscape(name)+"/accept", nil, &out)
	return &out, err
}
