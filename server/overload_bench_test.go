package server_test

// BenchmarkOverload offers POST /v1/decide at ten times what the server
// serves (issue 22, "Speed"; results in docs/performance.md, "Overload
// and admission control"), over loopback, with the default limits:
//
//	go test -run='^$' -bench=Overload -benchtime=1x ./server/
//	WRIT_BENCH_DECIDE_INFLIGHT=8 go test …   # another in-flight bound for decide
//
// Phase one measures the server unloaded (one client at a time) and its
// capacity (eight clients for two seconds). Phase two offers ten times
// that capacity open-loop for five seconds — every request its own
// goroutine, no retries — and times accepted and shed answers apart. It
// reports the p99 of each, the accepted p99 over the unloaded p99, the
// share shed, and the growth of the process's RSS (server and clients:
// one process).

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/server"
)

func rssMB(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func BenchmarkOverload(b *testing.B) {
	d := prepareDev(b)
	d.cfg.Policy.Timeout = 100 * time.Millisecond // the production default: this is about load
	for _, p := range d.cfg.Profiles {
		p.Budgets.CallsPerMinute, p.Budgets.TotalCalls = 1_000_000, 1_000_000
	}
	if v, err := strconv.Atoi(os.Getenv("WRIT_BENCH_DECIDE_INFLIGHT")); err == nil {
		l := d.cfg.Limits[httpapi.ClassDecide]
		l.InFlight = v
		d.cfg.Limits[httpapi.ClassDecide] = l
	}
	r := start(b, d.cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, d.finish(b))
	p := &policyRig{t: b, d: d, r: r, human: client.New(r.url, d.env.Token)}
	ctx := context.Background()
	// Many runs, each under its own rate limit, as many agents would be;
	// hooks use unbound tokens.
	var clients []*client.Client
	// Connections are reused, as agents' clients keep theirs.
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096}}
	for range 64 {
		self, id := p.run(nil)
		tok, err := self.MintToken(ctx, string(id), "", false)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, client.NewRun(r.url, tok.Token, nil).WithRetry(-1).WithHTTPClient(hc))
	}
	read := &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}}
	once := func(c *client.Client) (time.Duration, error) {
		t0 := time.Now()
		_, err := c.Decide(ctx, read)
		return time.Since(t0), err
	}

	var unloaded []time.Duration
	for i := range 300 {
		dt, err := once(clients[i%len(clients)])
		if err != nil {
			b.Fatal(err)
		}
		unloaded = append(unloaded, dt)
	}
	var served atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				if _, err := once(clients[(w*8+i)%len(clients)]); err == nil {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	capacity := float64(served.Load()) / 2
	offered := 10 * capacity

	rss0 := rssMB(b)
	var mu sync.Mutex
	var accepted, shed []time.Duration
	other := 0
	var firstOther error
	interval := time.Duration(float64(time.Second) / offered)
	end := time.Now().Add(5 * time.Second)
	next := time.Now()
	var outstanding atomic.Int64
	b.ResetTimer()
	for i := 0; time.Now().Before(end); i++ {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		next = next.Add(interval)
		if outstanding.Load() > 4000 {
			continue // the client side's own bound: count it as not offered
		}
		outstanding.Add(1)
		wg.Go(func() {
			defer outstanding.Add(-1)
			dt, err := once(clients[i%len(clients)])
			mu.Lock()
			defer mu.Unlock()
			switch k := writ.ErrorKind(err); {
			case err == nil:
				accepted = append(accepted, dt)
			case k == writ.KindUnavailable || k == writ.KindRateLimited:
				shed = append(shed, dt)
			default:
				if other == 0 {
					firstOther = err
				}
				other++
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	rss1 := rssMB(b)
	_, denied := denials(b, p)
	if denied != 0 || other != 0 {
		b.Errorf("%d denied, %d other errors under load (first: %v); want none", denied, other, firstOther)
	}
	u99, a99 := pct(unloaded, 0.99), pct(accepted, 0.99)
	b.ReportMetric(capacity, "capacity-req/s")
	b.ReportMetric(offered, "offered-req/s")
	b.ReportMetric(float64(u99.Microseconds()), "unloaded-p99-us")
	b.ReportMetric(float64(a99.Microseconds()), "accepted-p99-us")
	b.ReportMetric(float64(a99)/float64(max(u99, 1)), "accepted/unloaded-p99")
	b.ReportMetric(float64(pct(shed, 0.99).Microseconds()), "shed-p99-us")
	b.ReportMetric(float64(len(shed))/float64(max(len(shed)+len(accepted), 1)), "shed-share")
	b.ReportMetric(rss1-rss0, "rss-growth-MB")
}
