package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// TestKillHelper is the writ server process TestKillUnderLoad kills: it
// serves the installation in WRIT_TEST_KILL_DIR and writes its URL to
// url there.
func TestKillHelper(t *testing.T) {
	dir := os.Getenv("WRIT_TEST_KILL_DIR")
	if dir == "" {
		t.Skip("run by TestKillUnderLoad")
	}
	serveUntilKilled(t, dir, server.Options{})
}

// acks is what the load was told succeeded.
type acks struct {
	mu     sync.Mutex
	runs   []writ.RunID
	leases []string
	pushes map[string]string // commit → ref: every commit a push was acknowledged with
}

func (a *acks) add(f func()) { a.mu.Lock(); f(); a.mu.Unlock() }

// gitTry runs git in dir; unlike gitCmd a failure is an answer, not a
// test failure (the server may be dying).
func gitTry(dir string, args ...string) (string, error) {
	c := exec.Command("git", append([]string{"-c", "credential.helper=", "-c", "user.name=kill", "-c", "user.email=kill@test"}, args...)...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestKillUnderLoad is issue 21's kill test on SQLite: writ serve (a
// process of its own) is killed with SIGKILL at a random moment (the seed
// is printed; WRIT_TEST_KILL_SEED replays it) while runs start, take git
// leases and push, round after round. Afterwards every acknowledged run,
// lease and push has its event exactly once, every branch of the hosted
// repository is where the log says, no event is logged twice, and the
// log verifies against its signed checkpoint.
func TestKillUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts writ server processes")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WRIT_TEST_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (WRIT_TEST_KILL_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	ctx := context.Background()

	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	up := seedUpstream(t, t.TempDir(), map[string][]byte{"src/a.txt": []byte("a\n")})
	if _, err := client.New(r.url, d.env.Token).AddRepo(ctx, &writ.RepoAddRequest{Name: "acme/api", Upstream: up}); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	a := &acks{pushes: map[string]string{}}
	const rounds, workers = 4, 3
	for round := range rounds {
		url, proc := startKillable(t, d.env.Dir)
		a.mu.Lock()
		before := len(a.pushes)
		a.mu.Unlock()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { killLoad(t, d, url, fmt.Sprintf("r%dw%d", round, w), a, stop) })
		}
		// The kill comes at a random moment after the load got going (a
		// push acknowledged), however slow the machine.
		poll(t, "a push acknowledged in this round", func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return len(a.pushes) > before
		})
		delay := time.Duration(rng.IntN(1500)) * time.Millisecond
		time.Sleep(delay)
		if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := proc.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: writ process: %v; want killed by SIGKILL", round, err)
		}
		close(stop)
		wg.Wait()
		t.Logf("round %d: killed %v after the first push", round, delay)
	}

	// The last restart reconciles; then everything is checked.
	r = start(t, d.cfg, server.Options{}, nil)
	store := r.srv.Store()
	var evs []writ.Event
	poll(t, "every event in the log", func() bool {
		evs = storeEvents(t, store)
		n, err := store.LogSize(ctx)
		return err == nil && n == int64(len(evs))
	})
	checkKillLog(t, r, d, evs, a)
	t.Logf("%d rounds: %d runs, %d leases, %d pushes acknowledged; %d events", rounds, len(a.runs), len(a.leases), len(a.pushes), len(evs))
}

// startKillable starts TestKillHelper on the installation in dir.
func startKillable(t *testing.T, dir string) (string, *exec.Cmd) {
	t.Helper()
	os.Remove(filepath.Join(dir, "url"))
	c := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
	c.Env = append(os.Environ(), "WRIT_TEST_KILL_DIR="+dir)
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	var url string
	for deadline := time.Now().Add(pollTimeout); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "url"))
		url = string(b)
	}
	if url == "" {
		c.Process.Kill()
		t.Fatalf("the writ process did not listen:\n%s", out.String())
	}
	return url, c
}

