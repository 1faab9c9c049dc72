package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/policy"
)

// Benchmarks of the policy engine alone: the default bundle's Bundle.Eval
// on the input the decision point builds for one tool call of a refactor
// run. bench/run.sh (ONLY=policy) runs them; docs/performance.md reports
// them. Nothing here asserts on time.

// benchPolicyData is data.writ.config as `writ init` configures it
// (server/init.go): the refactor, review and release profiles with their
// budgets, two environments and one repository's rules.
func benchPolicyData() map[string]any {
	profiles := []*writ.Profile{
		{Name: "refactor", MaxDuration: time.Hour,
			Tools:   []string{"read", "edit", "shell:build", "shell:test", "shell:git", "exec:test", "exec:build", "mcp:everything/*"},
			Hosts:   []string{"proxy.golang.org", "sum.golang.org", "registry.npmjs.org"},
			Budgets: writ.Budgets{CallsPerMinute: 300, TotalCalls: 5000, Children: 3}},
		{Name: "review", MaxDuration: 30 * time.Minute, Tools: []string{"read", "web:fetch"},
			Budgets: writ.Budgets{CallsPerMinute: 300, TotalCalls: 2000}},
		{Name: "release", MaxDuration: time.Hour, Tools: []string{"read", "shell:build", "shell:test"},
			Environments: []string{"staging", "production"}, Secrets: true,
			Budgets: writ.Budgets{CallsPerMinute: 120, TotalCalls: 1000}},
	}
	envs := []decision.Environment{{Name: "staging"}, {Name: "production", Sensitive: true}}
	repos := []decision.RepoRules{{Name: "acme/api", Protected: []string{"main", "release/*"},
		ProtectedPaths: []string{".github/workflows/**", "CODEOWNERS", "policy/**"}}}
	return decision.PolicyData(profiles, envs, repos, decision.Denials{Max: 5, Window: 10 * time.Minute}, "maintainers")
}

// benchInput is the policy input of a refactor run (the scope of
// trigger.Template) asking to run tool shell:test through the API, with
// history actions earlier decisions, one a second, all allowed: the
// document decision.Point builds, in its structs and so in its field order.
func benchInput(tb testing.TB, history int) []byte {
	tb.Helper()
	now := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	id := writ.RunID("01JBENCHRUN000000000000000")
	tools := []string{"read", "edit", "shell:build", "shell:test"}
	in := decision.Input{
		Action:   writ.Action{Kind: writ.ActionTool, Name: "shell:test"},
		Via:      "api",
		Enforced: true,
		Run: decision.RunInput{
			ID: id, Agent: "refactor-bot", Profile: "refactor", Issuer: "dev",
			Ticket: writ.Ticket{System: "jira", ID: "ENG-123", URL: "https://jira.example.org/browse/ENG-123"},
			Scope: writ.Scope{
				Repos:        []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**", "docs/**"}}},
				Tools:        tools,
				Hosts:        []string{},
				Environments: []string{},
				Secrets:      []string{},
				MaxDuration:  writ.Duration(30 * time.Minute),
			},
			ScopeDigest:   "sha256:" + string(bytes.Repeat([]byte("5c"), 32)),
			TriggerDigest: "sha256:" + string(bytes.Repeat([]byte("7d"), 32)),
			Deadline:      now.Add(20 * time.Minute),
			State:         writ.RunActive,
			BranchPrefix:  decision.BranchPrefix(id),
		},
		History: decision.HistoryInput{Actions: []writ.HistoryEntry{}, Allowed: map[string]bool{}},
	}
	for i := range history {
		t := now.Add(time.Duration(i-history) * time.Second)
		name := tools[i%len(tools)]
		in.History.Actions = append(in.History.Actions, writ.HistoryEntry{Kind: writ.ActionTool, Name: name,
			Verdict: writ.VerdictAllow, Via: "api", Time: t, Enforced: true})
		in.History.Allowed[name] = true
		in.History.Counts.Total++
		if !t.Before(now.Add(-time.Minute)) {
			in.History.Counts.LastMinute++
		}
	}
	cx := &in.Context
	cx.Time, cx.Hour, cx.Weekday = now, now.Hour(), now.Weekday().String()
	cx.RemainingSeconds = int64(in.Run.Deadline.Sub(now) / time.Second)
	cx.ToolInScope = true
	cx.Paths = decision.PathFacts{Changed: []string{}, OutsideScope: []string{}, Protected: []string{}}
	raw, err := json.Marshal(in)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// benchBundle loads the default bundle as writ serve does (its tests run).
func benchBundle(tb testing.TB) *policy.Bundle {
	tb.Helper()
	b, err := policy.Load(context.Background(), policy.Default(), policy.LoadOptions{Source: "embedded", Config: benchPolicyData()})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// benchReportLatency reports the p50, p90 and p99 of lat in µs.
func benchReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := min(max(int(float64(len(lat))*p/100+0.5)-1, 0), len(lat)-1)
		return float64(lat[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(50), "p50-us")
	b.ReportMetric(pct(90), "p90-us")
	b.ReportMetric(pct(99), "p99-us")
}

// BenchmarkEvaluate is one decision of the default bundle, in process, one
// at a time: Bundle.Eval, which parses the input JSON into OPA's AST,
// evaluates data.writ.result and checks its shape. history=100 is the
// issue's case (goal p99 < 250 µs); history=0 shows what the 100 history
// actions cost, although the default bundle never reads them.
func BenchmarkEvaluate(b *testing.B) {
	bundle := benchBundle(b)
	for _, n := range []int{100, 0} {
		b.Run("history="+strconv.Itoa(n), func(b *testing.B) {
			in := benchInput(b, n)
			ctx := context.Background()
			res, err := bundle.Eval(ctx, in)
			if err != nil || !res.Allow || len(res.Deny)+len(res.Approval) > 0 {
				b.Fatalf("want a plain allow, got %+v, %v", res, err)
			}
			lat := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				_, err := bundle.Eval(ctx, in)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
			}
			benchReportLatency(b, lat)
			b.ReportMetric(float64(len(in)), "input-bytes")
		})
	}
}

// BenchmarkEvaluateParseInput is the first step of Bundle.Eval alone,
// turning the input JSON (history=100) into OPA's AST value, the way OPA's
// own ast.ValueFromReader does it (through encoding/json's interface{}
// tree) — writ's direct parser is BenchmarkParseInput in the package's
// internal tests.
func BenchmarkEvaluateParseInput(b *testing.B) {
	in := benchInput(b, 100)
	lat := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		_, err := ast.ValueFromReader(bytes.NewReader(in))
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	benchReportLatency(b, lat)
}

// BenchmarkEvaluateParallel is BenchmarkEvaluate/history=100 from many
// goroutines: evaluations per second of the engine on every core.
func BenchmarkEvaluateParallel(b *testing.B) {
	bundle := benchBundle(b)
	in := benchInput(b, 100)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := bundle.Eval(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}
