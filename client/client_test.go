package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/token"
)

// seen is one request a stand-in server received.
type seen struct {
	Method, Path, RawPath, Query string
	Header                       http.Header
	Body                         string
	URL                          string // absolute, as the client addressed it
}

// server is an httptest server answering every request with status and
// body, and recording what it received.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newServer(t *testing.T, status int, body string) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Header: r.Header.Clone(), Body: string(b), URL: "http://" + r.Host + r.URL.EscapedPath()})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func (s *server) only(t *testing.T) seen {
	t.Helper()
	r := s.requests()
	if len(r) != 1 {
		t.Fatalf("%d requests; want 1", len(r))
	}
	return r[0]
}

// TestErrorEnvelope: an error answer becomes a *writ.Error with the
// envelope's code, message, items, decision and approval, and the kind
// its status stands for; with retries off it is sent once (503 and 429
// are retried by default: TestRetryOverload).
func TestErrorEnvelope(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   writ.Error
	}{
		{400, `{"error":{"code":"invalid_trigger","message":"bad scope","items":["scope.repos[0]: empty name","ttl: too long"]}}`,
			writ.Error{Kind: writ.KindInvalid, Code: "invalid_trigger", Message: "bad scope", Items: []string{"scope.repos[0]: empty name", "ttl: too long"}}},
		{415, `{"error":{"code":"unsupported_media_type","message":"want JSON"}}`,
			writ.Error{Kind: writ.KindInvalid, Code: "unsupported_media_type", Message: "want JSON"}},
		{401, `{"error":{"code":"token_revoked","message":"the run was killed"}}`,
			writ.Error{Kind: writ.KindUnauthenticated, Code: "token_revoked", Message: "the run was killed"}},
		{403, `{"error":{"code":"policy_denied","message":"push to main is not allowed","decision":"01jdecision"}}`,
			writ.Error{Kind: writ.KindDenied, Code: "policy_denied", Message: "push to main is not allowed", Decision: "01jdecision"}},
		{403, `{"error":{"code":"approval_required","message":"a maintainer must approve","decision":"01jdecision","approval":"01japproval"}}`,
			writ.Error{Kind: writ.KindApprovalPending, Code: "approval_required", Message: "a maintainer must approve", Decision: "01jdecision", Approval: "01japproval"}},
		{404, `{"error":{"code":"not_found","message":"no run 01j"}}`,
			writ.Error{Kind: writ.KindNotFound, Code: "not_found", Message: "no run 01j"}},
		{409, `{"error":{"code":"run_final","message":"the run ended"}}`,
			writ.Error{Kind: writ.KindConflict, Code: "run_final", Message: "the run ended"}},
		{413, `{"error":{"code":"too_large","message":"over 1 MiB"}}`,
			writ.Error{Kind: writ.KindTooLarge, Code: "too_large", Message: "over 1 MiB"}},
		{503, `{"error":{"code":"store_unavailable","message":"the store does not answer"}}`,
			writ.Error{Kind: writ.KindUnavailable, Code: "store_unavailable", Message: "the store does not answer"}},
		{500, `{"error":{"code":"internal","message":"internal error (request r1)"}}`,
			writ.Error{Kind: writ.KindInternal, Code: "internal", Message: "internal error (request r1)"}},
		// Not writ's envelope (a proxy's page, an empty body, no code):
		// the status alone.
		{502, `<html>Bad Gateway</html>`,
			writ.Error{Kind: writ.KindInternal, Code: "http_502", Message: "GET /v1/runs/01j: 502 Bad Gateway"}},
		{503, ``,
			writ.Error{Kind: writ.KindUnavailable, Code: "http_503", Message: "GET /v1/runs/01j: 503 Service Unavailable"}},
		{403, `{"error":{"message":"no code"}}`,
			writ.Error{Kind: writ.KindDenied, Code: "http_403", Message: "GET /v1/runs/01j: 403 Forbidden"}},
	} {
		srv := newServer(t, c.status, c.body)
		_, err := client.New(srv.URL, "writ_tok").WithRetry(-1).GetRun(context.Background(), "01j")
		var we *writ.Error
		if !errors.As(err, &we) {
			t.Errorf("%d %s: error %v (%T); want a *writ.Error", c.status, c.body, err, err)
			continue
		}
		if we.Kind != c.want.Kind || we.Code != c.want.Code || we.Message != c.want.Message || !slices.Equal(we.Items, c.want.Items) ||
			we.Decision != c.want.Decision || we.Approval != c.want.Approval {
			t.Errorf("%d %s:\n got %#v\nwant %#v", c.status, c.body, *we, c.want)
		}
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%d: %d requests; want 1 (no retry)", c.status, n)
		}
	}
}

