package server_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// policyRig is a dev server whose runs ask policy.
type policyRig struct {
	t     testing.TB
	d     *dev
	r     *running
	human *client.Client
}

func startPolicy(t testing.TB, mod func(cfg *server.Config)) *policyRig {
	t.Helper()
	d := prepareDev(t)
	if mod != nil {
		mod(&d.cfg)
	}
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	return &policyRig{t: t, d: d, r: r, human: client.New(r.url, d.env.Token)}
}

// run starts a run of the template trigger changed by mod and returns its
// own DPoP-bound client.
func (p *policyRig) run(mod func(*writ.Trigger)) (*client.Client, writ.RunID) {
	p.t.Helper()
	key, err := token.NewDPoPKey()
	if err != nil {
		p.t.Fatal(err)
	}
	run, err := client.New(p.r.url, "").StartRun(context.Background(), p.d.sign(p.t, time.Now(), mod), key)
	if err != nil {
		p.t.Fatal(err)
	}
	return client.NewRun(p.r.url, run.Token, key), run.ID
}

func (p *policyRig) decide(c *client.Client, a writ.Action) *client.Decision {
	p.t.Helper()
	d, err := c.Decide(context.Background(), &client.DecideRequest{Action: a})
	if err != nil {
		p.t.Fatalf("decide %+v: %v", a, err)
	}
	return d
}

func hasCode(rs []writ.Reason, code string) bool {
	for _, r := range rs {
		if r.Code == code {
			return true
		}
	}
	return false
}

func releaseRun(tr *writ.Trigger) {
	tr.Agent, tr.Profile = "release-bot", "release"
	tr.Scope.Tools = []string{"read", "shell:build"}
	tr.Scope.Environments = []string{"staging", "production"}
	tr.Scope.Secrets = []string{"deploy/*"}
	tr.Scope.Repos[0].Write = false
}

func reviewRun(tr *writ.Trigger) {
	tr.Agent, tr.Profile = "review-bot", "review"
	tr.Scope.Tools = []string{"read"}
	tr.Scope.Repos[0].Write = false
}