// killLoad is one worker: a run, a git lease, a clone, then commits
// pushed one by one until the server dies or stop closes. Only what
// the server acknowledged is recorded.
func killLoad(t *testing.T, d *dev, url, name string, a *acks, stop chan struct{}) {
	ctx := context.Background()
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Error(err)
		return
	}
	run, err := client.New(url, "").StartRun(ctx, d.sign(t, time.Now(), func(tr *writ.Trigger) { tr.Scope.Repos[0].Paths = []string{"src/**"} }), key)
	if err != nil {
		return
	}
	a.add(func() { a.runs = append(a.runs, run.ID) })
	cred, err := client.NewRun(url, run.Token, key).RequestCredential(ctx, string(run.ID), &writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"write"}})
	if err != nil {
		return
	}
	a.add(func() { a.leases = append(a.leases, cred.Lease.ID) })
	remote := strings.Replace(url, "http://", "http://"+cred.Credential["username"]+":"+cred.Credential["password"]+"@", 1) + "/git/acme/api.git"
	dir := filepath.Join(t.TempDir(), name)
	if _, err := gitTry(filepath.Dir(dir), "clone", "-q", remote, dir); err != nil {
		return
	}
	ref := "refs/heads/writ/" + string(run.ID) + "/work"
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		path := filepath.Join(dir, "src", name+"-"+strconv.Itoa(i)+".txt")
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(name+"\n"), 0o644); err != nil {
			t.Error(err)
			return
		}
		if _, err := gitTry(dir, "add", "."); err != nil {
			t.Error(err)
			return
		}
		if _, err := gitTry(dir, "commit", "-q", "-m", name); err != nil {
			t.Error(err)
			return
		}
		head, err := gitTry(dir, "rev-parse", "HEAD")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := gitTry(dir, "push", "-q", "origin", "HEAD:"+ref); err != nil {
			return // refused or the server died: not acknowledged
		}
		a.add(func() { a.pushes[head] = ref })
	}
}

// checkKillLog checks the invariants of TestKillUnderLoad.
func checkKillLog(t *testing.T, r *running, d *dev, evs []writ.Event, a *acks) {
	t.Helper()
	ids := map[string]int{}
	started := map[writ.RunID]int{}
	issued := map[string]int{}
	pushed := map[string]int{}    // commit → accepted git.pushed events moving a ref to it
	logged := map[string]string{} // ref → where the log last put it
	for _, e := range evs {
		ids[e.ID]++
		switch e.Type {
		case writ.EventRunStarted:
			started[e.Run]++
		case writ.EventCredentialIssued:
			issued[e.Subject]++
		case "git.pushed", "merge":
			if e.Type == "git.pushed" && e.Details["outcome"] != "accepted" {
				continue
			}
			for _, m := range refMoves(e) {
				if e.Type == "git.pushed" {
					pushed[m["new"]]++
				}
				logged[m["ref"]] = m["new"]
			}
		case "git.ref.reconciled":
			ref, _ := e.Details["ref"].(string)
			found, _ := e.Details["found"].(string)
			logged[ref] = found
		case "repo.added":
			if refs, ok := e.Details["refs"].(map[string]any); ok {
				for ref, c := range refs {
					logged[ref], _ = c.(string)
				}
			}
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s is logged %d times", id, n)
		}
	}
	for _, id := range a.runs {
		if started[id] != 1 {
			t.Errorf("acknowledged run %s has %d run.started events; want 1", id, started[id])
		}
	}
	for _, id := range a.leases {
		if issued[id] != 1 {
			t.Errorf("acknowledged lease %s has %d credential.issued events; want 1", id, issued[id])
		}
	}
	for commit, ref := range a.pushes {
		if pushed[commit] != 1 {
			t.Errorf("acknowledged push of %s to %s has %d accepted git.pushed events; want 1", commit, ref, pushed[commit])
		}
	}
	hosted := filepath.Join(d.cfg.DataDir, "repos", "acme", "api.git")
	out, err := gitTry(hosted, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
	if err != nil {
		t.Fatal(out, err)
	}
	for _, line := range strings.Split(out, "\n") {
		ref, tip, _ := strings.Cut(line, " ")
		if logged[ref] != tip {
			t.Errorf("branch %s is at %s but the log last put it at %q", ref, tip, logged[ref])
		}
	}
	// The log verifies against its signed checkpoint.
	ctx := context.Background()
	admin := client.New(r.url, d.env.Token)
	api := newAuditAPI(t, r.url, d.env.Token)
	note, err := admin.AuditCheckpoint(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	cp := api.open(note)
	es, err := admin.AuditEntries(ctx, 0, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	log := make([]auditlog.Entry, len(es))
	for i, e := range es {
		log[i] = auditlog.Entry{Seq: e.Seq, Body: e.Body}
	}
	if _, err := auditlog.Verify(cp, log, nil); err != nil {
		t.Errorf("the log after the kills: %v", err)
	}
}

// refMoves returns an event's details.refs as {ref, old, new} maps.
func refMoves(e writ.Event) []map[string]string {
	list, _ := e.Details["refs"].([]any)
	var out []map[string]string
	for _, x := range list {
		m, _ := x.(map[string]any)
		mv := map[string]string{}
		for k, v := range m {
			mv[k], _ = v.(string)
		}
		out = append(out, mv)
	}
	return out
}
