package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/mcpgw"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// TestMCPURLHostsRefused attacks the MCP gateway end to end, with the
// default policy bundle in front of the real server-everything: a run whose
// hosts are [docs.example.org] calls echo with URLs of evil.example written
// as a strict reader misses them but a WHATWG parser (a Node server's
// `new URL`) reads them. Each is refused with host_not_in_scope and never
// reaches the server; URLs of the run's own host pass.
func TestMCPURLHostsRefused(t *testing.T) {
	everything := mcpTool(t, "WRIT_TEST_MCP_EVERYTHING")
	d := prepareDev(t)
	wire := filepath.Join(t.TempDir(), "everything.in")
	d.cfg.MCP.Servers = []mcpgw.Upstream{
		{Name: "everything", Command: []string{"sh", "-c", `tee -a "$0" | exec node "$1"`, wire, everything}},
	}
	for _, p := range d.cfg.Profiles {
		if p.Name == "refactor" {
			p.Hosts = append(p.Hosts, "docs.example.org")
		}
	}
	// Every attack is a denial; the threshold that suspends the run is
	// tested elsewhere.
	d.cfg.Policy.Denials.Max = 0
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	signed := d.sign(t, time.Now(), func(tr *writ.Trigger) {
		tr.Scope.Tools = []string{"mcp:everything/echo"}
		tr.Scope.Hosts = []string{"docs.example.org"}
	})
	run, err := client.New(r.url, "").StartRun(ctx, signed, key)
	if err != nil {
		t.Fatal(err)
	}
	m, err := client.NewRun(r.url, run.Token, key).MintToken(ctx, string(run.ID), r.url+"/mcp/everything", false)
	if err != nil {
		t.Fatal(err)
	}
	url := r.url + "/mcp/everything"

	got := rawCall(t, url, m.Token, "echo", `{"message":"read https://docs.example.org/guide and \thttps:DOCS.example.org/x"}`)
	if !strings.Contains(got, "Echo: read https://docs.example.org/guide") {
		t.Fatalf("echo naming only the run's host: %s; want it answered", got)
	}
	for i, s := range []string{
		`" https://evil.example/x"`, `"\thttps://evil.example/x"`, `"see https://evil.example/x"`, `"HTTPS://EVIL.EXAMPLE/x"`,
		`"ht\ttps://evil.example/x"`, `"https:\\\\evil.example\\x"`, `"https:evil.example/x"`, `"https://docs.example.org@evil.example/"`,
		`"https://evil.example\\@docs.example.org/"`, `"https://%65vil.example/"`, `"https://ｅｖｉｌ．ｅｘａｍｐｌｅ/"`,
		`"http://2130706433/"`, `"http://0177.0.0.1/"`, `"http://0x7f.1/"`, `"http://[::ffff:127.0.0.1]/"`,
	} {
		marker := "attack-" + string(rune('a'+i))
		got := rawCall(t, url, m.Token, "echo", `{"message":`+s+`,"note":"`+marker+`"}`)
		if !strings.Contains(got, "host_not_in_scope") || !strings.Contains(got, `"decision"`) {
			t.Errorf("echo %s: %s; want a JSON-RPC error naming host_not_in_scope and the decision", s, got)
		}
	}
	sent, err := os.ReadFile(wire)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sent), "attack-") || strings.Contains(strings.ToLower(string(sent)), "evil") {
		t.Errorf("an attack reached server-everything:\n%s", sent)
	}
}
