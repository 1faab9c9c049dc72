package httpapi_test

// Benchmarks of per-request authentication (issue 3, "Speed"; results in
// docs/performance.md, "Identity"). Every request goes through the real
// handler (api.ServeHTTP into an httptest.ResponseRecorder): no network, so
// the cost of authenticating is not hidden under loopback TCP.
//
//	go test -run='^$' -bench=. -benchmem ./httpapi/
//
// The four variants of GET /v1/runs/{id}, side by side:
//
//	BenchmarkAuthHuman          human API token: the plain bearer check (a store read of the token)
//	BenchmarkAuthRunBearer      the run's unbound JWT-SVID: verify + run-state check, cache warm
//	BenchmarkAuthRunBearerCold  the same with the cache emptied before every request (state read from SQLite)
//	BenchmarkAuthRunDPoP        a DPoP-bound JWT-SVID with a fresh proof per request: verify + proof
//	                            verify + replay insert into the store + run-state check (warm)
//
// Each reports ns/op (mean) and, from every request timed on its own,
// p50-us and p99-us. DPoP proofs are made before the timer starts, one per
// request, each used once; the cost of making one is reported apart
// (proof-make-us), since the client pays it, not the server.
// BenchmarkAuthParts times the pieces alone, and BenchmarkStartRun* the run
// start with and without a proof.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/runs"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// authBenchURL is the API's public URL: the htu of every proof starts with
// it. Nothing listens there; requests go straight to ServeHTTP.
const authBenchURL = "http://writ.bench"

// authBenchEnv is an API over a real SQLite store (WAL, durability normal,
// the default) in a temporary directory, with one human (alice) who holds an
// API token and signs triggers, and a fixed clock, so no token or proof
// made before the timer starts goes stale however long a benchmark runs.
// The logger formats info-level records and discards them, as in
// server/bench_test.go, so logging is part of the cost.
type authBenchEnv struct {
	api     *httpapi.API
	runs    *runs.Service
	store   *sqlstore.DB
	keys    *authBenchKeys
	now     time.Time
	signer  crypto.Signer // alice's trigger key
	human   string        // alice's API token
	humanID string        // its id
}

// authBenchKeys is an in-memory identity key set with one key.
type authBenchKeys struct {
	signer *token.Signer
	pub    token.PublicKey
}

func (k *authBenchKeys) Current() *token.Signer { return k.signer }

func (k *authBenchKeys) Lookup(kid string) (*ecdsa.PublicKey, bool) {
	if kid == k.pub.ID {
		return k.pub.Key, true
	}
	return nil, false
}

func (k *authBenchKeys) Published() []token.PublicKey { return []token.PublicKey{k.pub} }

func newAuthBenchEnv(b *testing.B) *authBenchEnv {
	b.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { return now }
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: "sqlite://" + filepath.Join(b.TempDir(), "writ.db"), Now: clock})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })

	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ts, err := token.NewSigner(priv)
	if err != nil {
		b.Fatal(err)
	}
	keys := &authBenchKeys{signer: ts, pub: token.PublicKey{ID: ts.KeyID(), Key: &priv.PublicKey}}

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sk, err := ssh.NewPublicKey(edKey.Public())
	if err != nil {
		b.Fatal(err)
	}
	ring := trigger.NewKeyRing()
	if _, err := ring.Add("alice", string(ssh.MarshalAuthorizedKey(sk))); err != nil {
		b.Fatal(err)
	}
	alice := &writ.Signer{Name: "alice", Kind: writ.SignerHuman, Groups: []string{"maintainers", "admins"},
		MayAgents: []string{"*"}, MayProfiles: []string{"refactor"}}
	rules := &trigger.Rules{
		Signers: map[string]*writ.Signer{"alice": alice},
		Agents: map[string]*writ.Agent{
			"refactor-bot": {Name: "refactor-bot", Owner: "alice", Profiles: []string{"refactor"}, Repos: []string{"acme/*"}},
		},
		Profiles: map[string]*writ.Profile{
			"refactor": {Name: "refactor", MaxDuration: time.Hour, Tools: []string{"read", "edit", "shell:build", "shell:test"}},
		},
		Leeway:      30 * time.Second,
		MaxLifetime: 24 * time.Hour,
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := runs.New(runs.Config{
		Store: store, Lifecycle: store, Ring: ring, Rules: rules, Humans: map[string]*writ.Signer{"alice": alice},
		TrustDomain: "writ.bench", Identity: keys, PublicURL: authBenchURL, Logger: logger, Now: clock, Registerer: reg,
	})
	api := httpapi.New(httpapi.Config{Store: store, Runs: svc, Logger: logger, Now: clock, Registry: reg})
	secret, tok := writ.NewHumanToken("alice", "bench", now, 24*time.Hour)
	ev := &writ.Event{Type: writ.EventTokenIssued, Actor: "bench", Subject: writ.HumanActor("alice"), Details: map[string]any{"tokenId": tok.ID}}
	if err := store.CreateToken(ctx, tok, ev); err != nil {
		b.Fatal(err)
	}
	return &authBenchEnv{api: api, runs: svc, store: store, keys: keys, now: now, signer: edKey, human: secret, humanID: tok.ID}
}

