package broker_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
	"github.com/writ-dev/writ/broker/gitlease"
	"github.com/writ-dev/writ/broker/secret"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/sqlstore"
)

// Benchmarks of the broker with the real store (SQLite in a temporary
// directory, durability normal) and, for git leases, the real decision
// point and default policy bundle. docs/performance.md reports them
// (bench/run.sh ONLY=broker). Nothing here asserts on time.

type benchBroker struct {
	db    *sqlstore.DB
	b     *broker.Broker
	point *decision.Point
	runs  []*writ.Run
}

// newBenchBroker builds a broker over a fresh store with nRuns refactor
// runs in scope of acme/api. With approveAll the decision point is
// replaced by one that allows every request as if a human had approved it
// (static secrets cannot be benchmarked with a human in the loop).
func newBenchBroker(b *testing.B, nRuns int, approveAll bool) *benchBroker {
	b.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, sqlstore.Config{DSN: filepath.Join(b.TempDir(), "writ.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	profiles := []*writ.Profile{{Name: "refactor", MaxDuration: time.Hour, Tools: []string{"read"}}}
	data := decision.PolicyData(profiles, nil, nil, decision.Denials{Max: 5, Window: 10 * time.Minute}, "maintainers")
	data["credentials"] = map[string]any{"kinds": []string{"git", "secret"}, "postgres": map[string]any{}, "vault": []string{}}
	bundle, err := policy.Load(ctx, policy.Default(), policy.LoadOptions{Source: "embedded", Config: data})
	if err != nil {
		b.Fatal(err)
	}
	bb := &benchBroker{db: db}
	bb.point = decision.New(decision.Config{Store: db, Policy: policy.NewEngine(bundle), Denials: decision.Denials{Max: 5, Window: 10 * time.Minute}})
	var dec broker.Decider = bb.point
	if approveAll {
		dec = &scripted{db: db, verdict: writ.VerdictAllow, approve: "apr_bench"}
	}
	sealer, _ := broker.NewSealer(make([]byte, broker.KeySize))
	secrets, err := secret.New(db, sealer)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := secrets.Put(ctx, "staging/deploy-key", []byte("s3cr3t-value-of-some-length"), "human:alice"); err != nil {
		b.Fatal(err)
	}
	bb.b, err = broker.New(broker.Config{Store: db, Decider: dec, Sealer: sealer,
		Sources: map[string]broker.Source{"git": gitlease.Source{}, "secret": secrets}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	for range nRuns {
		id := writ.RunID(writ.NewULID(now, nil))
		tid := writ.NewULID(now, nil)
		r := &writ.Run{ID: id, Agent: "refactor-bot", Profile: "refactor", Ticket: writ.Ticket{System: "jira", ID: "ENG-1"},
			Scope: writ.Scope{Repos: []writ.RepoScope{{Name: "acme/api", Base: "main", Write: true, Paths: []string{"src/**"}}},
				Tools: []string{"read"}, Secrets: []string{"deploy-key"}, MaxDuration: writ.Duration(time.Hour)},
			ScopeDigest: "sha256:x", TriggerID: tid, TriggerDigest: fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(tid))), Issuer: "alice",
			SignerKey: "SHA256:x", State: writ.RunActive, CreatedAt: now, Deadline: now.Add(time.Hour)}
		trig := writ.TriggerRecord{ID: tid, Digest: r.TriggerDigest, ExpiresAt: now.Add(time.Hour)}
		if err := db.CreateRun(ctx, r, trig, &writ.Event{Type: writ.EventRunStarted, Run: id, Actor: writ.ActorSystem}); err != nil {
			b.Fatal(err)
		}
		bb.runs = append(bb.runs, r)
	}
	return bb
}

// BenchmarkLeaseIssueRevoke: b.N leases issued by 16 concurrent callers
// (spread over 16 runs), then every run ends and the revoker drains the
// queue. leases/s counts issue and revoke together: the whole life of a
// lease.
func BenchmarkLeaseIssueRevoke(b *testing.B) {
	for _, tc := range []struct {
		kind, target, perm string
		approveAll         bool
	}{
		{"git", "acme/api", "write", false},
		{"secret", "staging/deploy-key", "read", true},
	} {
		b.Run(tc.kind, func(b *testing.B) {
			ctx := context.Background()
			bb := newBenchBroker(b, 16, tc.approveAll)
			var next atomic.Int64
			b.SetParallelism(8) // 16 callers on 2 cores
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				run := bb.runs[int(next.Add(1)-1)%len(bb.runs)]
				req := &writ.CredentialRequest{Kind: tc.kind, Target: tc.target, Permissions: []string{tc.perm}}
				for pb.Next() {
					if _, err := bb.b.Request(ctx, run, req, "run:"+string(run.ID)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			issued := time.Since(start)
			for _, r := range bb.runs {
				if _, err := bb.db.TransitionRun(ctx, r.ID, writ.RunEnded, "bench", &writ.Event{Actor: writ.ActorSystem}); err != nil {
					b.Fatal(err)
				}
			}
			revoked := 0
			for revoked < b.N {
				n := bb.b.RevokeDue(ctx)
				if n == 0 {
					b.Fatalf("revoked %d of %d, then nothing more", revoked, b.N)
				}
				revoked += n
			}
			total := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/total.Seconds(), "leases/s")
			b.ReportMetric(float64(b.N)/issued.Seconds(), "issued/s")
			b.ReportMetric(float64(b.N)/(total-issued).Seconds(), "revoked/s")
		})
	}
}

// BenchmarkDecisionOnly is the floor of a git lease: the same credential
// request decided by the same point and policy, recorded, nothing issued.
func BenchmarkDecisionOnly(b *testing.B) {
	ctx := context.Background()
	bb := newBenchBroker(b, 16, false)
	var next atomic.Int64
	a := writ.Action{Kind: writ.ActionCredential, Name: "git", Target: writ.Target{Repo: "acme/api"},
		Args: []byte(`{"permissions":["write"],"target":"acme/api","ttl":"5m0s","ttlSeconds":300}`)}
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		run := bb.runs[int(next.Add(1)-1)%len(bb.runs)]
		for pb.Next() {
			d, err := bb.point.Decide(ctx, &decision.Request{Run: run, Action: a, Via: "broker", Actor: "run:" + string(run.ID)})
			if err != nil || d.Verdict != writ.VerdictAllow {
				b.Errorf("%v %+v", err, d)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
}

// BenchmarkRunEndRevokes100: a run holds 100 leases; the time from its
// end (the state change committed) to the last lease revoked, with the
// revoker running as the server runs it (woken by the store's commit).
func BenchmarkRunEndRevokes100(b *testing.B) {
	ctx := context.Background()
	bb := newBenchBroker(b, b.N, false)
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	go bb.b.RunRevoker(loopCtx, time.Second)
	var leases [][]string
	for _, r := range bb.runs {
		var ids []string
		for range 100 {
			out, err := bb.b.Request(ctx, r, &writ.CredentialRequest{Kind: "git", Target: "acme/api"}, "run:"+string(r.ID))
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, out.Lease.ID)
		}
		leases = append(leases, ids)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := bb.runs[i]
		if _, err := bb.db.TransitionRun(ctx, r.ID, writ.RunEnded, "bench", &writ.Event{Actor: writ.ActorSystem}); err != nil {
			b.Fatal(err)
		}
		bb.b.Wake() // as the server's OnRunsChanged hook does
		for {
			ls, err := bb.db.ListLeases(ctx, writ.LeaseFilter{Run: r.ID, State: writ.LeaseActive, Limit: 1000})
			if err != nil {
				b.Fatal(err)
			}
			if len(ls) == 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}
