package gitgw

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// workClone clones acme/api as the test run and commits one file.
func (r *rig) workClone(t *testing.T) string {
	t.Helper()
	u := strings.Replace(r.srv.URL, "http://", "http://"+string(testRun)+":good@", 1) + "/git/acme/api.git"
	work := filepath.Join(r.dir, "work")
	gitT(t, r.dir, "clone", "-q", u, work)
	r.commit(t, work, "b.txt")
	return work
}

func (r *rig) commit(t *testing.T, work, file string) string {
	t.Helper()
	os.WriteFile(filepath.Join(work, file), []byte(file+time.Now().String()+"\n"), 0o644)
	gitT(t, work, "add", ".")
	gitT(t, work, "commit", "-q", "-m", file)
	return strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD"))
}

// push pushes HEAD to the run's branch x with the real git client.
func push(work string) (string, error) {
	c := exec.Command("git", "push", "origin", "HEAD:refs/heads/writ/"+string(testRun)+"/x")
	c.Dir = work
	c.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	b, err := c.CombinedOutput()
	return string(b), err
}

// hostedRef is where ref is in the hosted acme/api ("" when absent).
func (r *rig) hostedRef(t *testing.T, ref string) string {
	t.Helper()
	refs, err := r.gw.branches(context.Background(), "acme/api")
	if err != nil {
		t.Fatal(err)
	}
	return refs[ref]
}

const runRef = "refs/heads/writ/" + string(testRun) + "/x"

// pushWhileFailing pushes a first commit, then a second one while the
// store refuses events of type typ ("disk full"); it returns the rig, the
// branch before the second push, and that push's output and error.
func pushWhileFailing(t *testing.T, typ string) (r *rig, before, out string, err error) {
	t.Helper()
	r = newRig(t)
	work := r.workClone(t)
	if out, err := push(work); err != nil {
		t.Fatalf("first push: %v\n%s", err, out)
	}
	before = r.hostedRef(t, runRef)
	r.commit(t, work, "c.txt")
	r.events.mu.Lock()
	r.events.fail = func(ev *writ.Event) error {
		if ev.Type == typ {
			return errors.New("disk full")
		}
		return nil
	}
	r.events.mu.Unlock()
	out, err = push(work)
	return r, before, out, err
}

// TestPushRefusedWhenIntentNotRecorded: a push whose write-ahead intent
// cannot be committed (the store fails) is refused to the real git client
// with writ's sentence, and the branch does not move.
func TestPushRefusedWhenIntentNotRecorded(t *testing.T) {
	r, before, out, err := pushWhileFailing(t, EventRefIntent)
	if err == nil || !strings.Contains(out, "remote: writ: writ could not record the push, so nothing was changed") || !strings.Contains(out, "(writ: push_not_recorded)") {
		t.Errorf("push with a failing store: err %v\n%s", err, out)
	}
	if got := r.hostedRef(t, runRef); got != before {
		t.Errorf("branch moved to %s without its intent; want %s", got, before)
	}
	if m, _ := filepath.Glob(filepath.Join(r.gw.dir("acme/api"), "writ-incoming-*")); len(m) > 0 {
		t.Errorf("quarantine left: %v", m)
	}
}

// TestPushRolledBackWhenEventNotRecorded: a push whose git.pushed event
// cannot be written is refused and its ref moved back; reconciliation
// then closes the intent as abandoned.
func TestPushRolledBackWhenEventNotRecorded(t *testing.T) {
	r, before, out, err := pushWhileFailing(t, EventPushed)
	if err == nil || !strings.Contains(out, "(writ: push_not_recorded)") {
		t.Errorf("push with a failing store: err %v\n%s", err, out)
	}
	if got := r.hostedRef(t, runRef); got != before {
		t.Errorf("branch at %s after its event failed; want it rolled back to %s", got, before)
	}
	r.events.mu.Lock()
	r.events.fail = nil
	r.events.mu.Unlock()
	n := r.events.len()
	if err := r.gw.Reconcile(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	evs := r.events.since(n)
	if len(evs) != 1 || evs[0].Type != EventRefAbandoned || evs[0].Actor != writ.ActorSystem {
		t.Errorf("reconciled: %v", types(evs))
	}
}

func types(evs []*writ.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+"/"+e.Actor)
	}
	return out
}

