package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/trigger"
)

// pollTimeout bounds every wait for an outcome; tests never assert on
// elapsed time.
const pollTimeout = 30 * time.Second

// testPolicyTimeout is the policy timeout of tests that are not about it:
// generous, so a loaded machine never turns a slow evaluation into a 503.
const testPolicyTimeout = 10 * time.Second

// running is a server started by start, serving until stop.
type running struct {
	t      testing.TB
	srv    *server.Server
	url    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start builds a server for cfg, binds it and runs it; before runs between
// Listen and Run (FinishDev goes there). The server is stopped at the end
// of the test unless stop was called.
func start(t testing.TB, cfg server.Config, o server.Options, before func(s *server.Server, url string)) *running {
	t.Helper()
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.Listen()
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	if before != nil {
		before(srv, url)
	}
	runCtx, cancel := context.WithCancel(ctx)
	r := &running{t: t, srv: srv, url: url, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(runCtx) }()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// stop cancels Run and waits for it to return.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(pollTimeout):
			r.err = fmt.Errorf("Run did not return within %v of its context being cancelled", pollTimeout)
		}
	})
	return r.err
}

// dev is a development installation: config, the dev human's key and,
// once started with finish, its admin token.
type dev struct {
	cfg server.Config
	env *server.DevEnv
	key crypto.Signer
}

func prepareDev(t testing.TB) *dev {
	t.Helper()
	return prepareDevIn(t, t.TempDir())
}

