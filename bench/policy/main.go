// Command policy measures writ's decision endpoint, POST /v1/decide, side
// by side with `opa run --server` answering the same policy (writ's
// default bundle) for the same input, with the same load generator, in one
// run — and the memory the default bundle adds to a process.
//
// writ runs in a child process of this program (this binary again, with
// -serve-writ): a dev server built as `writ serve --dev` builds it
// (server.PrepareDev, New, Listen, FinishDev, Run) on SQLite, durability
// normal, logging at info level to a file. Profile budgets are set to 0
// (unlimited) and the denial threshold to 0 (none), so no run is ever
// suspended. The child starts one run per load worker from signed
// triggers, gives each an unbound bearer token (≤ 5 minutes) minted
// through POST /v1/runs/{id}/token, records 100 decisions for each so that
// every decision sees a 100-action history, and captures the policy input
// writ builds for such a run (decision.Point with the server's store and
// config) for OPA.
//
// OPA runs as `opa run --server --addr 127.0.0.1:PORT --log-level error
// --skip-version-check DIR`, DIR holding the default bundle's non-test
// .rego files and a data.json with {"writ": {"config": <the same
// config>}}; it is asked POST /v1/data/writ/result {"input": <captured>}.
//
// The load generator is the same for both: open loop at a fixed rate
// (latency from each request's scheduled start, so a stall counts for
// every request it delays) and closed loop at saturation (c workers, each
// sending its next request when the last is answered). Each writ worker
// acts as its own run. Both servers and the generator share the machine.
//
//	policy -opa ~/.cache/writ-bench/bin/opa -rates 1000 -c 16,64 -seconds 10
//	policy -mem                                   # the default bundle's memory
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/policy"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
	"github.com/writ-dev/writ/trigger"
)

type options struct {
	opa            string
	rates          []int
	conc           []int
	fixedWorkers   int
	seconds        float64
	warmup         float64
	cpuprofile     string
	opaCPUProfile  string
	profileSeconds float64
	profileC       int
	work           string
	mem            bool
	serveWrit      bool
	runs           int
}

// action is what every writ worker asks: a tool its run's scope lists, so
// every decision is a plain allow.
var action = writ.Action{Kind: writ.ActionTool, Name: "shell:test"}

const history = 100

