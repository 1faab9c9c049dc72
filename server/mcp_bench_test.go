package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/mcpgw"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// loopbackPreload makes server-everything's HTTP mode listen on 127.0.0.1
// only (it binds every interface otherwise; CONTRIBUTING.md §7).
const loopbackPreload = `const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if ((typeof args[0] === 'number' || /^[0-9]+$/.test(String(args[0]))) && typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  return listen.apply(this, args);
};
`

// startEverythingHTTP starts server-everything in Streamable HTTP mode on
// a free loopback port and returns its /mcp URL.
func startEverythingHTTP(t testing.TB, index string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	preload := filepath.Join(t.TempDir(), "loopback.cjs")
	if err := os.WriteFile(preload, []byte(loopbackPreload), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "--require", preload, index, "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
	deadline := time.Now().Add(pollTimeout)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("server-everything did not listen on %d", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mcpSession is a minimal Streamable HTTP client (2025-11-25) that both
// benchmark paths share, so only the path differs.
type mcpSession struct {
	url, tok, sid string
	hc            *http.Client
	id            int
}

func openSession(t testing.TB, url, tok string) *mcpSession {
	t.Helper()
	s := &mcpSession{url: url, tok: tok, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	if _, err := s.rpc("initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rpc("notifications/initialized", ""); err != nil {
		t.Fatal(err)
	}
	return s
}

// rpc sends one message and returns the body of its answer (the data of
// the first event, when the answer is a stream).
func (s *mcpSession) rpc(method, params string) (string, error) {
	var body string
	if strings.HasPrefix(method, "notifications/") {
		body = `{"jsonrpc":"2.0","method":"` + method + `"}`
	} else {
		s.id++
		body = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, s.id, method, params)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.tok != "" {
		req.Header.Set("Authorization", "Bearer "+s.tok)
	}
	if s.sid != "" {
		req.Header.Set("Mcp-Session-Id", s.sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && s.sid == "" {
		s.sid = sid
	}
	if resp.StatusCode == http.StatusAccepted {
		return "", nil
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("%s: %s %s", method, resp.Status, b)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.TrimSpace(d) != "" {
			return strings.TrimSpace(d), nil
		}
	}
	return "", fmt.Errorf("%s: stream ended without data: %v", method, sc.Err())
}

// BenchmarkMCPToolsCall compares tools/call of server-everything's echo
// directly (its own Streamable HTTP endpoint) and through writ's gateway
// (a run's token, a recorded decision per call, the same upstream held as
// a Streamable HTTP client), with the same client. p50 and p99 are
// reported per path; docs/performance.md has the numbers.
func BenchmarkMCPToolsCall(b *testing.B) {
	everything := mcpTool(b, "WRIT_TEST_MCP_EVERYTHING")
	upstream := startEverythingHTTP(b, everything)

	d := prepareDev(b)
	d.cfg.MCP.Servers = []mcpgw.Upstream{{Name: "everything", URL: upstream}}
	d.cfg.LogLevel = "error"
	for _, p := range d.cfg.Profiles {
		p.Budgets = writ.Budgets{} // unlimited: the benchmark makes thousands of calls a minute
	}
	r := start(b, d.cfg, server.Options{}, d.finish(b))
	ctx := context.Background()
	key, err := token.NewDPoPKey()
	if err != nil {
		b.Fatal(err)
	}
	signed := d.sign(b, time.Now(), func(tr *writ.Trigger) { tr.Scope.Tools = []string{"mcp:everything/echo"} })
	run, err := client.New(r.url, "").StartRun(ctx, signed, key)
	if err != nil {
		b.Fatal(err)
	}
	m, err := client.NewRun(r.url, run.Token, key).MintToken(ctx, string(run.ID), r.url+"/mcp/everything", false)
	if err != nil {
		b.Fatal(err)
	}
	const call = `{"name":"echo","arguments":{"message":"benchmark"}}`
	for _, c := range []struct {
		name, url, tok string
	}{
		{"direct", upstream, ""},
		{"gateway", r.url + "/mcp/everything", m.Token},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := openSession(b, c.url, c.tok)
			if out, err := s.rpc("tools/call", call); err != nil || !strings.Contains(out, "Echo: benchmark") {
				for _, e := range benchEvents(b, r.srv) {
					b.Log(e.Type, e.Decision, e.Details)
				}
				b.Fatalf("tools/call: %v %s", err, out)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.rpc("tools/call", call); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(q(0.50), "p50-µs")
			b.ReportMetric(q(0.99), "p99-µs")
		})
	}
}

// benchEvents returns the first 1,000 events, to show why a call failed.
func benchEvents(b testing.TB, srv *server.Server) []writ.Event {
	var out []writ.Event
	evs, err := srv.Store().Events(context.Background(), 0, 1000)
	if err != nil {
		b.Fatal(err)
	}
	for _, se := range evs {
		var e writ.Event
		_ = json.Unmarshal(se.Body, &e)
		out = append(out, e)
	}
	return out
}