// triggers signs n template triggers (DSSE, Ed25519) with unique ids.
func (e *authBenchEnv) triggers(b *testing.B, n int) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	for i := range out {
		p, err := json.Marshal(trigger.Template(e.now, "alice"))
		if err != nil {
			b.Fatal(err)
		}
		if out[i], err = trigger.SignDSSE(p, writ.TriggerPayloadType, e.signer); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// post is POST /v1/runs of a signed trigger, with a DPoP proof when dpop is
// not empty.
func (e *authBenchEnv) post(body []byte, dpop string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/runs", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if dpop != "" {
		req.Header.Set("DPoP", dpop)
	}
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	return rec
}

// start starts one run (DPoP-bound when key is not nil) and returns it with
// its first token.
func (e *authBenchEnv) start(b *testing.B, key *ecdsa.PrivateKey) api.StartedRun {
	b.Helper()
	proof := ""
	if key != nil {
		var err error
		if proof, err = token.Proof(key, http.MethodPost, authBenchURL+"/v1/runs", "", e.now); err != nil {
			b.Fatal(err)
		}
	}
	rec := e.post(e.triggers(b, 1)[0], proof)
	if rec.Code != http.StatusCreated {
		b.Fatalf("POST /v1/runs = %d %s", rec.Code, rec.Body)
	}
	var sr api.StartedRun
	if err := json.Unmarshal(rec.Body.Bytes(), &sr); err != nil {
		b.Fatal(err)
	}
	want := "Bearer"
	if key != nil {
		want = "DPoP"
	}
	if sr.TokenType != want || sr.Token == "" {
		b.Fatalf("POST /v1/runs gave a %q token; want %s", sr.TokenType, want)
	}
	return sr
}

// get is GET path with the given Authorization header and DPoP proof.
func (e *authBenchEnv) get(path, authz, dpop string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Authorization", authz)
	if dpop != "" {
		req.Header.Set("DPoP", dpop)
	}
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	return rec.Code
}

// reportLatencies adds p50-us and p99-us of the requests timed one by one.
func reportLatencies(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	q := func(p float64) float64 { return float64(s[int(p*float64(len(s)-1))]) / 1e3 }
	b.ReportMetric(q(0.50), "p50-us")
	b.ReportMetric(q(0.99), "p99-us")
}

