package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
)

// BenchmarkKillSwitches: 50 active runs holding a git lease each; `writ
// freeze` (or `writ agent disable`) is posted; the time until every run's
// token is refused and every lease is revoked (issue 13: within 1 s).
// Each iteration starts fresh runs; p50 and max are reported.
func BenchmarkKillSwitches(b *testing.B) {
	for _, sw := range []string{"freeze", "agent-disable"} {
		b.Run(sw, func(b *testing.B) {
			d := prepareDev(b)
			for _, p := range d.cfg.Profiles {
				p.Budgets = writ.Budgets{}
			}
			r := start(b, d.cfg, server.Options{}, d.finish(b))
			ctx := context.Background()
			admin := client.New(r.url, d.env.Token)
			var toRefused, toRevoked []time.Duration
			for b.Loop() {
				b.StopTimer()
				type held struct {
					c     *client.Client
					id    string
					lease string
				}
				var runs []held
				for range 50 {
					run, err := client.New(r.url, "").StartRun(ctx, d.sign(b, time.Now(), nil), nil)
					if err != nil {
						b.Fatal(err)
					}
					c := client.New(r.url, run.Token)
					out, err := c.RequestCredential(ctx, string(run.ID), &writ.CredentialRequest{Kind: "git", Target: "acme/api"})
					if err != nil {
						b.Fatal(err)
					}
					runs = append(runs, held{c, string(run.ID), out.Lease.ID})
				}
				b.StartTimer()
				start := time.Now()
				var err error
				if sw == "freeze" {
					_, err = admin.Freeze(ctx, "bench")
				} else {
					_, err = admin.DisableAgent(ctx, "refactor-bot", "bench")
				}
				if err != nil {
					b.Fatal(err)
				}
				for _, h := range runs {
					for {
						if _, err := h.c.GetRun(ctx, h.id); err != nil {
							break
						}
						time.Sleep(100 * time.Microsecond)
					}
				}
				toRefused = append(toRefused, time.Since(start))
				for _, h := range runs {
					for {
						l, err := admin.GetLease(ctx, h.lease)
						if err != nil {
							b.Fatal(err)
						}
						if l.State == writ.LeaseRevoked {
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
				toRevoked = append(toRevoked, time.Since(start))
				b.StopTimer()
				if sw == "freeze" {
					_, err = admin.Unfreeze(ctx)
				} else {
					_, err = admin.EnableAgent(ctx, "refactor-bot")
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			slices.Sort(toRefused)
			slices.Sort(toRevoked)
			b.ReportMetric(float64(toRefused[len(toRefused)/2].Microseconds())/1000, "refused-p50-ms")
			b.ReportMetric(float64(toRefused[len(toRefused)-1].Microseconds())/1000, "refused-max-ms")
			b.ReportMetric(float64(toRevoked[len(toRevoked)/2].Microseconds())/1000, "revoked-p50-ms")
			b.ReportMetric(float64(toRevoked[len(toRevoked)-1].Microseconds())/1000, "revoked-max-ms")
		})
	}
}