// TestReconcileAfterCrash stops a push and a merge at each step of the
// write-ahead as if writ died there (intent committed, ref not moved; ref
// moved, completion not recorded), then reconciles: exactly one
// git.ref.abandoned, or exactly one alert and the missing git.pushed or
// merge event, all writ's (never the run's), naming the intent; a
// second reconciliation finds every branch explained and records nothing.
func TestReconcileAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		op, point string
		want      []string
	}{
		{"push", FaultIntent, []string{EventRefAbandoned}},
		{"push", FaultMoved, []string{writ.EventAlert, EventPushed}},
		{"merge", FaultIntent, []string{EventRefAbandoned}},
		{"merge", FaultMoved, []string{writ.EventAlert, EventMerge}},
	} {
		t.Run(tc.op+"/"+tc.point, func(t *testing.T) {
			var armed atomic.Bool
			r := newRig(t, func(c *Config) {
				c.Fault = func(point string) error {
					if armed.Load() && point == tc.point {
						return errors.New("crash")
					}
					return nil
				}
			})
			work := r.workClone(t)
			var ref, old, new string
			switch tc.op {
			case "push":
				ref, new = runRef, strings.TrimSpace(gitT(t, work, "rev-parse", "HEAD"))
				armed.Store(true)
				if out, err := push(work); err == nil {
					t.Fatalf("push went through the crash: %s", out)
				}
			case "merge":
				if out, err := push(work); err != nil {
					t.Fatalf("push: %v\n%s", err, out)
				}
				ref, old, new = "refs/heads/main", r.hostedRef(t, "refs/heads/main"), r.hostedRef(t, runRef)
				armed.Store(true)
				_, err := r.gw.Merge(context.Background(), "acme/api", &writ.MergeRequest{Run: testRun}, &writ.Principal{Kind: writ.PrincipalRun, Run: testRun})
				if !errors.Is(err, errStopped) {
					t.Fatalf("merge: %v", err)
				}
			}
			var intent *writ.Event
			for _, e := range r.events.since(0) {
				if e.Type == EventRefIntent {
					intent = e
				}
			}
			if intent == nil || intent.Actor != "run:"+string(testRun) || intent.Details["op"] != tc.op {
				t.Fatalf("intent: %+v", intent)
			}
			moved := r.hostedRef(t, ref) == new
			if moved != (tc.point == FaultMoved) {
				t.Fatalf("%s at %s after a crash at %s", ref, r.hostedRef(t, ref), tc.point)
			}
			if !moved && r.hostedRef(t, ref) != old {
				t.Fatalf("%s at %s; want it unmoved at %q", ref, r.hostedRef(t, ref), old)
			}

			n := r.events.len()
			if err := r.gw.Reconcile(context.Background(), time.Now()); err != nil {
				t.Fatal(err)
			}
			evs := r.events.since(n)
			if len(evs) != len(tc.want) {
				t.Fatalf("reconciled %v; want %v", types(evs), tc.want)
			}
			for i, e := range evs {
				if e.Type != tc.want[i] || e.Actor != writ.ActorSystem || e.Details["intent"] != intent.ID || e.Details["reconciled"] != true || e.Run != testRun {
					t.Errorf("event %d: %+v; want a %s of writ naming intent %s", i, e, tc.want[i], intent.ID)
				}
			}
			if moved {
				done := evs[1]
				switch tc.op {
				case "push":
					refs, _ := done.Details["refs"].([]map[string]string)
					if done.Details["outcome"] != "accepted" || len(refs) != 1 || refs[0]["ref"] != ref || refs[0]["new"] != new {
						t.Errorf("reconciled push: %+v", done.Details)
					}
				case "merge":
					if done.Details["head"] != new || done.Details["into"] != "main" || done.Details["mirrored"] != false {
						t.Errorf("reconciled merge: %+v", done.Details)
					}
				}
			}
			// Every branch is explained now: nothing more to record.
			n = r.events.len()
			if err := r.gw.Reconcile(context.Background(), time.Now()); err != nil {
				t.Fatal(err)
			}
			if evs := r.events.since(n); len(evs) != 0 {
				t.Errorf("second reconciliation recorded %v", types(evs))
			}
		})
	}
}

