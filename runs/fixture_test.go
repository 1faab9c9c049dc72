package runs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/runs"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

// The fixture is a runs.Service over real parts: a SQLite store in
// t.TempDir(), an in-memory ES256 identity key, a trigger key ring with one
// human signer, the configuration `writ init` writes (the agents,
// profiles, budgets, environments and repos of server/init.go), and the
// decision point with the embedded default policy bundle. Nothing is
// faked; only the clock is fixed, so no test depends on timing.

// t0 is the fixed start of every fixture's clock.
var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

const (
	trustDomain = "writ.test"
	publicURL   = "https://writ.test"
	downstream  = "https://vault.example.org"
	human       = "dev" // the one human signer, an admin
)

// idKeys is an in-memory identity key set with one key (runs.IdentityKeys).
type idKeys struct {
	signer *token.Signer
	pub    token.PublicKey
}

func (k *idKeys) Current() *token.Signer { return k.signer }

func (k *idKeys) Lookup(kid string) (*ecdsa.PublicKey, bool) {
	if kid == k.pub.ID {
		return k.pub.Key, true
	}
	return nil, false
}

func (k *idKeys) Published() []token.PublicKey { return []token.PublicKey{k.pub} }

// setup is the configuration a test may change before the Service is
// built: the defaults are those of `writ init`.
type setup struct {
	MaxDepth int
	Agents   []*writ.Agent
	Profiles []*writ.Profile
	Denials  decision.Denials
}

func defaultSetup() *setup {
	return &setup{
		MaxDepth: 3,
		Agents: []*writ.Agent{
			{Name: "refactor-bot", Owner: human, Profiles: []string{"refactor"}, Repos: []string{"acme/*"}},
			{Name: "review-bot", Owner: human, Profiles: []string{"review"}, Repos: []string{"acme/*"}},
			{Name: "release-bot", Owner: human, Profiles: []string{"release"}, Repos: []string{"acme/*"}},
		},
		Profiles: []*writ.Profile{
			{Name: "refactor", MaxDuration: time.Hour,
				Tools:   []string{"read", "edit", "shell:build", "shell:test", "shell:git", "exec:test", "exec:build", "mcp:everything/*"},
				Hosts:   []string{"proxy.golang.org", "sum.golang.org", "registry.npmjs.org"},
				Budgets: writ.Budgets{CallsPerMinute: 300, TotalCalls: 5000, Children: 3}},
			{Name: "review", MaxDuration: 30 * time.Minute, Tools: []string{"read", "web:fetch"},
				Budgets: writ.Budgets{CallsPerMinute: 300, TotalCalls: 2000}},
			{Name: "release", MaxDuration: time.Hour, Tools: []string{"read", "shell:build", "shell:test"},
				Environments: []string{"staging", "production"}, Secrets: true,
				Budgets: writ.Budgets{CallsPerMinute: 120, TotalCalls: 1000}},
		},
		Denials: decision.Denials{Max: 5, Window: 10 * time.Minute},
	}
}

// unlimited lifts every profile's budgets (0 = unlimited), so a test can
// build trees of runs.
func unlimited(s *setup) {
	for _, p := range s.Profiles {
		p.Budgets = writ.Budgets{}
	}
}

// fixture is a runs.Service and the real parts it runs on.
type fixture struct {
	t       testing.TB
	clock   *writtest.Clock
	store   *sqlstore.DB
	keys    *idKeys
	signKey *ecdsa.PrivateKey // the human's trigger key
	decider *decision.Point
	svc     *runs.Service
	human   *writ.Principal // the admin, as AuthenticateHuman returns it
}