// TestDecisionTable: actions and their delivery context, through the API
// with the default bundle and the config writ init writes, each to its
// expected decision.
func TestDecisionTable(t *testing.T) {
	p := startPolicy(t, nil)
	const sha = "0123456789abcdef0123456789abcdef01234567"
	digest := "sha256:" + strings.Repeat("ab", 32)
	type tc struct {
		name    string
		trigger func(*writ.Trigger)
		action  func(run writ.RunID) writ.Action
		want    string
		code    string
		count   int // approvals needed, for approval_required
	}
	act := func(a writ.Action) func(writ.RunID) writ.Action { return func(writ.RunID) writ.Action { return a } }
	push := func(ref string, paths ...string) func(writ.RunID) writ.Action {
		return func(id writ.RunID) writ.Action {
			return writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Ref: strings.ReplaceAll(ref, "RUN", string(id)), Paths: paths}}
		}
	}
	cases := []tc{
		{"refactor reads", nil, act(writ.Action{Kind: "tool", Name: "read"}), writ.VerdictAllow, "", 0},
		{"refactor runs tests", nil, act(writ.Action{Kind: "tool", Name: "shell:test"}), writ.VerdictAllow, "", 0},
		{"refactor: network tool outside its trigger", nil, act(writ.Action{Kind: "tool", Name: "shell:net"}), writ.VerdictDeny, "tool_not_in_scope", 0},
		{"refactor: MCP tool outside its trigger", nil, act(writ.Action{Kind: "mcp.call", Name: "mcp:everything/echo"}), writ.VerdictDeny, "tool_not_in_scope", 0},
		{"refactor: MCP tool its trigger names", func(tr *writ.Trigger) { tr.Scope.Tools = append(tr.Scope.Tools, "mcp:everything/*") },
			act(writ.Action{Kind: "mcp.call", Name: "mcp:everything/echo"}), writ.VerdictAllow, "", 0},
		{"refactor fetches its repo", nil, act(writ.Action{Kind: writ.ActionGitFetch, Target: writ.Target{Repo: "acme/api"}}), writ.VerdictAllow, "", 0},
		{"refactor: fetch of another repo", nil, act(writ.Action{Kind: writ.ActionGitFetch, Target: writ.Target{Repo: "acme/web"}}), writ.VerdictDeny, "repo_not_in_scope", 0},
		{"refactor pushes its run branch", nil, push("writ/RUN/fix", "src/a.go"), writ.VerdictAllow, "", 0},
		{"refactor: push to the base branch", nil, push("main", "src/a.go"), writ.VerdictDeny, "protected_branch", 0},
		{"refactor: push to a protected release branch", nil, push("release/1.2", "src/a.go"), writ.VerdictDeny, "protected_branch", 0},
		{"refactor: push to someone else's branch", nil, push("feature/x", "src/a.go"), writ.VerdictDeny, "push_outside_run_branch", 0},
		{"refactor: push outside its paths", nil, push("writ/RUN/fix", "src/a.go", "Makefile"), writ.VerdictDeny, "path_not_in_scope", 0},
		{"refactor: push of CI workflow needs approval", func(tr *writ.Trigger) { tr.Scope.Repos[0].Paths = []string{"**"} },
			push("writ/RUN/ci", ".github/workflows/ci.yml"), writ.VerdictApprovalRequired, "protected_path", 1},
		{"refactor: push of CODEOWNERS needs approval", func(tr *writ.Trigger) { tr.Scope.Repos[0].Paths = []string{"**"} },
			push("writ/RUN/owners", "CODEOWNERS"), writ.VerdictApprovalRequired, "protected_path", 1},
		{"refactor gets a git credential", nil, act(writ.Action{Kind: writ.ActionCredential, Name: "git", Target: writ.Target{Repo: "acme/api"}}), writ.VerdictAllow, "", 0},
		{"refactor: a secret", nil, act(writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/password"}}), writ.VerdictDeny, "secrets_not_allowed", 0},
		{"refactor: merge waits for a human", nil, act(writ.Action{Kind: writ.ActionMerge, Target: writ.Target{Repo: "acme/api", Ref: "main", Base: sha, Head: sha}}), writ.VerdictApprovalRequired, "merge_requires_approval", 1},
		{"refactor: release is scope creep", nil, act(writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Digest: digest, Environment: "staging"}}), writ.VerdictDeny, "scope_creep", 0},
		{"refactor: egress to a host outside its trigger", nil, act(writ.Action{Kind: writ.ActionEgress, Name: "evil.example.com:443"}), writ.VerdictDeny, "host_not_in_scope", 0},
		{"refactor: egress its trigger names", func(tr *writ.Trigger) { tr.Scope.Hosts = []string{"proxy.golang.org"} },
			act(writ.Action{Kind: writ.ActionEgress, Name: "proxy.golang.org:443"}), writ.VerdictAllow, "", 0},
		{"refactor: a run cannot start runs by decision", nil, act(writ.Action{Kind: writ.ActionRunStart}), writ.VerdictDeny, "action_not_allowed", 0},
		{"review reads", reviewRun, act(writ.Action{Kind: "tool", Name: "read"}), writ.VerdictAllow, "", 0},
		{"review records a review", reviewRun, act(writ.Action{Kind: writ.ActionReview, Target: writ.Target{Repo: "acme/api"}}), writ.VerdictAllow, "", 0},
		{"review: push is read-only", reviewRun, push("writ/RUN/x", "src/a.go"), writ.VerdictDeny, "review_read_only", 0},
		{"release builds", releaseRun, act(writ.Action{Kind: writ.ActionBuild, Target: writ.Target{Repo: "acme/api"}}), writ.VerdictAllow, "", 0},
		{"release to staging: one approver", releaseRun, act(writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Digest: digest, Environment: "staging"}}), writ.VerdictApprovalRequired, "release_requires_approval", 1},
		{"release to production: two approvers", releaseRun, act(writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Digest: digest, Environment: "production"}}), writ.VerdictApprovalRequired, "sensitive_environment", 2},
		{"release: environment outside its trigger", func(tr *writ.Trigger) { releaseRun(tr); tr.Scope.Environments = []string{"staging"} },
			act(writ.Action{Kind: writ.ActionRelease, Target: writ.Target{Digest: digest, Environment: "production"}}), writ.VerdictDeny, "environment_not_in_scope", 0},
		{"release: a secret in scope needs approval", releaseRun, act(writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "deploy/token", Environment: "staging"}}), writ.VerdictApprovalRequired, "secret_requires_approval", 1},
		{"release: a secret outside scope", releaseRun, act(writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "db/password", Environment: "staging"}}), writ.VerdictDeny, "secret_not_in_scope", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			self, id := p.run(c.trigger)
			d := p.decide(self, c.action(id))
			if d.Decision != c.want || (c.code != "" && !hasCode(d.Reasons, c.code)) {
				t.Fatalf("got %s %+v, want %s %s", d.Decision, d.Reasons, c.want, c.code)
			}
			if c.want == writ.VerdictApprovalRequired {
				if d.Approval == nil || !strings.HasPrefix(d.Approval.ID, "apr_") || d.Approval.Count != c.count || d.Approval.Group != "maintainers" {
					t.Fatalf("approval: got %+v, want %d from maintainers", d.Approval, c.count)
				}
			}
			if !strings.HasPrefix(d.ID, "dec_") || !strings.HasPrefix(d.PolicyDigest, "sha256:") || !strings.HasPrefix(d.InputDigest, "sha256:") {
				t.Fatalf("decision ids and digests: %+v", d)
			}
			if d.PolicyDigest != p.r.srv.PolicyDigest() {
				t.Fatalf("policy digest %s, want the bundle in force %s", d.PolicyDigest, p.r.srv.PolicyDigest())
			}
		})
	}
}