// TestReconcileRefMovedOutsideWrit: a branch made and one deleted behind
// writ's back are each one alert and one git.ref.reconciled event; a
// push's completed intent and the branches of repo.added need nothing;
// an intent younger than settled is left alone.
func TestReconcileRefMovedOutsideWrit(t *testing.T) {
	r := newRig(t)
	work := r.workClone(t)
	if out, err := push(work); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	ctx := context.Background()
	n := r.events.len()
	if err := r.gw.Reconcile(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if evs := r.events.since(n); len(evs) != 0 {
		t.Fatalf("nothing moved outside writ, but reconciliation recorded %v", types(evs))
	}
	main := r.hostedRef(t, "refs/heads/main")
	gitT(t, r.dir, "--git-dir", r.gw.dir("acme/api"), "update-ref", "refs/heads/side", main)
	gitT(t, r.dir, "--git-dir", r.gw.dir("acme/api"), "update-ref", "-d", runRef)
	n = r.events.len()
	if err := r.gw.Reconcile(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	evs := r.events.since(n)
	want := []string{"alert/writ", "git.ref.reconciled/writ", "alert/writ", "git.ref.reconciled/writ"}
	if strings.Join(types(evs), " ") != strings.Join(want, " ") {
		t.Fatalf("reconciled %v; want %v", types(evs), want)
	}
	if evs[0].Details["code"] != "ref_moved_outside_writ" || evs[1].Details["ref"] != "refs/heads/side" || evs[1].Details["found"] != main || evs[1].Details["logged"] != "" ||
		evs[3].Details["ref"] != runRef || evs[3].Details["found"] != "" || evs[1].Run != "" {
		t.Errorf("reconciled: %+v %+v", evs[1], evs[3])
	}
	// An intent younger than settled may be another replica's push in
	// flight: neither it nor its ref is touched.
	gitT(t, r.dir, "--git-dir", r.gw.dir("acme/api"), "update-ref", "refs/heads/later", main)
	if _, err := r.gw.recordIntent(ctx, "push", "acme/api", testRun, "run:"+string(testRun), []refMove{{Ref: "refs/heads/later", New: main}}, nil); err != nil {
		t.Fatal(err)
	}
	n = r.events.len()
	if err := r.gw.Reconcile(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if evs := r.events.since(n); len(evs) != 0 {
		t.Errorf("an unsettled intent was reconciled: %v", types(evs))
	}
}

// TestMergeNotRecorded: a merge whose intent cannot be written moves
// nothing (merge_not_recorded); one whose merge event cannot be written
// moves into back when nothing outside writ has the head, and otherwise
// (mirrored) keeps it and is recorded by the next reconciliation, with
// mirrored read from the upstream.
func TestMergeNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     string
		upstream bool
		moved    bool
	}{
		{"intent", EventRefIntent, true, false},
		{"event", EventMerge, false, false},
		{"event-mirrored", EventMerge, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			work := r.workClone(t)
			if out, err := push(work); err != nil {
				t.Fatalf("push: %v\n%s", err, out)
			}
			if !tc.upstream {
				gitT(t, r.dir, "--git-dir", r.gw.dir("acme/api"), "config", "--unset", "writ.upstream")
			}
			base, head := r.hostedRef(t, "refs/heads/main"), r.hostedRef(t, runRef)
			r.events.mu.Lock()
			r.events.fail = func(ev *writ.Event) error {
				if ev.Type == tc.fail {
					return errors.New("disk full")
				}
				return nil
			}
			r.events.mu.Unlock()
			_, err := r.gw.Merge(context.Background(), "acme/api", &writ.MergeRequest{Run: testRun}, &writ.Principal{Kind: writ.PrincipalRun, Run: testRun})
			if writ.ErrorCode(err) != "merge_not_recorded" {
				t.Fatalf("merge with a failing store: %v", err)
			}
			want := base
			if tc.moved {
				want = head
			}
			if got := r.hostedRef(t, "refs/heads/main"); got != want {
				t.Fatalf("main at %s; want %s", got, want)
			}
			r.events.mu.Lock()
			r.events.fail = nil
			r.events.mu.Unlock()
			n := r.events.len()
			if err := r.gw.Reconcile(context.Background(), time.Now()); err != nil {
				t.Fatal(err)
			}
			evs := r.events.since(n)
			wantTypes := "git.ref.abandoned/writ"
			if tc.name == "intent" {
				wantTypes = ""
			}
			if tc.moved {
				wantTypes = "alert/writ merge/writ"
			}
			if got := strings.Join(types(evs), " "); got != wantTypes {
				t.Fatalf("reconciled %q; want %q", got, wantTypes)
			}
			if tc.moved && (evs[1].Details["mirrored"] != true || evs[1].Details["head"] != head) {
				t.Errorf("reconciled merge: %+v", evs[1].Details)
			}
		})
	}
}
