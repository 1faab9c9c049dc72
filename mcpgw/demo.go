package mcpgw

import (
	"context"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// DemoServerArg is the hidden first argument with which `writ demo` runs
// the writ binary as a tiny MCP server on stdio — the demo's upstream, so
// the demo needs no npm. It has two tools: echo (the demo's trigger allows
// it) and read_env (it does not).
const DemoServerArg = "__writ-mcp-demo-server"

// ServeDemo serves the demo MCP server on stdin/stdout until stdin closes.
func ServeDemo() int {
	srv := mcp.NewServer(&mcp.Implementation{Name: "writ-demo-upstream", Version: "1"}, nil)
	type echoIn struct {
		Message string `json:"message"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echoes a message back."},
		func(ctx context.Context, r *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo: " + in.Message}}}, nil, nil
		})
	type envIn struct {
		Name string `json:"name"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "read_env", Description: "Reads an environment variable of the server."},
		func(ctx context.Context, r *mcp.CallToolRequest, in envIn) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: os.Getenv(in.Name)}}}, nil, nil
		})
	if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		return 1
	}
	return 0
}