// TestScopeCreepSuspends is the scripted run of the issue: edit, build,
// then a secret outside the trigger; the run is denied and suspended, an
// alert is on record, and its next request is refused until a human
// resumes it.
func TestScopeCreepSuspends(t *testing.T) {
	p := startPolicy(t, nil)
	self, id := p.run(nil)
	for _, name := range []string{"edit", "shell:build"} {
		if d := p.decide(self, writ.Action{Kind: "tool", Name: name}); d.Decision != writ.VerdictAllow {
			t.Fatalf("%s: %+v", name, d)
		}
	}
	d := p.decide(self, writ.Action{Kind: writ.ActionCredential, Name: "secret", Target: writ.Target{Secret: "prod/db", Environment: "production"}})
	if d.Decision != writ.VerdictDeny || !hasCode(d.Reasons, "scope_creep") || !d.Obligations.Suspend || d.RunState != writ.RunSuspended {
		t.Fatalf("scope creep: %+v", d)
	}
	run, err := p.r.srv.Store().GetRun(context.Background(), id)
	if err != nil || run.State != writ.RunSuspended {
		t.Fatalf("run in the store: %+v, %v", run, err)
	}
	types := runEvents(t, p.r.srv.Store(), id)
	want := []string{"decision run:" + string(id), "decision run:" + string(id), "decision run:" + string(id), "alert writ", "run.suspended writ"}
	if got := types[len(types)-len(want):]; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events: got %v, want them to end with %v", types, want)
	}
	_, err = self.Decide(context.Background(), &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}})
	if writ.ErrorCode(err) != "token_revoked" {
		t.Fatalf("the suspended run's next request: %v, want token_revoked", err)
	}
	// Suspension is not lifted by the run: only a human resumes.
	if _, err := self.Transition(context.Background(), string(id), "resume", ""); err == nil {
		t.Fatal("the suspended run resumed itself")
	}
	if _, err := p.human.Transition(context.Background(), string(id), "resume", "checked"); err != nil {
		t.Fatal(err)
	}
	if d := p.decide(self, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow || d.RunState != writ.RunActive {
		t.Fatalf("after resume: %+v", d)
	}
}

