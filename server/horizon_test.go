package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
	"github.com/writ-dev/writ/token"
)

// stoppedClock is a clock that stands still at base until a test steps
// it: nothing a test checks depends on how long the test takes.
type stoppedClock struct {
	base time.Time
	off  atomic.Int64
}

func (c *stoppedClock) now() time.Time       { return c.base.Add(time.Duration(c.off.Load())) }
func (c *stoppedClock) step(d time.Duration) { c.off.Store(int64(d)) }

// getWithProof sends GET path with the run's bound token and exactly the
// DPoP proof given, and returns the status and the error code, if any.
func getWithProof(t *testing.T, url, path, tok, proof string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", proof)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e.Error.Code, e.Error.Message
}

// TestReplayHorizonClockStep is issue 21's clock test, through the
// server's clock option: a run starts from a signed trigger with a DPoP
// proof; the clock steps forward past the trigger's expiry plus leeway; a
// prune forgets the trigger id and the proof's jti; the clock steps back.
// The same signed trigger and the same proof are still refused, by the
// replay horizons, with a message that says so. And commit times, left
// clamped ahead by the step, do not make a new run look past its
// deadline.
func TestReplayHorizonClockStep(t *testing.T) {
	clock := &stoppedClock{base: time.Now().UTC().Truncate(time.Second)}
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{Now: clock.now}, d.finish(t))
	ctx := context.Background()
	anon, admin := client.New(r.url, ""), client.New(r.url, d.env.Token)
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	signed := d.sign(t, clock.now(), func(tr *writ.Trigger) { tr.ExpiresAt = tr.IssuedAt.Add(5 * time.Minute) })
	run, err := anon.StartRun(ctx, signed, key)
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/runs/" + string(run.ID)
	proof, err := token.Proof(key, "GET", r.url+path, run.Token, clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if status, code, _ := getWithProof(t, r.url, path, run.Token, proof); status != 200 {
		t.Fatalf("first use of the proof: %d %s", status, code)
	}
	if _, code, _ := getWithProof(t, r.url, path, run.Token, proof); code != "dpop_replay" {
		t.Fatalf("second use of the proof: %q; want dpop_replay", code)
	}
	if _, err := anon.StartRun(ctx, signed, nil); writ.ErrorCode(err) != "replay" {
		t.Fatalf("second use of the trigger: %v; want replay", err)
	}

	// Forward past expiresAt + leeway (60 s) + the prune's minute, and past
	// the proof's memory (iat + 3 minutes); the prune runs there.
	clock.step(10 * time.Minute)
	r.srv.Prune(ctx)
	store := r.srv.Store()
	for kind, want := range map[string]time.Time{
		sqlstore.HorizonTrigger: clock.now().Add(-2 * time.Minute),
		sqlstore.HorizonDPoP:    clock.now(),
	} {
		if h, err := store.ReplayHorizon(ctx, kind); err != nil || !h.Equal(want) {
			t.Errorf("%s horizon after the prune = %v, %v; want %v (the store's clock less the keep)", kind, h, err, want)
		}
	}

	// Back: the trigger and the proof are within their validity again, and
	// their records are gone.
	clock.step(0)
	_, err = anon.StartRun(ctx, signed, nil)
	if writ.ErrorCode(err) != "replay" || !strings.Contains(err.Error(), "replay horizon") || !strings.Contains(err.Error(), "sign a new trigger") {
		t.Errorf("the used trigger after the clock stepped back: %v; want replay, past the replay horizon", err)
	}
	status, code, msg := getWithProof(t, r.url, path, run.Token, proof)
	if status != 401 || code != "dpop_replay" || !strings.Contains(msg, "replay horizon") {
		t.Errorf("the used proof after the clock stepped back: %d %s %q; want 401 dpop_replay, past the replay horizon", status, code, msg)
	}
	// (Fresh proofs are refused too until the clock is back past the
	// horizon: a proof is remembered for 3 minutes, and the horizon is 10
	// ahead. Failing closed is the price of a prune during a forward step,
	// docs/design.md §5.)
	// A new trigger starts a run whose deadline (5 minutes) is before the
	// commit times the step left behind (10 minutes ahead); it is live by
	// the clock, so an admin can suspend and resume it.
	short, err := anon.StartRun(ctx, d.sign(t, clock.now(), func(tr *writ.Trigger) { tr.Scope.MaxDuration = writ.Duration(5 * time.Minute) }), nil)
	if err != nil {
		t.Fatalf("a new trigger after the clock stepped back: %v", err)
	}
	if _, err := admin.Transition(ctx, string(short.ID), "suspend", "test"); err != nil {
		t.Fatal(err)
	}
	if got, err := admin.Transition(ctx, string(short.ID), "resume", ""); err != nil || got.State != writ.RunActive {
		t.Errorf("resume of a run with 5 minutes left by the clock: %v, %v; want active", got, err)
	}
}

// TestReplayHorizonReplicas is issue 21's replica case, on PostgreSQL.
// Replica B's clock is 20 minutes behind the database's; replica A's is
// two hours ahead. Every prune goes by the database's clock, not the
// replica's: trigger old, which expired 15 minutes ago but which B's clock
// still calls valid, is behind the horizon the replicas' first prunes set
// and is refused by B; trigger live, which expires in 10 minutes, starts
// a run through B, and after A prunes its id is still kept, so B refuses
// it again as already used (A's clock would have forgotten it).
func TestReplayHorizonReplicas(t *testing.T) {
	dsn := postgresDatabase(t)
	d := prepareDev(t)
	d.cfg.Store = dsn
	d.cfg.PublicURL = "http://writ-replicas.test"
	behind := func() time.Time { return time.Now().Add(-20 * time.Minute) }
	ahead := func() time.Time { return time.Now().Add(2 * time.Hour) }
	// B first: the signing keys are made by its clock, so it can use them.
	b := start(t, d.cfg, server.Options{Now: behind}, d.finish(t))
	a := start(t, d.cfg, server.Options{Now: ahead}, nil)
	ctx := context.Background()
	viaB := client.New(b.url, "")
	now := time.Now()
	old := d.sign(t, now.Add(-25*time.Minute), func(tr *writ.Trigger) { tr.ExpiresAt = now.Add(-15 * time.Minute) })
	live := d.sign(t, now.Add(-25*time.Minute), func(tr *writ.Trigger) { tr.ExpiresAt = now.Add(10 * time.Minute) })
	if _, err := viaB.StartRun(ctx, live, nil); err != nil {
		t.Fatalf("trigger live through B: %v", err)
	}
	a.srv.Prune(ctx)
	h, err := a.srv.Store().ReplayHorizon(ctx, sqlstore.HorizonTrigger)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Now().Add(-2 * time.Minute); h.Before(want.Add(-time.Minute)) || h.After(want.Add(time.Minute)) {
		t.Errorf("trigger horizon after A's prune = %v; want about %v (the database's clock less the keep, not A's clock)", h, want)
	}
	_, err = viaB.StartRun(ctx, old, nil)
	if writ.ErrorCode(err) != "replay" || !strings.Contains(err.Error(), "replay horizon") {
		t.Errorf("trigger old through B: %v; want replay, past the replay horizon", err)
	}
	_, err = viaB.StartRun(ctx, live, nil)
	if writ.ErrorCode(err) != "replay" || !strings.Contains(err.Error(), "already used") {
		t.Errorf("trigger live again through B: %v; want replay, already used", err)
	}
}
