package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/runs"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// t0 is the fixed start of every fixture's clock.
var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// Fixture limits, set explicitly so the boundary tests know them.
const (
	testLeeway      = 30 * time.Second
	testMaxLifetime = 24 * time.Hour
	trustDomain     = "writ.test"
)

// fixture is an API over a real SQLite store in t.TempDir(), served by an
// httptest server, with a fixed clock and these principals:
//
//   - alice: human, admins + maintainers, signs with Ed25519 (SSH key line);
//   - bob: human, maintainers only, signs with ECDSA P-256 (PEM);
//   - carol: human, configured only in the Humans map (no key);
//   - tickets: system signer, ECDSA P-256;
//   - ghost: a key in the ring but no signer configuration;
//   - mallory: a key nobody configured.
type fixture struct {
	t      *testing.T
	clock  *writtest.Clock
	store  *sqlstore.DB
	dbPath string
	ring   *trigger.KeyRing
	rules  *trigger.Rules
	humans map[string]*writ.Signer
	keys   map[string]crypto.Signer
	logs   *writtest.SyncBuffer
	api    *httpapi.API
	svc    *runs.Service
	srv    *httptest.Server
	url    string
	// tokens are API tokens of alice and bob, valid for a day.
	tokens map[string]string
	// created counts OnRunCreated calls.
	createdMu sync.Mutex
	ids       *testKeys
	created   []writ.RunID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, clock: writtest.NewClock(t0), logs: &writtest.SyncBuffer{}, keys: map[string]crypto.Signer{}, tokens: map[string]string{}}
	f.dbPath = filepath.Join(t.TempDir(), "writ.db")
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: "sqlite://" + f.dbPath, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store = store

	f.keys["alice"] = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{'a'}, 32))
	f.keys["ghost"] = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{'g'}, 32))
	f.keys["mallory"] = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{'m'}, 32))
	for _, n := range []string{"bob", "tickets"} {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[n] = k
	}
	f.ring = trigger.NewKeyRing()
	for _, n := range []string{"alice", "ghost"} {
		if _, err := f.ring.Add(n, sshLine(t, f.keys[n].Public())); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"bob", "tickets"} {
		if _, err := f.ring.Add(n, pkixPEM(t, f.keys[n].Public())); err != nil {
			t.Fatal(err)
		}
	}
	alice := &writ.Signer{Name: "alice", Kind: writ.SignerHuman, Groups: []string{"maintainers", "admins"},
		MayAgents: []string{"*"}, MayProfiles: []string{"refactor", "review"}}
	bob := &writ.Signer{Name: "bob", Kind: writ.SignerHuman, Groups: []string{"maintainers"},
		MayAgents: []string{"*"}, MayProfiles: []string{"refactor", "review"}}
	carol := &writ.Signer{Name: "carol", Kind: writ.SignerHuman, Groups: []string{"maintainers"}}
	tickets := &writ.Signer{Name: "tickets", Kind: writ.SignerSystem, MayAgents: []string{"refactor-bot"}, MayProfiles: []string{"refactor"}}
	f.rules = &trigger.Rules{
		Signers: map[string]*writ.Signer{"alice": alice, "bob": bob, "tickets": tickets},
		Agents: map[string]*writ.Agent{
			"refactor-bot": {Name: "refactor-bot", Owner: "alice", Profiles: []string{"refactor"}, Repos: []string{"acme/*"}},
			"review-bot":   {Name: "review-bot", Owner: "alice", Profiles: []string{"review"}, Repos: []string{"acme/*"}},
			"release-bot":  {Name: "release-bot", Owner: "alice", Profiles: []string{"release"}, Repos: []string{"acme/*"}},
			"old-bot":      {Name: "old-bot", Owner: "alice", Profiles: []string{"refactor"}, Repos: []string{"acme/*"}, Disabled: true},
		},
		Profiles: map[string]*writ.Profile{
			"refactor": {Name: "refactor", MaxDuration: time.Hour, Tools: []string{"read", "edit", "shell:build", "shell:test"}, Hosts: []string{"proxy.golang.org"}},
			"review":   {Name: "review", MaxDuration: 30 * time.Minute, Tools: []string{"read"}},
			"release":  {Name: "release", MaxDuration: time.Hour, Tools: []string{"read"}},
		},
		Leeway:      testLeeway,
		MaxLifetime: testMaxLifetime,
	}
	f.humans = map[string]*writ.Signer{"alice": alice, "bob": bob, "carol": carol}
	f.api, f.srv = f.newAPI(f.humans)
	f.url = f.srv.URL
	for _, h := range []string{"alice", "bob"} {
		f.tokens[h] = f.storeToken(h, t0, 24*time.Hour)
	}
	return f
}