// TestDenialThresholdSuspends: enforced denials within the window suspend
// the run at the threshold; advisory hook decisions and human dry runs do
// not count toward it.
func TestDenialThresholdSuspends(t *testing.T) {
	p := startPolicy(t, func(cfg *server.Config) { cfg.Policy.Denials.Max = 3 })
	self, id := p.run(nil)
	ctx := context.Background()
	for i := range 5 {
		d, err := self.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "shell:net"}, Via: "hook:claude-code", CallRef: "toolu_" + string(rune('a'+i))})
		if err != nil || d.Decision != writ.VerdictDeny || d.Obligations.Suspend {
			t.Fatalf("hook denial %d: %+v %v", i, d, err)
		}
		dry, err := p.human.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "shell:net"}, DryRun: true, Run: string(id)})
		if err != nil || dry.Decision != writ.VerdictDeny || dry.Obligations.Suspend || !dry.DryRun {
			t.Fatalf("dry run %d: %+v %v", i, dry, err)
		}
	}
	for i := range 2 {
		if d := p.decide(self, writ.Action{Kind: "tool", Name: "shell:net"}); d.Decision != writ.VerdictDeny || d.Obligations.Suspend {
			t.Fatalf("enforced denial %d suspended early: %+v", i, d)
		}
	}
	d := p.decide(self, writ.Action{Kind: "tool", Name: "shell:net"})
	if !hasCode(d.Reasons, "too_many_denials") || !d.Obligations.Suspend || d.RunState != writ.RunSuspended {
		t.Fatalf("third enforced denial: %+v", d)
	}
}

// TestBudgetSuspends: a profile's calls-per-minute budget, counted by
// writ, suspends the run that exceeds it.
func TestBudgetSuspends(t *testing.T) {
	p := startPolicy(t, func(cfg *server.Config) {
		for _, pr := range cfg.Profiles {
			if pr.Name == "refactor" {
				pr.Budgets.CallsPerMinute = 4
			}
		}
	})
	self, _ := p.run(nil)
	for i := range 4 {
		if d := p.decide(self, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow {
			t.Fatalf("call %d within budget: %+v", i, d)
		}
	}
	d := p.decide(self, writ.Action{Kind: "tool", Name: "read"})
	if d.Decision != writ.VerdictDeny || !hasCode(d.Reasons, "budget_calls_per_minute") || d.RunState != writ.RunSuspended {
		t.Fatalf("call over budget: %+v", d)
	}
}

// TestDecideAccess: who may ask what.
func TestDecideAccess(t *testing.T) {
	p := startPolicy(t, nil)
	self, id := p.run(nil)
	_, other := p.run(nil)
	ctx := context.Background()
	read := writ.Action{Kind: "tool", Name: "read"}
	cases := []struct {
		name string
		c    *client.Client
		req  client.DecideRequest
		code string
	}{
		{"a run about another run", self, client.DecideRequest{Action: read, Run: string(other)}, "not_own_run"},
		{"a run asking for a dry run", self, client.DecideRequest{Action: read, DryRun: true}, "dry_run_human_only"},
		{"a human without dry run", p.human, client.DecideRequest{Action: read, Run: string(id)}, "dry_run_only"},
		{"no credential", client.New(p.r.url, ""), client.DecideRequest{Action: read}, "missing_credential"},
		{"an unknown action kind", self, client.DecideRequest{Action: writ.Action{Kind: "rm -rf"}}, "invalid_action"},
		{"a wildcard tool", self, client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "mcp:everything/*"}}, "invalid_action"},
		{"a path escaping the repo", self, client.DecideRequest{Action: writ.Action{Kind: writ.ActionGitPush, Target: writ.Target{Repo: "acme/api", Paths: []string{"../etc/passwd"}}}}, "invalid_target"},
		{"an unknown run", p.human, client.DecideRequest{Action: read, DryRun: true, Run: "01jd0000000000000000000000"}, "run_not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(storeEvents(t, p.r.srv.Store()))
			_, err := c.c.Decide(ctx, &c.req)
			if writ.ErrorCode(err) != c.code {
				t.Fatalf("got %v, want %s", err, c.code)
			}
			if after := len(storeEvents(t, p.r.srv.Store())); after != before {
				t.Fatalf("a refused request wrote %d events", after-before)
			}
		})
	}
}

