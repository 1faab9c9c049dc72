// Command runstart measures how fast a writ server starts runs: it signs n
// unique triggers first (timed on its own, never part of the load), then
// posts them to POST /v1/runs from c concurrent workers over keep-alive
// HTTP and reports runs per second, latency percentiles and errors — and,
// given the server's pid, its resident memory before and after.
//
// With -peer it measures, in the same way and with the same kind of
// triggers, a "floor" server instead: a child process of this program that
// does only the irreducible work of a run start (see serveFloor), so that
// writ's cost can be stated as a ratio against it.
//
// It lives in its own module (bench/go.mod) because the floor opens SQLite
// directly, which writ's import rules allow only in sqlstore; the bench
// tooling is not part of the writ binary.
//
//	runstart -url http://127.0.0.1:7300 -key DIR/dev.key -n 5000 -c 16 -pid 1234
//	runstart -peer -key DIR/dev.key -n 5000 -c 16
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/trigger"
)

type options struct {
	url, key, issuer, label string
	n, c, warmup, pid       int
	peer                    bool
	serveFloor              string
	floorDB                 string
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "writ server URL (WRIT_URL of dev.env)")
	flag.StringVar(&o.key, "key", "", "the dev human's private key file (WRIT_DEV_KEY of dev.env)")
	flag.StringVar(&o.issuer, "issuer", "dev", "the signer name the triggers carry")
	flag.IntVar(&o.n, "n", 5000, "runs to start (measured)")
	flag.IntVar(&o.c, "c", 4, "concurrent workers, each with its own keep-alive connection")
	flag.IntVar(&o.warmup, "warmup", 100, "runs to start before measuring (not counted)")
	flag.IntVar(&o.pid, "pid", 0, "server pid: report its VmRSS before and after (Linux /proc)")
	flag.StringVar(&o.label, "label", "", "label of the result line (default writ or floor)")
	flag.BoolVar(&o.peer, "peer", false, "measure the floor peer (started here as a child process) instead of -url")
	flag.StringVar(&o.serveFloor, "serve-floor", "", "internal: serve the floor on this address")
	flag.StringVar(&o.floorDB, "floor-db", "", "internal: the floor's SQLite file")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "runstart:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.key == "" {
		return errors.New("-key is required")
	}
	key, err := loadKey(o.key)
	if err != nil {
		return err
	}
	if o.serveFloor != "" {
		return serveFloor(o.serveFloor, o.floorDB, key)
	}
	if o.n < 1 || o.c < 1 || o.warmup < 0 {
		return errors.New("-n and -c must be at least 1, -warmup at least 0")
	}
	if o.peer {
		url, pid, stop, err := startFloor(o)
		if err != nil {
			return err
		}
		defer stop()
		o.url, o.pid = url, pid
		if o.label == "" {
			o.label = "floor"
		}
	}
	if o.url == "" {
		return errors.New("-url is required (or -peer)")
	}
	if o.label == "" {
		o.label = "writ"
	}
	o.url = strings.TrimRight(o.url, "/")

	signStart := time.Now()
	triggers, err := signTriggers(key, o.issuer, o.warmup+o.n)
	if err != nil {
		return err
	}
	signDur := time.Since(signStart)

	c := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        o.c,
			MaxIdleConnsPerHost: o.c,
			MaxConnsPerHost:     o.c,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
	if o.warmup > 0 {
		if w := load(c, o.url, triggers[:o.warmup], o.c); w.errors > 0 {
			return fmt.Errorf("warm-up: %d of %d runs refused; first: %s", w.errors, o.warmup, w.firstErr)
		}
	}
	rssBefore := rss(o.pid, "VmRSS")
	srvCPU0, cliCPU0 := procCPU(o.pid), selfCPU()
	res := load(c, o.url, triggers[o.warmup:], o.c)
	srvCPU, cliCPU := procCPU(o.pid)-srvCPU0, selfCPU()-cliCPU0
	rssAfter := rss(o.pid, "VmRSS")
	hwm := rss(o.pid, "VmHWM")
	c.CloseIdleConnections()

	out := result{
		Label: o.label, URL: o.url, N: o.n, C: o.c, Warmup: o.warmup,
		OK: o.n - res.errors, Errors: res.errors, FirstError: res.firstErr,
		Seconds:     res.elapsed.Seconds(),
		RunsPerSec:  float64(o.n-res.errors) / res.elapsed.Seconds(),
		P50ms:       ms(res.pct(50)),
		P90ms:       ms(res.pct(90)),
		P99ms:       ms(res.pct(99)),
		MaxMs:       ms(res.pct(100)),
		SignSeconds: signDur.Seconds(),
		SignPerSec:  float64(len(triggers)) / signDur.Seconds(),
		RSSBeforeKB: rssBefore, RSSAfterKB: rssAfter, HWMKB: hwm,
		ClientCPUus: float64(cliCPU.Microseconds()) / float64(o.n),
	}
	if o.pid > 0 {
		out.ServerCPUus = float64(srvCPU.Microseconds()) / float64(o.n)
	}
	fmt.Fprintf(os.Stderr, "%s: %d runs, c=%d: %.0f runs/s, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, %d errors (signing %d triggers took %.2fs, not measured)\n",
		out.Label, o.n, o.c, out.RunsPerSec, out.P50ms, out.P90ms, out.P99ms, out.Errors, len(triggers), out.SignSeconds)
	if o.pid > 0 {
		fmt.Fprintf(os.Stderr, "%s: pid %d VmRSS %d kB before, %d kB after (peak %d kB); server CPU %.0f µs/run, client CPU %.0f µs/run\n",
			out.Label, o.pid, rssBefore, rssAfter, hwm, out.ServerCPUus, out.ClientCPUus)
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	if res.errors > 0 {
		return fmt.Errorf("%d of %d runs refused; first: %s", res.errors, o.n, res.firstErr)
	}
	return nil
}

