package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/server"
)

// TestEgressForwardsPlainHTTP: a client using writ as its HTTP_PROXY for a
// plain-http URL (absolute-form requests, as Claude Code sends its model
// API calls to an http:// base URL) is admitted like a tunnel — the run's
// egress lease, one egress decision per request, only scope hosts — and
// the answer streams back.
func TestEgressForwardsPlainHTTP(t *testing.T) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			http.Error(w, "the proxy credential reached the site", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: chunk %d of %s\n\n", i, r.URL.Path)
			w.(http.Flusher).Flush()
		}
	}))
	defer site.Close()
	port := site.URL[strings.LastIndex(site.URL, ":")+1:]
	p := startPolicy(t, func(cfg *server.Config) {
		cfg.Egress.AllowLoopbackUnsafe = true
		cfg.Egress.ModelHosts = []string{"model.test"}
		cfg.Egress.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			if host == "model.test" {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return nil, fmt.Errorf("no such host %s", host)
		}
	})
	c, id := p.run(nil)
	ctx := context.Background()
	lease, err := c.RequestCredential(ctx, string(id), &writ.CredentialRequest{Kind: writ.CredentialEgress, Target: "proxy"})
	if err != nil {
		t.Fatal(err)
	}
	proxied := func(user *url.Userinfo) *http.Client {
		pu, _ := url.Parse(p.r.url)
		pu.User = user
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	}
	good := proxied(url.UserPassword(lease.Credential["username"], lease.Credential["password"]))
	resp, err := good.Get("http://model.test:" + port + "/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Count(string(body), "data: chunk") != 3 || resp.Header.Get("X-Writ-Decision") == "" {
		t.Fatalf("in-scope host through the proxy: %s %q (decision %q)", resp.Status, body, resp.Header.Get("X-Writ-Decision"))
	}
	for _, tt := range []struct {
		name   string
		client *http.Client
		url    string
		status int
	}{
		{"a host outside the scope", good, "http://other.test:" + port + "/", http.StatusForbidden},
		{"no credential", proxied(nil), "http://model.test:" + port + "/", http.StatusProxyAuthRequired},
		{"another run's credential", proxied(url.UserPassword(lease.Credential["username"], lease.Credential["password"]+"x")), "http://model.test:" + port + "/", http.StatusProxyAuthRequired},
	} {
		resp, err := tt.client.Get(tt.url)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %s, want %d", tt.name, resp.Status, tt.status)
		}
	}
	// After the run ends, the lease no longer opens anything.
	if _, err := c.Transition(ctx, string(id), "end", "done"); err != nil {
		t.Fatal(err)
	}
	resp, err = good.Get("http://model.test:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Errorf("after the run ended: %s, want 407", resp.Status)
	}
}