// TestHookCallsAndOutcomes: a hook's repeated call is one decision, and
// outcomes attach once to allowed decisions of the caller's own run.
func TestHookCallsAndOutcomes(t *testing.T) {
	p := startPolicy(t, nil)
	self, id := p.run(nil)
	otherRun, _ := p.run(nil)
	ctx := context.Background()
	req := &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "shell:test"}, Via: "hook:claude-code", CallRef: "toolu_01"}
	first, err := self.Decide(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := self.Decide(ctx, req)
	if err != nil || second.ID != first.ID {
		t.Fatalf("repeated call: %+v %v, want decision %s again", second, err, first.ID)
	}
	n := 0
	for _, e := range storeEvents(t, p.r.srv.Store()) {
		if e.Type == writ.EventDecision && e.Run == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d decision events for one hook call, want 1", n)
	}
	code := 0
	if err := otherRun.ReportOutcome(ctx, "", &client.Outcome{Via: "hook:claude-code", CallRef: "toolu_01", ExitCode: &code}); writ.ErrorCode(err) != "decision_not_found" {
		t.Fatalf("another run reporting this run's call: %v", err)
	}
	if err := otherRun.ReportOutcome(ctx, first.ID, &client.Outcome{ExitCode: &code}); writ.ErrorCode(err) != "decision_not_found" {
		t.Fatalf("another run reporting this run's decision: %v", err)
	}
	if err := self.ReportOutcome(ctx, "", &client.Outcome{Via: "hook:claude-code", CallRef: "toolu_01", ExitCode: &code, DurationMS: 1200}); err != nil {
		t.Fatal(err)
	}
	if err := self.ReportOutcome(ctx, first.ID, &client.Outcome{ExitCode: &code}); writ.ErrorCode(err) != "outcome_recorded" {
		t.Fatalf("second outcome: %v", err)
	}
	denied := p.decide(self, writ.Action{Kind: "tool", Name: "shell:net"})
	if err := self.ReportOutcome(ctx, denied.ID, &client.Outcome{ExitCode: &code}); writ.ErrorCode(err) != "not_allowed" {
		t.Fatalf("outcome of a denied action: %v", err)
	}
	var outcome *writ.Event
	for _, e := range storeEvents(t, p.r.srv.Store()) {
		if e.Type == writ.EventDecisionOutcome {
			outcome = &e
		}
	}
	if outcome == nil || outcome.Subject != first.ID || outcome.Details["durationMs"] != float64(1200) {
		t.Fatalf("decision.outcome event: %+v", outcome)
	}
}

