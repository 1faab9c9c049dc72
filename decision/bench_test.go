package decision_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/sqlstore"
)

// Benchmarks of the decision point with the real policy engine (the
// default bundle) and the real store (SQLite in a temporary directory,
// durability normal, group commit): Point.Decide builds the input, asks
// policy and records the decision and its event durably. bench/run.sh
// (ONLY=policy) runs them; docs/performance.md reports them. Nothing here
// asserts on time.

// benchEnvs, benchRepos and benchDenials are the decision point's
// configuration as `writ init` writes it (server/init.go).
var (
	benchEnvs    = []decision.Environment{{Name: "staging"}, {Name: "production", Sensitive: true}}
	benchRepos   = []decision.RepoRules{{Name: "acme/api", Protected: []string{"main", "release/*"}, ProtectedPaths: []string{".github/workflows/**", "CODEOWNERS", "policy/**"}}}
	benchDenials = decision.Denials{Max: 5, Window: 10 * time.Minute}
)

// benchProfiles are writ init's profiles, budgets set to 0 (unlimited) so
// that no run is suspended however many decisions a benchmark makes.
func benchProfiles() []*writ.Profile {
	return []*writ.Profile{
		{Name: "refactor", MaxDuration: time.Hour,
			Tools: []string{"read", "edit", "shell:build", "shell:test", "shell:git", "exec:test", "exec:build", "mcp:everything/*"},
			Hosts: []string{"proxy.golang.org", "sum.golang.org", "registry.npmjs.org"}},
		{Name: "review", MaxDuration: 30 * time.Minute, Tools: []string{"read", "web:fetch"}},
		{Name: "release", MaxDuration: time.Hour, Tools: []string{"read", "shell:build", "shell:test"},
			Environments: []string{"staging", "production"}, Secrets: true},
	}
}

// benchRig is a decision point over a fresh store with runs, each already
// holding benchHistory decisions.
type benchRig struct {
	db    *sqlstore.DB
	point *decision.Point
	runs  []*writ.Run
}

const benchHistory = 100

// benchAction is what every benchmark asks: a tool the run's scope lists,
// so every decision is a plain allow.
var benchAction = writ.Action{Kind: writ.ActionTool, Name: "shell:test"}

// newBenchRig opens the store, loads the default bundle, creates nRuns
// refactor runs (the scope of trigger.Template) and records benchHistory
// decisions for each through the point itself, so the point's history
// cache is warm and holds 100 actions per run.
func newBenchRig(b *testing.B, nRuns int) *benchRig {
	b.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqlstore.Config{DSN: filepath.Join(b.TempDir(), "writ.db"), Durability: sqlstore.DurabilityNormal})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	data := decision.PolicyData(benchProfiles(), benchEnvs, benchRepos, benchDenials, "maintainers")
	bundle, err := policy.Load(ctx, policy.Default(), policy.LoadOptions{Source: "embedded", Config: data})
	if err != nil {
		b.Fatal(err)
	}
	point := decision.New(decision.Config{Store: db, Policy: policy.NewEngine(bundle), Environments: benchEnvs,
		Repos: benchRepos, Denials: benchDenials})
	r := &benchRig{db: db, point: point}
	now := time.Now().UTC()
	tools := []string{"read", "edit", "shell:build", "shell:test"}
	for range nRuns {
		run := benchRun(now)
		trig := writ.TriggerRecord{ID: run.TriggerID, Digest: run.TriggerDigest, Signer: run.Issuer, ExpiresAt: now.Add(time.Hour)}
		started := &writ.Event{Type: writ.EventRunStarted, Run: run.ID, Actor: writ.ActorSystem, Subject: string(run.ID)}
		if err := db.CreateRun(ctx, run, trig, started); err != nil {
			b.Fatal(err)
		}
		r.runs = append(r.runs, run)
	}
	// Seed the runs 8 at a time (the writer batches their commits). Many
	// more at once on 2 cores and an evaluation can outlast the policy
	// timeout (100 ms, wall time), which denies with policy_error.
	var wg sync.WaitGroup
	errs := make(chan error, len(r.runs))
	sem := make(chan struct{}, 8)
	for _, run := range r.runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for i := range benchHistory {
				a := writ.Action{Kind: writ.ActionTool, Name: tools[i%len(tools)]}
				d, err := point.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "api", Actor: "run:" + string(run.ID)})
				if err == nil && d.Verdict != writ.VerdictAllow {
					err = fmt.Errorf("seeding: %s: %s %+v", a.Name, d.Verdict, d.Reasons)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return r
}