func main() {
	var o options
	var rates, conc string
	flag.StringVar(&o.opa, "opa", "", "the opa binary (v1.22.3; see CONTRIBUTING.md §7)")
	flag.StringVar(&rates, "rates", "250,1000", "fixed rates to measure, decisions/s, comma-separated")
	flag.StringVar(&conc, "c", "16,64", "saturation: concurrent workers, comma-separated")
	flag.IntVar(&o.fixedWorkers, "fixed-workers", 32, "workers of the fixed-rate generator (each writ worker is a run)")
	flag.Float64Var(&o.seconds, "seconds", 10, "seconds measured per step")
	flag.Float64Var(&o.warmup, "warmup", 1, "seconds of warm-up before each step (not measured)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "after the steps, profile writ's server process through an extra saturation step (-profile-c workers) into this file")
	flag.StringVar(&o.opaCPUProfile, "opa-cpuprofile", "", "the same for OPA (its /debug/pprof/profile, --pprof)")
	flag.Float64Var(&o.profileSeconds, "profile-seconds", 10, "seconds of each profiled step")
	flag.IntVar(&o.profileC, "profile-c", 16, "concurrent workers of the profiled steps")
	flag.StringVar(&o.work, "work", "", "directory for the dev server and the OPA bundle (default: a new temporary one, removed at the end)")
	flag.BoolVar(&o.mem, "mem", false, "measure the Go heap and RSS this process adds by loading the default bundle, and exit")
	flag.BoolVar(&o.serveWrit, "serve-writ", false, "internal: be the writ child process")
	flag.IntVar(&o.runs, "runs", 0, "internal: runs the writ child starts")
	flag.Parse()
	var err error
	if o.rates, err = ints(rates); err == nil {
		o.conc, err = ints(conc)
	}
	if err == nil {
		switch {
		case o.mem:
			err = measureMemory()
		case o.serveWrit:
			err = serveWrit(o)
		default:
			err = run(o)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "policy:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// ---- the writ child ------------------------------------------------------------

// setup is what the writ child prints once its runs are ready.
type setup struct {
	URL          string             `json:"url"`
	PID          int                `json:"pid"`
	Dir          string             `json:"dir"`
	Log          string             `json:"log"`
	Tokens       []string           `json:"tokens"`
	Runs         []writ.RunID       `json:"runs"`
	Input        json.RawMessage    `json:"input"`
	Result       *writ.PolicyResult `json:"result"`
	PolicyData   map[string]any     `json:"policyData"`
	PolicyDigest string             `json:"policyDigest"`
	SeedSeconds  float64            `json:"seedSeconds"`
}

// serveWrit is the child: it starts the dev server, its runs and their
// history, prints the setup on stdout, then obeys "profile-start FILE" and
// "profile-stop" on stdin until stdin closes.
func serveWrit(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signal.Ignore(os.Interrupt) // the parent closes stdin to stop us
	dir := o.work
	if dir == "" {
		return errors.New("-serve-writ needs -work")
	}
	cfg, env, err := server.PrepareDev(filepath.Join(dir, "writ"), "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg.Durability = "normal"
	for _, p := range cfg.Profiles {
		p.Budgets = writ.Budgets{} // unlimited: no run is suspended by a budget
	}
	cfg.Policy.Denials.Max = 0 // no denial threshold either
	logPath := filepath.Join(dir, "writ.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log, err := server.NewLogger(logFile, "text", "info")
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: log})
	if err != nil {
		return err
	}
	url, err := srv.Listen()
	if err != nil {
		srv.Close()
		return err
	}
	if err := srv.FinishDev(ctx, env, url); err != nil {
		srv.Close()
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	stop := func() error {
		cancel()
		return <-done
	}

	su, err := prepareRuns(ctx, url, env, o.runs)
	if err != nil {
		stop()
		return err
	}
	su.URL, su.PID, su.Dir, su.Log = url, os.Getpid(), dir, logPath
	su.PolicyData = server.PolicyData(cfg)
	su.PolicyDigest = srv.PolicyDigest()
	if err := capture(ctx, srv, cfg, su); err != nil {
		stop()
		return err
	}
	line, err := json.Marshal(su)
	if err != nil {
		stop()
		return err
	}
	fmt.Printf("%s\n", line)

	var prof *os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "profile-start":
			if prof, err = os.Create(arg); err == nil {
				err = pprof.StartCPUProfile(prof)
			}
		case "profile-stop":
			pprof.StopCPUProfile()
			if prof != nil {
				err = prof.Close()
			}
		default:
			err = fmt.Errorf("unknown command %q", cmd)
		}
		if err != nil {
			fmt.Printf("error %v\n", err)
		} else {
			fmt.Printf("ok\n")
		}
	}
	return stop()
}

// prepareRuns starts n+1 runs (the last one is only for capturing the
// input), mints each an unbound bearer token and records 100 decisions for
// each, 8 runs at a time.
func prepareRuns(ctx context.Context, url string, env *server.DevEnv, n int) (*setup, error) {
	pemBytes, err := os.ReadFile(env.KeyFile)
	if err != nil {
		return nil, err
	}
	key, err := trigger.LoadPrivateKey(pemBytes)
	if err != nil {
		return nil, err
	}
	su := &setup{Tokens: make([]string, n+1), Runs: make([]writ.RunID, n+1)}
	t0 := time.Now()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for i := range n + 1 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			id, tok, err := startRun(ctx, url, env.Human, key)
			if err != nil {
				fail(err)
				return
			}
			su.Runs[i], su.Tokens[i] = id, tok
			c := client.NewRun(url, tok, nil)
			tools := []string{"read", "edit", "shell:build", "shell:test"}
			for j := range history {
				d, err := c.Decide(ctx, &client.DecideRequest{Action: writ.Action{Kind: writ.ActionTool, Name: tools[j%len(tools)]}})
				if err == nil && d.Decision != writ.VerdictAllow {
					err = fmt.Errorf("seeding run %s: %s %+v", id, d.Decision, d.Reasons)
				}
				if err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	su.SeedSeconds = time.Since(t0).Seconds()
	return su, firstErr
}

// startRun starts one run from a signed template trigger, with a DPoP key
// (only the DPoP-bound holder may mint), and mints its unbound bearer API
// token.
func startRun(ctx context.Context, url, human string, key crypto.Signer) (writ.RunID, string, error) {
	p, err := json.Marshal(trigger.Template(time.Now(), human))
	if err != nil {
		return "", "", err
	}
	signed, err := trigger.SignDSSE(p, writ.TriggerPayloadType, key)
	if err != nil {
		return "", "", err
	}
	dk, err := token.NewDPoPKey()
	if err != nil {
		return "", "", err
	}
	run, err := client.New(url, "").StartRun(ctx, signed, dk)
	if err != nil {
		return "", "", err
	}
	t, err := client.NewRun(url, run.Token, dk).MintToken(ctx, string(run.ID), "", false)
	if err != nil {
		return "", "", err
	}
	if t.TokenType != "Bearer" {
		return "", "", fmt.Errorf("minted a %s token, want Bearer", t.TokenType)
	}
	return run.ID, t.Token, nil
}

// captureEvaluator hands the input to the real engine and keeps it.
type captureEvaluator struct {
	e      *policy.Engine
	input  []byte
	result *writ.PolicyResult
}

func (c *captureEvaluator) Evaluate(ctx context.Context, input []byte) (*writ.PolicyResult, error) {
	c.input = slices.Clone(input)
	res, err := c.e.Evaluate(ctx, input)
	c.result = res
	return res, err
}

// capture decides the action once for the last run (100 decisions on
// record) through a decision point built like the server's, over the
// server's store, and keeps the input it built: the document OPA gets.
func capture(ctx context.Context, srv *server.Server, cfg server.Config, su *setup) error {
	b, err := server.LoadPolicy(ctx, cfg, time.Now)
	if err != nil {
		return err
	}
	ce := &captureEvaluator{e: policy.NewEngine(b)}
	pt := decision.New(decision.Config{Store: srv.Store(), Policy: ce, Environments: cfg.Environments, Repos: cfg.Repos, Denials: cfg.Policy.Denials})
	id := su.Runs[len(su.Runs)-1]
	run, err := srv.Store().GetRun(ctx, id)
	if err != nil {
		return err
	}
	d, err := pt.Decide(ctx, &decision.Request{Run: run, Action: action, Via: "api", Actor: "run:" + string(id)})
	if err != nil {
		return err
	}
	if d.Verdict != writ.VerdictAllow {
		return fmt.Errorf("capture: %s %+v", d.Verdict, d.Reasons)
	}
	var in decision.Input
	if err := json.Unmarshal(ce.input, &in); err != nil {
		return err
	}
	if len(in.History.Actions) != history {
		return fmt.Errorf("capture: the input holds %d history actions, want %d", len(in.History.Actions), history)
	}
	su.Input, su.Result = ce.input, ce.result
	su.Tokens, su.Runs = su.Tokens[:len(su.Tokens)-1], su.Runs[:len(su.Runs)-1]
	return nil
}

// ---- the parent: servers and load ---------------------------------------------

// writChild is the writ child process.
type writChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	su  *setup
}

func startWrit(o options, runs int) (*writChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve-writ", "-work", o.work, "-runs", strconv.Itoa(runs))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &writChild{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		w.stop()
		return nil, fmt.Errorf("writ child: %w (see its messages above)", err)
	}
	w.su = &setup{}
	if err := json.Unmarshal(line, w.su); err != nil {
		w.stop()
		return nil, fmt.Errorf("writ child: %w", err)
	}
	return w, nil
}

func (w *writChild) command(c string) error {
	if _, err := fmt.Fprintln(w.in, c); err != nil {
		return err
	}
	line, err := w.out.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ok\n" {
		return fmt.Errorf("writ child: %s: %s", c, strings.TrimSpace(line))
	}
	return nil
}

func (w *writChild) stop() error {
	w.in.Close()
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		return errors.New("writ child did not stop within 30 s; killed")
	}
}