// prepareDevIn is prepareDev in dir.
func prepareDevIn(t testing.TB, dir string) *dev {
	t.Helper()
	cfg, env, err := server.PrepareDev(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Tests that are not about timeouts give policy all the time a loaded
	// machine needs (CONTRIBUTING.md §2).
	cfg.Policy.Timeout = testPolicyTimeout
	pemBytes, err := os.ReadFile(env.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return &dev{cfg: cfg, env: env, key: key}
}

// finish is a before func for start that bootstraps the dev token.
func (d *dev) finish(t testing.TB) func(*server.Server, string) {
	return func(s *server.Server, url string) {
		t.Helper()
		if err := s.FinishDev(context.Background(), d.env, url); err != nil {
			t.Fatal(err)
		}
	}
}

// sign returns a DSSE-signed template trigger of the dev human at now,
// changed by mod.
func (d *dev) sign(t testing.TB, now time.Time, mod func(*writ.Trigger)) []byte {
	t.Helper()
	tr := trigger.Template(now, d.env.Human)
	if mod != nil {
		mod(&tr)
	}
	p, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := trigger.SignDSSE(p, writ.TriggerPayloadType, d.key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// poll calls cond until it returns true or pollTimeout passes.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", pollTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storeEvents(t testing.TB, store *sqlstore.DB) []writ.Event {
	t.Helper()
	var out []writ.Event
	var pos int64
	for {
		evs, err := store.Events(context.Background(), pos, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			return out
		}
		for _, se := range evs {
			var e writ.Event
			if err := json.Unmarshal(se.Body, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
			pos = se.Pos
		}
	}
}

// runEvents returns the types and actors of the events of run id.
func runEvents(t *testing.T, store *sqlstore.DB, id writ.RunID) []string {
	t.Helper()
	var out []string
	for _, e := range runEventsAll(t, store, id) {
		// A run's attestation is signed asynchronously, once its end is in
		// a checkpoint; the tests of other things do not wait for it (the
		// attestation tests read runEventsAll).
		if !strings.HasPrefix(e, "attestation.signed ") {
			out = append(out, e)
		}
	}
	return out
}

// runEventsAll is runEvents with the run's attestation events.
func runEventsAll(t *testing.T, store *sqlstore.DB, id writ.RunID) []string {
	t.Helper()
	var out []string
	for _, e := range storeEvents(t, store) {
		if e.Run == id {
			out = append(out, e.Type+" "+e.Actor)
		}
	}
	return out
}

// TestInitStartsAServer: what Init writes loads, starts, answers, and its
// example trigger, signed with the key Init generated, starts a run.
func TestInitStartsAServer(t *testing.T) {
	dir := t.TempDir()
	res, err := server.Init(dir, server.InitOptions{Listen: "127.0.0.1:0", Human: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg, server.Options{}, nil)
	ctx := context.Background()
	c := client.New(r.url, "")
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	payload, err := os.ReadFile(res.Trigger)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(res.HumanKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := trigger.SignSSH(payload, writ.TriggerSSHNS, key)
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.StartRun(ctx, signed, nil)
	if err != nil {
		t.Fatalf("start the example trigger: %v", err)
	}
	if want := "spiffe://writ.example.org/agent/refactor-bot/run/" + string(run.ID); run.SPIFFEID != want || run.Issuer != "alice" {
		t.Errorf("run %s issuer %s; want %s by alice", run.SPIFFEID, run.Issuer, want)
	}
	// The token bootstrap works once for this installation and not again.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	tok, _, err := server.BootstrapToken(ctx, cfg, "alice", time.Hour)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if _, _, err := server.BootstrapToken(ctx, cfg, "alice", time.Hour); writ.ErrorCode(err) != "already_bootstrapped" {
		t.Errorf("second bootstrap = %v; want already_bootstrapped", err)
	}
	r = start(t, cfg, server.Options{}, nil)
	runs, err := client.New(r.url, tok).ListRuns(ctx, writ.RunFilter{})
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID {
		t.Errorf("list with the bootstrap token: %v %v", runs, err)
	}
}

// TestExpiryLoop: a run whose deadline passes becomes expired, with a
// run.expired event by writ itself; a run with time left stays active.
func TestExpiryLoop(t *testing.T) {
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	anon, human := client.New(r.url, ""), client.New(r.url, d.env.Token)
	long, err := anon.StartRun(ctx, d.sign(t, time.Now(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	short, err := anon.StartRun(ctx, d.sign(t, time.Now(), func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(2 * time.Second) }), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got *client.Run
	poll(t, "the short run to expire", func() bool {
		got, err = human.GetRun(ctx, string(short.ID))
		if err != nil {
			t.Fatal(err)
		}
		return got.State != writ.RunActive
	})
	if got.State != writ.RunExpired || got.EndReason != "deadline" || got.EndedAt.Before(got.Deadline) {
		t.Errorf("short run: state %s reason %q ended %v deadline %v; want expired by deadline, not before it", got.State, got.EndReason, got.EndedAt, got.Deadline)
	}
	want := []string{"trigger.accepted signer:dev", "run.started signer:dev", "token.issued signer:dev", "run.expired writ"}
	if diff := cmp.Diff(want, runEvents(t, r.srv.Store(), short.ID)); diff != "" {
		t.Errorf("short run events (-want +got):\n%s", diff)
	}
	if l, err := human.GetRun(ctx, string(long.ID)); err != nil || l.State != writ.RunActive {
		t.Errorf("long run: %v %v; want active", l.State, err)
	}
	// The expired run is final.
	if _, err := human.Transition(ctx, string(short.ID), "resume", ""); writ.ErrorCode(err) != "run_final" {
		t.Errorf("resume an expired run: %v; want run_final", err)
	}
}

// TestExpiredWhileDown: runs whose deadline passed while the server was
// stopped are expired when it starts, before any request asks and without
// waiting for a sweep interval (set to its maximum here).
func TestExpiredWhileDown(t *testing.T) {
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil) // 30 minutes
	if err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	cfg := d.cfg
	cfg.ExpiryInterval = time.Minute
	r = start(t, cfg, server.Options{Now: later}, nil)
	store := r.srv.Store()
	var got *writ.Run
	poll(t, "the run to expire at start-up", func() bool {
		got, err = store.GetRun(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.State != writ.RunActive
	})
	if got.State != writ.RunExpired {
		t.Errorf("state %s; want expired", got.State)
	}
	want := []string{"trigger.accepted signer:dev", "run.started signer:dev", "token.issued signer:dev", "run.expired writ"}
	if diff := cmp.Diff(want, runEvents(t, store, run.ID)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// result is what one client saw of one POST /v1/runs.
type result struct {
	status int
	run    writ.RunID
}

// TestGracefulShutdown: cancelling Run while requests are in flight lets
// them finish, and every request that was answered 2xx has its run and its
// events in the store after it is reopened (acknowledged = committed). One
// request is held open across the start of the shutdown on purpose: its
// body is only completed once the server has stopped accepting.
func TestGracefulShutdown(t *testing.T) {
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, nil)
	addr := strings.TrimPrefix(r.url, "http://")

	// The held request: headers and half of the body now.
	held := d.sign(t, time.Now(), nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /v1/runs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(held))
	if _, err := conn.Write(append([]byte(head), held[:len(held)/2]...)); err != nil {
		t.Fatal(err)
	}
	// A full round trip on a later connection: the server accepts in
	// order, so the held connection is now accepted and tracked.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := probe.Get(r.url + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	// Load: workers post fresh triggers until the server is gone.
	const workers = 8
	bodies := make(chan []byte, 400)
	for range cap(bodies) {
		bodies <- d.sign(t, time.Now(), nil)
	}
	close(bodies)
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	hc := &http.Client{Timeout: pollTimeout}
	for range workers {
		wg.Go(func() {
			for b := range bodies {
				resp, err := hc.Post(r.url+"/v1/runs", "application/json", bytes.NewReader(b))
				if err != nil {
					continue // refused or reset once the server stops: not acknowledged
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				res := result{status: resp.StatusCode}
				if resp.StatusCode/100 == 2 {
					var run writ.Run
					if err := json.Unmarshal(body, &run); err != nil {
						t.Errorf("2xx body %s: %v", body, err)
					}
					res.run = run.ID
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		})
	}
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.status/100 == 2 {
				n++
			}
		}
		return n
	}
	poll(t, "some runs to be acknowledged", func() bool { return acked() >= 20 })

	// Shut down while the workers are still posting and the held request
	// is half sent; wait until the listener is closed.
	r.cancel()
	poll(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if _, err := conn.Write(held[len(held)/2:]); err != nil {
		t.Fatalf("completing the held request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the held request got no answer: %v", err)
	}
	heldBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("held request: %d %s; want 201 (in-flight requests finish during shutdown)", resp.StatusCode, heldBody)
	}
	var heldRun writ.Run
	if err := json.Unmarshal(heldBody, &heldRun); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	mu.Lock()
	results = append(results, result{status: resp.StatusCode, run: heldRun.ID})
	mu.Unlock()
	statuses := map[int]int{}
	for _, res := range results {
		statuses[res.status]++
		if res.status/100 != 2 && res.status != http.StatusServiceUnavailable {
			t.Errorf("status %d during shutdown; want 2xx or 503", res.status)
		}
	}
	t.Logf("statuses: %v", statuses)

	store, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: d.cfg.Store})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	started := map[writ.RunID]int{}
	for _, e := range storeEvents(t, store) {
		if e.Type == writ.EventTriggerAccepted || e.Type == writ.EventRunStarted {
			started[e.Run]++
		}
	}
	for _, res := range results {
		if res.status/100 != 2 {
			continue
		}
		got, err := store.GetRun(context.Background(), res.run)
		if err != nil {
			t.Errorf("acknowledged run %s is not in the store: %v", res.run, err)
			continue
		}
		if got.State != writ.RunActive || started[res.run] != 2 {
			t.Errorf("acknowledged run %s: state %s, %d of its 2 start events", res.run, got.State, started[res.run])
		}
	}
}

// TestLogsHoldNoSecrets runs a server with a JSON logger at debug level
// through bootstrap, token creation, authenticated calls, bad tokens,
// refused and accepted triggers and a restart without one of the humans,
// and then searches the log for every token secret and every private key.
func TestLogsHoldNoSecrets(t *testing.T) {
	var logs writtest.SyncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := prepareDev(t)
	bobKey := filepath.Join(d.env.Dir, "bob.key")
	bobLine, err := server.GenerateHumanKey(bobKey, "bob@writ")
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.cfg
	cfg.Signers = append(append([]server.SignerConfig(nil), cfg.Signers...), server.SignerConfig{
		Signer: writ.Signer{Name: "bob", Kind: writ.SignerHuman, Groups: []string{"maintainers"}, MayAgents: []string{"*"}, MayProfiles: []string{"refactor"}},
		Keys:   []string{bobLine},
	})
	r := start(t, cfg, server.Options{Logger: logger}, d.finish(t))
	ctx := context.Background()
	admin, anon := client.New(r.url, d.env.Token), client.New(r.url, "")

	secrets := []string{d.env.Token}
	mine, err := admin.CreateToken(ctx, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bobs, err := admin.CreateToken(ctx, "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, mine.Token, bobs.Token)
	run, err := anon.StartRun(ctx, d.sign(t, time.Now(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{mine.Token, bobs.Token} {
		c := client.New(r.url, tok)
		if _, err := c.ListRuns(ctx, writ.RunFilter{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetRun(ctx, string(run.ID)); err != nil {
			t.Fatal(err)
		}
	}
	bob := client.New(r.url, bobs.Token)
	if _, err := bob.Transition(ctx, string(run.ID), "suspend", "checking"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Transition(ctx, string(run.ID), "kill", ""); writ.ErrorCode(err) != "admin_required" {
		t.Fatalf("bob kills: %v", err)
	}
	if _, err := admin.Transition(ctx, string(run.ID), "kill", "stop"); err != nil {
		t.Fatal(err)
	}
	// A guessed secret for a real token id.
	wrong := mine.Token[:len(mine.Token)-4] + "AAAA"
	if wrong == mine.Token {
		wrong = mine.Token[:len(mine.Token)-4] + "BBBB"
	}
	secrets = append(secrets, wrong)
	if _, err := client.New(r.url, wrong).ListRuns(ctx, writ.RunFilter{}); writ.ErrorCode(err) != "invalid_token" {
		t.Fatalf("wrong secret: %v", err)
	}
	// Refused triggers: junk, and a known signer's over-broad scope.
	if _, err := anon.StartRun(ctx, []byte(`{"payload": "`+mine.Token+`"}`), nil); err == nil {
		t.Fatal("junk accepted")
	}
	if _, err := anon.StartRun(ctx, d.sign(t, time.Now(), func(tr *writ.Trigger) { tr.Scope.Tools = []string{"shell:net"} }), nil); writ.ErrorCode(err) != "scope_too_broad" {
		t.Fatalf("wide trigger: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// bob leaves the configuration; his token is refused and logged by id.
	r = start(t, d.cfg, server.Options{Logger: logger}, nil)
	if _, err := client.New(r.url, bobs.Token).ListRuns(ctx, writ.RunFilter{}); writ.ErrorCode(err) != "invalid_token" {
		t.Fatalf("removed human's token: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	// The log did record these paths, so its silence about secrets means
	// something.
	for _, msg := range []string{"writ serving", "run started", "run suspend", "run kill", "refused unauthenticated trigger",
		"token of a human no longer configured", `"token_id":"` + bobs.ID + `"`, "writ shutting down"} {
		if !strings.Contains(out, msg) {
			t.Errorf("the log lacks %q", msg)
		}
	}
	for _, s := range secrets {
		_, sec, _ := strings.Cut(strings.TrimPrefix(s, "writ_"), "_")
		for _, needle := range []string{s, sec} {
			if strings.Contains(out, needle) {
				t.Errorf("the log holds a token secret")
			}
		}
	}
	keyFiles := []string{d.env.KeyFile, bobKey, cfg.Keys.Identity, cfg.Keys.Log, cfg.Keys.Attest}
	for _, f := range keyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.HasPrefix(line, "-----") || len(line) < 16 {
				continue
			}
			if strings.Contains(out, line) {
				t.Errorf("the log holds key material of %s", f)
			}
		}
	}
}

// TestNewRefuses: configurations that pass ParseConfig but cannot serve
// safely are refused by New with an error naming the culprit.
func TestNewRefuses(t *testing.T) {
	d := prepareDev(t)
	devKey := d.cfg.Signers[0].Keys[0]
	for _, c := range []struct {
		name string
		mod  func(cfg *server.Config)
		want []string
	}{
		{"one key for two signers", func(cfg *server.Config) {
			cfg.Signers = append(append([]server.SignerConfig(nil), cfg.Signers...), server.SignerConfig{
				Signer: writ.Signer{Name: "tickets", Kind: writ.SignerSystem, MayAgents: []string{"*"}, MayProfiles: []string{"refactor"}},
				Keys:   []string{devKey},
			})
		}, []string{`signers[1] "tickets"`, "already a key of signer dev"}},
		{"malformed key", func(cfg *server.Config) {
			cfg.Signers = []server.SignerConfig{{Signer: cfg.Signers[0].Signer, Keys: []string{"ssh-ed25519 AAAA"}}}
		}, []string{`signers[0] "dev" keys[0]`}},
		{"key listed twice", func(cfg *server.Config) {
			cfg.Signers = []server.SignerConfig{{Signer: cfg.Signers[0].Signer, Keys: []string{devKey, devKey}}}
		}, []string{`signers[0] "dev" keys[1]`, "twice"}},
		{"invalid config", func(cfg *server.Config) { cfg.TrustDomain = "" }, []string{"trustDomain"}},
		{"key file too open", func(cfg *server.Config) {
			if err := os.Chmod(cfg.Keys.Attest, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"attest", "too open"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := d.cfg
			c.mod(&cfg)
			defer os.Chmod(cfg.Keys.Attest, 0o600)
			srv, err := server.New(context.Background(), cfg, server.Options{})
			if err == nil {
				srv.Close()
				t.Fatal("New accepted the config")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Control: the unchanged config starts.
	srv, err := server.New(context.Background(), d.cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
}

// TestRefusalAuditedOncePerDay: an expired trigger replayed again and
// again is one trigger.refused event; its de-duplication record is pruned
// only a day later, so a loop of replays yields at most one event a day.
func TestRefusalAuditedOncePerDay(t *testing.T) {
	d := prepareDev(t)
	expired := d.sign(t, time.Now(), func(tr *writ.Trigger) {
		tr.IssuedAt = tr.IssuedAt.Add(-2 * time.Hour)
		tr.ExpiresAt = tr.IssuedAt.Add(time.Hour)
	})
	ctx := context.Background()
	refusals := func(store *sqlstore.DB) int {
		n := 0
		for _, e := range storeEvents(t, store) {
			if e.Type == writ.EventTriggerRefused {
				n++
			}
		}
		return n
	}
	send := func(r *running, times int) {
		for range times {
			if _, err := client.New(r.url, "").StartRun(ctx, expired, nil); writ.ErrorCode(err) != "trigger_expired" {
				t.Fatalf("expired trigger: %v", err)
			}
		}
	}
	at := func(offset time.Duration) server.Options {
		return server.Options{Now: func() time.Time { return time.Now().Add(offset) }}
	}

	r := start(t, d.cfg, server.Options{}, nil)
	send(r, 5)
	if n := refusals(r.srv.Store()); n != 1 {
		t.Fatalf("%d refusal events after 5 sends; want 1", n)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// 23 hours later (the prune loop runs at start-up): still remembered.
	r = start(t, d.cfg, at(23*time.Hour), nil)
	send(r, 5)
	if n := refusals(r.srv.Store()); n != 1 {
		t.Fatalf("%d refusal events 23h later; want 1", n)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// 25 hours later the record is pruned: the next send is audited again,
	// once.
	r = start(t, d.cfg, at(25*time.Hour), nil)
	poll(t, "a second refusal event once the record is pruned", func() bool {
		send(r, 1)
		return refusals(r.srv.Store()) == 2
	})
	send(r, 5)
	if n := refusals(r.srv.Store()); n != 2 {
		t.Errorf("%d refusal events 25h later; want 2", n)
	}
}