// benchRun is an active refactor run with trigger.Template's scope.
func benchRun(now time.Time) *writ.Run {
	id := writ.RunID(writ.NewULID(now, nil))
	return &writ.Run{
		ID: id, Agent: "refactor-bot", Profile: "refactor", Issuer: "dev",
		Ticket: writ.Ticket{System: "jira", ID: "ENG-123", URL: "https://jira.example.org/browse/ENG-123"},
		Task:   "Rename the package-level logger to log and update its call sites.",
		Scope: writ.Scope{
			Repos:        []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**", "docs/**"}}},
			Tools:        []string{"read", "edit", "shell:build", "shell:test"},
			Hosts:        []string{},
			Environments: []string{},
			Secrets:      []string{},
			MaxDuration:  writ.Duration(30 * time.Minute),
		},
		ScopeDigest: "sha256:5c0pe", TriggerID: writ.NewULID(now, nil), TriggerDigest: "sha256:" + string(id),
		SignerKey: "SHA256:bench", State: writ.RunActive, CreatedAt: now, Deadline: now.Add(30 * time.Minute),
	}
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

// benchRuns is how many runs the benchmarks spread their decisions over:
// each run's in-memory window of enforced decisions (the denial window,
// 10 minutes) grows with every decision, and a real run makes a few calls
// a second, not thousands.
const benchRuns = 64

// BenchmarkDecide is one decision at a time: Point.Decide of an allowed
// tool call for a run with 100 earlier decisions (history cache warm),
// including the durable write of the decision and its event through the
// store's single writer. The runs take turns.
func BenchmarkDecide(b *testing.B) {
	r := newBenchRig(b, benchRuns)
	ctx := context.Background()
	lat := make([]time.Duration, 0, 1<<16)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		run := r.runs[i%len(r.runs)]
		i++
		t0 := time.Now()
		d, err := r.point.Decide(ctx, &decision.Request{Run: run, Action: benchAction, Via: "api", Actor: "run:" + string(run.ID)})
		lat = append(lat, time.Since(t0))
		if err != nil || d.Verdict != writ.VerdictAllow {
			b.Fatalf("decide: %+v, %v", d, err)
		}
	}
	benchReportLatency(b, lat)
}

// BenchmarkDecideParallel is BenchmarkDecide from 4 × GOMAXPROCS
// goroutines, each deciding for a run of its own (decisions of one run are
// serialized by the point): the store's writer batches their commits.
func BenchmarkDecideParallel(b *testing.B) {
	const par = 4
	goroutines := par * runtime.GOMAXPROCS(0)
	r := newBenchRig(b, max(benchRuns, goroutines))
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(par)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Goroutine g decides for runs g, g+G, g+2G, … in turn.
		g := int(next.Add(1) - 1)
		mine := []*writ.Run{}
		for j := g; j < len(r.runs); j += goroutines {
			mine = append(mine, r.runs[j])
		}
		i := 0
		for pb.Next() {
			run := mine[i%len(mine)]
			i++
			d, err := r.point.Decide(ctx, &decision.Request{Run: run, Action: benchAction, Via: "api", Actor: "run:" + string(run.ID)})
			if err != nil || d.Verdict != writ.VerdictAllow {
				b.Errorf("decide: %+v, %v", d, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