// TestRetryOverload: a 503 or 429 is retried after its Retry-After with
// the same body and a fresh DPoP proof, until the server accepts; a
// server that stays overloaded past the retry budget fails closed with an
// error that says so. Other errors are never retried.
func TestRetryOverload(t *testing.T) {
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bodies, proofs []string
	answers := []int{503, 429, 200}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		proofs = append(proofs, r.Header.Get("DPoP"))
		status := answers[min(len(bodies), len(answers))-1]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch status {
		case 503:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			io.WriteString(w, `{"error":{"code":"overloaded","message":"too many decide requests at once"}}`)
		case 429:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"code":"rate_limited","message":"rate limit reached"}}`)
		default:
			io.WriteString(w, `{"id":"dec_1","decision":"allow"}`)
		}
	}))
	t.Cleanup(srv.Close)
	d, err := client.NewRun(srv.URL, "a.b.c", key).Decide(context.Background(), &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}})
	if err != nil {
		t.Fatalf("Decide after 503, 429: %v", err)
	}
	if d.Decision != "allow" {
		t.Errorf("decision %q; want allow", d.Decision)
	}
	mu.Lock()
	if len(bodies) != 3 || bodies[0] != bodies[2] || bodies[0] == "" {
		t.Errorf("bodies %q; want the same body three times", bodies)
	}
	if len(proofs) != 3 || proofs[0] == proofs[1] || proofs[1] == proofs[2] {
		t.Errorf("DPoP proofs not fresh per attempt: %q", proofs)
	}
	mu.Unlock()

	// Always overloaded: the client gives up within its budget, failing
	// closed with a message that says the server is overloaded.
	busy := newServer(t, 503, `{"error":{"code":"overloaded","message":"too many requests"}}`)
	_, err = client.New(busy.URL, "writ_tok").WithRetry(300*time.Millisecond).GetRun(context.Background(), "01j")
	if writ.ErrorKind(err) != writ.KindUnavailable || writ.ErrorCode(err) != "overloaded" || !strings.Contains(err.Error(), "is overloaded") {
		t.Errorf("always 503: %v; want unavailable overloaded saying the server is overloaded", err)
	}
	if n := len(busy.requests()); n < 2 {
		t.Errorf("always 503: %d requests; want retries", n)
	}
	// Retry-After longer than the budget: no pointless wait, one request.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"code":"rate_limited","message":"rate limit reached"}}`)
	}))
	t.Cleanup(slow.Close)
	_, err = client.New(slow.URL, "writ_tok").WithRetry(time.Second).GetRun(context.Background(), "01j")
	var we *writ.Error
	if !errors.As(err, &we) || we.Kind != writ.KindRateLimited || we.RetryAfter != 30*time.Second {
		t.Errorf("429 Retry-After 30: %#v; want rate_limited with RetryAfter 30s", err)
	}
}