// newAPI serves another API over the fixture's store, keys and clock, with
// the given configured humans.
func (f *fixture) newAPI(humans map[string]*writ.Signer) (*httpapi.API, *httptest.Server) {
	f.t.Helper()
	if f.ids == nil {
		f.ids = newTestKeys(f.t)
	}
	api, svc := f.build(f.store, humans, nil, func(r *writ.Run) {
		f.createdMu.Lock()
		defer f.createdMu.Unlock()
		f.created = append(f.created, r.ID)
	})
	f.svc = svc
	srv := httptest.NewServer(api)
	f.t.Cleanup(srv.Close)
	svc.SetPublicURL(srv.URL)
	return api, srv
}

// testStore is what an API and its runs read: the fixture's store, or a
// test's wrapper of it.
type testStore interface {
	httpapi.Store
	runs.Store
	runs.Lifecycle
}

// build wires a runs.Service and an API over store with the fixture's
// keys, rules and clock, as package server does.
func (f *fixture) build(store testStore, humans map[string]*writ.Signer, audiences []string, onCreated func(*writ.Run)) (*httpapi.API, *runs.Service) {
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc := runs.New(runs.Config{
		Store: store, Lifecycle: store, Ring: f.ring, Rules: f.rules, Humans: humans, TrustDomain: trustDomain,
		Identity: f.ids, PublicURL: "http://writ.invalid", Audiences: audiences,
		Logger: logger, Now: f.clock.Now, Registerer: reg, OnRunCreated: onCreated,
	})
	api := httpapi.New(httpapi.Config{
		Store: store, Runs: svc,
		RotateIdentity: func(context.Context, string) (string, error) { return f.ids.rotate(f.t), nil },
		Logger:         logger, Now: f.clock.Now, Registry: reg,
	})
	return api, svc
}

// storeToken stores an API token for human, issued at now for ttl, directly
// in the store, and returns its secret string.
func (f *fixture) storeToken(human string, now time.Time, ttl time.Duration) string {
	f.t.Helper()
	secret, tok := writ.NewHumanToken(human, "test", now, ttl)
	ev := &writ.Event{Type: writ.EventTokenIssued, Actor: "test", Subject: writ.HumanActor(human), Details: map[string]any{"tokenId": tok.ID}}
	if err := f.store.CreateToken(context.Background(), tok, ev); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

func sshLine(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(sk))
}