// result is the one JSON line runstart prints on stdout.
type result struct {
	Label       string  `json:"label"`
	URL         string  `json:"url"`
	N           int     `json:"n"`
	C           int     `json:"c"`
	Warmup      int     `json:"warmup"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	RunsPerSec  float64 `json:"runs_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	SignSeconds float64 `json:"sign_seconds"`
	SignPerSec  float64 `json:"sign_per_s"`
	RSSBeforeKB int64   `json:"rss_before_kb,omitempty"`
	RSSAfterKB  int64   `json:"rss_after_kb,omitempty"`
	HWMKB       int64   `json:"hwm_kb,omitempty"`
	// CPU time per measured run, user + system: of the server process
	// (from /proc/PID/stat, 10 ms ticks; 0 without -pid) and of this
	// load generator, which shares the machine with the server.
	ServerCPUus float64 `json:"server_cpu_us_per_run,omitempty"`
	ClientCPUus float64 `json:"client_cpu_us_per_run"`
}

func loadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := trigger.LoadPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// signTriggers signs n triggers from writ's template (DSSE), each with its
// own id (a fresh ULID), asking for a 30-minute run: every run started
// stays active for the whole benchmark.
func signTriggers(key crypto.Signer, issuer string, n int) ([][]byte, error) {
	out := make([][]byte, n)
	now := time.Now()
	for i := range out {
		p, err := json.Marshal(trigger.Template(now, issuer))
		if err != nil {
			return nil, err
		}
		if out[i], err = trigger.SignDSSE(p, writ.TriggerPayloadType, key); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type loadResult struct {
	lat      []time.Duration // sorted, successful requests only
	errors   int
	firstErr string
	elapsed  time.Duration
}

func (r *loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p/100+0.5) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// load posts every trigger once, from c workers, and times each request.
func load(c *http.Client, url string, triggers [][]byte, workers int) *loadResult {
	lat := make([]time.Duration, len(triggers))
	failed := make([]bool, len(triggers))
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(triggers) {
					return
				}
				t0 := time.Now()
				err := post(c, url, triggers[i])
				lat[i] = time.Since(t0)
				if err != nil {
					failed[i] = true
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	res := &loadResult{elapsed: time.Since(start), firstErr: firstErr}
	for i, d := range lat {
		if failed[i] {
			res.errors++
			continue
		}
		res.lat = append(res.lat, d)
	}
	slices.Sort(res.lat)
	return res
}

// post starts one run; anything but 201 Created is an error.
func post(c *http.Client, url string, body []byte) error {
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
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// rss reads a memory figure (VmRSS, VmHWM) of pid in kB; 0 without a pid.
func rss(pid int, field string) int64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// procCPU is the user + system CPU time pid has used, all threads, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick
}

// selfCPU is the user + system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startFloor runs this program again as the floor server, in a child
// process (as `writ serve` is one), on a free loopback port with its
// database in a new temporary directory. stop ends it.
func startFloor(o options) (url string, pid int, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	dir, err := os.MkdirTemp("", "runstart-floor-")
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(exe, "-serve-floor", "127.0.0.1:0", "-floor-db", filepath.Join(dir, "floor.db"), "-key", o.key)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, fmt.Errorf("floor did not start: %w", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid, stop, nil
}

// serveFloor serves the floor of a run start: the least work any server
// must do to accept a signed trigger and durably record a run, done the
// plain way. For each POST /v1/runs it
//
//   - reads the body (at most 64 KiB, as writ does),
//   - decodes the DSSE envelope with encoding/json (lenient) and takes its
//     one signature,
//   - verifies that one Ed25519 signature over the DSSE PAE of the payload
//     with the one key it knows,
//   - inserts one row (the payload's SHA-256 as primary key, so a replayed
//     trigger is refused by the unique constraint; the payload; the time)
//     into SQLite through modernc.org/sqlite with WAL and
//     synchronous=NORMAL, as writ does, one autocommit INSERT on one
//     connection per request,
//   - answers 201 with a small JSON object.
//
// What it omits, all of which writ does on every run start: strict
// decoding of the envelope and of the payload (duplicate, case-variant and
// unknown keys, trailing data, invalid UTF-8, depth), a key lookup by key
// id in a key ring of many signers, field validation of the trigger, the
// authorization rules (signer may trigger this agent and profile, scope
// within signer, agent and profile, duration cap, validity window with
// leeway), replay protection by trigger id in its own table, the run row
// (twenty columns, indexes) and its two audit events in the outbox, all in
// one transaction with a savepoint per request (group commit), ULIDs, the
// SPIFFE ID, a full run view as the answer, request ids and security
// headers, Prometheus metrics, a structured log line per run and the
// expiry loop's wake-up. The ratio writ/floor is the price of all that.
func serveFloor(addr, dbPath string, key crypto.Signer) error {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return errors.New("the floor verifies Ed25519 only; -key is not an Ed25519 key")
	}
	if dbPath == "" {
		return errors.New("-floor-db is required")
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // SQLite has one writer; queue in the pool, not on SQLITE_BUSY
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS runs (
		digest     TEXT PRIMARY KEY,
		payload    BLOB NOT NULL,
		created_at INTEGER NOT NULL
	)`); err != nil {
		return err
	}
	ins, err := db.PrepareContext(ctx, "INSERT INTO runs (digest, payload, created_at) VALUES (?, ?, ?)")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/runs", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, `{"error":"body"}`, http.StatusRequestEntityTooLarge)
			return
		}
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     []byte `json:"payload"` // base64, decoded by encoding/json
			Signatures  []struct {
				Sig []byte `json:"sig"`
			} `json:"signatures"`
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Signatures) != 1 {
			http.Error(w, `{"error":"malformed"}`, http.StatusBadRequest)
			return
		}
		if !ed25519.Verify(pub, pae(env.PayloadType, env.Payload), env.Signatures[0].Sig) {
			http.Error(w, `{"error":"bad_signature"}`, http.StatusUnauthorized)
			return
		}
		sum := sha256.Sum256(env.Payload)
		digest := hex.EncodeToString(sum[:])
		if _, err := ins.ExecContext(r.Context(), digest, env.Payload, time.Now().UnixNano()); err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				http.Error(w, `{"error":"replay"}`, http.StatusConflict)
				return
			}
			http.Error(w, `{"error":"store"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"digest": "sha256:" + digest, "state": "active"})
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("http://%s\n", ln.Addr())
	os.Stdout.Sync()
	return serveUntilSignal(srv, ln)
}

// serveUntilSignal serves until SIGINT or SIGTERM, then shuts down.
func serveUntilSignal(srv *http.Server, ln net.Listener) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// pae is DSSE's pre-authentication encoding, the bytes a DSSE signature
// covers.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "DSSEv1 %d %s %d ", len(payloadType), payloadType, len(payload))
	b.Write(payload)
	return b.Bytes()
}