// TestBearerToken: a human client sends its token as a bearer token and
// no DPoP proof; without a token it sends no Authorization at all.
func TestBearerToken(t *testing.T) {
	srv := newServer(t, 200, `{"runs":[]}`)
	if _, err := client.New(srv.URL+"/", "writ_human_tok").ListRuns(context.Background(), writ.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(srv.URL, "").ListRuns(context.Background(), writ.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	r := srv.requests()
	if got := r[0].Header.Get("Authorization"); got != "Bearer writ_human_tok" {
		t.Errorf("Authorization = %q; want the bearer token", got)
	}
	if r[0].Header.Get("DPoP") != "" {
		t.Errorf("a human client sent a DPoP proof")
	}
	if r[0].Path != "/v1/runs" {
		t.Errorf("path %q; want /v1/runs (the base URL's slash trimmed)", r[0].Path)
	}
	if got := r[1].Header.Get("Authorization"); got != "" {
		t.Errorf("without a token, Authorization = %q", got)
	}
	if c := client.New(srv.URL, "writ_human_tok"); strings.Contains(c.String(), "writ_human_tok") {
		t.Errorf("String() shows the token: %s", c)
	}
}

// TestDPoP: a run client sends its token with the DPoP scheme and a fresh
// proof for each request, signed by its key, for the method and the URL
// without the query, bound to the token (ath); WithToken keeps the key.
func TestDPoP(t *testing.T) {
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	jkt, _ := token.Thumbprint(&key.PublicKey)
	srv := newServer(t, 200, `{"runs":[]}`)
	c := client.NewRun(srv.URL, "run_tok_1", key)
	ctx := context.Background()
	if _, err := c.ListRuns(ctx, writ.RunFilter{State: writ.RunActive, Limit: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListRuns(ctx, writ.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	c2 := c.WithToken("run_tok_2")
	if _, err := c2.Transition(ctx, "01j/../x", "end", "done"); err != nil {
		t.Fatal(err)
	}
	r := srv.requests()
	check := func(r seen, method, tok string) *token.ProofClaims {
		t.Helper()
		if got := r.Header.Get("Authorization"); got != "DPoP "+tok {
			t.Errorf("Authorization = %q; want DPoP %s", got, tok)
		}
		pc, err := token.VerifyProof(r.Header.Get("DPoP"), token.ProofCheck{Method: method, URL: r.URL, AccessToken: tok, JKT: jkt, Now: time.Now(), Leeway: time.Minute})
		if err != nil {
			t.Errorf("%s %s: proof does not verify: %v", r.Method, r.URL, err)
			return &token.ProofClaims{}
		}
		return pc
	}
	p0, p1 := check(r[0], "GET", "run_tok_1"), check(r[1], "GET", "run_tok_1")
	if p0.JTI == p1.JTI {
		t.Errorf("two requests carry the same proof (jti %s)", p0.JTI)
	}
	if r[0].Query == "" {
		t.Errorf("the filter sent no query")
	}
	check(r[2], "POST", "run_tok_2")
	// The proof is for this request only: another method or path fails.
	if _, err := token.VerifyProof(r[2].Header.Get("DPoP"), token.ProofCheck{Method: "GET", URL: r[2].URL, AccessToken: "run_tok_2", Now: time.Now()}); err == nil {
		t.Errorf("the proof of a POST verifies for a GET")
	}
	if _, err := token.VerifyProof(r[2].Header.Get("DPoP"), token.ProofCheck{Method: "POST", URL: r[2].URL, AccessToken: "run_tok_1", Now: time.Now()}); err == nil {
		t.Errorf("the proof verifies for the token WithToken replaced")
	}
	if _, err := c.ListRuns(ctx, writ.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests()[3].Header.Get("Authorization"); got != "DPoP run_tok_1" {
		t.Errorf("WithToken changed the original client: it sends %q", got)
	}
}

// TestStartRun: a trigger is posted as is, with no token (the trigger is
// the credential) and, with a key, a proof without ath; the first token
// in the answer is returned.
func TestStartRun(t *testing.T) {
	key, _ := token.NewDPoPKey()
	srv := newServer(t, 201, `{"id":"01jrun","agent":"refactor-bot","state":"active","token":"run_tok","tokenType":"DPoP","tokenExpiresAt":"2030-01-01T00:00:00Z"}`)
	signed := []byte(`{"payload":"eyJ9","signatures":[]}`)
	run, err := client.New(srv.URL, "writ_human_tok").StartRun(context.Background(), signed, key)
	if err != nil {
		t.Fatal(err)
	}
	if run.ID != "01jrun" || run.Token != "run_tok" || run.TokenType != "DPoP" || !run.TokenExpiresAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("run = %+v", run)
	}
	r := srv.only(t)
	if r.Method != "POST" || r.Path != "/v1/runs" || r.Body != string(signed) {
		t.Errorf("request %s %s %q; want the trigger posted to /v1/runs", r.Method, r.Path, r.Body)
	}
	if got := r.Header.Get("Authorization"); got != "" {
		t.Errorf("StartRun sent Authorization %q", got)
	}
	if r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
	}
	if _, err := token.VerifyProof(r.Header.Get("DPoP"), token.ProofCheck{Method: "POST", URL: r.URL, Now: time.Now()}); err != nil {
		t.Errorf("proof: %v", err)
	}
}

// TestRequests: what a few calls send — method, escaped path, query and
// body — and that a call refused before sending sends nothing.
func TestRequests(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name                  string
		answer                string
		call                  func(*client.Client) error
		method, path, query   string
		body                  string // "" for no body
		contentTypeWithoutBdy bool
	}{
		{"mint", `{"token":"t","tokenType":"Bearer","audience":"a","expiresAt":"2030-01-01T00:00:00Z"}`,
			func(c *client.Client) error {
				t, err := c.MintToken(ctx, "01jrun", "http://writ/mcp/github", false)
				if err == nil && t.Token != "t" {
					err = errors.New("token not decoded")
				}
				return err
			}, "POST", "/v1/runs/01jrun/token", "", `{"audience":"http://writ/mcp/github"}`, false},
		{"transition escapes the id", `{"id":"x"}`,
			func(c *client.Client) error { _, err := c.Transition(ctx, "a/b?c", "kill", "stop"); return err },
			"POST", "/v1/runs/a%2Fb%3Fc/kill", "", `{"reason":"stop"}`, false},
		{"list runs", `{"runs":[{"id":"r1"},{"id":"r2"}]}`,
			func(c *client.Client) error {
				runs, err := c.ListRuns(ctx, writ.RunFilter{State: writ.RunActive, Agent: "bot & co", Limit: 3})
				if err == nil && (len(runs) != 2 || runs[1].ID != "r2") {
					err = errors.New("runs not decoded")
				}
				return err
			}, "GET", "/v1/runs", "agent=bot+%26+co&limit=3&state=active", "", false},
		{"leases by state", `{"leases":[]}`,
			func(c *client.Client) error { _, err := c.ListLeases(ctx, "01jrun", "active"); return err },
			"GET", "/v1/runs/01jrun/credentials", "state=active", "", false},
		{"egress lease", `{"lease":{"id":"l1"},"credential":{"username":"u","password":"p"}}`,
			func(c *client.Client) error {
				ic, err := c.RequestCredential(ctx, "01jrun", &writ.CredentialRequest{Kind: writ.CredentialEgress, Target: "proxy"})
				if err == nil && (ic.Lease.ID != "l1" || ic.Credential["password"] != "p") {
					err = errors.New("credential not decoded")
				}
				return err
			}, "POST", "/v1/runs/01jrun/credentials", "", "", false},
		{"heartbeat", `{"run":"01jrun","state":"active","interval":"10s","missed":0}`,
			func(c *client.Client) error {
				hb, err := c.Heartbeat(ctx, "01jrun")
				if err == nil && hb.Interval.D() != 10*time.Second {
					err = errors.New("interval not decoded")
				}
				return err
			}, "POST", "/v1/runs/01jrun/heartbeat", "", "", false},
		{"unfreeze", `{"frozen":false,"changed":true}`,
			func(c *client.Client) error { _, err := c.Unfreeze(ctx); return err },
			"DELETE", "/v1/freeze", "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newServer(t, 200, c.answer)
			if err := c.call(client.New(srv.URL, "tok")); err != nil {
				t.Fatal(err)
			}
			r := srv.only(t)
			if r.Method != c.method || r.RawPath != c.path || r.Query != c.query {
				t.Errorf("request %s %s?%s; want %s %s?%s", r.Method, r.RawPath, r.Query, c.method, c.path, c.query)
			}
			if c.body != "" && r.Body != c.body {
				t.Errorf("body %s; want %s", r.Body, c.body)
			}
			if (r.Body != "") != (r.Header.Get("Content-Type") == "application/json") {
				t.Errorf("body %q sent with Content-Type %q", r.Body, r.Header.Get("Content-Type"))
			}
			if r.Header.Get("Accept") != "application/json" {
				t.Errorf("Accept = %q", r.Header.Get("Accept"))
			}
		})
	}

	srv := newServer(t, 200, `{}`)
	if _, err := client.New(srv.URL, "tok").Transition(ctx, "01jrun", "delete", ""); err == nil {
		t.Errorf("an unknown verb was accepted")
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("an unknown verb sent %d requests", n)
	}
}

// TestResponses: a body that is not the expected JSON is an error, a
// raw body (the checkpoint note) is returned as is, and no server URL is
// an error naming WRIT_URL.
func TestResponses(t *testing.T) {
	ctx := context.Background()
	srv := newServer(t, 200, `not json`)
	if _, err := client.New(srv.URL, "").GetRun(ctx, "r"); err == nil || !strings.Contains(err.Error(), "decode GET /v1/runs/r") {
		t.Errorf("a non-JSON answer gave %v", err)
	}
	note := "writ.example/log\n42\nabc=\n\n— writ.example/log xyz\n"
	srv = newServer(t, 200, note)
	got, err := client.New(srv.URL, "").AuditCheckpoint(ctx, 42)
	if err != nil || string(got) != note {
		t.Errorf("AuditCheckpoint = %q, %v; want the note as is", got, err)
	}
	if r := srv.only(t); r.Path != "/v1/audit/checkpoint" || r.Query != "wait=42" {
		t.Errorf("AuditCheckpoint asked %s?%s", r.Path, r.Query)
	}
	if err := client.New("", "tok").Ready(ctx); err == nil || !strings.Contains(err.Error(), "WRIT_URL") {
		t.Errorf("no base URL gave %v", err)
	}
}

// TestAuditEntriesPages: AuditEntries asks page after page from the seq
// after the last one received, and stops on an empty page.
func TestAuditEntriesPages(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		switch r.URL.Query().Get("start") {
		case "0":
			io.WriteString(w, `{"entries":[{"seq":0,"id":"a"},{"seq":1,"id":"b"}]}`)
		case "2":
			io.WriteString(w, `{"entries":[{"seq":2,"id":"c"}]}`)
		default:
			io.WriteString(w, `{"entries":[]}`)
		}
	}))
	defer srv.Close()
	got, err := client.New(srv.URL, "").AuditEntries(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"a", "b", "c"}) {
		t.Errorf("entries %q; want a b c", ids)
	}
	if want := []string{"start=0&end=10", "start=2&end=10", "start=3&end=10"}; !slices.Equal(queries, want) {
		t.Errorf("queries %q; want %q", queries, want)
	}
}

// TestRetryTransport: the transport `writ mcp proxy` relays through sends
// a request again, body and all, while it is answered 503 or 429, and
// hands back the last answer once its budget is spent.
func TestRetryTransport(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		n := len(bodies)
		mu.Unlock()
		if n < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: client.RetryTransport(nil, time.Minute)}
	resp, err := hc.Post(srv.URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	if resp.StatusCode != 200 || len(bodies) != 3 || bodies[2] != `{"jsonrpc":"2.0"}` {
		t.Errorf("status %d after %q; want 200 on the third try with the same body", resp.StatusCode, bodies)
	}
	mu.Unlock()
	busy := newServer(t, 429, `{"error":{"code":"rate_limited","message":"m"}}`)
	hc = &http.Client{Transport: client.RetryTransport(nil, 200*time.Millisecond)}
	resp, err = hc.Get(busy.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || len(busy.requests()) < 2 {
		t.Errorf("always 429: status %d after %d requests; want 429 after retries", resp.StatusCode, len(busy.requests()))
	}
}