func pkixPEM(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// trig returns the template trigger of issuer at the fixture's clock,
// changed by mod.
func (f *fixture) trig(issuer string, mod func(*writ.Trigger)) writ.Trigger {
	t := trigger.Template(f.clock.Now(), issuer)
	if mod != nil {
		mod(&t)
	}
	return t
}

func (f *fixture) payload(tr writ.Trigger) []byte {
	f.t.Helper()
	b, err := json.Marshal(tr)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// signDSSE signs payload with key's DSSE envelope.
func (f *fixture) signDSSE(key string, payload []byte) []byte {
	f.t.Helper()
	b, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, f.keys[key])
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) signSSH(key string, payload []byte) []byte {
	f.t.Helper()
	b, err := trigger.SignSSH(payload, writ.TriggerSSHNS, f.keys[key])
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// signed returns a DSSE-signed template trigger by signer, changed by mod.
func (f *fixture) signed(signer string, mod func(*writ.Trigger)) []byte {
	f.t.Helper()
	return f.signDSSE(signer, f.payload(f.trig(signer, mod)))
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; hdr is pairs of header names and values.
func (f *fixture) do(method, path, token string, body []byte, hdr ...string) response {
	f.t.Helper()
	return doURL(f.t, f.url, method, path, token, body, hdr...)
}

func doURL(t *testing.T, base, method, path, token string, body []byte, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// startRun posts a signed trigger.
func (f *fixture) startRun(body []byte) response {
	f.t.Helper()
	return f.do("POST", "/v1/runs", "", body)
}

// mustStart posts a signed trigger that must be accepted and returns the run.
func (f *fixture) mustStart(body []byte) runView {
	f.t.Helper()
	r := f.startRun(body)
	if r.status != http.StatusCreated {
		f.t.Fatalf("POST /v1/runs = %d %s; want 201", r.status, r.body)
	}
	return decodeRun(f.t, r.body)
}

// runView is the JSON of a run as the API shows it.
type runView struct {
	writ.Run
	SPIFFEID string `json:"spiffeId"`
}

func decodeRun(t *testing.T, b []byte) runView {
	t.Helper()
	var v runView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode run %s: %v", b, err)
	}
	return v
}

// errorEnvelope checks that b is exactly the error envelope of docs/design.md
// §4.8 ({"error": {"code", "message", ...}} with nothing else) and returns
// its inside.
func errorEnvelope(t *testing.T, b []byte) api.ErrorDetail {
	t.Helper()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(b, &outer); err != nil {
		t.Fatalf("error body %q is not a JSON object: %v", b, err)
	}
	if len(outer) != 1 || outer["error"] == nil {
		t.Fatalf("error body %s: want exactly one key \"error\"", b)
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(outer["error"], &inner); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	for k := range inner {
		switch k {
		case "code", "message", "items", "decision", "approval":
		default:
			t.Errorf("error body %s: unexpected key %q", b, k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(outer["error"]))
	dec.DisallowUnknownFields()
	var d api.ErrorDetail
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	if d.Code == "" || d.Message == "" {
		t.Errorf("error body %s: want a non-empty code and message", b)
	}
	return d
}

// wantError checks r's status, JSON content type and error code.
func wantError(t *testing.T, r response, status int, code string) api.ErrorDetail {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d; want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q; want nosniff", got)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id")
	}
	d := errorEnvelope(t, r.body)
	if d.Code != code {
		t.Errorf("error code = %q; want %q (message %q)", d.Code, code, d.Message)
	}
	return d
}

// event is a stored event with its body decoded.
type event struct {
	writ.Event
	raw []byte
}

// lastPos is the outbox position of the newest event.
func (f *fixture) lastPos() int64 {
	f.t.Helper()
	evs := f.eventsAfter(0)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].pos
}

type posEvent struct {
	event
	pos int64
}

// eventsAfter returns every event after outbox position pos.
func (f *fixture) eventsAfter(pos int64) []posEvent {
	f.t.Helper()
	return readEvents(f.t, f.store, pos)
}

func readEvents(t *testing.T, store *sqlstore.DB, pos int64) []posEvent {
	t.Helper()
	var out []posEvent
	for {
		evs, err := store.Events(context.Background(), pos, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, se := range evs {
			var e writ.Event
			if err := json.Unmarshal(se.Body, &e); err != nil {
				t.Fatalf("event %d: %v", se.Pos, err)
			}
			if e.Type != se.Type || e.Run != se.Run {
				t.Fatalf("event %d: body type/run %q/%q differ from columns %q/%q", se.Pos, e.Type, e.Run, se.Type, se.Run)
			}
			out = append(out, posEvent{event: event{Event: e, raw: se.Body}, pos: se.Pos})
			pos = se.Pos
		}
	}
}

func types(evs []posEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// metric scrapes /metrics of base and returns the value of the sample
// name{labels} (labels as written, e.g. `reason="replay"`), 0 when absent.
func metric(t *testing.T, base, name, labels string) float64 {
	t.Helper()
	r := doURL(t, base, "GET", "/metrics", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", r.status, r.body)
	}
	want := name
	if labels != "" {
		want += "{" + labels + "}"
	}
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, want+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// runs lists every run in the store.
func (f *fixture) runs() []*writ.Run {
	f.t.Helper()
	rs, err := f.store.ListRuns(context.Background(), writ.RunFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	return rs
}

func (f *fixture) getRun(id writ.RunID) *writ.Run {
	f.t.Helper()
	r, err := f.store.GetRun(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// testKeys is an in-memory identity key set for the API under test.
type testKeys struct {
	mu     sync.Mutex
	signer *token.Signer
	pubs   []token.PublicKey
}

func newTestKeys(t *testing.T) *testKeys {
	k := &testKeys{}
	k.rotate(t)
	return k
}

func (k *testKeys) rotate(t *testing.T) string {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := token.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.signer = s
	k.pubs = append(k.pubs, token.PublicKey{ID: s.KeyID(), Key: &priv.PublicKey})
	return s.KeyID()
}

func (k *testKeys) Current() *token.Signer {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.signer
}

func (k *testKeys) Lookup(kid string) (*ecdsa.PublicKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.pubs {
		if p.ID == kid {
			return p.Key, true
		}
	}
	return nil, false
}

func (k *testKeys) Published() []token.PublicKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]token.PublicKey(nil), k.pubs...)
}