func newFixture(t testing.TB, mod func(*setup)) *fixture {
	t.Helper()
	ctx := context.Background()
	cfg := defaultSetup()
	if mod != nil {
		mod(cfg)
	}
	f := &fixture{t: t, clock: writtest.NewClock(t0)}
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: "sqlite://" + filepath.Join(t.TempDir(), "writ.db"), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store = store

	idKey := mustKey(t)
	ts, err := token.NewSigner(idKey)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = &idKeys{signer: ts, pub: token.PublicKey{ID: ts.KeyID(), Key: &idKey.PublicKey}}

	f.signKey = mustKey(t)
	der, err := x509.MarshalPKIXPublicKey(&f.signKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ring := trigger.NewKeyRing()
	if _, err := ring.Add(human, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))); err != nil {
		t.Fatal(err)
	}
	dev := &writ.Signer{Name: human, Kind: writ.SignerHuman, Groups: []string{"maintainers", "admins"},
		MayAgents: []string{"*"}, MayProfiles: []string{"refactor", "review", "release"}}
	rules := &trigger.Rules{Signers: map[string]*writ.Signer{human: dev}, Agents: map[string]*writ.Agent{},
		Profiles: map[string]*writ.Profile{}, Leeway: time.Minute, MaxLifetime: 24 * time.Hour}
	for _, a := range cfg.Agents {
		rules.Agents[a.Name] = a
	}
	for _, p := range cfg.Profiles {
		rules.Profiles[p.Name] = p
	}

	envs := []decision.Environment{{Name: "staging"}, {Name: "production", Sensitive: true}}
	repos := []decision.RepoRules{{Name: "acme/api", Protected: []string{"main", "release/*"},
		ProtectedPaths: []string{".github/workflows/**", "CODEOWNERS", "policy/**"}}}
	bundle, err := policy.Load(ctx, policy.Default(), policy.LoadOptions{Source: "embedded",
		Config: decision.PolicyData(cfg.Profiles, envs, repos, cfg.Denials, "maintainers"), Now: f.clock.Now,
		Timeout: 10 * time.Second}) // generous: these tests are not about timeouts
	if err != nil {
		t.Fatal(err)
	}
	f.decider = decision.New(decision.Config{
		Store: store, Policy: policy.NewEngine(bundle), Environments: envs, Repos: repos, Denials: cfg.Denials,
		Now: f.clock.Now, OnRunChanged: func(id writ.RunID) { f.svc.Changed(id) },
	})
	f.svc = runs.New(runs.Config{
		Store: store, Lifecycle: store, Ring: ring, Rules: rules, Humans: map[string]*writ.Signer{human: dev},
		TrustDomain: trustDomain, PublicURL: publicURL, Identity: f.keys, Audiences: []string{downstream},
		Decider: f.decider, MaxDepth: cfg.MaxDepth, Now: f.clock.Now,
	})

	// The admin authenticates with a real API token.
	secret, tok := writ.NewHumanToken(human, "test", f.clock.Now(), 24*time.Hour)
	if err := store.CreateToken(ctx, tok, &writ.Event{Type: writ.EventTokenIssued, Actor: "test", Subject: writ.HumanActor(human)}); err != nil {
		t.Fatal(err)
	}
	if f.human, err = f.svc.Authenticate(ctx, "Bearer "+secret, runs.Proof{}, runs.Humans); err != nil {
		t.Fatal(err)
	}
	return f
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// holder is a run as its launcher holds it: its API token, bound to the
// launcher's own DPoP key (key nil: an unbound bearer token).
type holder struct {
	id    writ.RunID
	agent string
	tok   string
	key   *ecdsa.PrivateKey
	jkt   string
}