// opaServer is `opa run --server` on the default bundle.
type opaServer struct {
	cmd     *exec.Cmd
	url     string
	version string
}

// writeOPABundle writes the default bundle's policy files (not its tests)
// and data.json with the configuration writ hands to Rego.
func writeOPABundle(dir string, data map[string]any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fsys := policy.Default()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, path.Base(p)), b, 0o644)
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(map[string]any{"writ": map[string]any{"config": data}})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "data.json"), b, 0o644)
}

func startOPA(bin, dir string, withPprof bool) (*opaServer, error) {
	ver, err := exec.Command(bin, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %w", bin, err)
	}
	version, _, _ := strings.Cut(string(ver), "\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	args := []string{"run", "--server", "--addr", addr, "--log-level", "error", "--skip-version-check"}
	if withPprof {
		args = append(args, "--pprof")
	}
	cmd := exec.Command(bin, append(args, dir)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &opaServer{cmd: cmd, url: "http://" + addr, version: strings.TrimSpace(strings.TrimPrefix(version, "Version:"))}
	for range 300 {
		resp, err := http.Get(s.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("opa did not answer /health within 15 s")
}

func (s *opaServer) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// target is one server under load: how a worker's request is made and
// how its answer is checked.
type target struct {
	name  string
	pid   int
	url   string
	body  []byte
	auth  func(worker int) string // Authorization header; nil: none
	check func(body []byte) error
}

func writTarget(su *setup) *target {
	body, _ := json.Marshal(map[string]any{"action": action})
	return &target{
		name: "writ", pid: su.PID, url: su.URL + "/v1/decide", body: body,
		auth: func(w int) string { return "Bearer " + su.Tokens[w] },
		check: func(b []byte) error {
			var d struct{ Decision string }
			if err := json.Unmarshal(b, &d); err != nil || d.Decision != writ.VerdictAllow {
				return fmt.Errorf("not an allow: %.300s", b)
			}
			return nil
		},
	}
}

func opaTarget(s *opaServer, input []byte) *target {
	body := append(append([]byte(`{"input":`), input...), '}')
	return &target{
		name: "opa", pid: s.cmd.Process.Pid, url: s.url + "/v1/data/writ/result", body: body,
		check: func(b []byte) error {
			var d struct {
				Result struct {
					Allow bool
					Deny  []any
				}
			}
			if err := json.Unmarshal(b, &d); err != nil || !d.Result.Allow || len(d.Result.Deny) > 0 {
				return fmt.Errorf("not an allow: %.300s", b)
			}
			return nil
		},
	}
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
}

// do sends one request of worker w and checks the answer.
func (t *target) do(c *http.Client, w int) error {
	req, err := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(t.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.auth != nil {
		req.Header.Set("Authorization", t.auth(w))
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %.300s", resp.Status, bytes.TrimSpace(b))
	}
	return t.check(b)
}

// result is one JSON line of output: one step against one target.
type result struct {
	Kind        string  `json:"kind"` // "step"
	Target      string  `json:"target"`
	Mode        string  `json:"mode"` // rate, saturation or profile
	Rate        int     `json:"rate,omitempty"`
	C           int     `json:"c"`
	Seconds     float64 `json:"seconds"`
	N           int     `json:"n"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	PerSec      float64 `json:"per_s"`
	P50us       float64 `json:"p50_us"`
	P90us       float64 `json:"p90_us"`
	P99us       float64 `json:"p99_us"`
	MaxUs       float64 `json:"max_us"`
	MeanUs      float64 `json:"mean_us"`
	SvcP50us    float64 `json:"svc_p50_us,omitempty"` // rate: from the request's actual send
	SvcP99us    float64 `json:"svc_p99_us,omitempty"`
	ServerCPUus float64 `json:"server_cpu_us"` // per decision, user + system, of the server process
	ClientCPUus float64 `json:"client_cpu_us"` // per decision, of this load generator
	RSSKB       int64   `json:"rss_kb"`        // server VmRSS after the step
	HWMKB       int64   `json:"hwm_kb"`
}

type samples struct {
	lat, svc []time.Duration
	errors   int
	firstErr string
	elapsed  time.Duration
}

func pct(s []time.Duration, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := min(max(int(float64(len(s))*p/100+0.5)-1, 0), len(s)-1)
	return float64(s[i].Nanoseconds()) / 1e3
}

func mean(s []time.Duration) float64 {
	if len(s) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return float64(sum.Nanoseconds()) / float64(len(s)) / 1e3
}

// fixedRate sends rate requests a second for d from workers goroutines
// (open loop): request i is due at start + i/rate whatever happened to
// the ones before, and its latency runs from when it was due. Go's timers
// overshoot by up to about 1 ms on these VMs, so that latency includes the
// generator's own lateness; svc (from the actual send) does not.
func fixedRate(t *target, c *http.Client, rate, workers int, d time.Duration) *samples {
	n := int(float64(rate) * d.Seconds())
	period := time.Second / time.Duration(rate)
	lat, svc := make([]time.Duration, n), make([]time.Duration, n)
	failed := make([]string, n)
	queue := make(chan int, n)
	start := time.Now().Add(5 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range queue {
				due := start.Add(time.Duration(i) * period)
				t0 := time.Now()
				if err := t.do(c, w); err != nil {
					failed[i] = err.Error()
				}
				end := time.Now()
				lat[i], svc[i] = end.Sub(due), end.Sub(t0)
			}
		})
	}
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * period)); wait > 0 {
			time.Sleep(wait)
		}
		queue <- i
	}
	close(queue)
	wg.Wait()
	s := &samples{elapsed: time.Since(start)}
	for i := range n {
		if failed[i] != "" {
			if s.errors++; s.firstErr == "" {
				s.firstErr = failed[i]
			}
			continue
		}
		s.lat, s.svc = append(s.lat, lat[i]), append(s.svc, svc[i])
	}
	return s
}

// saturate runs workers closed loops for d: each sends its next request
// as soon as its last is answered.
func saturate(t *target, c *http.Client, workers int, d time.Duration) *samples {
	per := make([][]time.Duration, workers)
	errs := make([]int, workers)
	firsts := make([]string, workers)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			l := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := t.do(c, w)
				if err != nil {
					if errs[w]++; firsts[w] == "" {
						firsts[w] = err.Error()
					}
					continue
				}
				l = append(l, time.Since(t0))
			}
			per[w] = l
		})
	}
	wg.Wait()
	s := &samples{elapsed: time.Since(start)}
	for w := range workers {
		s.lat = append(s.lat, per[w]...)
		s.errors += errs[w]
		if s.firstErr == "" {
			s.firstErr = firsts[w]
		}
	}
	return s
}

// step warms t up, then measures one step and prints its line.
func step(o options, t *target, c *http.Client, mode string, rate, workers int, d time.Duration, before, after func() error) (*result, error) {
	warm := time.Duration(o.warmup * float64(time.Second))
	if warm > 0 {
		var s *samples
		if mode == "rate" {
			s = fixedRate(t, c, rate, workers, warm)
		} else {
			s = saturate(t, c, workers, warm)
		}
		// An overloaded writ may deny with policy_error (its evaluation
		// timeout is wall time); that is counted in the measured step.
		// Only a warm-up that mostly fails means the set-up is wrong.
		if s.errors > 0 && s.errors >= len(s.lat) {
			return nil, fmt.Errorf("%s warm-up: %d errors, %d answers; first: %s", t.name, s.errors, len(s.lat), s.firstErr)
		}
	}
	if before != nil {
		if err := before(); err != nil {
			return nil, err
		}
	}
	srv0, cli0 := procCPU(t.pid), selfCPU()
	var s *samples
	if mode == "rate" {
		s = fixedRate(t, c, rate, workers, d)
	} else {
		s = saturate(t, c, workers, d)
	}
	srv, cli := procCPU(t.pid)-srv0, selfCPU()-cli0
	if after != nil {
		if err := after(); err != nil {
			return nil, err
		}
	}
	slices.Sort(s.lat)
	slices.Sort(s.svc)
	ok := len(s.lat)
	r := &result{Kind: "step", Target: t.name, Mode: mode, Rate: rate, C: workers, Seconds: s.elapsed.Seconds(),
		N: ok + s.errors, Errors: s.errors, FirstError: s.firstErr, PerSec: float64(ok) / s.elapsed.Seconds(),
		P50us: pct(s.lat, 50), P90us: pct(s.lat, 90), P99us: pct(s.lat, 99), MaxUs: pct(s.lat, 100),
		MeanUs: mean(s.lat), SvcP50us: pct(s.svc, 50), SvcP99us: pct(s.svc, 99),
		RSSKB: rss(t.pid, "VmRSS"), HWMKB: rss(t.pid, "VmHWM")}
	if ok > 0 {
		r.ServerCPUus = float64(srv.Microseconds()) / float64(ok)
		r.ClientCPUus = float64(cli.Microseconds()) / float64(ok)
	}
	fmt.Fprintf(os.Stderr, "%-4s %-10s rate=%-5d c=%-3d %7.0f/s  p50 %7.1f µs  p90 %7.1f µs  p99 %8.1f µs  errors %d  server CPU %.0f µs/decision, client %.0f µs\n",
		r.Target, r.Mode, r.Rate, r.C, r.PerSec, r.P50us, r.P90us, r.P99us, r.Errors, r.ServerCPUus, r.ClientCPUus)
	if r.Errors > 0 {
		fmt.Fprintf(os.Stderr, "     first error: %s\n", r.FirstError)
	}
	line, _ := json.Marshal(r)
	fmt.Println(string(line))
	return r, nil
}

// setupLine is the first JSON line of output.
type setupLine struct {
	Kind          string             `json:"kind"` // "setup"
	Auth          string             `json:"auth"`
	Runs          int                `json:"runs"`
	History       int                `json:"history"`
	InputBytes    int                `json:"input_bytes"`
	OPABodyBytes  int                `json:"opa_body_bytes"`
	WritBodyBytes int                `json:"writ_body_bytes"`
	SeedSeconds   float64            `json:"seed_seconds"`
	OPAVersion    string             `json:"opa_version"`
	WritRSSKB     int64              `json:"writ_rss_kb"`
	OPARSSKB      int64              `json:"opa_rss_kb"`
	WritResult    *writ.PolicyResult `json:"writ_result"`
	OPAResult     json.RawMessage    `json:"opa_result"`
	PolicyDigest  string             `json:"policy_digest"`
	GOMAXPROCS    int                `json:"gomaxprocs"`
}

func run(o options) error {
	if o.opa == "" {
		return errors.New("-opa is required: the opa binary (see CONTRIBUTING.md §7)")
	}
	if o.work == "" {
		d, err := os.MkdirTemp("", "writ-policy-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.work = d
	}
	maxW := max(o.fixedWorkers, o.profileC)
	for _, c := range o.conc {
		maxW = max(maxW, c)
	}
	fmt.Fprintf(os.Stderr, "starting writ (a dev server in a child process) with %d runs of %d decisions each\n", maxW, history)
	wc, err := startWrit(o, maxW)
	if err != nil {
		return err
	}
	defer wc.stop()
	su := wc.su
	fmt.Fprintf(os.Stderr, "writ pid %d at %s: %d runs seeded in %.1f s; captured input %d bytes\n", su.PID, su.URL, len(su.Runs), su.SeedSeconds, len(su.Input))

	bdir := filepath.Join(o.work, "opa-bundle")
	if err := writeOPABundle(bdir, su.PolicyData); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(o.work, "input.json"), su.Input, 0o644)
	opa, err := startOPA(o.opa, bdir, o.opaCPUProfile != "")
	if err != nil {
		return err
	}
	defer opa.stop()
	fmt.Fprintf(os.Stderr, "opa %s pid %d at %s (bundle %s)\n", opa.version, opa.cmd.Process.Pid, opa.url, bdir)

	wt, ot := writTarget(su), opaTarget(opa, su.Input)
	c := newClient(maxW)
	// Both must answer allow for the same input before anything is timed.
	if err := wt.do(c, 0); err != nil {
		return fmt.Errorf("writ: %w", err)
	}
	opaAnswer, err := opaResult(c, ot)
	if err != nil {
		return fmt.Errorf("opa: %w", err)
	}
	sl := setupLine{Kind: "setup", Auth: "Authorization: Bearer <unbound run API token, 5 min, minted by POST /v1/runs/{id}/token>",
		Runs: len(su.Runs), History: history, InputBytes: len(su.Input), OPABodyBytes: len(ot.body), WritBodyBytes: len(wt.body),
		SeedSeconds: su.SeedSeconds, OPAVersion: opa.version, WritRSSKB: rss(su.PID, "VmRSS"), OPARSSKB: rss(ot.pid, "VmRSS"),
		WritResult: su.Result, OPAResult: opaAnswer, PolicyDigest: su.PolicyDigest, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	line, _ := json.Marshal(sl)
	fmt.Println(string(line))
	fmt.Fprintf(os.Stderr, "same input, both allow: writ %+v; opa %s\n", *su.Result, opaAnswer)

	d := time.Duration(o.seconds * float64(time.Second))
	for _, rate := range o.rates {
		for _, t := range []*target{wt, ot} {
			if _, err := step(o, t, c, "rate", rate, o.fixedWorkers, d, nil, nil); err != nil {
				return err
			}
		}
	}
	for _, n := range o.conc {
		for _, t := range []*target{wt, ot} {
			if _, err := step(o, t, c, "saturation", 0, n, d, nil, nil); err != nil {
				return err
			}
		}
	}
	pd := time.Duration(o.profileSeconds * float64(time.Second))
	if o.cpuprofile != "" {
		abs, err := filepath.Abs(o.cpuprofile)
		if err != nil {
			return err
		}
		if _, err := step(o, wt, c, "profile", 0, o.profileC, pd,
			func() error { return wc.command("profile-start " + abs) },
			func() error { return wc.command("profile-stop") }); err != nil {
			return err
		}
	}
	if o.opaCPUProfile != "" {
		var fetchErr error
		var wg sync.WaitGroup
		if _, err := step(o, ot, c, "profile", 0, o.profileC, pd,
			func() error {
				wg.Go(func() { fetchErr = fetchProfile(opa.url, o.opaCPUProfile, pd) })
				return nil
			},
			func() error { wg.Wait(); return fetchErr }); err != nil {
			return err
		}
	}
	c.CloseIdleConnections()
	return wc.stop()
}

// opaResult asks OPA once and returns its result document.
func opaResult(c *http.Client, t *target) (json.RawMessage, error) {
	resp, err := c.Post(t.url, "application/json", bytes.NewReader(t.body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if len(out.Result) == 0 {
		return nil, errors.New("no result: is data.writ.result defined?")
	}
	return out.Result, nil
}

// fetchProfile saves OPA's CPU profile over d (its --pprof endpoint).
func fetchProfile(url, file string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", url, int(d.Seconds()+0.5)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("opa pprof: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ---- memory ----------------------------------------------------------------------

// memLine is the output of -mem.
type memLine struct {
	Kind            string  `json:"kind"` // "mem"
	HeapBeforeKB    uint64  `json:"heap_inuse_before_kb"`
	HeapAfterKB     uint64  `json:"heap_inuse_after_kb"`
	HeapAddedKB     int64   `json:"heap_added_kb"`
	RSSBeforeKB     int64   `json:"rss_before_kb"`
	RSSAfterKB      int64   `json:"rss_after_kb"`
	RSSAddedKB      int64   `json:"rss_added_kb"`
	PeakRSSKB       int64   `json:"peak_rss_kb"`
	AllocatedKB     uint64  `json:"allocated_during_load_kb"`
	LoadSeconds     float64 `json:"load_seconds"`
	Tests           int     `json:"tests"`
	HeapSecondKB    int64   `json:"heap_added_by_a_second_bundle_kb"`
	RSSSecondKB     int64   `json:"rss_added_by_a_second_bundle_kb"`
	BundleFiles     int     `json:"bundle_files"`
	ConfigDataBytes int     `json:"config_data_bytes"`
}

// measureMemory loads the default bundle the way writ serve does
// (server.LoadPolicy with a dev config: compile, run its tests, prepare the
// query) and reports the live Go heap and RSS before and after, each after
// a full GC that returns free memory to the OS. A second bundle loaded on
// top shows what a reload holds while both exist.
func measureMemory() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "writ-policy-mem-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg, _, err := server.PrepareDev(dir, "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfgJSON, _ := json.Marshal(server.PolicyData(cfg))
	settle := func() (uint64, int64) {
		for range 3 {
			runtime.GC()
		}
		debug.FreeOSMemory()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, rss(os.Getpid(), "VmRSS")
	}
	var m0 runtime.MemStats
	h0, r0 := settle()
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	b, err := server.LoadPolicy(ctx, cfg, time.Now)
	if err != nil {
		return err
	}
	loadSec := time.Since(t0).Seconds()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	peak := rss(os.Getpid(), "VmHWM")
	h1, r1 := settle()
	b2, err := server.LoadPolicy(ctx, cfg, time.Now)
	if err != nil {
		return err
	}
	h2, r2 := settle()
	out := memLine{Kind: "mem", HeapBeforeKB: h0 / 1024, HeapAfterKB: h1 / 1024, HeapAddedKB: (int64(h1) - int64(h0)) / 1024,
		RSSBeforeKB: r0, RSSAfterKB: r1, RSSAddedKB: r1 - r0, PeakRSSKB: peak, AllocatedKB: (m1.TotalAlloc - m0.TotalAlloc) / 1024,
		LoadSeconds: loadSec, Tests: len(b.Tests), HeapSecondKB: (int64(h2) - int64(h1)) / 1024, RSSSecondKB: r2 - r1,
		BundleFiles: len(b.Files), ConfigDataBytes: len(cfgJSON)}
	runtime.KeepAlive(b)
	runtime.KeepAlive(b2)
	fmt.Fprintf(os.Stderr, "default bundle: Go heap in use +%.1f MB (%.1f -> %.1f), RSS +%.1f MB (%.1f -> %.1f, peak %.1f during the load), %.0f MB allocated while loading (%.2f s, %d tests); a second bundle on top: heap +%.1f MB, RSS +%.1f MB\n",
		float64(out.HeapAddedKB)/1024, float64(out.HeapBeforeKB)/1024, float64(out.HeapAfterKB)/1024,
		float64(out.RSSAddedKB)/1024, float64(r0)/1024, float64(r1)/1024, float64(peak)/1024, float64(out.AllocatedKB)/1024,
		loadSec, out.Tests, float64(out.HeapSecondKB)/1024, float64(out.RSSSecondKB)/1024)
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	return nil
}

// ---- /proc -----------------------------------------------------------------------

// rss reads a memory figure (VmRSS, VmHWM) of pid in kB.
func rss(pid int, field string) int64 {
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
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// selfCPU is the user + system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
