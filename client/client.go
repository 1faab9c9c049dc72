// Package client is a typed Go client for writ's HTTP API, used by the CLI,
// end-to-end tests and SDK users. It maps error responses back to
// [writ.Error], so callers see the server's safe message and code.
package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/token"
)

// Client talks to one writ server.
type Client struct {
	base  string
	token string
	http  *http.Client
	// dpop, when set, signs a DPoP proof for every request, and the token
	// is sent with the DPoP scheme (RFC 9449).
	dpop *ecdsa.PrivateKey
	now  func() time.Time
	// retryFor bounds how long a request is retried while the server
	// answers 503 or 429 (0: DefaultRetryFor; negative: never).
	retryFor time.Duration
}

// DefaultRetryFor is how long a request is retried, by default, while the
// server says it is overloaded (503) or the caller is over its rate limit
// (429): within a hook's or a git helper's own deadline, which the
// request's context can shorten further.
const DefaultRetryFor = 20 * time.Second

// WithRetry returns a copy of c that retries a request answered 503 or
// 429 for at most d (negative: never), waiting as the answer's
// Retry-After says, with exponential backoff.
func (c *Client) WithRetry(d time.Duration) *Client {
	cc := *c
	cc.retryFor = d
	return &cc
}

// NewRun returns a client acting as a run: with its API token, and, when
// key is not nil, the DPoP key that token is bound to.
func NewRun(baseURL, tok string, key *ecdsa.PrivateKey) *Client {
	c := New(baseURL, tok)
	c.dpop = key
	return c
}

// New returns a client for the server at baseURL, authenticating with token
// (a human API token; empty for the public routes).
func New(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Timeout: 60 * time.Second}}
}

// String redacts the token.
func (c *Client) String() string { return "client.Client{" + c.base + "}" }

// BaseURL is the server URL the client talks to.
func (c *Client) BaseURL() string { return c.base }

// WithHTTPClient returns a copy of c that sends its requests with hc: a
// transport with the server's CA, a proxy, a recorder in a test. Build
// keeps its own longer timeout.
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	cc := *c
	cc.http = hc
	return &cc
}

// Run is a run as the API returns it, with its SPIFFE ID. The token
// fields are set only by StartRun (the run's first API token), or by a
// caller that holds a token of the run from elsewhere (a delegation's
// access token); GetRun, ListRuns and Transition leave them empty.
type Run = api.StartedRun

// runOf is the Run of a run view, without a token.
func runOf(v *api.RunView) Run { return Run{Run: v.Run, SPIFFEID: v.SPIFFEID} }

// StartRun posts a signed trigger (either wire form of docs/design.md §4.1).
// With a DPoP key, the run's first token is bound to it.
func (c *Client) StartRun(ctx context.Context, signed []byte, dpopKey *ecdsa.PrivateKey) (*Run, error) {
	var run Run
	cc := *c
	cc.token, cc.dpop = "", dpopKey
	err := cc.do(ctx, http.MethodPost, "/v1/runs", bytes.NewReader(signed), &run)
	return &run, err
}

// MintedToken is a token minted for a run.
type MintedToken = api.RunTokenResponse

// MintToken asks for a token of the calling run for audience (empty: the
// API); bind asks for a DPoP-bound API token (a refresh). Only a client
// made by NewRun with the DPoP key may mint.
func (c *Client) MintToken(ctx context.Context, runID, audience string, bind bool) (*MintedToken, error) {
	body, _ := json.Marshal(api.RunTokenRequest{Audience: audience, Bind: bind})
	var t MintedToken
	err := c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(runID)+"/token", bytes.NewReader(body), &t)
	return &t, err
}

// RotateKey rotates one of the server's keys (admins) and returns the new
// key id.
func (c *Client) RotateKey(ctx context.Context, kind string) (string, error) {
	var out api.RotateKeyResponse
	err := c.do(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(kind)+"/rotate", nil, &out)
	return out.KID, err
}