// start starts a run of the template trigger changed by mod, signed by the
// human, its first token bound to a fresh key, as `writ run start` does.
func (f *fixture) start(mod func(*writ.Trigger)) *holder {
	f.t.Helper()
	tr := trigger.Template(f.clock.Now(), human)
	if mod != nil {
		mod(&tr)
	}
	payload, err := json.Marshal(tr)
	if err != nil {
		f.t.Fatal(err)
	}
	signed, err := trigger.SignDSSE(payload, writ.TriggerPayloadType, f.signKey)
	if err != nil {
		f.t.Fatal(err)
	}
	key := mustKey(f.t)
	proof, err := token.Proof(key, "POST", publicURL+"/v1/runs", "", f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := f.svc.Start(context.Background(), runs.StartRequest{Trigger: signed,
		Proof: runs.Proof{Headers: []string{proof}, Method: "POST", Path: "/v1/runs"}})
	if err != nil {
		f.t.Fatalf("start: %v", err)
	}
	jkt, err := token.Thumbprint(&key.PublicKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return &holder{id: s.Run.ID, agent: s.Run.Agent, tok: s.Token.Token, key: key, jkt: jkt}
}

// authAs authenticates tok as the API does a request to method path: with
// the DPoP scheme and a fresh proof made by key, or as a bearer token when
// key is nil.
func (f *fixture) authAs(tok string, key *ecdsa.PrivateKey, method, path string, allow runs.Access) (*writ.Principal, error) {
	if key == nil {
		return f.svc.Authenticate(context.Background(), "Bearer "+tok, runs.Proof{Method: method, Path: path}, allow)
	}
	proof, err := token.Proof(key, method, publicURL+path, tok, f.clock.Now())
	if err != nil {
		return nil, err
	}
	return f.svc.Authenticate(context.Background(), "DPoP "+tok, runs.Proof{Headers: []string{proof}, Method: method, Path: path}, allow)
}

// auth authenticates h on a request about its own run.
func (f *fixture) auth(h *holder, method, path string, allow runs.Access) (*writ.Principal, error) {
	return f.authAs(h.tok, h.key, method, path, allow)
}

// principal is h authenticated for a call on its own run; it fails the
// test if h is refused.
func (f *fixture) principal(h *holder) *writ.Principal {
	f.t.Helper()
	p, err := f.auth(h, "GET", "/v1/runs/"+string(h.id), runs.OwnRun)
	if err != nil {
		f.t.Fatalf("authenticate %s: %v", h.id, err)
	}
	return p
}

// tryDelegate asks h for a child run whose first token is bound to a
// fresh key, as `writ run delegate` and the client do (subject_token: the
// caller's own token; the RFC 8693 grant type), authenticating h first as
// POST /v1/runs/{id}/delegate does. It never fails the test, so it may be
// called from any goroutine.
func (f *fixture) tryDelegate(h *holder, req api.DelegateRequest) (*holder, *runs.Delegated, error) {
	key, err := token.NewDPoPKey()
	if err != nil {
		return nil, nil, err
	}
	jkt, err := token.Thumbprint(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	req.DPoPJKT = jkt
	if req.SubjectToken == "" {
		req.SubjectToken = h.tok
	}
	if req.GrantType == "" {
		req.GrantType = api.GrantTokenExchange
	}
	if req.SubjectTokenType == "" {
		req.SubjectTokenType = api.TokenTypeJWT
	}
	p, err := f.auth(h, "POST", "/v1/runs/"+string(h.id)+"/delegate", runs.OwnRun)
	if err != nil {
		return nil, nil, err
	}
	d, err := f.svc.Delegate(context.Background(), p, &req)
	if err != nil {
		return nil, nil, err
	}
	return &holder{id: d.Run.ID, agent: d.Run.Agent, tok: d.Token.Token, key: key, jkt: jkt}, d, nil
}

// delegate is tryDelegate that fails the test on a refusal.
func (f *fixture) delegate(h *holder, req api.DelegateRequest) (*holder, *runs.Delegated) {
	f.t.Helper()
	k, d, err := f.tryDelegate(h, req)
	if err != nil {
		f.t.Fatalf("delegate from %s (%s/%s): %v", h.id, req.Agent, req.Profile, err)
	}
	return k, d
}

// tree builds under parent `children` refactor children, each of which
// delegates `grand` review grandchildren, and returns every descendant,
// children first.
func (f *fixture) tree(parent *holder, children, grand int) []*holder {
	f.t.Helper()
	var kids []*holder
	for range children {
		k, _ := f.delegate(parent, refactorReq())
		kids = append(kids, k)
	}
	all := slices.Clone(kids)
	for _, k := range kids {
		for range grand {
			g, _ := f.delegate(k, reviewReq(reviewScope()))
			all = append(all, g)
		}
	}
	return all
}

// decide asks the decision point about an action of run h, as
// POST /v1/decide does for a run's own token.
func (f *fixture) decide(h *holder, a writ.Action) (*writ.Decision, error) {
	p, err := f.auth(h, "POST", "/v1/decide", runs.TokenRun)
	if err != nil {
		return nil, err
	}
	run, err := f.svc.Get(context.Background(), p.Run)
	if err != nil {
		return nil, err
	}
	d, err := f.decider.Decide(context.Background(), &decision.Request{Run: run, Action: a, Via: "api", Actor: p.Actor()})
	if err != nil {
		return nil, err
	}
	if d.Obligations.Suspend && !d.DryRun {
		f.svc.Stale(run.ID)
	}
	return d, nil
}

// mustDecide is decide that fails the test on an error.
func (f *fixture) mustDecide(h *holder, a writ.Action) *writ.Decision {
	f.t.Helper()
	d, err := f.decide(h, a)
	if err != nil {
		f.t.Fatalf("decide %+v for %s: %v", a, h.id, err)
	}
	return d
}

// reviewScope is the narrow review scope of a child of the template
// refactor run: its repo read-only, src/** only, the read tool.
func reviewScope() *writ.Scope {
	return &writ.Scope{Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Paths: []string{"src/**"}}}, Tools: []string{"read"}}
}

// reviewReq asks for a review-bot child under profile review.
func reviewReq(scope *writ.Scope) api.DelegateRequest {
	return api.DelegateRequest{Agent: "review-bot", Profile: "review", Task: "review the rename", Scope: scope}
}

// refactorReq asks for a refactor-bot child that may itself delegate: the
// template's repo, writable, src/** only; read and edit.
func refactorReq() api.DelegateRequest {
	return api.DelegateRequest{Agent: "refactor-bot", Profile: "refactor", Task: "rename in src", Scope: &writ.Scope{
		Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**"}}}, Tools: []string{"read", "edit"}}}
}

// reviewRun makes the template trigger a review run.
func reviewRun(tr *writ.Trigger) {
	tr.Agent, tr.Profile = "review-bot", "review"
	tr.Scope.Tools = []string{"read"}
	tr.Scope.Repos[0].Write = false
}

// spiffe is the SPIFFE ID of run id of agent.
func spiffe(agent string, id writ.RunID) string {
	return "spiffe://" + trustDomain + "/agent/" + agent + "/run/" + string(id)
}

// claims verifies raw as a token for audience with the fixture's keys and
// returns what it says.
func (f *fixture) claims(raw, audience string) *token.Claims {
	f.t.Helper()
	v := &token.Verifier{Keys: f.keys.Lookup, Issuer: publicURL, Now: f.clock.Now}
	c, err := v.Verify(raw, audience)
	if err != nil {
		f.t.Fatalf("verify token: %v", err)
	}
	return c
}

// actSubs lists the subjects of an act chain, outermost first.
func actSubs(a *token.Actor) []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Subject)
	}
	return out
}

