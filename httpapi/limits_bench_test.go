package httpapi

// Benchmarks of admission control and rate limits (issue 22; results in
// docs/performance.md, "Overload and admission control"):
//
//	go test -run='^$' -bench='Admission|Shed' -benchmem ./httpapi/
//
// BenchmarkAdmission times what an accepted request pays — an in-flight
// slot taken and given back, and a token of its caller's bucket — beside
// its peer, the same two checks written the obvious way (a buffered
// channel as the semaphore, a bucket map under one mutex, as
// golang.org/x/time/rate does per limiter). BenchmarkShed times a shed
// request through the whole handler (request id, headers, the 503 JSON
// body) beside an accepted GET /healthz through the same handler.

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func BenchmarkAdmission(b *testing.B) {
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "01jd" + strconv.Itoa(i)
	}
	b.Run("writ", func(b *testing.B) {
		l := newLimiter(Limits{ClassDecide: {InFlight: 1 << 20, Rate: 1e9, Burst: 1 << 20}}, time.Now, prometheus.NewRegistry())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				slot, err := l.admit(ClassDecide)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.allow(ClassDecide, "run", keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
				slot.release()
				i++
			}
		})
	})
	b.Run("peer-chan-mutex", func(b *testing.B) {
		sem := make(chan struct{}, 1<<20)
		var mu sync.Mutex
		buckets := map[string]*bucket{}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				select {
				case sem <- struct{}{}:
				default:
					b.Fatal("full")
				}
				now := time.Now()
				mu.Lock()
				k := keys[i%len(keys)]
				bk := buckets[k]
				if bk == nil {
					bk = &bucket{tokens: 1 << 20, last: now}
					buckets[k] = bk
				}
				bk.tokens = min(1<<20, bk.tokens+now.Sub(bk.last).Seconds()*1e9)
				bk.last = now
				bk.tokens--
				mu.Unlock()
				<-sem
				i++
			}
		})
	})
}

func BenchmarkShed(b *testing.B) {
	a := New(Config{Limits: Limits{ClassDecide: {InFlight: 1}}})
	a.limits.classes[ClassDecide].inFlight.Store(1) // the one slot is taken
	b.Run("shed-decide", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/decide", nil))
			if rec.Code != http.StatusServiceUnavailable {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
	b.Run("accepted-healthz", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
