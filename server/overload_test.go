package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/httpapi"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// held is a request the server has admitted and is reading the body of:
// it holds one in-flight slot of its class until release.
type held struct {
	pw   *io.PipeWriter
	done chan int // the status, once answered
}

// hold sends a POST to path whose body does not end until release, with
// authorization (empty: none).
func hold(t *testing.T, url, path, authorization string) *held {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	h := &held{pw: pw, done: make(chan int, 1)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			h.done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h.done <- resp.StatusCode
	}()
	return h
}

// release sends the rest of the body and returns the answer's status.
func (h *held) release(t *testing.T, body string) int {
	t.Helper()
	io.WriteString(h.pw, body)
	h.pw.Close()
	select {
	case s := <-h.done:
		return s
	case <-time.After(pollTimeout):
		t.Fatal("a held request was not answered once released")
		return 0
	}
}

// inFlight reads writ_http_in_flight from /metrics.
func inFlight(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "writ_http_in_flight "); ok {
			return v
		}
	}
	return ""
}

// metric returns the lines of /metrics that start with prefix.
func metric(t *testing.T, url, prefix string) []string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// unlimited turns off every rate limit and bound of cfg except those set
// after it.
func unlimited(cfg *server.Config) {
	cfg.Limits = httpapi.Limits{}
	for _, p := range cfg.Profiles {
		p.Budgets.CallsPerMinute, p.Budgets.TotalCalls = 1_000_000, 1_000_000
	}
}

// denials counts the decision events that are denials.
func denials(t testing.TB, p *policyRig) (decisions, denied int) {
	t.Helper()
	for _, e := range storeEvents(t, p.r.srv.Store()) {
		if e.Type == writ.EventDecision {
			decisions++
			if e.Decision == writ.VerdictDeny {
				denied++
			}
		}
	}
	return decisions, denied
}