// get reads a run from the store.
func (f *fixture) get(id writ.RunID) *writ.Run {
	f.t.Helper()
	r, err := f.store.GetRun(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// events returns every event in the store.
func (f *fixture) events() []writ.Event {
	f.t.Helper()
	var out []writ.Event
	var pos int64
	for {
		evs, err := f.store.Events(context.Background(), pos, 1000)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, se := range evs {
			var e writ.Event
			if err := json.Unmarshal(se.Body, &e); err != nil {
				f.t.Fatal(err)
			}
			out = append(out, e)
			pos = se.Pos
		}
	}
}

// runEvents returns the types and actors of the events of run id.
func (f *fixture) runEvents(id writ.RunID) []string {
	f.t.Helper()
	var out []string
	for _, e := range f.events() {
		if e.Run == id {
			out = append(out, e.Type+" "+e.Actor)
		}
	}
	return out
}

// counts counts the runs and the events in the store.
func (f *fixture) counts() (runCount, events int) {
	f.t.Helper()
	counts, err := f.store.CountRuns(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, n := range counts {
		runCount += n
	}
	return runCount, len(f.events())
}

// descendants lists the descendants of id in the store, nearest first.
func (f *fixture) descendants(id writ.RunID) []writ.RunID {
	f.t.Helper()
	kids, err := f.store.Descendants(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return kids
}

// wantErr checks that err is a *writ.Error of kind and code, and returns
// it.
func wantErr(t testing.TB, err error, kind writ.Kind, code string) *writ.Error {
	t.Helper()
	var we *writ.Error
	if !errors.As(err, &we) || we.Code != code || we.Kind != kind {
		t.Fatalf("got %v; want %s %s", err, kindName(kind), code)
	}
	return we
}

func kindName(k writ.Kind) string { return fmt.Sprint(k) }
