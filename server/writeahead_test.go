package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/decision"
	"github.com/writ-dev/writ/gitgw"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
)

// TestGitCrashHelper is not a test of its own: TestGitCrashReconciled
// runs the test binary through it as a writ server (the installation in
// $WRIT_TEST_CRASH_DIR) that kills itself with SIGKILL when a push reaches
// the write-ahead step $WRIT_TEST_CRASH_POINT. Only this test reads them.
func TestGitCrashHelper(t *testing.T) {
	dir, point := os.Getenv("WRIT_TEST_CRASH_DIR"), os.Getenv("WRIT_TEST_CRASH_POINT")
	if dir == "" {
		t.Skip("run by TestGitCrashReconciled")
	}
	serveUntilKilled(t, dir, server.Options{GitFault: func(p string) error {
		if p == point {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}}) // never returns: the push kills it
}

// serveUntilKilled serves the installation in dir (its writ.yaml) with o
// and writes the URL it listens on to dir/url (atomically); it returns
// only if the server fails.
func serveUntilKilled(t *testing.T, dir string, o server.Options) {
	t.Helper()
	cfg, err := server.LoadConfig(filepath.Join(dir, "writ.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "url.tmp"), []byte(url), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "url.tmp"), filepath.Join(dir, "url")); err != nil {
		t.Fatal(err)
	}
	t.Fatal(srv.Run(context.Background()))
}

// TestGitCrashReconciled kills a writ server process (SIGKILL) while a
// run's push is between its committed intent and update-ref, and between
// update-ref and its git.pushed event; after a restart the log says what
// happened, on writ's behalf and never as the run's (an abandoned intent,
// or an alert and the missing git.pushed), and every branch of every
// hosted repository has its event: reconciling again records nothing.
func TestGitCrashReconciled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts writ server processes")
	}
	for _, point := range []string{gitgw.FaultIntent, gitgw.FaultMoved} {
		t.Run(point, func(t *testing.T) {
			ctx := context.Background()
			d := prepareDev(t)
			r := start(t, d.cfg, server.Options{}, d.finish(t))
			p := &policyRig{t: t, d: d, r: r, human: client.New(r.url, d.env.Token)}
			g := newGitRun(t, p, map[string][]byte{"src/a.txt": []byte("a\n")})
			g.commit("src/b.txt", "b\n")
			g.push()
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			hosted := filepath.Join(d.cfg.DataDir, "repos", "acme", "api.git")
			ref := "refs/heads/writ/" + string(g.run) + "/work"
			old := gitCmd(t, g.dir, "--git-dir", hosted, "rev-parse", ref)
			new := g.commit("src/c.txt", "c\n")

			// A writ server process that dies at point.
			c := exec.Command(os.Args[0], "-test.run=^TestGitCrashHelper$")
			c.Env = append(os.Environ(), "WRIT_TEST_CRASH_DIR="+d.env.Dir, "WRIT_TEST_CRASH_POINT="+point)
			var out strings.Builder
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			var url string
			for deadline := time.Now().Add(pollTimeout); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				b, _ := os.ReadFile(filepath.Join(d.env.Dir, "url"))
				url = string(b)
			}
			if url == "" {
				c.Process.Kill()
				t.Fatalf("the writ process did not listen:\n%s", out.String())
			}
			push := exec.Command("git", "-c", "credential.helper=", "push", "-q", strings.Replace(g.url, strings.TrimPrefix(r.url, "http://"), strings.TrimPrefix(url, "http://"), 1), "HEAD:"+ref)
			push.Dir = g.workDir
			pushOut, err := push.CombinedOutput()
			if err == nil {
				t.Errorf("push through a dying writ succeeded:\n%s", pushOut)
			}
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("writ process: %v; want killed by SIGKILL\n%s", err, out.String())
				}
			case <-time.After(pollTimeout):
				c.Process.Kill()
				t.Fatalf("the writ process did not die at %s:\n%s\npush: %s", point, out.String(), pushOut)
			}
			want := old
			if point == gitgw.FaultMoved {
				want = new
			}
			if got := gitCmd(t, g.dir, "--git-dir", hosted, "rev-parse", ref); got != want {
				t.Fatalf("after a crash at %s the branch is at %s; want %s", point, got, want)
			}

			// Restart: reconciliation runs before the server serves, so an
			// answered request means it is done.
			r2 := start(t, d.cfg, server.Options{}, nil)
			if resp, err := http.Get(r2.url + "/v1/runs"); err != nil {
				t.Fatal(err)
			} else {
				resp.Body.Close()
			}
			if err := r2.stop(); err != nil {
				t.Fatal(err)
			}

			db, err := sqlstore.Open(ctx, sqlstore.Config{DSN: d.cfg.Store})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var intent *writ.Event
			var after []*writ.Event
			err = db.EventsOfTypes(ctx, []string{gitgw.EventRefIntent, gitgw.EventPushed, gitgw.EventRefAbandoned, gitgw.EventRefReconciled, writ.EventAlert}, func(ev *writ.Event) error {
				if ev.Type == gitgw.EventRefIntent {
					intent, after = ev, nil
				} else if intent != nil {
					after = append(after, ev)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if intent == nil || intent.Actor != "run:"+string(g.run) {
				t.Fatalf("last intent: %+v", intent)
			}
			wantTypes := []string{gitgw.EventRefAbandoned}
			if point == gitgw.FaultMoved {
				wantTypes = []string{writ.EventAlert, gitgw.EventPushed}
			}
			var got []string
			for _, e := range after {
				got = append(got, e.Type)
				if e.Actor != writ.ActorSystem || e.Details["intent"] != intent.ID || e.Details["reconciled"] != true || e.Run != g.run {
					t.Errorf("%s after the crash: %+v; want writ's, naming intent %s", e.Type, e, intent.ID)
				}
			}
			if strings.Join(got, " ") != strings.Join(wantTypes, " ") {
				t.Errorf("after the crash at %s the log has %v; want %v", point, got, wantTypes)
			}

			// Every branch has its event: reconciling again finds nothing.
			rec := &eventRecorder{}
			gw, err := gitgw.New(gitgw.Config{Root: filepath.Join(d.cfg.DataDir, "repos"), Leases: noGit{}, Humans: noGit{}, Runs: noGit{}, Decider: noGit{},
				Events: rec, History: db})
			if err != nil {
				t.Fatal(err)
			}
			if err := gw.Reconcile(ctx, time.Now()); err != nil {
				t.Fatal(err)
			}
			if len(rec.evs) != 0 {
				t.Errorf("a branch is not explained by the log after the restart: %+v", rec.evs)
			}
		})
	}
}

type eventRecorder struct{ evs []*writ.Event }

func (r *eventRecorder) AppendEvent(ctx context.Context, ev *writ.Event) error {
	r.evs = append(r.evs, ev)
	return nil
}

// noGit is a gateway's collaborators that refuse everything: the gateway
// above only reconciles.
type noGit struct{}

func (noGit) CheckGit(ctx context.Context, user, password, repo string, write bool) (*writ.Lease, error) {
	return nil, errors.New("no")
}
func (noGit) AuthenticateHuman(ctx context.Context, token string) (*writ.Principal, error) {
	return nil, errors.New("no")
}
func (noGit) Get(ctx context.Context, id writ.RunID) (*writ.Run, error) { return nil, errors.New("no") }
func (noGit) Decide(ctx context.Context, req *decision.Request) (*writ.Decision, error) {
	return nil, errors.New("no")
}
