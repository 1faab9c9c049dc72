package mcpgw_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/mcpgw"
)

// replica is one gateway of a pair behind one public URL.
type replica struct {
	url string
	up  *fakeUpstream
}

func startReplica(t *testing.T, public string, key []byte, tokens *fakeTokens) *replica {
	t.Helper()
	r := &replica{up: newUpstream()}
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	r.url = ts.URL
	gw, err := mcpgw.New(mcpgw.Config{
		Servers: []mcpgw.Upstream{{Name: "up", Command: []string{"unused"}}}, PublicURL: public, Advertise: ts.URL, SessionKey: key,
		Tokens: tokens, Decider: &fakeDecider{}, Events: &fakeEvents{},
		Transport: func(mcpgw.Upstream) (mcp.Transport, error) {
			ct, st := mcp.NewInMemoryTransports()
			if _, err := r.up.srv.Connect(context.Background(), st, nil); err != nil {
				return nil, err
			}
			return ct, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	mux.Handle("/mcp/{server}", gw)
	return r
}

// TestSessionsAcrossReplicas: a session opened on replica A is usable
// through replica B, which proxies to A (where its upstream connection
// lives); a session id that does not verify — forged to point elsewhere,
// or from another installation — is unknown, and nothing is proxied.
func TestSessionsAcrossReplicas(t *testing.T) {
	const public = "http://writ-lb.test"
	key := []byte("a key all replicas share, 32 b!!")
	tokens := &fakeTokens{runs: map[writ.RunID]*writ.Run{
		runA: {ID: runA, State: writ.RunActive, Deadline: time.Now().Add(time.Hour), Scope: writ.Scope{Tools: []string{"mcp:up/*"}}},
	}}
	a := startReplica(t, public, key, tokens)
	b := startReplica(t, public, key, tokens)
	auth := "Bearer tok-" + string(runA) + "@" + public + "/mcp/up"

	resp := post(t, a.url+"/mcp/up", map[string]string{"Authorization": auth}, initBody)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(sid, "w1.") {
		t.Fatalf("initialize on A: %s, session %q", resp.Status, sid)
	}
	hdr := map[string]string{"Authorization": auth, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
	post(t, a.url+"/mcp/up", hdr, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"via B"}}}`
	resp = post(t, b.url+"/mcp/up", hdr, call)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Echo: via B") {
		t.Fatalf("A's session through B: %s\n%s", resp.Status, body)
	}
	if a.up.called("echo") != 1 || b.up.called("echo") != 0 {
		t.Errorf("echo reached A's upstream %d times and B's %d; want the owner's once", a.up.called("echo"), b.up.called("echo"))
	}

	// A forged owner: the id names a listener of the attacker's choosing.
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(evil.Close)
	parts := strings.Split(sid, ".")
	forged := "w1." + b64(evil.URL) + "." + parts[2] + "." + parts[3]
	for _, id := range []string{forged, "w1.garbage", "not-ours"} {
		h := map[string]string{"Authorization": auth, "Mcp-Session-Id": id, "Mcp-Protocol-Version": "2025-11-25"}
		if resp := post(t, b.url+"/mcp/up", h, call); resp.StatusCode != http.StatusNotFound {
			t.Errorf("session %q: %s, want 404", id, resp.Status)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("a forged session id made B connect to %s", evil.URL)
	}
	// Another installation's key: its ids are unknown here.
	other := startReplica(t, public, []byte("another installation's key......"), tokens)
	resp = post(t, other.url+"/mcp/up", hdr, call)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a session id under another key: %s, want 404", resp.Status)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
