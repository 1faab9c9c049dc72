package mcpgw_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/mcpgw"
)

// stdioChildEnv makes this test binary an MCP server on stdio (TestMain),
// with one tool "env" answering what its environment holds.
const stdioChildEnv = "WRIT_MCPGW_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(stdioChildEnv) == "1" {
		srv := mcp.NewServer(&mcp.Implementation{Name: "env-server", Version: "1"}, nil)
		type in struct {
			Name string `json:"name"`
		}
		mcp.AddTool(srv, &mcp.Tool{Name: "env", Description: "Reads a variable"}, func(ctx context.Context, r *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
			v, ok := os.LookupEnv(a.Name)
			if !ok {
				v = "<unset>"
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: v}}}, nil, nil
		})
		if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type fakeSecrets map[string]string

func (f fakeSecrets) Open(ctx context.Context, full string) ([]byte, error) {
	v, ok := f[full]
	if !ok {
		return nil, errors.New("no such secret")
	}
	return []byte(v), nil
}

// gateway serves up as server "up" to runA, whose scope allows every tool.
func gateway(t *testing.T, up mcpgw.Upstream, secrets mcpgw.Secrets) *mcp.ClientSession {
	t.Helper()
	tokens := &fakeTokens{runs: map[writ.RunID]*writ.Run{
		runA: {ID: runA, State: writ.RunActive, Deadline: time.Now().Add(time.Hour), Scope: writ.Scope{Tools: []string{"mcp:up/*"}}},
	}}
	mux := http.NewServeMux()
	gws := httptest.NewServer(mux)
	t.Cleanup(gws.Close)
	var sec mcpgw.Secrets
	if secrets != nil {
		sec = secrets
	}
	gw, err := mcpgw.New(mcpgw.Config{Servers: []mcpgw.Upstream{up}, PublicURL: gws.URL, Tokens: tokens, Decider: &fakeDecider{},
		Events: &fakeEvents{}, Secrets: sec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	mux.Handle("/mcp/{server}", gw)
	hc := &http.Client{Transport: headerRT{http.Header{"Authorization": {"Bearer tok-" + string(runA) + "@" + gws.URL + "/mcp/up"}}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: gws.URL + "/mcp/up", HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestUpstreamSecretHeader: writ presents its own credential to an HTTP
// upstream (a broker secret), never the run's token.
func TestUpstreamSecretHeader(t *testing.T) {
	up := newUpstream()
	var sawRunToken bool
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up.srv }, nil)
	ups := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Authorization"), "tok-") {
			sawRunToken = true
		}
		if r.Header.Get("Authorization") != "Bearer upstream-s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ups.Close)
	cs := gateway(t, mcpgw.Upstream{Name: "up", URL: ups.URL, SecretHeaders: map[string]string{"Authorization": "ops/mcp-token"}},
		fakeSecrets{"ops/mcp-token": "Bearer upstream-s3cret"})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "with writ's credential"}})
	if err != nil || text(res) != "Echo: with writ's credential" {
		t.Fatalf("echo through an upstream that needs writ's credential = %v, %v", res, err)
	}
	if sawRunToken {
		t.Error("the run's token reached the upstream")
	}
	// Without the secret the upstream refuses, and so the call fails.
	cs2 := gateway(t, mcpgw.Upstream{Name: "up", URL: ups.URL, SecretHeaders: map[string]string{"Authorization": "ops/missing"}}, fakeSecrets{})
	if _, err := cs2.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}); err == nil {
		t.Error("a call went through without the upstream credential")
	}
}

// TestStdioUpstreamEnvironment: a stdio upstream (a real child process)
// gets its secret variable and the allowlisted environment, never writ's
// own keys.
func TestStdioUpstreamEnvironment(t *testing.T) {
	t.Setenv("WRIT_BROKER_KEY", "must-not-leak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak-either")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cs := gateway(t, mcpgw.Upstream{Name: "up", Command: []string{exe, "-test.run=^$"}, Env: []string{stdioChildEnv + "=1"},
		SecretEnv: map[string]string{"API_KEY": "ops/api-key"}}, fakeSecrets{"ops/api-key": "k-123"})
	get := func(name string) string {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "env", Arguments: map[string]any{"name": name}})
		if err != nil {
			t.Fatalf("env %s: %v", name, err)
		}
		return text(res)
	}
	if got := get("API_KEY"); got != "k-123" {
		t.Errorf("API_KEY = %q, want the secret", got)
	}
	for _, k := range []string{"WRIT_BROKER_KEY", "AWS_SECRET_ACCESS_KEY"} {
		if got := get(k); got != "<unset>" {
			t.Errorf("%s reached the upstream: %q", k, got)
		}
	}
	if got := get("PATH"); got == "<unset>" {
		t.Error("PATH was not passed on")
	}
}
