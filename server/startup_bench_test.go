package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// BenchmarkStartup1M measures, on a copy of the 1,000,000-entry log
// (BenchmarkAuditBuild1M), what a start costs: the whole start — New
// (store lock, the bounded integrity check, the checkpoint pin's check,
// keys, policy), Listen and Run until /healthz answers — beside its peer
// in the same run, a full PRAGMA quick_check of the same file, which is
// what an unbounded check would add. The pin is written by a first start
// that is not measured. It ignores b.N: run it with -benchtime=1x.
func BenchmarkStartup1M(b *testing.B) {
	cfg := copyAudit1M(b)
	ctx := context.Background()
	first := startAuditDevServer(b, cfg, nil) // writes the pin
	first.stop()

	t0 := time.Now()
	srv, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	newTook := time.Since(t0)
	url, err := srv.Listen()
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	serving := time.Since(t0)
	t1 := time.Now()
	problems, err := srv.store.QuickCheck(ctx, 10)
	if err != nil || len(problems) > 0 {
		b.Fatalf("quick_check: %v %v", problems, err)
	}
	full := time.Since(t1)
	stop()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(newTook.Seconds(), "new-s")
	b.ReportMetric(serving.Seconds(), "serving-s")
	b.ReportMetric(full.Seconds(), "quick-check-s")
}