// copyDefault writes the embedded default bundle into dir.
func copyDefault(t *testing.T, dir string) {
	t.Helper()
	err := fs.WalkDir(policy.Default(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policy.Default(), p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func policyEvents(t *testing.T, p *policyRig) (loaded []string, alerts int) {
	t.Helper()
	for _, e := range storeEvents(t, p.r.srv.Store()) {
		switch {
		case e.Type == writ.EventPolicyLoaded:
			loaded = append(loaded, e.Subject)
		case e.Type == writ.EventAlert && strings.HasPrefix(e.Subject, "policy:"):
			alerts++
		}
	}
	return loaded, alerts
}

// TestPolicyReload: a bundle directory is reloaded when it changes; a
// bundle that does not compile or fails its own tests is refused, with an
// alert, and the working bundle keeps deciding; a good one is loaded and
// logged with its digest.
func TestPolicyReload(t *testing.T) {
	dir := t.TempDir()
	copyDefault(t, dir)
	p := startPolicy(t, func(cfg *server.Config) {
		cfg.Policy.Bundle = dir
		cfg.Policy.Reload = 100 * time.Millisecond
	})
	ctx := context.Background()
	self, _ := p.run(nil)
	orig := p.r.srv.PolicyDigest()
	if loaded, _ := policyEvents(t, p); len(loaded) != 1 || loaded[0] != orig {
		t.Fatalf("policy.loaded at start: %v, want [%s]", loaded, orig)
	}

	// A syntax error, then a failing test: both refused, each with one
	// alert, and the original bundle keeps deciding.
	broken := filepath.Join(dir, "zz_broken.rego")
	if err := os.WriteFile(broken, []byte("package writ\n\ndeny contains x if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, "the broken bundle's alert", func() bool { _, n := policyEvents(t, p); return n == 1 })
	if err := p.r.srv.ReloadPolicy(ctx); err == nil || !strings.Contains(err.Error(), "refused at parse") {
		t.Fatalf("ReloadPolicy of a broken bundle: %v", err)
	}
	if err := os.WriteFile(broken, []byte("package writ\n\ntest_always_fails if { false }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, "the failing test's alert", func() bool { _, n := policyEvents(t, p); return n >= 3 })
	if p.r.srv.PolicyDigest() != orig {
		t.Fatalf("a refused bundle replaced the working one")
	}
	if d := p.decide(self, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow || d.PolicyDigest != orig {
		t.Fatalf("decision while the directory is broken: %+v", d)
	}

	// A good change is loaded and logged, and decides from then on.
	if err := os.WriteFile(broken, []byte("package writ\n\n# nothing reaches the moon, for this test\ndeny contains {\"code\": \"no_moon\", \"message\": \"not today\"} if input.action.target.environment == \"moon\"\n\ntest_no_moon if { some r in result.deny with input as {\"action\": {\"kind\": \"tool\", \"name\": \"read\", \"target\": {\"environment\": \"moon\"}}}; r.code == \"no_moon\" }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll(t, "the new bundle", func() bool { return p.r.srv.PolicyDigest() != orig })
	loaded, _ := policyEvents(t, p)
	if len(loaded) != 2 || loaded[1] != p.r.srv.PolicyDigest() {
		t.Fatalf("policy.loaded events: %v, want the new digest %s second", loaded, p.r.srv.PolicyDigest())
	}
	d := p.decide(self, writ.Action{Kind: "tool", Name: "read", Target: writ.Target{Environment: "moon"}})
	if d.Decision != writ.VerdictDeny || !hasCode(d.Reasons, "no_moon") || d.PolicyDigest != p.r.srv.PolicyDigest() {
		t.Fatalf("decision with the new bundle: %+v", d)
	}
}

// TestPolicyErrorDenies: a bundle that passes its tests but answers one
// input with a mistyped result denies that action (policy_error), on the
// record; a bundle that cannot load stops the server from starting.
func TestPolicyErrorDenies(t *testing.T) {
	dir := t.TempDir()
	copyDefault(t, dir)
	// One more rule makes the answer to one tool mistyped: an alert that
	// is not a string.
	if err := os.WriteFile(filepath.Join(dir, "mistyped.rego"), []byte("package writ\n\nalerts contains 42 if input.action.name == \"shell:test\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startPolicy(t, func(cfg *server.Config) { cfg.Policy.Bundle = dir })
	self, id := p.run(nil)
	d := p.decide(self, writ.Action{Kind: "tool", Name: "shell:test"})
	if d.Decision != writ.VerdictDeny || !hasCode(d.Reasons, "policy_error") {
		t.Fatalf("mistyped result: %+v", d)
	}
	if d := p.decide(self, writ.Action{Kind: "tool", Name: "read"}); d.Decision != writ.VerdictAllow {
		t.Fatalf("other actions: %+v", d)
	}
	var found bool
	for _, e := range storeEvents(t, p.r.srv.Store()) {
		if e.Type == writ.EventDecision && e.Run == id && e.Decision == writ.VerdictDeny {
			b, _ := json.Marshal(e.Details["reasons"])
			found = strings.Contains(string(b), "policy_error")
		}
	}
	if !found {
		t.Fatal("the policy_error deny is not on record")
	}

	// A bundle that fails its own tests never starts a server.
	if err := os.WriteFile(filepath.Join(dir, "fail_test.rego"), []byte("package writ\n\ntest_fails if { false }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := p.d.cfg
	cfg.Policy.Bundle = dir
	// A store of its own: the running server holds its store's lock.
	cfg.DataDir = t.TempDir()
	cfg.Store = "sqlite://" + filepath.Join(cfg.DataDir, "writ.db")
	if _, err := server.New(context.Background(), cfg, server.Options{}); err == nil || !strings.Contains(err.Error(), "writ.test_fails") {
		t.Fatalf("New with a failing bundle: %v", err)
	}
}