// GetRun returns one run.
func (c *Client) GetRun(ctx context.Context, id string) (*Run, error) {
	var v api.RunView
	err := c.do(ctx, http.MethodGet, "/v1/runs/"+url.PathEscape(id), nil, &v)
	run := runOf(&v)
	return &run, err
}

// ListRuns lists runs, newest first.
func (c *Client) ListRuns(ctx context.Context, f writ.RunFilter) ([]Run, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.Agent != "" {
		q.Set("agent", f.Agent)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out api.RunList
	path := "/v1/runs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	var runs []Run
	if out.Runs != nil {
		runs = make([]Run, 0, len(out.Runs))
	}
	for i := range out.Runs {
		runs = append(runs, runOf(&out.Runs[i]))
	}
	return runs, err
}

// Transition posts end, kill, suspend or resume for a run.
func (c *Client) Transition(ctx context.Context, id, verb, reason string) (*Run, error) {
	switch verb {
	case "end", "kill", "suspend", "resume":
	default:
		return nil, fmt.Errorf("client: unknown run verb %q", verb)
	}
	body, _ := json.Marshal(api.TransitionRequest{Reason: reason})
	var v api.RunView
	err := c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(id)+"/"+verb, bytes.NewReader(body), &v)
	run := runOf(&v)
	return &run, err
}

// Token is a newly created human API token.
type Token = api.TokenResponse

// CreateToken creates an API token for human (empty: the caller) valid for
// ttl (zero: the server's default).
func (c *Client) CreateToken(ctx context.Context, human string, ttl time.Duration) (*Token, error) {
	body, _ := json.Marshal(api.TokenRequest{Human: human, TTL: writ.Duration(max(ttl, 0))})
	var tok Token
	err := c.do(ctx, http.MethodPost, "/v1/tokens", bytes.NewReader(body), &tok)
	return &tok, err
}

// Ready reports whether the server answers /readyz.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil)
}

// kindOf maps an HTTP status back to an error kind.
func kindOf(status int, code string) writ.Kind {
	switch status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return writ.KindInvalid
	case http.StatusUnauthorized:
		return writ.KindUnauthenticated
	case http.StatusForbidden:
		if code == "approval_required" {
			return writ.KindApprovalPending
		}
		return writ.KindDenied
	case http.StatusNotFound:
		return writ.KindNotFound
	case http.StatusConflict:
		return writ.KindConflict
	case http.StatusRequestEntityTooLarge:
		return writ.KindTooLarge
	case http.StatusServiceUnavailable:
		return writ.KindUnavailable
	case http.StatusTooManyRequests:
		return writ.KindRateLimited
	}
	return writ.KindInternal
}

