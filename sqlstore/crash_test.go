package sqlstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

// crashChildEnv, when set to a database path, makes the test binary a
// crash child: it writes to that database and prints every acknowledged
// write until it is killed.
const crashChildEnv = "WRIT_SQLSTORE_CRASH_CHILD"

// crashChild creates runs from several goroutines and ends some of them,
// printing "run <id>" once CreateRun returned nil and "end <id>" once
// TransitionRun to ended returned nil. It runs until it is killed (or, as
// a safeguard, for a minute).
func crashChild(path string) {
	ctx := context.Background()
	db, err := Open(ctx, Config{DSN: "sqlite://" + path})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		// One unbuffered write per line: what was printed was acknowledged.
		if _, err := fmt.Fprintf(os.Stdout, format+"\n", args...); err != nil {
			os.Exit(4)
		}
	}
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				r, trig, evs := testRun(time.Now())
				if err := db.CreateRun(ctx, r, trig, evs...); err != nil {
					fmt.Fprintln(os.Stderr, "crash child: CreateRun:", err)
					os.Exit(3)
				}
				ack("run %s", r.ID)
				if (i+w)%3 == 0 {
					if _, err := db.TransitionRun(ctx, r.ID, writ.RunEnded, "done", &writ.Event{Actor: writ.ActorSystem}); err != nil {
						fmt.Fprintln(os.Stderr, "crash child: TransitionRun:", err)
						os.Exit(3)
					}
					ack("end %s", r.ID)
				}
			}
		}()
	}
	time.Sleep(time.Minute)
	fmt.Fprintln(os.Stderr, "crash child: not killed within a minute")
	os.Exit(5)
}

// TestCrashAcknowledgedWritesSurvive kills a process that is writing with
// SIGKILL, several times over the same database, and checks that every
// write it acknowledged before dying is there, with its events.
func TestCrashAcknowledgedWritesSurvive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "writ.db")
	started := make(map[writ.RunID]bool)
	ended := make(map[writ.RunID]bool)
	for round := range 3 {
		// Kill each child at a different point.
		acked := crashRound(t, path, 150+round*70)
		for _, line := range acked {
			kind, id, _ := strings.Cut(line, " ")
			switch kind {
			case "run":
				started[writ.RunID(id)] = true
			case "end":
				ended[writ.RunID(id)] = true
			default:
				t.Fatalf("crash child printed %q", line)
			}
		}
		checkCrashSurvivors(t, path, started, ended)
	}
}

// crashRound runs a crash child on the database at path, kills it after it
// acknowledged n writes, and returns every line it printed.
func crashRound(t *testing.T, path string, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var lines []string
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == n && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true
			// Keep reading: lines already in the pipe were acknowledged.
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("crash child exited after %d acknowledged writes (%v); stderr:\n%s", len(lines), err, stderr.String())
	}
	t.Logf("killed the crash child after %d acknowledged writes (%v)", len(lines), err)
	return lines
}

// checkCrashSurvivors opens the database at path and checks that every run
// in started exists and has its run.started event, and every run in ended
// is ended and has its run.ended event.
func checkCrashSurvivors(t *testing.T, path string, started, ended map[writ.RunID]bool) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, Config{DSN: path})
	if err != nil {
		t.Fatalf("Open after kill -9 = %v", err)
	}
	defer db.Close()
	var integrity string
	if err := db.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check = %q, %v", integrity, err)
	}
	events := make(map[writ.RunID][]string)
	for _, e := range allEvents(t, db) {
		events[e.Run] = append(events[e.Run], e.Type)
	}
	missing := 0
	for id := range started {
		r, err := db.GetRun(ctx, id)
		if err != nil {
			missing++
			t.Errorf("acknowledged run %s: GetRun = %v", id, err)
			continue
		}
		want := []string{writ.EventTriggerAccepted, writ.EventRunStarted}
		if ended[id] {
			if r.State != writ.RunEnded {
				t.Errorf("acknowledged end of run %s: state is %s", id, r.State)
			}
			want = append(want, writ.EventRunEnded)
		}
		got := events[id]
		if len(got) > len(want) { // an end committed but not yet printed
			got = got[:len(want)]
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("run %s: events %v; want %v", id, events[id], want)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged runs lost", missing, len(started))
	}
}
