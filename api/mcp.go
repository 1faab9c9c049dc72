package api

// MCPAcceptResponse is the answer of POST /v1/mcp/{server}/accept: the
// tool descriptor digests now accepted for the server.
type MCPAcceptResponse struct {
	Server string            `json:"server"`
	Tools  map[string]string `json:"tools"`
}