// do sends one API request, retrying it while the server answers 503
// (overloaded, the store cannot write) or 429 (over the rate limit): it
// waits what the answer's Retry-After says, at least an exponential
// backoff with jitter, within the client's retry budget and ctx's
// deadline. Then it fails closed with an error that says the server is
// overloaded (docs/design.md §4.8).
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	if c.base == "" {
		return errors.New("no writ server: set WRIT_URL (for example http://127.0.0.1:7300)")
	}
	var payload []byte
	if body != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		payload = b
	}
	budget := c.retryFor
	if budget == 0 {
		budget = DefaultRetryFor
	}
	start := time.Now()
	giveUp := start.Add(budget)
	if dl, ok := ctx.Deadline(); ok && dl.Before(giveUp) {
		giveUp = dl
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, method, path, payload, body != nil, out)
		var we *writ.Error
		if err == nil || budget < 0 || !errors.As(err, &we) || (we.Kind != writ.KindUnavailable && we.Kind != writ.KindRateLimited) {
			return err
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: retries of many clients spread out
		if we.RetryAfter > wait {
			wait = we.RetryAfter
		}
		backoff = min(2*backoff, 5*time.Second)
		if time.Now().Add(wait).After(giveUp) {
			what := "is overloaded"
			if we.Kind == writ.KindRateLimited {
				what = "refuses more requests of this caller for now (rate limit)"
			}
			return &writ.Error{Kind: we.Kind, Code: we.Code, RetryAfter: we.RetryAfter, Decision: we.Decision, Approval: we.Approval,
				Message: fmt.Sprintf("writ at %s %s: %s (tried %d times over %v; nothing was done, try again later)",
					c.base, what, we.Message, attempt, time.Since(start).Round(time.Millisecond))}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// once sends one request.
func (c *Client) once(ctx context.Context, method, path string, payload []byte, hasBody bool, out any) error {
	var body io.Reader
	if hasBody {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.dpop != nil:
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		u := *req.URL
		u.RawQuery, u.Fragment = "", ""
		proof, err := token.Proof(c.dpop, method, u.String(), c.token, now())
		if err != nil {
			return err
		}
		req.Header.Set("DPoP", proof)
		if c.token != "" {
			req.Header.Set("Authorization", "DPoP "+c.token)
		}
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach writ at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return &writ.Error{Kind: kindOf(resp.StatusCode, ""), Code: "http_" + strconv.Itoa(resp.StatusCode),
				Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status), RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
		}
		e := eb.Error
		return &writ.Error{Kind: kindOf(resp.StatusCode, e.Code), Code: e.Code, Message: e.Message, Items: e.Items, Decision: e.Decision, Approval: e.Approval,
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*rawBody); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s %s response: %w", method, path, err)
	}
	return nil
}

// retryAfter reads a Retry-After header in seconds (RFC 9110 §10.2.3; an
// HTTP date is read as no delay), capped at a minute.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Minute)
}

// AuditEntry is one audit log entry: Body holds the exact stored bytes.
type AuditEntry = api.AuditEntry

// AuditCheckpoint returns the latest signed checkpoint note; wait > 0 first
// waits (at most 10 s, server-side) until the log has that many entries.
func (c *Client) AuditCheckpoint(ctx context.Context, wait int64) ([]byte, error) {
	path := "/v1/audit/checkpoint"
	if wait > 0 {
		path += "?wait=" + strconv.FormatInt(wait, 10)
	}
	var raw rawBody
	err := c.do(ctx, http.MethodGet, path, nil, &raw)
	return raw, err
}

// AuditKey returns the log's public note verifier key.
func (c *Client) AuditKey(ctx context.Context) (string, error) {
	var out api.AuditKey
	err := c.do(ctx, http.MethodGet, "/v1/audit/key", nil, &out)
	return out.Key, err
}

// AuditCheckpoints returns up to limit stored checkpoints, newest first.
func (c *Client) AuditCheckpoints(ctx context.Context, limit int) ([]string, error) {
	var out api.AuditCheckpoints
	err := c.do(ctx, http.MethodGet, "/v1/audit/checkpoints?limit="+strconv.Itoa(limit), nil, &out)
	return out.Checkpoints, err
}

// AuditEntries returns the logged entries with index in [start, end), in
// pages of at most 1000.
func (c *Client) AuditEntries(ctx context.Context, start, end int64) ([]AuditEntry, error) {
	var all []AuditEntry
	for start < end {
		var out api.AuditEntries
		q := fmt.Sprintf("/v1/audit/entries?start=%d&end=%d", start, end)
		if err := c.do(ctx, http.MethodGet, q, nil, &out); err != nil {
			return nil, err
		}
		if len(out.Entries) == 0 {
			break
		}
		all = append(all, out.Entries...)
		start = out.Entries[len(out.Entries)-1].Seq + 1
	}
	return all, nil
}

// TraceEvent is one event of a run's trace.
type TraceEvent = api.TraceEvent

// Trace is a run and everything it did, in commit order.
type Trace = api.Trace

// Trace returns a run's timeline.
func (c *Client) Trace(ctx context.Context, run string) (*Trace, error) {
	var t Trace
	err := c.do(ctx, http.MethodGet, "/v1/trace/"+url.PathEscape(run), nil, &t)
	return &t, err
}

// rawBody receives a non-JSON response body as is.
type rawBody []byte
