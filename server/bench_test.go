package server_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/trigger"
)

// benchServer is a full writ server — the one `writ serve --dev` builds —
// on SQLite in a temporary directory (durability normal, the default),
// serving real HTTP on a loopback port.
type benchServer struct {
	url string
	key crypto.Signer
	who string
}

// startBenchServer starts the server and stops it when b ends. Its logger
// formats every record at info level (as `writ serve` does) and throws
// the text away, so the cost of logging is part of the measurement.
func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	cfg, dev, err := server.PrepareDev(b.TempDir(), "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.Durability = "normal"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, stop := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, server.Options{Logger: log})
	if err != nil {
		stop()
		b.Fatal(err)
	}
	url, err := srv.Listen()
	if err != nil {
		stop()
		srv.Close()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("server: %v", err)
		}
	})
	pem, err := os.ReadFile(dev.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(pem)
	if err != nil {
		b.Fatal(err)
	}
	return &benchServer{url: url, key: key, who: dev.Human}
}

// signTriggers signs n triggers with unique ids (DSSE, Ed25519), each
// asking for a 30-minute run, so every run started stays active.
func (s *benchServer) signTriggers(b *testing.B, n int) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	now := time.Now()
	for i := range out {
		p, err := json.Marshal(trigger.Template(now, s.who))
		if err != nil {
			b.Fatal(err)
		}
		if out[i], err = trigger.SignDSSE(p, writ.TriggerPayloadType, s.key); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// benchClient is a keep-alive HTTP client with enough idle connections for
// every concurrent poster.
func benchClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
		},
	}
}

// postRun posts one signed trigger to POST /v1/runs and returns an error
// unless the run was created (201). It reads the whole answer so the
// connection is reused.
func postRun(c *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/runs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/runs: %s: %s", resp.Status, msg)
	}
	return nil
}

// runsPerSecond reports the benchmark's throughput as runs/s.
func runsPerSecond(b *testing.B) {
	// A rate reported, not asserted; the floor only avoids dividing by 0.
	b.ReportMetric(float64(b.N)/max(b.Elapsed().Seconds(), 1e-9), "runs/s")
}

// parallelism is RunParallel's multiplier: 8 × GOMAXPROCS concurrent
// clients (16 on 2 cores), enough for the store's group commit to batch.
const parallelism = 8

// BenchmarkRunStartHTTP starts runs end to end: pre-signed unique triggers
// posted concurrently over real HTTP (keep-alive) to a full in-process
// server on SQLite, each answered 201 with the run active. Signing is not
// measured. bench/run.sh measures the same path against the built binary,
// next to a floor peer.
func BenchmarkRunStartHTTP(b *testing.B) {
	s := startBenchServer(b)
	signed := s.signTriggers(b, b.N)
	c := benchClient(parallelism * 4 * 2)
	defer c.CloseIdleConnections()
	var next atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	var failed atomic.Pointer[error]
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if failed.Load() != nil {
				continue // drain the iterations; the benchmark fails below
			}
			if err := postRun(c, s.url, signed[next.Add(1)-1]); err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		}
	})
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	runsPerSecond(b)
}

// BenchmarkRunStartHTTPSerial is BenchmarkRunStartHTTP with one client
// posting one trigger at a time: every run is its own commit, and the
// figure is the latency of one run start.
func BenchmarkRunStartHTTPSerial(b *testing.B) {
	s := startBenchServer(b)
	signed := s.signTriggers(b, b.N)
	c := benchClient(1)
	defer c.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := postRun(c, s.url, signed[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runsPerSecond(b)
}
