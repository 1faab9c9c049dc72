package server_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ/mcpgw"
	"github.com/writ-dev/writ/server"
)

func TestMCPConfig(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	y := baseConfig(t) + `mcp:
  maxResultBytes: 2048
  servers:
    - {name: everything, command: [node, /opt/e/index.js], env: [A=1], tools: {echo: "` + pin + `"}}
    - {name: fs, command: [node, /opt/f/index.js, /srv], workspace: "/srv/{run}"}
    - {name: remote, url: "https://mcp.example.org/mcp"}
`
	cfg, err := server.ParseConfig([]byte(y), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := server.MCPConfig{MaxResultBytes: 2048, Servers: []mcpgw.Upstream{
		{Name: "everything", Command: []string{"node", "/opt/e/index.js"}, Env: []string{"A=1"}, Tools: map[string]string{"echo": pin}},
		{Name: "fs", Command: []string{"node", "/opt/f/index.js", "/srv"}, Workspace: "/srv/{run}"},
		{Name: "remote", URL: "https://mcp.example.org/mcp"},
	}}
	if diff := cmp.Diff(want, cfg.MCP); diff != "" {
		t.Errorf("mcp config (-want +got):\n%s", diff)
	}

	for _, c := range []struct{ name, server, want string }{
		{"unknown key", `{name: e, command: [x], tool: {}}`, "unknown key"},
		{"command and url", `{name: e, command: [x], url: "https://a"}`, "exactly one of command and url"},
		{"neither", `{name: e}`, "exactly one of command and url"},
		{"bad name", `{name: E, command: [x]}`, "name"},
		{"bad pin", `{name: e, command: [x], tools: {echo: "md5:00"}}`, "pin"},
		{"bad tool", `{name: e, command: [x], tools: {"a b": "` + pin + `"}}`, "tool name"},
		{"relative workspace", `{name: e, command: [x], workspace: ws}`, "absolute"},
		{"url scheme", `{name: e, url: "file:///x"}`, "http"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := server.ParseConfig([]byte(baseConfig(t)+"mcp:\n  servers:\n    - "+c.server+"\n"), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("ParseConfig = %v, want an error containing %q", err, c.want)
			}
		})
	}
	_, err = server.ParseConfig([]byte(baseConfig(t)+"mcp:\n  servers:\n    - {name: e, command: [x]}\n    - {name: e, url: \"https://a\"}\n"), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate server: %v, want an error", err)
	}
}