// benchGet times b.N requests to path, each on its own; before, when not
// nil, runs first in each iteration (inside the timing) and dpop, when not
// nil, gives the i-th request's proof.
func benchGet(b *testing.B, e *authBenchEnv, path, authz string, before func(), dpop []string) {
	b.Helper()
	// One untimed request first: the route, the cache and the store's
	// statements are warm, and a misconfiguration fails here.
	warm := ""
	if dpop != nil {
		warm, dpop = dpop[0], dpop[1:]
	}
	if code := e.get(path, authz, warm); code != http.StatusOK {
		b.Fatalf("GET %s = %d; want 200", path, code)
	}
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := ""
		if dpop != nil {
			p = dpop[i]
		}
		t := time.Now()
		if before != nil {
			before()
		}
		code := e.get(path, authz, p)
		lat[i] = time.Since(t)
		if code != http.StatusOK {
			b.Fatalf("request %d: GET %s = %d; want 200", i, path, code)
		}
	}
	b.StopTimer()
	reportLatencies(b, lat)
}

// makeProofs makes n proofs for method url bound to accessToken. report,
// called after the timed loop (b.ResetTimer drops metrics reported before
// it), adds what making one cost the client: proof-make-us.
func makeProofs(b *testing.B, key *ecdsa.PrivateKey, method, url, accessToken string, now time.Time, n int) (proofs []string, report func()) {
	b.Helper()
	out := make([]string, n)
	t := time.Now()
	for i := range out {
		var err error
		if out[i], err = token.Proof(key, method, url, accessToken, now); err != nil {
			b.Fatal(err)
		}
	}
	us := float64(time.Since(t).Nanoseconds()) / float64(n) / 1e3
	return out, func() { b.ReportMetric(us, "proof-make-us") }
}

// BenchmarkAuthHuman is the baseline: a human's API token (a prefix check,
// a store read of the token by id, a constant-time hash compare).
func BenchmarkAuthHuman(b *testing.B) {
	e := newAuthBenchEnv(b)
	sr := e.start(b, nil)
	benchGet(b, e, "/v1/runs/"+string(sr.ID), "Bearer "+e.human, nil, nil)
}

// BenchmarkAuthRunBearer: the run's own unbound JWT-SVID; the run-state
// check is answered by the cache (warm).
func BenchmarkAuthRunBearer(b *testing.B) {
	e := newAuthBenchEnv(b)
	sr := e.start(b, nil)
	benchGet(b, e, "/v1/runs/"+string(sr.ID), "Bearer "+sr.Token, nil, nil)
}

// BenchmarkAuthRunBearerCold: the same with the run forgotten by the cache
// before every request (runs.Service.Changed, as after any state change), so the
// state check reads the run from SQLite.
func BenchmarkAuthRunBearerCold(b *testing.B) {
	e := newAuthBenchEnv(b)
	sr := e.start(b, nil)
	benchGet(b, e, "/v1/runs/"+string(sr.ID), "Bearer "+sr.Token, func() { e.runs.Changed(sr.ID) }, nil)
}

// BenchmarkAuthRunDPoP: a DPoP-bound JWT-SVID with a fresh single-use proof
// per request: token verify, proof verify (signature under the embedded
// jwk, htm, htu, iat, ath, jkt), the replay insert into the store (one
// write transaction: nothing else is writing, so one commit per request),
// and the run-state check (warm cache).
func BenchmarkAuthRunDPoP(b *testing.B) {
	e := newAuthBenchEnv(b)
	key, err := token.NewDPoPKey()
	if err != nil {
		b.Fatal(err)
	}
	sr := e.start(b, key)
	path := "/v1/runs/" + string(sr.ID)
	proofs, report := makeProofs(b, key, http.MethodGet, authBenchURL+path, sr.Token, e.now, b.N+1)
	benchGet(b, e, path, "DPoP "+sr.Token, nil, proofs)
	report()
}

// benchParallel sends b.N requests from 16 goroutines (8 per core on 2
// cores), so the single store writer can batch replay inserts into one
// commit (group commit). dpop, when not nil, holds one proof per request.
func benchParallel(b *testing.B, e *authBenchEnv, path, authz string, dpop []string) {
	b.Helper()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			p := ""
			if dpop != nil {
				p = dpop[i]
			}
			if code := e.get(path, authz, p); code != http.StatusOK {
				b.Errorf("request %d: GET %s = %d; want 200", i, path, code)
				return
			}
		}
	})
}

