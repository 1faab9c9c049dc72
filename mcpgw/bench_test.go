package mcpgw_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/mcpgw"
)

// BenchmarkGatewayOverhead measures what the gateway adds to a tools/call
// without the decision point (a fake that allows at once): the same SDK
// client calls an in-process upstream over Streamable HTTP directly, and
// through the gateway, which holds that upstream by its URL. The server
// package's BenchmarkMCPToolsCall measures the whole path with real
// decisions and server-everything.
func BenchmarkGatewayOverhead(b *testing.B) {
	up := newUpstream()
	ups := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up.srv }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	defer ups.Close()
	tokens := &fakeTokens{runs: map[writ.RunID]*writ.Run{
		runA: {ID: runA, State: writ.RunActive, Deadline: time.Now().Add(time.Hour), Scope: writ.Scope{Tools: []string{"mcp:up/echo"}}},
	}}
	mux := http.NewServeMux()
	gws := httptest.NewServer(mux)
	defer gws.Close()
	gw, err := mcpgw.New(mcpgw.Config{Servers: []mcpgw.Upstream{{Name: "up", URL: ups.URL}}, PublicURL: gws.URL,
		Tokens: tokens, Decider: &fakeDecider{}, Events: &fakeEvents{}})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	mux.Handle("/mcp/{server}", gw)
	for _, c := range []struct{ name, url, tok string }{
		{"direct", ups.URL, ""},
		{"gateway", gws.URL + "/mcp/up", "tok-" + string(runA) + "@" + gws.URL + "/mcp/up"},
	} {
		b.Run(c.name, func(b *testing.B) {
			hc := &http.Client{Transport: headerRT{http.Header{"Authorization": {"Bearer " + c.tok}}}}
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(),
				&mcp.StreamableClientTransport{Endpoint: c.url, HTTPClient: hc, DisableStandaloneSSE: true}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer cs.Close()
			params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "benchmark"}}
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				if _, err := cs.CallTool(context.Background(), params); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
		})
	}
}
