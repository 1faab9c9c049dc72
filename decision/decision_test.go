package decision_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/sqlstore"
)

// t0 is the fixed time every test starts at: a Wednesday, 20:00 UTC.
var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the decision point and the store, so
// the times the point counts with are the times the store records.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakePolicy is the Evaluator: it records every input it is handed and
// answers with a copy of the result set by the test.
type fakePolicy struct {
	mu     sync.Mutex
	inputs [][]byte
	res    *writ.PolicyResult
	err    error
}

func (f *fakePolicy) Evaluate(_ context.Context, input []byte) (*writ.PolicyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, bytes.Clone(input))
	var res *writ.PolicyResult
	if f.res != nil {
		c := *f.res
		c.Deny = slices.Clone(f.res.Deny)
		c.Approval = slices.Clone(f.res.Approval)
		c.Alerts = slices.Clone(f.res.Alerts)
		res = &c
	}
	return res, f.err
}

func (f *fakePolicy) answer(res *writ.PolicyResult, err error) {
	f.mu.Lock()
	f.res, f.err = res, err
	f.mu.Unlock()
}

func (f *fakePolicy) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.inputs)
}

// last returns the last input the policy received, raw and decoded.
func (f *fakePolicy) last(t *testing.T) ([]byte, decision.Input) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.inputs) == 0 {
		t.Fatalf("the policy was never asked")
	}
	raw := f.inputs[len(f.inputs)-1]
	var in decision.Input
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("policy input %s: %v", raw, err)
	}
	return raw, in
}

var (
	allow = &writ.PolicyResult{Allow: true, PolicyDigest: "sha256:policy", DataDigest: "sha256:data"}
	deny  = &writ.PolicyResult{Deny: []writ.Reason{{Code: "nope", Message: "no"}}, Allow: true, PolicyDigest: "sha256:policy"}
)