// BenchmarkAuthRunBearerParallel and BenchmarkAuthRunDPoPParallel: the same
// requests as BenchmarkAuthRunBearer and BenchmarkAuthRunDPoP, 16 at a time.
func BenchmarkAuthRunBearerParallel(b *testing.B) {
	e := newAuthBenchEnv(b)
	sr := e.start(b, nil)
	benchParallel(b, e, "/v1/runs/"+string(sr.ID), "Bearer "+sr.Token, nil)
}

func BenchmarkAuthRunDPoPParallel(b *testing.B) {
	e := newAuthBenchEnv(b)
	key, err := token.NewDPoPKey()
	if err != nil {
		b.Fatal(err)
	}
	sr := e.start(b, key)
	path := "/v1/runs/" + string(sr.ID)
	proofs, report := makeProofs(b, key, http.MethodGet, authBenchURL+path, sr.Token, e.now, b.N)
	benchParallel(b, e, path, "DPoP "+sr.Token, proofs)
	report()
}

// BenchmarkAuthParts times the pieces of the checks above on their own,
// with the same tokens, proofs and store: what each adds to a request.
func BenchmarkAuthParts(b *testing.B) {
	e := newAuthBenchEnv(b)
	ctx := context.Background()
	key, err := token.NewDPoPKey()
	if err != nil {
		b.Fatal(err)
	}
	bound := e.start(b, key)
	path := "/v1/runs/" + string(bound.ID)
	v := &token.Verifier{Keys: e.keys.Lookup, Issuer: authBenchURL, Leeway: time.Minute, Now: func() time.Time { return e.now }}
	proof, err := token.Proof(key, http.MethodGet, authBenchURL+path, bound.Token, e.now)
	if err != nil {
		b.Fatal(err)
	}
	jkt, err := token.Thumbprint(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}

	// The run token's verification (signature, header and claims).
	b.Run("VerifyToken", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(bound.Token, authBenchURL+"/v1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The proof's verification, without the replay check.
	b.Run("VerifyProof", func(b *testing.B) {
		b.ReportAllocs()
		check := token.ProofCheck{Method: http.MethodGet, URL: authBenchURL + path, AccessToken: bound.Token, JKT: jkt, Now: e.now, Leeway: time.Minute}
		for b.Loop() {
			if _, err := token.VerifyProof(proof, check); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The replay insert: one write transaction per proof, one at a time.
	b.Run("UseProof", func(b *testing.B) {
		b.ReportAllocs()
		prefix := "part-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
		i := 0
		for b.Loop() {
			i++
			if err := e.store.UseProof(ctx, jkt, prefix+strconv.Itoa(i), e.now.Add(3*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The store read of a cold run-state check (and of showRun itself).
	b.Run("GetRun", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.store.GetRun(ctx, bound.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The store read of the human token check.
	b.Run("GetToken", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.store.GetToken(ctx, e.humanID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchStartRun posts b.N pre-signed unique triggers one at a time; with
// dpop, each carries its own pre-made proof, so its run's first token is
// bound (one more replay insert, in a transaction of its own, before the
// run's).
func benchStartRun(b *testing.B, dpop bool) {
	e := newAuthBenchEnv(b)
	bodies := e.triggers(b, b.N)
	var proofs []string
	report := func() {}
	if dpop {
		key, err := token.NewDPoPKey()
		if err != nil {
			b.Fatal(err)
		}
		proofs, report = makeProofs(b, key, http.MethodPost, authBenchURL+"/v1/runs", "", e.now, b.N)
	}
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := ""
		if dpop {
			p = proofs[i]
		}
		t := time.Now()
		rec := e.post(bodies[i], p)
		lat[i] = time.Since(t)
		if rec.Code != http.StatusCreated {
			b.Fatalf("run %d: POST /v1/runs = %d %s", i, rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	reportLatencies(b, lat)
	report()
}

func BenchmarkStartRunBearer(b *testing.B) { benchStartRun(b, false) }
func BenchmarkStartRunDPoP(b *testing.B)   { benchStartRun(b, true) }
