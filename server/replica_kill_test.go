package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
)

// replicaProc is a `writ serve` process of the test.
type replicaProc struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
}

func (p *replicaProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

var servingRE = regexp.MustCompile(`msg="writ serving" addr=(\S+)`)

// startReplicaProc starts `writ serve --config cfg` on a free port and
// waits until it serves.
func startReplicaProc(t *testing.T, bin, cfg string) *replicaProc {
	t.Helper()
	p := &replicaProc{cmd: exec.Command(bin, "serve", "--config", cfg, "--listen", "127.0.0.1:0")}
	p.cmd.Env = append(os.Environ(), "WRIT_URL=", "WRIT_TOKEN=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("writ serve did not start:\n%s", p.log())
	}
	return p
}

// replicaInstall prepares a dev installation whose replicas share the
// PostgreSQL database dsn behind one public URL (the load balancer's),
// builds writ and bootstraps the dev human's token.
func replicaInstall(t *testing.T, dsn string) (d *dev, bin, cfgPath, token string) {
	t.Helper()
	d = prepareDev(t)
	cfgPath = filepath.Join(d.env.Dir, "writ.yaml")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	yaml := regexp.MustCompile(`(?m)^publicURL: .*$`).ReplaceAllString(string(raw), "publicURL: http://writ-lb.test")
	yaml += fmt.Sprintf("\nstore: %q\nlog: {level: debug}\n", dsn)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "writ")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/writ-dev/writ/cmd/writ").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "token", "create", "--human", "dev", "--bootstrap", "--config", cfgPath, "--json").Output()
	if err != nil {
		t.Fatalf("bootstrap token: %v", err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(out, &tok); err != nil || tok.Token == "" {
		t.Fatalf("bootstrap token: %s", out)
	}
	return d, bin, cfgPath, tok.Token
}

// TestReplicaKill9 runs two `writ serve` processes on one PostgreSQL
// database under load, SIGKILLs the one sequencing the audit log mid-load,
// and checks that the other takes over and that every acknowledged event
// is in the log exactly once, verified (also by `writ audit verify`).
func TestReplicaKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs writ processes")
	}
	d, bin, cfgPath, tok := replicaInstall(t, postgresDatabase(t))
	a := startReplicaProc(t, bin, cfgPath)
	b := startReplicaProc(t, bin, cfgPath)
	procs := []*replicaProc{a, b}

	// Load through both: runs started (two events each) and some ended.
	ctx := context.Background()
	var mu sync.Mutex
	acked := map[writ.RunID]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := procs[(w+i)%2]
				run, err := client.New(p.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil)
				if err != nil {
					continue // the killed replica: not acknowledged
				}
				mu.Lock()
				acked[run.ID] = true
				mu.Unlock()
				if i%3 == 0 {
					client.New(p.url, run.Token).Transition(ctx, string(run.ID), "end", "load")
				}
			}
		})
	}
	poll(t, "a replica to sequence the log", func() bool {
		return strings.Contains(a.log(), "sequencing the audit log") || strings.Contains(b.log(), "sequencing the audit log")
	})
	time.Sleep(time.Second)
	victim, survivor := a, b
	if !strings.Contains(a.log(), "sequencing the audit log") {
		victim, survivor = b, a
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d runs acknowledged under load", len(acked))
	}

	poll(t, "the survivor to take over the sequencer", func() bool { return strings.Contains(survivor.log(), "sequencing the audit log") })
	ids := make([]writ.RunID, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	entries := checkLoggedOnce(t, survivor.url, tok, ids, nil)
	// The CLI agrees.
	verify := exec.Command(bin, "audit", "verify", "--trust-file", filepath.Join(t.TempDir(), "trust.json"))
	verify.Env = append(os.Environ(), "WRIT_URL="+survivor.url, "WRIT_TOKEN="+tok)
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("writ audit verify: %v\n%s", err, out)
	}
	t.Logf("%d runs acknowledged, %d log entries; %s killed, %s took over", len(acked), len(entries), victim.url, survivor.url)
}

