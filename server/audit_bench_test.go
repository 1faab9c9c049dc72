package server

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/trigger"
)

// The audit log's speed figures (issue 4), measured on the store and the
// integrator wired as New wires them (the store's commit hook wakes
// auditlog.Log.Run), or on a whole server:
//
//   - BenchmarkAuditAppendIntegrated: durable events per second with the
//     integrator running, until every event is in a signed checkpoint, on
//     a fresh log and on the 1,000,000-entry one;
//   - BenchmarkAuditCheckpointLatency: commit → signed checkpoint under a
//     steady load, p50/p90/p99, on a fresh log and on the 1,000,000-entry
//     one;
//   - BenchmarkAuditBuild1M: builds a 1,000,000-entry log once, in the cache
//     directory (auditCacheDir), for the benchmarks here that need a large
//     log and for bench/run.sh's export and offline verification;
//   - BenchmarkAuditInclusionProof1M: inclusion proofs at 1,000,000 entries,
//     in process and over HTTP.
//
// bench/run.sh step j runs them (ONLY=audit runs that step alone) and
// docs/performance.md ("Audit log") reports them. sqlstore's
// BenchmarkAuditAppend and BenchmarkAuditPeerInsert are the store alone
// and its peer, a plain insert of the same rows.

// auditBenchEvent is an event like the ones writ appends on its own: a run
// token issued (httpapi's tokenEvent), about 450 bytes once stored. It is
// the same event as sqlstore's benchmarks append.
func auditBenchEvent(i int) *writ.Event {
	run := writ.RunID(fmt.Sprintf("01kb3v4k5m6n7p8q9r%08d", i/8))
	return &writ.Event{
		Type:    writ.EventTokenIssued,
		Run:     run,
		Actor:   "spiffe://writ.bench/agent/claude/run/" + string(run),
		Subject: "spiffe://writ.bench/agent/claude/run/" + string(run),
		Details: map[string]any{
			"jti":   fmt.Sprintf("01kb3v4k5m6n7p8q9r%08d", i),
			"aud":   []string{"https://vault.example.org"},
			"exp":   1764100000 + i,
			"bound": true,
			"jkt":   "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiGQA4I",
		},
	}
}

// auditRig is a store and its integrator, wired as New wires them: every
// commit that stored events wakes Log.Run.
type auditRig struct {
	db   *sqlstore.DB
	log  *auditlog.Log
	stop func() error // stops the integrator, then closes the store
}

func startAuditRig(dsn, durability string, signer note.Signer, origin string) (*auditRig, error) {
	var ref atomic.Pointer[auditlog.Log]
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn, Durability: durability,
		OnEvents: func() {
			if l := ref.Load(); l != nil {
				l.Wake()
			}
		}})
	if err != nil {
		return nil, err
	}
	l, err := auditlog.New(auditlog.Config{Store: auditStore{db}, Signer: signer, Origin: origin})
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	ref.Store(l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return &auditRig{db: db, log: l, stop: func() error {
		cancel()
		return errors.Join(<-done, db.Close())
	}}, nil
}

// auditBenchSigner is a fresh log key for the origin writ.bench/audit.
func auditBenchSigner(tb testing.TB) (note.Signer, string) {
	tb.Helper()
	const origin = "writ.bench/audit"
	skey, _, err := note.GenerateKey(crand.Reader, origin)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return s, origin
}