// TestOverloadIsShed: ten times the in-flight bound of decisions and of
// run starts. While the bound is taken, every request beyond it is
// answered 503 overloaded with Retry-After, before any work; under a
// concurrent burst with retrying clients every request ends allowed; no
// decision is ever denied because of load (counted from the audit log);
// every request after the burst succeeds.
func TestOverloadIsShed(t *testing.T) {
	const decideBound, startBound = 2, 1
	p := startPolicy(t, func(cfg *server.Config) {
		unlimited(cfg)
		cfg.Limits[httpapi.ClassDecide] = httpapi.Limit{InFlight: decideBound}
		cfg.Limits[httpapi.ClassRunStart] = httpapi.Limit{InFlight: startBound}
	})
	ctx := context.Background()
	const runs = 4
	selves := make([]*client.Client, runs)
	ids := make([]writ.RunID, runs)
	for i := range selves {
		selves[i], ids[i] = p.run(nil)
	}
	read := writ.Action{Kind: "tool", Name: "read"}

	// Take every slot with requests whose bodies have not arrived.
	var holds []*held
	for range decideBound {
		holds = append(holds, hold(t, p.r.url, "/v1/decide", "Bearer "+p.d.env.Token))
	}
	startHold := hold(t, p.r.url, "/v1/runs", "")
	want := fmt.Sprint(decideBound + startBound)
	poll(t, "the held requests to be admitted", func() bool { return inFlight(t, p.r.url) == want })

	// Ten times the bound, at once: every one is shed, and says when to
	// retry.
	var wg sync.WaitGroup
	errs := make(chan error, 10*(decideBound+startBound))
	for i := range 10 * decideBound {
		wg.Go(func() {
			_, err := selves[i%runs].WithRetry(-1).Decide(ctx, &client.DecideRequest{Action: read})
			errs <- err
		})
	}
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 * startBound {
		signed := p.d.sign(t, time.Now(), nil)
		wg.Go(func() {
			_, err := client.New(p.r.url, "").WithRetry(-1).StartRun(ctx, signed, key)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var we *writ.Error
		if !errors.As(err, &we) || we.Kind != writ.KindUnavailable || we.Code != "overloaded" || we.RetryAfter < time.Second {
			t.Errorf("request beyond the bound: %v; want 503 overloaded with Retry-After", err)
		}
	}
	if got := metric(t, p.r.url, `writ_http_shed_total{caller="",class="decide",reason="overloaded"}`); len(got) != 1 || !strings.HasSuffix(got[0], fmt.Sprint(" ", 10*decideBound)) {
		t.Errorf("shed metric: %q; want %d decisions shed", got, 10*decideBound)
	}
	// The held requests are served once their bodies arrive.
	for _, h := range holds {
		body := fmt.Sprintf(`{"action": {"kind": "tool", "name": "read"}, "dryRun": true, "run": %q}`, ids[0])
		if s := h.release(t, body); s != http.StatusOK {
			t.Errorf("held decision: %d; want 200", s)
		}
	}
	if s := startHold.release(t, string(p.d.sign(t, time.Now(), nil))); s != http.StatusCreated {
		t.Errorf("held run start: %d; want 201", s)
	}

	// A burst of ten workers per slot with clients that retry: some are
	// shed and retried, none is refused for good, none is denied.
	var mu sync.Mutex
	var failures []string
	const workers, each = 10 * decideBound, 10
	for w := range workers {
		wg.Go(func() {
			c := selves[w%runs].WithRetry(5 * time.Minute)
			for range each {
				d, err := c.Decide(ctx, &client.DecideRequest{Action: read})
				if err != nil || d.Decision != writ.VerdictAllow {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%+v %v", d, err))
					mu.Unlock()
				}
			}
		})
	}
	for range 10 * startBound {
		signed := p.d.sign(t, time.Now(), nil)
		wg.Go(func() {
			if _, err := client.New(p.r.url, "").WithRetry(5*time.Minute).StartRun(ctx, signed, key); err != nil {
				mu.Lock()
				failures = append(failures, "run start: "+err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d requests of the burst failed; first: %s", len(failures), failures[0])
	}

	// After the burst every request succeeds at once.
	for i, c := range selves {
		d, err := c.WithRetry(-1).Decide(ctx, &client.DecideRequest{Action: read})
		if err != nil || d.Decision != writ.VerdictAllow {
			t.Errorf("run %d after the burst: %+v %v", i, d, err)
		}
	}
	if _, err := client.New(p.r.url, "").WithRetry(-1).StartRun(ctx, p.d.sign(t, time.Now(), nil), key); err != nil {
		t.Errorf("run start after the burst: %v", err)
	}
	n, denied := denials(t, p)
	if want := workers*each + runs; n < want || denied != 0 {
		t.Errorf("audit log: %d decisions, %d denied; want at least %d, none denied", n, denied, want)
	}
}

// TestRateLimitPerIdentity: a burst from one human's token gets 429 with
// Retry-After while another human's requests still pass; a run over its
// decision rate is told to wait, and its client retries and succeeds; a
// source address without a credential has a bucket of its own.
func TestRateLimitPerIdentity(t *testing.T) {
	const burst = 5
	a := startApprovals(t, func(cfg *server.Config) {
		unlimited(cfg)
		// One token per 1000 s once the burst is spent: a refill never
		// lands within the test's bursts.
		cfg.Limits[httpapi.ClassAPI] = httpapi.Limit{Rate: 0.001, Burst: burst}
		cfg.Limits[httpapi.ClassDecide] = httpapi.Limit{Rate: 0.5, Burst: 1}
		cfg.Limits[httpapi.ClassRunStart] = httpapi.Limit{Rate: 0.001, Burst: 3}
		cfg.Policy.Denials.Max = 0 // TestRateLimitCountsTowardDenials
	})
	ctx := context.Background()
	bob, carol := a.humans["bob"].c.WithRetry(-1), a.humans["carol"].c.WithRetry(-1)
	limited := 0
	for i := range 4 * burst {
		_, err := bob.ListRuns(ctx, writ.RunFilter{})
		var we *writ.Error
		switch {
		case i < burst && err != nil:
			t.Fatalf("bob's request %d, within the burst: %v", i, err)
		case i >= burst && (!errors.As(err, &we) || we.Kind != writ.KindRateLimited || we.Code != "rate_limited" || we.RetryAfter < time.Second):
			t.Fatalf("bob's request %d, over the burst: %v; want 429 rate_limited with Retry-After", i, err)
		case err != nil:
			limited++
		}
	}
	for i := range burst {
		if _, err := carol.ListRuns(ctx, writ.RunFilter{}); err != nil {
			t.Fatalf("carol's request %d while bob is limited: %v", i, err)
		}
	}
	if got := metric(t, a.r.url, `writ_http_shed_total{caller="human",class="api",reason="rate_limited"}`); len(got) != 1 || !strings.HasSuffix(got[0], fmt.Sprint(" ", limited)) {
		t.Errorf("rate-limit metric: %q; want %d", got, limited)
	}

	// A run's hook asks twice at once: the second is told to wait, and a
	// retrying client (as writ hook uses) then succeeds.
	self, _ := a.run(nil)
	read := &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}}
	if _, err := self.WithRetry(-1).Decide(ctx, read); err != nil {
		t.Fatalf("first decision: %v", err)
	}
	// A decision is answered in far less than the two seconds a token
	// takes to come back; a machine so loaded it is not has nothing to
	// retry, and the retry below still must succeed.
	_, err := self.WithRetry(-1).Decide(ctx, read)
	if err != nil && writ.ErrorKind(err) != writ.KindRateLimited {
		t.Fatalf("second decision at once: %v; want 429 or allow", err)
	}
	d, err := self.Decide(ctx, read)
	if err != nil || d.Decision != writ.VerdictAllow {
		t.Fatalf("a retrying hook under its run's limit: %+v %v; want allow after retrying", d, err)
	}

	// Requests without a credential are limited per source address:
	// trigger junk spends the address's bucket (bad signatures are not a
	// signer's).
	junk := client.New(a.r.url, "").WithRetry(-1)
	var last error
	for range 10 {
		_, last = junk.StartRun(ctx, []byte(`{"payloadType": "x", "payload": "", "signatures": []}`), nil)
	}
	if writ.ErrorKind(last) != writ.KindRateLimited {
		t.Errorf("unauthenticated junk after the address's burst: %v; want 429", last)
	}
}

// TestRateLimitCountsTowardDenials: a run that keeps hitting its rate
// limit is suspended by writ, as that many denials would.
func TestRateLimitCountsTowardDenials(t *testing.T) {
	p := startPolicy(t, func(cfg *server.Config) {
		unlimited(cfg)
		cfg.Limits[httpapi.ClassDecide] = httpapi.Limit{Rate: 0.001, Burst: 1}
		cfg.Policy.Denials.Max = 2
	})
	self, id := p.run(nil)
	ctx := context.Background()
	read := &client.DecideRequest{Action: writ.Action{Kind: "tool", Name: "read"}}
	if _, err := self.WithRetry(-1).Decide(ctx, read); err != nil {
		t.Fatal(err)
	}
	// Refused in two distinct seconds: suspended.
	poll(t, "the run to be suspended for its rate", func() bool {
		_, err := self.WithRetry(-1).Decide(ctx, read)
		if k := writ.ErrorKind(err); k != writ.KindRateLimited && k != writ.KindUnauthenticated {
			t.Fatalf("decision over the rate: %v", err)
		}
		run, err := p.human.GetRun(ctx, string(id))
		return err == nil && run.State == writ.RunSuspended
	})
	evs := runEvents(t, p.r.srv.Store(), id)
	if !strings.Contains(strings.Join(evs, "\n"), "run.suspended writ") {
		t.Errorf("events: %q; want run.suspended by writ", evs)
	}
}