// TestReplicasSurviveDatabaseRestart is issue 21's kill test on
// PostgreSQL, on a cluster of the test's own: two `writ serve` replicas
// under load (runs and git leases through both), the database crashed
// and started again mid-load, then one replica SIGKILLed and started
// again. Every acknowledged run and lease has its event exactly once, no
// event is logged twice, the log verifies, and both replicas serve again
// without a restart of the one that lived through the database's.
func TestReplicasSurviveDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs writ processes")
	}
	pg := ownPostgres(t)
	d, bin, cfgPath, tok := replicaInstall(t, pg.dsn("postgres"))
	var pmu sync.Mutex
	procs := []*replicaProc{startReplicaProc(t, bin, cfgPath), startReplicaProc(t, bin, cfgPath)}
	proc := func(i int) *replicaProc { pmu.Lock(); defer pmu.Unlock(); return procs[i%2] }

	ctx := context.Background()
	var mu sync.Mutex
	var runs []writ.RunID
	var leases []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := proc(w + i)
				// Bearer run tokens: a DPoP proof names publicURL (the
				// load balancer's), which the test does not have.
				run, err := client.New(p.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil)
				if err != nil {
					time.Sleep(50 * time.Millisecond) // the database or the replica is down
					continue
				}
				mu.Lock()
				runs = append(runs, run.ID)
				mu.Unlock()
				cred, err := client.New(p.url, run.Token).RequestCredential(ctx, string(run.ID), &writ.CredentialRequest{Kind: "git", Target: "acme/api", Permissions: []string{"read"}})
				if err == nil {
					mu.Lock()
					leases = append(leases, cred.Lease.ID)
					mu.Unlock()
				}
			}
		})
	}
	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(runs) }
	waitMore := func(what string, n int) {
		t.Helper()
		from := acked()
		poll(t, what, func() bool { return acked() >= from+n })
	}
	waitMore("load before the database crash", 10)
	pg.crash()
	time.Sleep(time.Second)
	pg.start()
	waitMore("runs acknowledged after the database came back", 10)
	victim := proc(0)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.cmd.Wait()
	pmu.Lock()
	procs[0] = startReplicaProc(t, bin, cfgPath)
	pmu.Unlock()
	waitMore("runs acknowledged after the replica's restart", 10)
	close(stop)
	wg.Wait()

	for i := range 2 {
		resp, err := http.Get(proc(i).url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("replica %d /readyz: %d after the database's restart", i, resp.StatusCode)
		}
	}
	entries := checkLoggedOnce(t, proc(1).url, tok, runs, leases)
	t.Logf("%d runs and %d leases acknowledged, %d log entries", len(runs), len(leases), len(entries))
}

// checkLoggedOnce waits until the log served at url holds a run.started
// for each of runs and a credential.issued for each of leases, verifies the log against its signed checkpoint, and
// checks that no event is logged twice and that each run and each lease
// has exactly one run.started and credential.issued. It returns the log.
func checkLoggedOnce(t *testing.T, url, token string, runs []writ.RunID, leases []string) []client.AuditEntry {
	t.Helper()
	ctx := context.Background()
	admin := client.New(url, token)
	api := newAuditAPI(t, url, token)
	var entries []client.AuditEntry
	poll(t, "every acknowledged run and lease in the log", func() bool {
		note, err := admin.AuditCheckpoint(ctx, 0)
		if err != nil {
			return false
		}
		cp := api.open(note)
		var es []client.AuditEntry
		for from := int64(0); from < cp.Size; {
			page, err := admin.AuditEntries(ctx, from, cp.Size)
			if err != nil || len(page) == 0 {
				return false
			}
			es = append(es, page...)
			from += int64(len(page))
		}
		started, issued := map[writ.RunID]bool{}, map[string]bool{}
		for _, e := range es {
			switch e.Type {
			case writ.EventRunStarted:
				started[e.Run] = true
			case writ.EventCredentialIssued:
				issued[leaseOf(t, e)] = true
			}
		}
		for _, id := range runs {
			if !started[id] {
				return false
			}
		}
		for _, id := range leases {
			if !issued[id] {
				return false
			}
		}
		log := make([]auditlog.Entry, len(es))
		for i, e := range es {
			log[i] = auditlog.Entry{Seq: e.Seq, Body: e.Body}
		}
		if _, err := auditlog.Verify(cp, log, nil); err != nil {
			t.Fatalf("the log: %v", err)
		}
		entries = es
		return true
	})
	ids := map[string]int{}
	started := map[writ.RunID]int{}
	issued := map[string]int{}
	for _, e := range entries {
		ids[e.ID]++
		switch e.Type {
		case writ.EventRunStarted:
			started[e.Run]++
		case writ.EventCredentialIssued:
			issued[leaseOf(t, e)]++
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s is in the log %d times", id, n)
		}
	}
	for _, id := range runs {
		if started[id] != 1 {
			t.Errorf("acknowledged run %s has %d run.started entries; want 1", id, started[id])
		}
	}
	for _, id := range leases {
		if issued[id] != 1 {
			t.Errorf("acknowledged lease %s has %d credential.issued entries; want 1", id, issued[id])
		}
	}
	return entries
}

// leaseOf is the lease a credential.issued entry is about (its subject).
func leaseOf(t *testing.T, e client.AuditEntry) string {
	t.Helper()
	var ev writ.Event
	if err := json.Unmarshal(e.Body, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.Subject
}