// auditAppendAll appends n events, auditBenchEvent(from) …, from c
// concurrent callers, one event per DB.AppendEvent; each call returns once
// its event is committed.
func auditAppendAll(ctx context.Context, db *sqlstore.DB, c, from, n int) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := db.AppendEvent(ctx, auditBenchEvent(from+i)); err != nil {
					mu.Lock()
					first = cmpOr(first, err)
					mu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// waitLogged polls until the log's latest signed checkpoint has size
// entries, or timeout passes.
func waitLogged(l *auditlog.Log, size int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for l.Size() < size {
		if time.Now().After(deadline) {
			return fmt.Errorf("the log has %d entries after %v; want %d", l.Size(), timeout, size)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// BenchmarkAuditAppendIntegrated appends b.N events, one per
// DB.AppendEvent, from c concurrent callers, with the integrator running
// as in `writ serve`: its AppendLog transactions (the UPDATE that gives
// each event its log index and leaf hash, the tree hashes, the signed
// checkpoint) go through the same single writer as the appends. The timer
// stops when the last event is in a signed checkpoint, so ns/op and
// logged-events/s are for events both durable and logged;
// acked-events/s counts only until the last append was acknowledged.
func BenchmarkAuditAppendIntegrated(b *testing.B) {
	for _, durability := range []string{sqlstore.DurabilityNormal, sqlstore.DurabilityFull} {
		for _, c := range []int{64, 256} {
			b.Run(fmt.Sprintf("%s/c=%d", durability, c), func(b *testing.B) {
				auditAppendIntegrated(b, durability, c, false)
			})
		}
	}
	for _, c := range []int{64, 256} {
		b.Run(fmt.Sprintf("1m/normal/c=%d", c), func(b *testing.B) {
			auditAppendIntegrated(b, sqlstore.DurabilityNormal, c, true)
		})
	}
}

// auditAppendIntegrated appends b.N events with the integrator running: on
// a fresh log, or (on1M) on a copy of the cached 1,000,000-entry log.
func auditAppendIntegrated(b *testing.B, durability string, c int, on1M bool) {
	dsn := "sqlite://" + filepath.Join(b.TempDir(), "writ.db")
	signer, origin := auditBenchSigner(b)
	if on1M {
		cfg := copyAudit1M(b)
		keys, err := LoadKeys(cfg.Keys)
		if err != nil {
			b.Fatal(err)
		}
		dsn, signer, origin = cfg.Store, keys.Log, cfg.TrustDomain+"/audit"
	}
	rig, err := startAuditRig(dsn, durability, signer, origin)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	size0 := int64(0)
	if on1M {
		if _, err := rig.log.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		if size0 = rig.log.Size(); size0 != audit1MSize {
			b.Fatalf("the copy's log has %d entries; want %d", size0, audit1MSize)
		}
	}
	defer func() {
		if err := rig.stop(); err != nil {
			b.Error(err)
		}
	}()
	cps0, err := rig.db.Checkpoints(ctx, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := auditAppendAll(ctx, rig.db, c, 0, b.N); err != nil {
		b.Fatal(err)
	}
	acked := b.Elapsed()
	if err := waitLogged(rig.log, size0+int64(b.N), 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/acked.Seconds(), "acked-events/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logged-events/s")
	if cps, err := rig.db.Checkpoints(ctx, 1<<30); err == nil && len(cps) > len(cps0) {
		b.ReportMetric(float64(b.N)/float64(len(cps)-len(cps0)), "entries/checkpoint")
	}
}

// copyAudit1M copies the cached 1,000,000-entry installation into a
// temporary directory and returns its config; it skips the benchmark when
// the cache is missing.
func copyAudit1M(b *testing.B) Config {
	b.Helper()
	src := auditCacheDir(b)
	if _, err := readAudit1MBuild(src); err != nil {
		b.Skipf("no 1,000,000-entry log in %s (%v): run BenchmarkAuditBuild1M first (bench/run.sh step j does)", src, err)
	}
	dir := filepath.Join(b.TempDir(), "audit-1m")
	if err := copyTree(src, dir); err != nil {
		b.Fatal(err)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "writ.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// ---- commit → signed checkpoint latency ----------------------------------

// auditLoadSeconds is how long each load of BenchmarkAuditCheckpointLatency
// is measured (WRIT_AUDIT_LOAD_SECONDS, default 10), after one second of
// warm-up that is not counted.
func auditLoadSeconds() time.Duration {
	if s, err := strconv.ParseFloat(os.Getenv("WRIT_AUDIT_LOAD_SECONDS"), 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	return 10 * time.Second
}

// auditLoadRates are the loads, in events per second
// (WRIT_AUDIT_LOAD_RATES, default "1000 5000 10000").
func auditLoadRates() []int {
	var out []int
	for _, f := range bytes.Fields([]byte(os.Getenv("WRIT_AUDIT_LOAD_RATES"))) {
		if n, err := strconv.Atoi(string(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []int{1000, 5000, 10000}
	}
	return out
}

// BenchmarkAuditCheckpointLatency measures how long an acknowledged state
// change waits for a signed checkpoint that covers its event. A whole dev
// server runs in process (PrepareDev, New, Listen, FinishDev, Run: SQLite,
// durability normal, every loop, the integrator woken by each commit).
// An open-loop load generator schedules state changes at a fixed rate for
// auditLoadSeconds after one second of warm-up:
//
//   - append: DB.AppendEvent on the server's store, one event per call,
//     from up to 256 callers — the cheapest state change, so the rate can
//     go high;
//   - runs: POST /v1/runs over HTTP with pre-signed triggers (each run
//     start commits two events), from up to 64 keep-alive connections:
//     the API path with its CPU cost; the rate is in events, so runs/s is
//     half of it;
//   - append-1m: as append, on a server started on a copy of the cached
//     1,000,000-entry log (BenchmarkAuditBuild1M): a log that has been
//     running for a while.
//
// The time of acknowledgement is taken when the call returns (the commit is
// durable). A poller reads Log.Size every 200 µs and records when the
// signed size grows; after the load, every event's log index is read from
// the store, and its latency is the first time the signed size exceeded
// that index, minus its acknowledgement (0 when the checkpoint was there
// first). For runs, the latency is that of the run's later event. It
// reports p50/p90/p99/max in ms, the rate achieved, the time from the
// scheduled start to the acknowledgement, checkpoints per second, and the
// process's CPU (server and load generator together) in cores.
//
// It ignores b.N: run it with -benchtime=1x.
func BenchmarkAuditCheckpointLatency(b *testing.B) {
	for _, kind := range []string{"append", "runs", "append-1m"} {
		for _, rate := range auditLoadRates() {
			b.Run(fmt.Sprintf("%s/rate=%d", kind, rate), func(b *testing.B) {
				auditLatency(b, kind, rate)
			})
		}
	}
}

type auditDevServer struct {
	srv  *Server
	url  string
	stop func()
}

// startAuditDevServer starts a whole server for cfg, as cmd/writ's demo
// does (FinishDev too when dev is not nil), and stops it when tb ends.
func startAuditDevServer(tb testing.TB, cfg Config, dev *DevEnv) *auditDevServer {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil)) // info level, formatted and thrown away
	ctx, stop := context.WithCancel(context.Background())
	srv, err := New(ctx, cfg, Options{Logger: log})
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	url, err := srv.Listen()
	if err != nil {
		stop()
		srv.Close()
		tb.Fatal(err)
	}
	if dev != nil {
		if err := srv.FinishDev(ctx, dev, url); err != nil {
			stop()
			srv.Close()
			tb.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	s := &auditDevServer{srv: srv, url: url}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			stop()
			if err := <-done; err != nil {
				tb.Errorf("server: %v", err)
			}
		})
	}
	tb.Cleanup(s.stop)
	return s
}

type auditSample struct {
	sched, ack time.Time
	id         string // the event id (append) or run id (runs)
}

func auditLatency(b *testing.B, kind string, rate int) {
	var s *auditDevServer
	var dev *DevEnv
	if kind == "append-1m" {
		// A server whose log already holds 1,000,000 entries: a copy of
		// the cached installation.
		cfg := copyAudit1M(b)
		cfg.Durability = sqlstore.DurabilityNormal
		s = startAuditDevServer(b, cfg, nil)
	} else {
		cfg, d, err := PrepareDev(b.TempDir(), "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		cfg.Durability = sqlstore.DurabilityNormal
		s, dev = startAuditDevServer(b, cfg, d), d
	}
	ctx := context.Background()
	// The server's own start-up events first: the load starts on a log
	// with nothing pending, and only what it adds is read back.
	if err := waitUnsequenced(ctx, s.srv.store, time.Minute); err != nil {
		b.Fatal(err)
	}
	size0 := s.srv.audit.Size()

	warm, measured := time.Second, auditLoadSeconds()
	per := float64(rate)
	if kind == "runs" {
		per /= 2 // two events per run
	}
	total := int(per * (warm + measured).Seconds())
	period := time.Duration(float64(time.Second) / per)

	// The work of one state change; it returns the id to find its event by.
	var do func(i int) (string, error)
	workers := 256
	switch kind {
	case "append", "append-1m":
		do = func(i int) (string, error) {
			ev := auditBenchEvent(i)
			err := s.srv.store.AppendEvent(ctx, ev)
			return ev.ID, err
		}
	case "runs":
		workers = 64
		pem, err := os.ReadFile(dev.KeyFile)
		if err != nil {
			b.Fatal(err)
		}
		key, err := trigger.LoadPrivateKey(pem)
		if err != nil {
			b.Fatal(err)
		}
		signed := make([][]byte, total)
		now := time.Now()
		for i := range signed {
			p, err := json.Marshal(trigger.Template(now, dev.Human))
			if err != nil {
				b.Fatal(err)
			}
			if signed[i], err = trigger.SignDSSE(p, writ.TriggerPayloadType, key); err != nil {
				b.Fatal(err)
			}
		}
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}}
		defer client.CloseIdleConnections()
		do = func(i int) (string, error) {
			resp, err := client.Post(s.url+"/v1/runs", "application/json", bytes.NewReader(signed[i]))
			if err != nil {
				return "", err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return "", err
			}
			if resp.StatusCode != http.StatusCreated {
				return "", fmt.Errorf("POST /v1/runs: %s: %s", resp.Status, body)
			}
			var run struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(body, &run); err != nil || run.ID == "" {
				return "", fmt.Errorf("POST /v1/runs: no run id in %s", body)
			}
			return run.ID, nil
		}
	}

	// The poller: when the signed size grew, and to what.
	type growth struct {
		at   time.Time
		size int64
	}
	var (
		grew     []growth
		stopPoll = make(chan struct{})
		polled   = make(chan struct{})
	)
	go func() {
		defer close(polled)
		last := int64(-1)
		for {
			if n := s.srv.audit.Size(); n != last {
				grew = append(grew, growth{time.Now(), n})
				last = n
			}
			select {
			case <-stopPoll:
				return
			default:
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()

	// The open-loop load: job i is due at start + i·period, whether or not
	// the earlier ones are done.
	samples := make([]auditSample, total)
	jobs := make(chan int, total)
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		loadErr error
	)
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				id, err := do(i)
				samples[i].ack = time.Now()
				samples[i].id = id
				if err != nil {
					errMu.Lock()
					loadErr = cmpOr(loadErr, err)
					errMu.Unlock()
				}
			}
		})
	}
	var ru0, ru1 syscall.Rusage
	start := time.Now()
	var measureStart time.Time
	for i := 0; i < total; {
		due := start.Add(time.Duration(i) * period)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		for ; i < total; i++ {
			due := start.Add(time.Duration(i) * period)
			if due.After(now) {
				break
			}
			if measureStart.IsZero() && due.Sub(start) >= warm {
				measureStart = now
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			}
			samples[i].sched = due
			jobs <- i
		}
	}
	close(jobs)
	wg.Wait()
	loadEnd := time.Now()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if loadErr != nil {
		b.Fatal(loadErr)
	}
	// Wait until nothing committed is left unlogged, then stop polling.
	if err := waitUnsequenced(ctx, s.srv.store, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	// Every event's log index (for runs: the run's later event). Not
	// DB.LogSize: at 1,000,000 entries it costs as much as an integration
	// pass, and would show in the CPU profile.
	seqOf := make(map[string]int64, total)
	at := size0
	for {
		es, err := s.srv.store.LogEntries(ctx, at, at+1000)
		if err != nil {
			b.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			k := e.ID
			if kind == "runs" {
				k = string(e.Run)
			}
			seqOf[k] = max(seqOf[k], e.Seq)
		}
		at = es[len(es)-1].Seq + 1
	}
	if err := waitLogged(s.srv.audit, at, time.Minute); err != nil { // published
		b.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // let the poller see the last growth
	close(stopPoll)
	<-polled

	var lat, ackLat []time.Duration
	early := 0
	for _, sm := range samples {
		if sm.sched.Sub(start) < warm {
			continue
		}
		seq, ok := seqOf[sm.id]
		if !ok {
			b.Fatalf("no logged event for %s", sm.id)
		}
		// The first growth past seq.
		k := sort.Search(len(grew), func(j int) bool { return grew[j].size > seq })
		if k == len(grew) {
			b.Fatalf("the poller never saw entry %d signed", seq)
		}
		d := grew[k].at.Sub(sm.ack)
		if d < 0 {
			d, early = 0, early+1
		}
		lat = append(lat, d)
		ackLat = append(ackLat, sm.ack.Sub(sm.sched))
	}
	window := loadEnd.Sub(measureStart).Seconds()
	cpu := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
	}
	checkpoints := 0
	for _, g := range grew {
		if g.at.After(measureStart) && g.at.Before(loadEnd) {
			checkpoints++
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	slices.Sort(lat)
	slices.Sort(ackLat)
	b.ReportMetric(float64(len(lat))/window*(float64(rate)/per), "events/s")
	b.ReportMetric(ms(pct(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 0.90)), "p90-ms")
	b.ReportMetric(ms(pct(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(pct(ackLat, 0.50)), "ack-p50-ms")
	b.ReportMetric(ms(pct(ackLat, 0.99)), "ack-p99-ms")
	b.ReportMetric(float64(checkpoints)/window, "checkpoints/s")
	b.ReportMetric((cpu(ru1)-cpu(ru0))/window, "cpu-cores")
	b.ReportMetric(float64(early)/float64(len(lat))*100, "early-%")
}

// waitUnsequenced polls until the store holds no committed event that is
// not yet logged.
func waitUnsequenced(ctx context.Context, db *sqlstore.DB, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; {
		left, err := db.Unsequenced(ctx, 1)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("events still unlogged after %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pct is the q-quantile of sorted ds (nearest rank).
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[int(q*float64(len(ds)-1)+0.5)]
}

// ---- the 1,000,000-entry log -----------------------------------------------

const audit1MSize = 1_000_000

// auditCacheDir is where the 1,000,000-entry log is kept between runs:
// $WRIT_BENCH_CACHE/audit-1m, by default
// ${XDG_CACHE_HOME:-$HOME/.cache}/writ-bench/audit-1m — outside the
// repository. It is a dev installation (writ.yaml, keys/, data/writ.db)
// whose log holds exactly audit1MSize entries and nothing else, plus
// build.json, written last, which says how the log was built.
func auditCacheDir(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("WRIT_BENCH_CACHE")
	if base == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			tb.Fatal(err)
		}
		base = filepath.Join(c, "writ-bench")
	}
	return filepath.Join(base, "audit-1m")
}

// audit1MBuild is build.json.
type audit1MBuild struct {
	Entries         int64   `json:"entries"`
	Checkpoints     int     `json:"checkpoints"`
	AppendSeconds   float64 `json:"appendSeconds"`   // until the last append was acknowledged
	LoggedSeconds   float64 `json:"loggedSeconds"`   // until the last entry was in a signed checkpoint
	DBBytes         int64   `json:"dbBytes"`         // data/writ.db
	Built           string  `json:"built"`           // UTC time
	Concurrency     int     `json:"concurrency"`     // appending callers
	LoadAverageThen string  `json:"loadAverageThen"` // /proc/loadavg before building
}

func readAudit1MBuild(dir string) (*audit1MBuild, error) {
	data, err := os.ReadFile(filepath.Join(dir, "build.json"))
	if err != nil {
		return nil, err
	}
	var bi audit1MBuild
	if err := json.Unmarshal(data, &bi); err != nil {
		return nil, err
	}
	if bi.Entries != audit1MSize {
		return nil, fmt.Errorf("%s/build.json: %d entries, want %d", dir, bi.Entries, audit1MSize)
	}
	return &bi, nil
}

// BenchmarkAuditBuild1M builds the 1,000,000-entry log in auditCacheDir
// when it is missing, and otherwise only reports how it was built. The
// building is itself a measurement: 64 callers append 1,000,000 events
// through DB.AppendEvent as fast as they can, while the integrator,
// woken by the commits as in `writ serve`, logs them in batches of up to
// auditlog.DefaultMaxBatch (durability normal). It reports the seconds
// until the last append was acknowledged and until the last entry was in
// a signed checkpoint, and logs the progress every 100,000 events.
//
// It ignores b.N: run it with -benchtime=1x.
func BenchmarkAuditBuild1M(b *testing.B) {
	dir := auditCacheDir(b)
	bi, err := readAudit1MBuild(dir)
	if err != nil {
		if bi, err = buildAudit1M(b, dir); err != nil {
			b.Fatal(err)
		}
	} else {
		b.Logf("cached in %s (built %s)", dir, bi.Built)
	}
	b.ReportMetric(bi.AppendSeconds, "append-s")
	b.ReportMetric(bi.LoggedSeconds, "logged-s")
	b.ReportMetric(float64(bi.Entries)/bi.LoggedSeconds, "logged-events/s")
	b.ReportMetric(float64(bi.Checkpoints), "checkpoints")
	b.ReportMetric(float64(bi.DBBytes)/1e6, "db-MB")
}

func buildAudit1M(b *testing.B, dir string) (*audit1MBuild, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil { // an incomplete one
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "audit-1m.building-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // gone after the rename unless building failed
	la, _ := os.ReadFile("/proc/loadavg")
	cfg, _, err := PrepareDev(tmp, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	keys, err := LoadKeys(cfg.Keys)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	rig, err := startAuditRig(cfg.Store, sqlstore.DurabilityNormal, keys.Log, cfg.TrustDomain+"/audit")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	const c, chunk = 64, 100_000
	b.Logf("building a log of %d entries in %s", audit1MSize, tmp)
	start := time.Now()
	last := start
	for n := 0; n < audit1MSize; n += chunk {
		if err := auditAppendAll(ctx, rig.db, c, n, chunk); err != nil {
			return nil, errors.Join(err, rig.stop())
		}
		now := time.Now()
		b.Logf("  %7d appended in %6.1f s (%6.0f events/s over the last %d); %7d logged", n+chunk, now.Sub(start).Seconds(),
			float64(chunk)/now.Sub(last).Seconds(), chunk, rig.log.Size())
		last = now
	}
	appended := time.Since(start)
	if err := waitLogged(rig.log, audit1MSize, 10*time.Minute); err != nil {
		return nil, errors.Join(err, rig.stop())
	}
	logged := time.Since(start)
	cps, err := rig.db.Checkpoints(ctx, 1<<30)
	if err != nil {
		return nil, errors.Join(err, rig.stop())
	}
	if err := rig.stop(); err != nil {
		return nil, err
	}
	b.Logf("appended in %v, all logged in %v, %d checkpoints", appended.Round(time.Millisecond), logged.Round(time.Millisecond), len(cps))
	st, err := os.Stat(filepath.Join(cfg.DataDir, "writ.db"))
	if err != nil {
		return nil, err
	}
	bi := &audit1MBuild{
		Entries: audit1MSize, Checkpoints: len(cps), AppendSeconds: appended.Seconds(), LoggedSeconds: logged.Seconds(),
		DBBytes: st.Size(), Built: time.Now().UTC().Format(time.RFC3339), Concurrency: c, LoadAverageThen: string(bytes.TrimSpace(la)),
	}
	data, err := json.MarshalIndent(bi, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "build.json"), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return bi, nil
}

// openAudit1M opens the cached log in place, read-only in practice: a
// store and an auditlog.Log over it that is never run (New does no I/O;
// proofs only read). It skips the benchmark when the cache is missing.
func openAudit1M(b *testing.B) (dir string, cfg Config, db *sqlstore.DB, l *auditlog.Log) {
	b.Helper()
	dir = auditCacheDir(b)
	if _, err := readAudit1MBuild(dir); err != nil {
		b.Skipf("no 1,000,000-entry log in %s (%v): run BenchmarkAuditBuild1M first (bench/run.sh step j does)", dir, err)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "writ.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	keys, err := LoadKeys(cfg.Keys)
	if err != nil {
		b.Fatal(err)
	}
	db, err = sqlstore.Open(context.Background(), sqlstore.Config{DSN: cfg.Store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	l, err = auditlog.New(auditlog.Config{Store: auditStore{db}, Signer: keys.Log, Origin: cfg.TrustDomain + "/audit"})
	if err != nil {
		b.Fatal(err)
	}
	return dir, cfg, db, l
}

// copyTree copies the regular files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// BenchmarkAuditInclusionProof1M proves random entries of the cached
// 1,000,000-entry log (the goal: p99 < 1 ms):
//
//   - store: auditlog.Log.InclusionProof over the real SQLite store
//     (tlog.ProveRecord reading the stored hashes it needs with one query),
//     in process, on the cache in place;
//   - http: GET /v1/audit/proof/inclusion?index=N with a human token,
//     over loopback HTTP, from a whole server started on a copy of the
//     cache: entry lookup, latest checkpoint, proof and JSON answer;
//   - http-no-loops: the same route of the same server with its
//     background loops stopped (New and Listen, but not Run): among them
//     the integrator, whose idle pass reads the whole outbox once a second.
//
// Each proof is timed on its own, after 1,000 untimed ones (the database
// pages warm in the OS cache); the first few are checked with
// auditlog.CheckInclusion against the signed checkpoint.
func BenchmarkAuditInclusionProof1M(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		_, _, db, l := openAudit1M(b)
		ctx := context.Background()
		cp, _, err := l.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if cp.Size != audit1MSize {
			b.Fatalf("the cached log has %d entries; want %d", cp.Size, audit1MSize)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for k := range 1000 {
			i := r.Int64N(cp.Size)
			p, err := l.InclusionProof(ctx, i, cp.Size)
			if err != nil {
				b.Fatal(err)
			}
			if k < 10 {
				es, err := db.LogEntries(ctx, i, i+1)
				if err != nil || len(es) != 1 {
					b.Fatal(es, err)
				}
				if err := auditlog.CheckInclusion(p, cp, i, auditlog.LeafHash(es[0].Body)); err != nil {
					b.Fatal(err)
				}
			}
		}
		durs := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			i := r.Int64N(cp.Size)
			t0 := time.Now()
			if _, err := l.InclusionProof(ctx, i, cp.Size); err != nil {
				b.Fatal(err)
			}
			durs = append(durs, time.Since(t0))
		}
		b.StopTimer()
		reportLatency(b, durs)
	})
	b.Run("http", func(b *testing.B) { auditProofHTTP(b, true) })
	b.Run("http-no-loops", func(b *testing.B) { auditProofHTTP(b, false) })
}

// auditProofHTTP times GET /v1/audit/proof/inclusion on a copy of the
// cached log: served by a whole running server (loops), or by the same
// server's handler alone with no background loop, the control that shows
// what the loops' work costs the route.
func auditProofHTTP(b *testing.B, loops bool) {
	cfg := copyAudit1M(b)
	ctx := context.Background()
	secret, _, err := BootstrapToken(ctx, cfg, "dev", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	var url string
	if loops {
		s := startAuditDevServer(b, cfg, nil)
		// Its start-up events logged first: what remains is the steady
		// state of an idle log, the integrator's pass once a second.
		if err := waitUnsequenced(ctx, s.srv.store, time.Minute); err != nil {
			b.Fatal(err)
		}
		url = s.url
	} else {
		// The same server, built by New, but only its HTTP handler
		// serves: Run is not called, so no background loop runs (no
		// integrator pass, no expiry or pruning).
		srv, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		if url, err = srv.Listen(); err != nil {
			srv.Close()
			b.Fatal(err)
		}
		hs := &http.Server{Handler: srv.api}
		go hs.Serve(srv.ln)
		b.Cleanup(func() {
			hs.Close()
			srv.Close()
		})
	}
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	prove := func(i int64) error {
		req, err := http.NewRequest(http.MethodGet, url+"/v1/audit/proof/inclusion?index="+strconv.FormatInt(i, 10), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET inclusion proof of %d: %s: %s", i, resp.Status, body)
		}
		return nil
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		if err := prove(r.Int64N(audit1MSize)); err != nil {
			b.Fatal(err)
		}
	}
	durs := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		i := r.Int64N(audit1MSize)
		t0 := time.Now()
		if err := prove(i); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, durs)
}

func reportLatency(b *testing.B, durs []time.Duration) {
	if len(durs) == 0 {
		return
	}
	slices.Sort(durs)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(pct(durs, 0.50)), "p50-us")
	b.ReportMetric(us(pct(durs, 0.90)), "p90-us")
	b.ReportMetric(us(pct(durs, 0.99)), "p99-us")
	b.ReportMetric(us(durs[len(durs)-1]), "max-us")
}