// fixture is a decision point over a real SQLite store holding one active
// run.
type fixture struct {
	db      *sqlstore.DB
	pol     *fakePolicy
	clock   *clock
	cfg     decision.Config
	point   *decision.Point
	run     *writ.Run
	mu      sync.Mutex
	changed []writ.RunID // OnRunChanged calls
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{pol: &fakePolicy{res: allow}, clock: &clock{now: t0}}
	db, err := sqlstore.Open(ctx, sqlstore.Config{DSN: "sqlite://" + filepath.Join(t.TempDir(), "w.db"), Now: f.clock.Now})
	if err != nil {
		t.Fatalf("sqlstore.Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	f.db = db
	f.run = f.newRun(t)
	f.cfg = decision.Config{
		Store:  db,
		Policy: f.pol,
		Environments: []decision.Environment{
			{Name: "production", Sensitive: true},
			{Name: "staging", Sensitive: false},
		},
		Repos: []decision.RepoRules{
			{Name: "acme/api", Protected: []string{"release/*"}, ProtectedPaths: []string{".github/workflows/**", "CODEOWNERS"}},
		},
		Denials: decision.Denials{Max: 5, Window: 10 * time.Minute},
		Now:     f.clock.Now,
		OnRunChanged: func(id writ.RunID) {
			f.mu.Lock()
			f.changed = append(f.changed, id)
			f.mu.Unlock()
		},
	}
	f.point = decision.New(f.cfg)
	return f
}

// newRun stores a new active refactor run with a 25-minute deadline, after
// applying mods to it.
func (f *fixture) newRun(t *testing.T, mods ...func(*writ.Run)) *writ.Run {
	t.Helper()
	now := f.clock.Now()
	trigID := writ.NewULID(now, nil)
	trig := writ.TriggerRecord{ID: trigID, Digest: "sha256:" + strings.Repeat("a", 64), Signer: "alice", ExpiresAt: now.Add(time.Hour)}
	r := &writ.Run{
		ID:      writ.RunID(writ.NewULID(now, nil)),
		Agent:   "refactor-bot",
		Profile: "refactor",
		Ticket:  writ.Ticket{System: "jira", ID: "ENG-1", URL: "https://jira.example.org/ENG-1"},
		Task:    "rename the config loader",
		Scope: writ.Scope{
			Repos: []writ.RepoScope{
				{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**"}},
				{Name: "acme/docs", Base: "trunk"},
			},
			Tools:        []string{"read", "edit", "shell:test", "mcp:srv/*"},
			Hosts:        []string{"proxy.golang.org", "*.example.org"},
			Environments: []string{"staging"},
			Secrets:      []string{"db/*"},
			MaxDuration:  writ.Duration(30 * time.Minute),
		},
		ScopeDigest: "sha256:" + strings.Repeat("b", 64),
		Issuer:      "alice",
		SignerKey:   "SHA256:key",
		State:       writ.RunActive,
		Deadline:    now.Add(25 * time.Minute),
	}
	for _, m := range mods {
		m(r)
	}
	evs := []*writ.Event{
		{Type: writ.EventTriggerAccepted, Actor: writ.SignerActor("alice"), Subject: trig.Digest},
		{Type: writ.EventRunStarted, Actor: writ.ActorSystem},
	}
	if err := f.db.CreateRun(context.Background(), r, trig, evs...); err != nil {
		t.Fatalf("CreateRun() = %v", err)
	}
	return r
}

func (f *fixture) decide(t *testing.T, req *decision.Request) *writ.Decision {
	t.Helper()
	if req.Run == nil {
		req.Run = f.run
	}
	if req.Actor == "" {
		req.Actor = "run:" + string(req.Run.ID)
	}
	d, err := f.point.Decide(context.Background(), req)
	if err != nil {
		t.Fatalf("Decide(%+v) = %v", req.Action, err)
	}
	return d
}

func (f *fixture) runChanged() []writ.RunID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changed)
}

// storedEvent is an outbox event with its body decoded.
type storedEvent struct {
	writ.Event
	Body []byte // the exact bytes stored
}

// events returns every event in the outbox after the run's start events.
func (f *fixture) events(t *testing.T) []storedEvent {
	t.Helper()
	stored, err := f.db.Events(context.Background(), 0, 1000)
	if err != nil {
		t.Fatalf("Events() = %v", err)
	}
	var out []storedEvent
	for _, s := range stored {
		if s.Type == writ.EventTriggerAccepted || s.Type == writ.EventRunStarted {
			continue
		}
		e := storedEvent{Body: s.Body}
		if err := json.Unmarshal(s.Body, &e.Event); err != nil {
			t.Fatalf("event %s: %v", s.Body, err)
		}
		if e.Type != s.Type || e.Run != s.Run || e.ID != s.ID {
			t.Fatalf("event columns %s %s %s disagree with its body %s", s.ID, s.Type, s.Run, s.Body)
		}
		out = append(out, e)
	}
	return out
}

func ofType(evs []storedEvent, typ string) []storedEvent {
	var out []storedEvent
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func types(evs []storedEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func tool(name string) writ.Action {
	kind := writ.ActionTool
	if strings.HasPrefix(name, "mcp:") {
		kind = writ.ActionMCPCall
	}
	return writ.Action{Kind: kind, Name: name}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// --------------------------------------------------------------- the input

func TestInputContext(t *testing.T) {
	f := newFixture(t)
	id := string(f.run.ID)
	runBranch := "writ/" + id + "/fix"
	base := decision.ContextInput{Time: t0, Hour: 20, Weekday: "Wednesday", RemainingSeconds: 1500,
		Paths: decision.PathFacts{Changed: []string{}, OutsideScope: []string{}, Protected: []string{}}}
	apiRepo := func(branch string, protected, runBranch bool) *decision.RepoFacts {
		return &decision.RepoFacts{Name: "acme/api", InScope: true, Write: true, Base: "main", Branch: branch, Protected: protected, RunBranch: runBranch}
	}
	push := func(repo, ref string, paths ...string) writ.Action {
		return writ.Action{Kind: writ.ActionGitPush, Name: repo, Target: writ.Target{Repo: repo, Ref: ref, Paths: paths}}
	}
	tests := []struct {
		name   string
		action writ.Action
		want   func(c *decision.ContextInput)
	}{
		{"tool in scope", tool("edit"), func(c *decision.ContextInput) { c.ToolInScope = true }},
		{"tool not in scope", tool("shell:net"), func(c *decision.ContextInput) {}},
		{"mcp tool under a /* pattern", tool("mcp:srv/echo"), func(c *decision.ContextInput) { c.ToolInScope = true }},
		{"mcp tool of another server", tool("mcp:other/echo"), func(c *decision.ContextInput) {}},
		{"mcp tool of a server with the same prefix", tool("mcp:srv2/echo"), func(c *decision.ContextInput) {}},
		{"push to the run's branch", push("acme/api", "refs/heads/"+runBranch, "src/a/b.go", "docs/x"), func(c *decision.ContextInput) {
			c.Repo = apiRepo(runBranch, false, true)
			c.Paths = decision.PathFacts{Changed: []string{"src/a/b.go", "docs/x"}, OutsideScope: []string{"docs/x"}, Protected: []string{}}
		}},
		{"push to the base branch", push("acme/api", "refs/heads/main", "src/a.go"), func(c *decision.ContextInput) {
			c.Repo = apiRepo("main", true, false)
			c.Paths.Changed = []string{"src/a.go"}
		}},
		{"push to a protected pattern", push("acme/api", "release/v1", "src/a.go"), func(c *decision.ContextInput) {
			c.Repo = apiRepo("release/v1", true, false)
			c.Paths.Changed = []string{"src/a.go"}
		}},
		{"push to a branch the pattern does not cover", push("acme/api", "release/v1/hotfix"), func(c *decision.ContextInput) {
			c.Repo = apiRepo("release/v1/hotfix", false, false)
		}},
		{"push to another run's branch", push("acme/api", "writ/01JOTHERRUN000000000000000/fix"), func(c *decision.ContextInput) {
			c.Repo = apiRepo("writ/01JOTHERRUN000000000000000/fix", false, false)
		}},
		{"push to a branch named like the prefix", push("acme/api", "writ/"+id+"-x/fix"), func(c *decision.ContextInput) {
			c.Repo = apiRepo("writ/"+id+"-x/fix", false, false)
		}},
		{"push changing protected paths", push("acme/api", runBranch, "src/ok.go", ".github/workflows/ci.yml", "CODEOWNERS", "src/CODEOWNERS"), func(c *decision.ContextInput) {
			c.Repo = apiRepo(runBranch, false, true)
			c.Paths = decision.PathFacts{
				Changed:      []string{"src/ok.go", ".github/workflows/ci.yml", "CODEOWNERS", "src/CODEOWNERS"},
				OutsideScope: []string{".github/workflows/ci.yml", "CODEOWNERS"},
				Protected:    []string{".github/workflows/ci.yml", "CODEOWNERS"},
			}
		}},
		{"fetch of a read-only repository", writ.Action{Kind: writ.ActionGitFetch, Name: "acme/docs", Target: writ.Target{Repo: "acme/docs"}}, func(c *decision.ContextInput) {
			c.Repo = &decision.RepoFacts{Name: "acme/docs", InScope: true, Write: false, Base: "trunk"}
		}},
		{"read-only repository without scope paths", push("acme/docs", "refs/heads/trunk", "any/where.md"), func(c *decision.ContextInput) {
			c.Repo = &decision.RepoFacts{Name: "acme/docs", InScope: true, Base: "trunk", Branch: "trunk", Protected: true}
			c.Paths.Changed = []string{"any/where.md"}
		}},
		{"repository out of scope", push("other/repo", "refs/heads/main", "src/a.go"), func(c *decision.ContextInput) {
			c.Repo = &decision.RepoFacts{Name: "other/repo", Branch: "main"}
			c.Paths = decision.PathFacts{Changed: []string{"src/a.go"}, OutsideScope: []string{"src/a.go"}, Protected: []string{}}
		}},
		{"sensitive environment out of scope", writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Environment: "production"}}, func(c *decision.ContextInput) {
			c.Environment = &decision.EnvFacts{Name: "production", Sensitive: true}
		}},
		{"environment in scope", writ.Action{Kind: writ.ActionDeploy, Target: writ.Target{Environment: "staging"}}, func(c *decision.ContextInput) {
			c.Environment = &decision.EnvFacts{Name: "staging", InScope: true}
		}},
		{"unconfigured environment", writ.Action{Kind: writ.ActionDeploy, Target: writ.Target{Environment: "qa"}}, func(c *decision.ContextInput) {
			c.Environment = &decision.EnvFacts{Name: "qa"}
		}},
		{"secret in scope", writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/password"}}, func(c *decision.ContextInput) {
			c.Secret = &decision.ScopeFact{Name: "db/password", InScope: true}
		}},
		{"secret out of scope", writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/admin/password"}}, func(c *decision.ContextInput) {
			c.Secret = &decision.ScopeFact{Name: "db/admin/password"}
		}},
		{"egress to a host in scope", writ.Action{Kind: writ.ActionEgress, Name: "proxy.golang.org:443"}, func(c *decision.ContextInput) {
			c.Host = &decision.ScopeFact{Name: "proxy.golang.org", InScope: true}
		}},
		{"egress under a *.suffix pattern", writ.Action{Kind: writ.ActionEgress, Name: "a.example.org:8443"}, func(c *decision.ContextInput) {
			c.Host = &decision.ScopeFact{Name: "a.example.org", InScope: true}
		}},
		{"egress to the suffix itself", writ.Action{Kind: writ.ActionEgress, Name: "example.org:443"}, func(c *decision.ContextInput) {
			c.Host = &decision.ScopeFact{Name: "example.org"}
		}},
		{"egress names the host, not target.host", writ.Action{Kind: writ.ActionEgress, Name: "evil.test:443", Target: writ.Target{Host: "proxy.golang.org"}}, func(c *decision.ContextInput) {
			c.Host = &decision.ScopeFact{Name: "evil.test"}
		}},
		{"target host of a tool", writ.Action{Kind: writ.ActionTool, Name: "web:fetch", Target: writ.Target{Host: "docs.example.org"}}, func(c *decision.ContextInput) {
			c.Host = &decision.ScopeFact{Name: "docs.example.org", InScope: true}
		}},
		{"tool facts only for tools", writ.Action{Kind: writ.ActionBuild, Name: "edit"}, func(c *decision.ContextInput) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Dry runs, so the run's history stays empty.
			d := f.decide(t, &decision.Request{Action: tt.action, DryRun: true})
			raw, in := f.pol.last(t)
			want := base
			tt.want(&want)
			if diff := cmp.Diff(want, in.Context); diff != "" {
				t.Errorf("input.context (-want +got):\n%s\ninput: %s", diff, raw)
			}
			if d.InputDigest != sha(raw) {
				t.Errorf("InputDigest = %s; want the sha256 of the input the policy saw, %s", d.InputDigest, sha(raw))
			}
			// Facts about a target that is not named are absent, not empty.
			var m struct {
				Context map[string]any `json:"context"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			for key, present := range map[string]bool{"repo": want.Repo != nil, "environment": want.Environment != nil, "secret": want.Secret != nil, "host": want.Host != nil} {
				if _, ok := m.Context[key]; ok != present {
					t.Errorf("input.context.%s present = %v; want %v", key, ok, present)
				}
			}
		})
	}
}

func TestInputRun(t *testing.T) {
	f := newFixture(t)
	args := json.RawMessage(`{"cmd":"go test ./..."}`)
	f.decide(t, &decision.Request{Action: writ.Action{Kind: writ.ActionTool, Name: "shell:test", Args: args}, Via: "hook:claude-code"})
	raw, in := f.pol.last(t)
	want := decision.Input{
		Action:   writ.Action{Kind: writ.ActionTool, Name: "shell:test", Args: args},
		Via:      "hook:claude-code",
		Enforced: false,
		Run: decision.RunInput{
			ID: f.run.ID, Agent: "refactor-bot", Profile: "refactor", Issuer: "alice", Ticket: f.run.Ticket,
			Scope: f.run.Scope, ScopeDigest: f.run.ScopeDigest, TriggerDigest: f.run.TriggerDigest,
			Deadline: t0.Add(25 * time.Minute), State: writ.RunActive, BranchPrefix: "writ/" + string(f.run.ID) + "/", Chain: []writ.ChainLink{},
		},
		History: decision.HistoryInput{Actions: []writ.HistoryEntry{}, Allowed: map[string]bool{}},
		Context: decision.ContextInput{Time: t0, Hour: 20, Weekday: "Wednesday", RemainingSeconds: 1500, ToolInScope: true,
			Paths: decision.PathFacts{Changed: []string{}, OutsideScope: []string{}, Protected: []string{}}},
	}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("input (-want +got):\n%s\ninput: %s", diff, raw)
	}
	// Lists are never null, so Rego never sees an undefined list.
	for _, s := range []string{`"tools":null`, `"repos":null`, `"actions":null`, `"allowed":null`, `"changed":null`} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("input holds %s: %s", s, raw)
		}
	}
	// Even for a run whose scope lists nothing.
	bare := f.newRun(t, func(r *writ.Run) { r.Scope = writ.Scope{}; r.Ticket = writ.Ticket{} })
	f.decide(t, &decision.Request{Run: bare, Action: writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: "main"}}})
	if raw, _ := f.pol.last(t); bytes.Contains(raw, []byte("null")) {
		t.Errorf("input for a run with an empty scope holds null: %s", raw)
	}
	if decision.BranchPrefix(f.run.ID) != want.Run.BranchPrefix {
		t.Errorf("BranchPrefix() = %q", decision.BranchPrefix(f.run.ID))
	}

	// Enforced: only a non-dry-run decision not made via a hook.
	for _, c := range []struct {
		via      string
		dryRun   bool
		enforced bool
	}{{"api", false, true}, {"", false, true}, {"mcp", false, true}, {"hook:claude-code", false, false}, {"api", true, false}} {
		d := f.decide(t, &decision.Request{Action: tool("read"), Via: c.via, DryRun: c.dryRun})
		_, in := f.pol.last(t)
		wantVia := c.via
		if wantVia == "" {
			wantVia = "api"
		}
		if in.Enforced != c.enforced || in.Via != wantVia || d.Via != wantVia {
			t.Errorf("via %q dryRun %v: input enforced %v via %q, decision via %q; want %v %q", c.via, c.dryRun, in.Enforced, in.Via, d.Via, c.enforced, wantVia)
		}
	}

	// A run past its deadline is expired to policy, whatever the caller
	// loaded; no time remains.
	f.clock.Advance(26 * time.Minute)
	f.decide(t, &decision.Request{Action: tool("read"), DryRun: true})
	_, in = f.pol.last(t)
	if in.Run.State != writ.RunExpired || in.Context.RemainingSeconds != 0 {
		t.Errorf("past the deadline: run.state %q, remainingSeconds %d; want expired, 0", in.Run.State, in.Context.RemainingSeconds)
	}
}

func TestInputHistory(t *testing.T) {
	f := newFixture(t)
	step := func(d time.Duration, res *writ.PolicyResult, req *decision.Request) {
		t.Helper()
		f.clock.Advance(d)
		f.pol.answer(res, nil)
		f.decide(t, req)
	}
	push := writ.Action{Kind: writ.ActionGitPush, Name: "acme/api", Target: writ.Target{Repo: "acme/api", Ref: "writ/" + string(f.run.ID) + "/x"}}
	step(0, allow, &decision.Request{Action: tool("edit")})                                             // t0
	step(10*time.Second, deny, &decision.Request{Action: tool("shell:net")})                            // t0+10s
	step(10*time.Second, allow, &decision.Request{Action: tool("read"), Via: "hook:claude-code"})       // t0+20s, advisory
	step(10*time.Second, allow, &decision.Request{Action: tool("shell:test"), DryRun: true})            // t0+30s, dry run
	step(10*time.Second, deny, &decision.Request{Action: tool("shell:other"), Via: "hook:claude-code"}) // t0+40s, advisory denial
	step(50*time.Second, allow, &decision.Request{Action: push})                                        // t0+90s
	f.clock.Advance(10 * time.Second)                                                                   // t0+100s
	f.pol.answer(allow, nil)
	f.decide(t, &decision.Request{Action: tool("read")})
	_, in := f.pol.last(t)

	entry := func(at time.Duration, kind, name, verdict, via string, enforced bool) writ.HistoryEntry {
		return writ.HistoryEntry{Kind: kind, Name: name, Verdict: verdict, Via: via, Time: t0.Add(at), Enforced: enforced}
	}
	want := decision.HistoryInput{
		Actions: []writ.HistoryEntry{
			entry(0, "tool", "edit", "allow", "api", true),
			entry(10*time.Second, "tool", "shell:net", "deny", "api", true),
			entry(20*time.Second, "tool", "read", "allow", "hook:claude-code", false),
			entry(40*time.Second, "tool", "shell:other", "deny", "hook:claude-code", false),
			entry(90*time.Second, "git.push", "acme/api", "allow", "api", true),
		},
		// Enforced only: edit, shell:net, git.push; in the last minute
		// (since t0+40s) only the push; one enforced denial.
		Counts:  decision.Counts{Total: 3, LastMinute: 1, Denials: 1, Children: 0},
		Allowed: map[string]bool{"edit": true, "read": true, "git.push": true},
	}
	if diff := cmp.Diff(want, in.History); diff != "" {
		t.Errorf("input.history (-want +got):\n%s", diff)
	}

	// A new point reads the same history from the store.
	fresh := decision.New(f.cfg)
	if _, err := fresh.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read"), DryRun: true}); err != nil {
		t.Fatalf("Decide() = %v", err)
	}
	_, in2 := f.pol.last(t)
	want.Actions = append(want.Actions, entry(100*time.Second, "tool", "read", "allow", "api", true))
	want.Counts = decision.Counts{Total: 4, LastMinute: 2, Denials: 1}
	if diff := cmp.Diff(want, in2.History); diff != "" {
		t.Errorf("input.history read from the store (-want +got):\n%s", diff)
	}
	// Forget makes the first point re-read it, too.
	f.point.Forget(f.run.ID)
	f.decide(t, &decision.Request{Action: tool("read"), DryRun: true})
	if _, in3 := f.pol.last(t); !cmp.Equal(in2.History, in3.History) {
		t.Errorf("history after Forget differs from the store's:\n%s", cmp.Diff(in2.History, in3.History))
	}

	// Eleven minutes on, the denial has left the window; the total stays.
	f.clock.Advance(11 * time.Minute)
	for _, p := range []*decision.Point{f.point, decision.New(f.cfg)} {
		d, err := p.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read"), DryRun: true})
		if err != nil {
			t.Fatalf("Decide() = %v", err)
		}
		_, in := f.pol.last(t)
		if want := (decision.Counts{Total: 4}); in.History.Counts != want {
			t.Errorf("counts 11 minutes later = %+v; want %+v", in.History.Counts, want)
		}
		if !d.DryRun {
			t.Errorf("decision DryRun = false")
		}
	}
}

// TestDenialWindow checks that denials are counted within the configured
// window even when it is shorter than the minute lastMinute needs.
func TestDenialWindow(t *testing.T) {
	f := newFixture(t)
	f.cfg.Denials.Window = 30 * time.Second
	f.point = decision.New(f.cfg)
	f.pol.answer(deny, nil)
	f.decide(t, &decision.Request{Action: tool("shell:net")})
	for _, c := range []struct {
		after time.Duration
		want  decision.Counts
	}{
		{20 * time.Second, decision.Counts{Total: 1, LastMinute: 1, Denials: 1}},
		{20 * time.Second, decision.Counts{Total: 1, LastMinute: 1, Denials: 0}},
		{30 * time.Second, decision.Counts{Total: 1, LastMinute: 0, Denials: 0}},
	} {
		f.clock.Advance(c.after)
		for _, p := range []*decision.Point{f.point, decision.New(f.cfg)} {
			if _, err := p.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read"), DryRun: true}); err != nil {
				t.Fatalf("Decide() = %v", err)
			}
			if _, in := f.pol.last(t); in.History.Counts != c.want {
				t.Errorf("at %v: counts = %+v; want %+v", f.clock.Now().Sub(t0), in.History.Counts, c.want)
			}
		}
	}
}

// TestInputHistoryConcurrent decides for one run from many goroutines:
// decisions of a run are evaluated one at a time, so each sees every
// earlier one.
func TestInputHistoryConcurrent(t *testing.T) {
	f := newFixture(t)
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := f.point.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("edit")}); err != nil {
				t.Errorf("Decide() = %v", err)
			}
		})
	}
	wg.Wait()
	f.decide(t, &decision.Request{Action: tool("edit")})
	f.pol.mu.Lock()
	inputs := slices.Clone(f.pol.inputs)
	f.pol.mu.Unlock()
	seen := map[int]bool{}
	for _, raw := range inputs {
		var in decision.Input
		if err := json.Unmarshal(raw, &in); err != nil {
			t.Fatal(err)
		}
		seen[in.History.Counts.Total] = true
	}
	for i := 0; i <= n; i++ {
		if !seen[i] {
			t.Errorf("no decision saw counts.total = %d; every decision should see all earlier ones (saw %v)", i, seen)
		}
	}
}

// ------------------------------------------------------------- precedence

func TestPrecedence(t *testing.T) {
	policyErr := errors.New("policy evaluation timed out after 100ms")
	tests := []struct {
		name      string
		res       *writ.PolicyResult
		err       error
		verdict   string
		codes     []string
		approval  *writ.ApprovalRef // ID not compared
		policyDig string
	}{
		{
			name: "deny over approval and allow",
			res: &writ.PolicyResult{
				Deny:         []writ.Reason{{Code: "d1"}, {Code: "d2"}},
				Approval:     []writ.ApprovalReason{{Reason: writ.Reason{Code: "a1"}, Group: "maintainers", Count: 1}},
				Allow:        true,
				PolicyDigest: "sha256:p",
			},
			verdict: writ.VerdictDeny, codes: []string{"d1", "d2"}, policyDig: "sha256:p",
		},
		{
			name: "approval over allow, the largest count",
			res: &writ.PolicyResult{
				Approval: []writ.ApprovalReason{
					{Reason: writ.Reason{Code: "a1"}, Group: "maintainers", Count: 1},
					{Reason: writ.Reason{Code: "a2"}, Group: "security", Count: 3},
					{Reason: writ.Reason{Code: "a3"}, Group: "maintainers", Count: 2},
				},
				Allow:        true,
				PolicyDigest: "sha256:p",
			},
			verdict: writ.VerdictApprovalRequired, codes: []string{"a1", "a2", "a3"},
			approval: &writ.ApprovalRef{Group: "security", Count: 3}, policyDig: "sha256:p",
		},
		{
			name:    "allow",
			res:     &writ.PolicyResult{Allow: true, PolicyDigest: "sha256:p"},
			verdict: writ.VerdictAllow, codes: []string{}, policyDig: "sha256:p",
		},
		{
			name:    "nothing",
			res:     &writ.PolicyResult{PolicyDigest: "sha256:p"},
			verdict: writ.VerdictDeny, codes: []string{"no_rule_allowed"}, policyDig: "sha256:p",
		},
		{
			name:    "evaluator error",
			res:     &writ.PolicyResult{Allow: true, PolicyDigest: "sha256:failing", DataDigest: "sha256:d"},
			err:     policyErr,
			verdict: writ.VerdictDeny, codes: []string{"policy_error"}, policyDig: "sha256:failing",
		},
		{
			name:    "evaluator error without a result",
			err:     policyErr,
			verdict: writ.VerdictDeny, codes: []string{"policy_error"},
		},
		{
			name: "evaluator error with a result that suspends",
			res: &writ.PolicyResult{Allow: true, Obligations: writ.Obligations{Suspend: true, MaxTTL: writ.Duration(time.Hour)},
				Alerts: []string{"x"}, PolicyDigest: "sha256:p"},
			err:     policyErr,
			verdict: writ.VerdictDeny, codes: []string{"policy_error"}, policyDig: "sha256:p",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.pol.answer(tt.res, tt.err)
			action := writ.Action{Kind: writ.ActionGitPush, Name: "acme/api", Target: writ.Target{Repo: "acme/api", Ref: "writ/x/y"}}
			d := f.decide(t, &decision.Request{Action: action})
			var codes []string
			for _, r := range d.Reasons {
				codes = append(codes, r.Code)
			}
			if d.Verdict != tt.verdict || !slices.Equal(codes, tt.codes) || (d.Reasons == nil) {
				t.Errorf("Decide() = %s %v; want %s %v", d.Verdict, codes, tt.verdict, tt.codes)
			}
			if d.PolicyDigest != tt.policyDig {
				t.Errorf("PolicyDigest = %q; want %q", d.PolicyDigest, tt.policyDig)
			}
			switch {
			case tt.approval == nil && d.Approval != nil:
				t.Errorf("Approval = %+v; want none", d.Approval)
			case tt.approval != nil && (d.Approval == nil || d.Approval.Group != tt.approval.Group || d.Approval.Count != tt.approval.Count || d.Approval.ID == ""):
				t.Errorf("Approval = %+v; want %+v with an id", d.Approval, tt.approval)
			}
			if tt.err != nil && (d.Obligations.Suspend || d.Obligations.MaxTTL != 0 || len(d.Alerts) != 0) {
				t.Errorf("a policy error kept obligations %+v and alerts %v; want none", d.Obligations, d.Alerts)
			}

			// Recorded: one decision event, as returned, and the
			// decision in the store.
			evs := ofType(f.events(t), writ.EventDecision)
			if len(evs) != 1 {
				t.Fatalf("decision events = %d; want 1", len(evs))
			}
			if e := evs[0].Event; e.Decision != tt.verdict || e.Subject != d.ID || e.Run != f.run.ID || e.Action != writ.ActionGitPush {
				t.Errorf("decision event = %+v; want %s of %s", e, tt.verdict, d.ID)
			}
			got, err := f.db.GetDecision(context.Background(), d.ID)
			if err != nil {
				t.Fatalf("GetDecision() = %v", err)
			}
			if got.Verdict != tt.verdict || got.InputDigest != d.InputDigest || !got.Time.Equal(t0) {
				t.Errorf("stored decision = %+v; want %s at %v", got, tt.verdict, t0)
			}
			if st, err := f.db.GetRun(context.Background(), f.run.ID); err != nil || st.State != writ.RunActive {
				t.Errorf("run after decision = %v, %v; want active", st, err)
			}
		})
	}
}

func TestDecideRefusesBadRequests(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		req  *decision.Request
	}{
		{"unknown kind", &decision.Request{Action: writ.Action{Kind: "fly"}}},
		{"tool with a wildcard", &decision.Request{Action: tool("mcp:srv/*")}},
		{"args not JSON", &decision.Request{Action: writ.Action{Kind: writ.ActionTool, Name: "read", Args: json.RawMessage(`{`)}}},
		{"bad via", &decision.Request{Action: tool("read"), Via: "Hook Claude"}},
		{"long via", &decision.Request{Action: tool("read"), Via: strings.Repeat("a", 65)}},
		{"long callRef", &decision.Request{Action: tool("read"), CallRef: strings.Repeat("c", 257)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Run = f.run
			d, err := f.point.Decide(context.Background(), tt.req)
			if err == nil {
				t.Fatalf("Decide() = %+v; want an error", d)
			}
			if k := writ.ErrorKind(err); k != writ.KindInvalid {
				t.Errorf("Decide() = %v (kind %s); want KindInvalid", err, k)
			}
		})
	}
	if n := f.pol.calls(); n != 0 {
		t.Errorf("the policy was asked %d times about refused requests", n)
	}
	if evs := f.events(t); len(evs) != 0 {
		t.Errorf("refused requests wrote events %v", types(evs))
	}
}

// --------------------------------------------------------------- recording

func TestRecordDecisionEvent(t *testing.T) {
	f := newFixture(t)
	const secret = "ghp_S3CR3T-T0K3N-in-args"
	args := json.RawMessage(`{"cmd": "curl -H 'Authorization: token ` + secret + `' https://api.github.com"}`)
	action := writ.Action{Kind: writ.ActionTool, Name: "shell:net", Args: args}
	f.pol.answer(&writ.PolicyResult{Deny: []writ.Reason{{Code: "tool_not_in_scope", Message: "m"}}, Alerts: []string{"leak attempt"},
		PolicyDigest: "sha256:p", DataDigest: "sha256:d"}, nil)
	d := f.decide(t, &decision.Request{Action: action, Via: "mcp", CallRef: "call-1", Actor: "run:x"})
	raw, _ := f.pol.last(t)

	evs := f.events(t)
	if diff := cmp.Diff([]string{writ.EventDecision, writ.EventAlert}, types(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	for _, e := range evs {
		if bytes.Contains(e.Body, []byte(secret)) || bytes.Contains(e.Body, []byte("curl")) {
			t.Errorf("event %s holds the action's args: %s", e.Type, e.Body)
		}
	}
	e := evs[0].Event
	want := writ.Event{
		ID: e.ID, Time: t0, Type: writ.EventDecision, Run: f.run.ID, Actor: "run:x", Action: writ.ActionTool, Decision: writ.VerdictDeny,
		Subject: d.ID,
		Details: map[string]any{
			"name": "shell:net", "via": "mcp", "callRef": "call-1",
			"reasons":      []any{map[string]any{"code": "tool_not_in_scope", "message": "m"}},
			"obligations":  map[string]any{"suspend": false},
			"policyDigest": "sha256:p", "dataDigest": "sha256:d",
			"inputDigest": sha(raw),
			"argsDigest":  sha(args),
		},
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("decision event (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(d.ID, "dec_") {
		t.Errorf("decision id %q; want dec_…", d.ID)
	}
	alert := evs[1].Event
	if alert.Subject != d.ID || alert.Run != f.run.ID || alert.Actor != writ.ActorSystem || alert.Details["message"] != "leak attempt" || alert.Details["decision"] != d.ID {
		t.Errorf("alert event = %+v", alert)
	}
	// The decisions table keeps the args themselves.
	got, err := f.db.GetDecision(context.Background(), d.ID)
	if err != nil {
		t.Fatalf("GetDecision() = %v", err)
	}
	if !bytes.Contains(got.Action.Args, []byte(secret)) {
		t.Errorf("stored decision args = %s; want the args", got.Action.Args)
	}

	// A target is recorded, and a decision without args has no argsDigest.
	f.pol.answer(allow, nil)
	d2 := f.decide(t, &decision.Request{Action: writ.Action{Kind: writ.ActionGitFetch, Target: writ.Target{Repo: "acme/api"}}})
	evs = ofType(f.events(t), writ.EventDecision)
	if len(evs) != 2 || evs[1].Subject != d2.ID {
		t.Fatalf("decision events = %v; want a second one for %s", types(evs), d2.ID)
	}
	if _, ok := evs[1].Details["argsDigest"]; ok {
		t.Errorf("decision without args has an argsDigest: %s", evs[1].Body)
	}
	if tgt, _ := evs[1].Details["target"].(map[string]any); tgt["repo"] != "acme/api" {
		t.Errorf("decision event target = %v; want repo acme/api", evs[1].Details["target"])
	}
	if evs[1].Decision != writ.VerdictAllow || evs[1].Actor != "run:"+string(f.run.ID) {
		t.Errorf("second decision event = %+v", evs[1].Event)
	}
}

func TestCallRefDedupe(t *testing.T) {
	f := newFixture(t)
	req := func(via, ref string) *decision.Request {
		return &decision.Request{Action: tool("edit"), Via: via, CallRef: ref}
	}
	first := f.decide(t, req("hook:claude-code", "toolu_01"))
	// The policy changes its mind; a repeated call still gets the first answer.
	f.pol.answer(deny, nil)
	again := f.decide(t, req("hook:claude-code", "toolu_01"))
	if again.ID != first.ID || again.Verdict != writ.VerdictAllow {
		t.Errorf("repeated call = %s %s; want the first decision %s allow", again.ID, again.Verdict, first.ID)
	}
	if n := f.pol.calls(); n != 1 {
		t.Errorf("the policy was asked %d times; want once", n)
	}
	if evs := ofType(f.events(t), writ.EventDecision); len(evs) != 1 {
		t.Errorf("decision events = %d; want 1", len(evs))
	}

	// Another callRef, another via, or a dry run is another decision.
	others := []*decision.Request{
		req("hook:claude-code", "toolu_02"),
		req("api", "toolu_01"),
		{Action: tool("edit"), Via: "hook:claude-code", CallRef: "toolu_01", DryRun: true},
	}
	ids := map[string]bool{first.ID: true}
	for _, r := range others {
		d := f.decide(t, r)
		if ids[d.ID] {
			t.Errorf("Decide(via %s, callRef %s, dryRun %v) = %s; want a new decision", r.Via, r.CallRef, r.DryRun, d.ID)
		}
		ids[d.ID] = true
	}
	if evs := ofType(f.events(t), writ.EventDecision); len(evs) != 4 {
		t.Errorf("decision events = %d; want 4", len(evs))
	}
	// A fresh point (a restarted server) dedupes from the store.
	d, err := decision.New(f.cfg).Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("edit"), Via: "hook:claude-code", CallRef: "toolu_01"})
	if err != nil || d.ID != first.ID {
		t.Errorf("Decide() on a new point = %v, %v; want %s", d, err, first.ID)
	}
}

func TestDryRun(t *testing.T) {
	f := newFixture(t)
	f.pol.answer(&writ.PolicyResult{Deny: []writ.Reason{{Code: "budget"}}, Obligations: writ.Obligations{Suspend: true},
		Alerts: []string{"runaway"}, PolicyDigest: "sha256:p"}, nil)
	d := f.decide(t, &decision.Request{Action: tool("edit"), DryRun: true, Actor: "human:alice"})
	if !d.DryRun || d.Verdict != writ.VerdictDeny || d.Obligations.Suspend {
		t.Errorf("dry run = %+v; want a deny with dryRun and no suspension", d)
	}
	evs := f.events(t)
	if diff := cmp.Diff([]string{writ.EventDecision}, types(evs)); diff != "" {
		t.Fatalf("events of a dry run (-want +got):\n%s", diff)
	}
	if evs[0].Details["dryRun"] != true || evs[0].Actor != "human:alice" {
		t.Errorf("dry-run decision event = %s; want dryRun true by human:alice", evs[0].Body)
	}
	if run, err := f.db.GetRun(context.Background(), f.run.ID); err != nil || run.State != writ.RunActive {
		t.Errorf("run after a suspending dry run = %+v, %v; want active", run, err)
	}
	if c := f.runChanged(); len(c) != 0 {
		t.Errorf("OnRunChanged called %v by a dry run", c)
	}

	// Not in history, neither the point's nor the store's.
	f.pol.answer(allow, nil)
	for _, p := range []*decision.Point{f.point, decision.New(f.cfg)} {
		if _, err := p.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read")}); err != nil {
			t.Fatalf("Decide() = %v", err)
		}
		_, in := f.pol.last(t)
		if in.Run.State != writ.RunActive {
			t.Errorf("run.state after a dry run = %q; want active", in.Run.State)
		}
		for _, a := range in.History.Actions {
			if a.Name == "edit" {
				t.Errorf("history holds the dry run: %+v", in.History.Actions)
			}
		}
		if in.History.Counts.Denials != 0 {
			t.Errorf("counts = %+v; a dry-run denial counted", in.History.Counts)
		}
	}
}

func TestSuspend(t *testing.T) {
	f := newFixture(t)
	f.pol.answer(&writ.PolicyResult{Deny: []writ.Reason{{Code: "scope_creep"}, {Code: "release_not_allowed"}}, Obligations: writ.Obligations{Suspend: true},
		Alerts: []string{"scope creep: release"}, PolicyDigest: "sha256:p"}, nil)
	d := f.decide(t, &decision.Request{Action: writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Environment: "staging"}}})
	if d.Verdict != writ.VerdictDeny || !d.Obligations.Suspend {
		t.Errorf("Decide() = %+v; want a deny that suspends", d)
	}
	run, err := f.db.GetRun(context.Background(), f.run.ID)
	if err != nil || run.State != writ.RunSuspended {
		t.Fatalf("run after a suspending decision = %+v, %v; want suspended", run, err)
	}
	evs := f.events(t)
	if diff := cmp.Diff([]string{writ.EventDecision, writ.EventAlert, writ.EventRunSuspended}, types(evs)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if s := ofType(evs, writ.EventRunSuspended); len(s) == 1 {
		if s[0].Subject != d.ID || s[0].Run != f.run.ID || s[0].Actor != writ.ActorSystem ||
			s[0].Details["decision"] != d.ID || !strings.Contains(fmt.Sprint(s[0].Details["reason"]), "scope_creep") {
			t.Errorf("run.suspended event = %s", s[0].Body)
		}
	}
	if diff := cmp.Diff([]writ.RunID{f.run.ID}, f.runChanged()); diff != "" {
		t.Errorf("OnRunChanged calls (-want +got):\n%s", diff)
	}

	// The caller's copy of the run still says active; the point knows
	// better, and does not suspend twice.
	f.decide(t, &decision.Request{Action: tool("edit")})
	_, in := f.pol.last(t)
	if in.Run.State != writ.RunSuspended {
		t.Errorf("input run.state after the suspension = %q; want suspended", in.Run.State)
	}
	if got := ofType(f.events(t), writ.EventRunSuspended); len(got) != 1 {
		t.Errorf("run.suspended events = %d; want 1", len(got))
	}
	if c := f.runChanged(); len(c) != 1 {
		t.Errorf("OnRunChanged calls = %v; want 1", c)
	}
	// A run already suspended in the caller's copy is not suspended again.
	f2 := newFixture(t)
	f2.pol.answer(f.pol.res, nil)
	suspended := *f2.run
	suspended.State = writ.RunSuspended
	f2.decide(t, &decision.Request{Run: &suspended, Action: tool("edit")})
	if got := ofType(f2.events(t), writ.EventRunSuspended); len(got) != 0 || len(f2.runChanged()) != 0 {
		t.Errorf("a suspended run was suspended again: %v, OnRunChanged %v", types(f2.events(t)), f2.runChanged())
	}

	// Nor is a run a human suspended in the store since the caller loaded
	// it: the decision is recorded, the suspension skipped.
	f3 := newFixture(t)
	f3.pol.answer(f.pol.res, nil)
	if _, err := f3.db.TransitionRun(context.Background(), f3.run.ID, writ.RunSuspended, "", &writ.Event{Actor: writ.HumanActor("bob")}); err != nil {
		t.Fatalf("TransitionRun() = %v", err)
	}
	d3, err := f3.point.Decide(context.Background(), &decision.Request{Run: f3.run, Action: tool("edit")})
	if err != nil {
		t.Fatalf("Decide() on a run suspended meanwhile = %v", err)
	}
	evs = f3.events(t)
	if s := ofType(evs, writ.EventRunSuspended); len(s) != 1 || s[0].Actor != "human:bob" || len(ofType(evs, writ.EventDecision)) != 1 {
		t.Errorf("events = %v; want the human's suspension and the decision %s only", types(evs), d3.ID)
	}
}

func TestApprovals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.pol.answer(&writ.PolicyResult{Approval: []writ.ApprovalReason{{Reason: writ.Reason{Code: "protected_path"}, Group: "maintainers", Count: 2}},
		Allow: true, PolicyDigest: "sha256:p"}, nil)
	head := func(c string) string { return strings.Repeat(c, 40) }
	push := func(h string) writ.Action {
		return writ.Action{Kind: writ.ActionGitPush, Name: "acme/api", Target: writ.Target{
			Repo: "acme/api", Ref: "refs/heads/writ/" + string(f.run.ID) + "/fix", Base: head("0"), Head: h, Paths: []string{"CODEOWNERS"}}}
	}

	d1 := f.decide(t, &decision.Request{Action: push(head("1"))})
	if d1.Verdict != writ.VerdictApprovalRequired || d1.Approval == nil || !strings.HasPrefix(d1.Approval.ID, "apr_") ||
		d1.Approval.Group != "maintainers" || d1.Approval.Count != 2 {
		t.Fatalf("Decide() = %+v (approval %+v); want approval_required by 2 maintainers", d1, d1.Approval)
	}
	evs := f.events(t)
	if diff := cmp.Diff([]string{writ.EventDecision, writ.EventApprovalRequested}, types(evs)); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	req := evs[1]
	if req.Subject != d1.Approval.ID || req.Run != f.run.ID || req.Details["decision"] != d1.ID || req.Details["subjectKind"] != writ.SubjectCommit ||
		req.Details["group"] != "maintainers" || req.Details["count"] != float64(2) {
		t.Errorf("approval.requested event = %s", req.Body)
	}
	if a, _ := evs[0].Details["approval"].(map[string]any); a["id"] != d1.Approval.ID {
		t.Errorf("decision event approval = %v; want %s", evs[0].Details["approval"], d1.Approval.ID)
	}
	pending, err := f.db.LiveApproval(ctx, f.run.ID, writ.SubjectCommit, fmt.Sprint(req.Details["subjectDigest"]))
	if err != nil || pending.ID != d1.Approval.ID || pending.Decision != d1.ID || pending.State != "pending" ||
		!pending.ExpiresAt.Equal(f.run.Deadline) || pending.PolicyDigest != "sha256:p" {
		t.Errorf("LiveApproval() = %+v, %v; want %s by %s", pending, err, d1.Approval.ID, d1.ID)
	}

	// The same action again waits on the same request.
	d2 := f.decide(t, &decision.Request{Action: push(head("1"))})
	if d2.ID == d1.ID || d2.Approval == nil || d2.Approval.ID != d1.Approval.ID {
		t.Errorf("second identical action = %s approval %+v; want a new decision on approval %s", d2.ID, d2.Approval, d1.Approval.ID)
	}
	// So does it from a fresh point, which finds the request in the store.
	d3, err := decision.New(f.cfg).Decide(ctx, &decision.Request{Run: f.run, Action: push(head("1"))})
	if err != nil || d3.Approval == nil || d3.Approval.ID != d1.Approval.ID {
		t.Errorf("identical action on a new point = %+v, %v; want approval %s", d3, err, d1.Approval.ID)
	}
	evs = f.events(t)
	if n, m := len(ofType(evs, writ.EventApprovalRequested)), len(ofType(evs, writ.EventDecision)); n != 1 || m != 3 {
		t.Errorf("after three identical actions: %d approval.requested, %d decision events; want 1, 3", n, m)
	}

	// A different subject (another head commit) is another request.
	d4 := f.decide(t, &decision.Request{Action: push(head("2"))})
	if d4.Approval == nil || d4.Approval.ID == d1.Approval.ID {
		t.Errorf("action on another commit = approval %+v; want a new request", d4.Approval)
	}
	if got := ofType(f.events(t), writ.EventApprovalRequested); len(got) != 2 || got[1].Subject != d4.Approval.ID {
		t.Errorf("approval.requested events = %d; want a second one for %v", len(got), d4.Approval)
	}

	// A dry run names who would approve, but opens no request.
	d5 := f.decide(t, &decision.Request{Action: push(head("3")), DryRun: true})
	if d5.Approval == nil || d5.Approval.ID != "" || d5.Approval.Count != 2 {
		t.Errorf("dry run approval = %+v; want group and count without an id", d5.Approval)
	}
	if got := ofType(f.events(t), writ.EventApprovalRequested); len(got) != 2 {
		t.Errorf("a dry run opened an approval request: %d approval.requested events", len(got))
	}
}

// TestApprovalSubjects checks what an approval binds to: the same subject
// is one request, a different one another.
func TestApprovalSubjects(t *testing.T) {
	digest := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	tests := []struct {
		name     string
		a, b     writ.Action
		same     bool
		wantKind string
	}{
		{"release of another artifact",
			writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Environment: "staging", Digest: digest("a")}},
			writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Environment: "staging", Digest: digest("b")}}, false, writ.SubjectArtifact},
		// Every subject binds the whole action (a security review found an
		// approval of a release covering a deploy, and of one credential
		// kind covering another).
		{"release of the same artifact, other args",
			writ.Action{Kind: writ.ActionRelease, Args: json.RawMessage(`{"n":1}`), Target: writ.Target{Environment: "staging", Digest: digest("a")}},
			writ.Action{Kind: writ.ActionRelease, Args: json.RawMessage(`{"n":2}`), Target: writ.Target{Environment: "staging", Digest: digest("a")}}, false, writ.SubjectArtifact},
		{"release of the same artifact, same args",
			writ.Action{Kind: writ.ActionRelease, Args: json.RawMessage(`{"n":1}`), Target: writ.Target{Environment: "staging", Digest: digest("a")}},
			writ.Action{Kind: writ.ActionRelease, Args: json.RawMessage(`{"n":1}`), Target: writ.Target{Environment: "staging", Digest: digest("a")}}, true, writ.SubjectArtifact},
		{"deploy of a released artifact",
			writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Environment: "staging", Digest: digest("a")}},
			writ.Action{Kind: writ.ActionDeploy, Target: writ.Target{Environment: "staging", Digest: digest("a")}}, false, writ.SubjectArtifact},
		{"another credential kind for the same secret",
			writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/password", Environment: "staging"}},
			writ.Action{Kind: writ.ActionCredential, Name: "vault", Target: writ.Target{Secret: "db/password", Environment: "staging"}}, false, writ.SubjectSecret},
		{"secret for another environment",
			writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/password", Environment: "staging"}},
			writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/password", Environment: "production"}}, false, writ.SubjectSecret},
		{"tool with other args",
			writ.Action{Kind: writ.ActionTool, Name: "shell:test", Args: json.RawMessage(`{"cmd":"a"}`)},
			writ.Action{Kind: writ.ActionTool, Name: "shell:test", Args: json.RawMessage(`{"cmd":"b"}`)}, false, writ.SubjectTool},
		{"tool with the same args",
			writ.Action{Kind: writ.ActionTool, Name: "shell:test", Args: json.RawMessage(`{"cmd":"a"}`)},
			writ.Action{Kind: writ.ActionTool, Name: "shell:test", Args: json.RawMessage(`{"cmd":"a"}`)}, true, writ.SubjectTool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.pol.answer(&writ.PolicyResult{Approval: []writ.ApprovalReason{{Reason: writ.Reason{Code: "gate"}, Group: "g", Count: 1}}}, nil)
			da := f.decide(t, &decision.Request{Action: tt.a})
			db := f.decide(t, &decision.Request{Action: tt.b})
			if (da.Approval.ID == db.Approval.ID) != tt.same {
				t.Errorf("approvals %s and %s; want same = %v", da.Approval.ID, db.Approval.ID, tt.same)
			}
			reqs := ofType(f.events(t), writ.EventApprovalRequested)
			if len(reqs) == 0 || reqs[0].Details["subjectKind"] != tt.wantKind {
				t.Errorf("approval.requested = %v; want subject kind %s", reqs, tt.wantKind)
			}
		})
	}
}

// TestRecordFailure checks that a store failure is an error, not a
// decision, and that the point's history does not keep the lost decision.
func TestRecordFailure(t *testing.T) {
	f := newFixture(t)
	fs := &failingStore{DB: f.db}
	cfg := f.cfg
	cfg.Store = fs
	p := decision.New(cfg)
	fs.fail = true
	if d, err := p.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("edit")}); err == nil {
		t.Fatalf("Decide() with a failing store = %+v; want an error", d)
	}
	fs.fail = false
	if _, err := p.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read")}); err != nil {
		t.Fatalf("Decide() = %v", err)
	}
	_, in := f.pol.last(t)
	if len(in.History.Actions) != 0 || in.History.Counts.Total != 0 || in.History.Allowed["edit"] {
		t.Errorf("history after a failed record = %+v; want the lost decision gone", in.History)
	}
	if evs := ofType(f.events(t), writ.EventDecision); len(evs) != 1 {
		t.Errorf("decision events = %d; want 1", len(evs))
	}
}

// failingStore is the real store with RecordDecision failing on demand.
type failingStore struct {
	*sqlstore.DB
	fail bool
}

func (s *failingStore) RecordDecision(ctx context.Context, rec *writ.DecisionRecord) (*writ.Decision, bool, error) {
	if s.fail {
		return nil, false, errors.New("disk full")
	}
	return s.DB.RecordDecision(ctx, rec)
}

// gatedStore is the real store with the first RecordDecision held until
// the test releases it, to interleave two decisions of one run.
type gatedStore struct {
	*sqlstore.DB
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *gatedStore) RecordDecision(ctx context.Context, rec *writ.DecisionRecord) (*writ.Decision, bool, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.entered)
		<-s.release
	}
	return s.DB.RecordDecision(ctx, rec)
}

// TestConcurrentIdenticalApprovals decides the same gated action twice at
// once: both decisions should wait on one approval request. Today the
// second decision must wait until the first, with its new request, is
// committed (the run's lock is held through the commit), and then find that
// request pending.
func TestConcurrentIdenticalApprovals(t *testing.T) {
	f := newFixture(t)
	gs := &gatedStore{DB: f.db, entered: make(chan struct{}), release: make(chan struct{})}
	cfg := f.cfg
	cfg.Store = gs
	p := decision.New(cfg)
	f.pol.answer(&writ.PolicyResult{Approval: []writ.ApprovalReason{{Reason: writ.Reason{Code: "gate"}, Group: "g", Count: 1}}}, nil)
	action := writ.Action{Kind: writ.ActionGitPush, Name: "acme/api", Target: writ.Target{Repo: "acme/api", Ref: "writ/x/y", Head: strings.Repeat("1", 40)}}
	var (
		d1   *writ.Decision
		err1 error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		d1, err1 = p.Decide(context.Background(), &decision.Request{Run: f.run, Action: action})
	}()
	<-gs.entered
	var (
		d2    *writ.Decision
		err2  error
		done2 = make(chan struct{})
	)
	go func() {
		defer close(done2)
		d2, err2 = p.Decide(context.Background(), &decision.Request{Run: f.run, Action: action})
	}()
	close(gs.release)
	<-done
	<-done2
	if err1 != nil || err2 != nil {
		t.Fatalf("Decide() twice at once = %v, %v; want two decisions", err1, err2)
	}
	if d1.Approval == nil || d2.Approval == nil || d1.Approval.ID != d2.Approval.ID {
		t.Errorf("approvals %+v, %+v; want one request", d1.Approval, d2.Approval)
	}
	if got := ofType(f.events(t), writ.EventApprovalRequested); len(got) != 1 {
		t.Errorf("approval.requested events = %d; want 1", len(got))
	}
}

// TestChildrenCount checks that the point's count of children agrees with
// the store's: both count allowed, enforced delegations (the decision
// reserves the child, so concurrent delegations cannot overrun a budget).
func TestChildrenCount(t *testing.T) {
	f := newFixture(t)
	f.decide(t, &decision.Request{Action: writ.Action{Kind: writ.ActionDelegate, Name: "helper"}})
	var counts []int
	for _, p := range []*decision.Point{f.point, decision.New(f.cfg)} {
		if _, err := p.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read"), DryRun: true}); err != nil {
			t.Fatalf("Decide() = %v", err)
		}
		_, in := f.pol.last(t)
		counts = append(counts, in.History.Counts.Children)
	}
	if counts[0] != counts[1] || counts[0] != 1 {
		t.Errorf("counts.children = %d from the point's memory, %d from the store; want 1 from both", counts[0], counts[1])
	}
}

// TestOverloadIsNotADecision: an engine too busy to evaluate is an error
// for the caller to retry, and nothing is recorded.
func TestOverloadIsNotADecision(t *testing.T) {
	f := newFixture(t)
	f.pol.answer(nil, writ.Errorf(writ.KindUnavailable, "overloaded", "busy"))
	_, err := f.point.Decide(context.Background(), &decision.Request{Run: f.run, Action: tool("read")})
	if writ.ErrorCode(err) != "overloaded" {
		t.Fatalf("Decide() = %v; want overloaded", err)
	}
	if evs := f.events(t); len(evs) != 0 {
		t.Fatalf("an overload recorded %d events", len(evs))
	}
}

// TestCallRefNamesOneCall: a call's ref cannot be reused for another
// action to get the first one's decision.
func TestCallRefNamesOneCall(t *testing.T) {
	f := newFixture(t)
	f.pol.answer(&writ.PolicyResult{Allow: true}, nil)
	req := &decision.Request{Run: f.run, Action: tool("read"), Via: "hook:copilot", CallRef: "copilot_1"}
	if _, err := f.point.Decide(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	other := &decision.Request{Run: f.run, Action: tool("edit"), Via: "hook:copilot", CallRef: "copilot_1"}
	if _, err := f.point.Decide(context.Background(), other); writ.ErrorCode(err) != "call_ref_reused" {
		t.Fatalf("another action under the same ref: %v, want call_ref_reused", err)
	}
	if _, err := f.point.Decide(context.Background(), req); err != nil {
		t.Fatalf("the same call again: %v", err)
	}
}

// TestSharedHistory: with several replicas deciding for the same run on
// one store, a point configured Shared sees the other replicas' decisions
// in the run's history (budgets and denial thresholds count them); one
// that keeps history in memory does not — the reason for the option.
func TestSharedHistory(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			cfg := f.cfg
			cfg.Shared = shared
			a := decision.New(cfg)
			b := decision.New(f.cfg) // another replica
			req := func() *decision.Request {
				return &decision.Request{Run: f.run, Action: writ.Action{Kind: writ.ActionTool, Name: "read"}, Actor: "run:x"}
			}
			if _, err := a.Decide(ctx, req()); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := b.Decide(ctx, req()); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Decide(ctx, req()); err != nil {
				t.Fatal(err)
			}
			_, in := f.pol.last(t)
			want := 1
			if shared {
				want = 4
			}
			if in.History.Counts.Total != want {
				t.Errorf("history total seen by replica A = %d, want %d", in.History.Counts.Total, want)
			}
		})
	}
}
