package main

// The audit log's attack, crash and canary tests (issue 4, "How it is
// checked"): the testscript commands the audit*.txtar scripts use to tamper
// with the real SQLite file, a crash test that SIGKILLs `writ serve` over
// several rounds, a canary test for secrets, and `writ audit verify` and
// `writ audit tail -f` against a log that grows while they run.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/mod/sumdb/note"
	"modernc.org/sqlite" // the tests tamper with the server's real database file

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/trigger"
)

// auditCmds adds the audit scripts' commands to cmds and returns it.
func auditCmds(cmds map[string]func(ts *testscript.TestScript, neg bool, args []string)) map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	// sqlite DB SQL... runs the statements in one transaction on the
	// SQLite file DB, as an attacker with write access to it would. A
	// SELECT prints its rows to stdout, tab-separated; an UPDATE, DELETE
	// or INSERT that changes no row fails the script (an attack that
	// changed nothing would prove nothing).
	cmds["sqlite"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 2 {
			ts.Fatalf("usage: sqlite DB SQL...")
		}
		ts.Check(execSQL(ts.MkAbs(args[0]), ts.Stdout(), args[1:]...))
	}
	// auditwait N waits (up to 60 s, retrying while the server at
	// $WRIT_URL is not up yet) until the log's signed checkpoint holds at
	// least N entries.
	cmds["auditwait"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: auditwait N")
		}
		n, err := strconv.ParseInt(args[0], 10, 64)
		ts.Check(err)
		c := client.New(ts.Getenv("WRIT_URL"), ts.Getenv("WRIT_TOKEN"))
		ts.Check(waitLogged(context.Background(), c, n, 60*time.Second))
	}
	// forgecp DB re-signs the newest stored checkpoint, text unchanged,
	// with a new key of the same name: a checkpoint signed by another key.
	cmds["forgecp"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: forgecp DB")
		}
		ts.Check(forgeCheckpoint(ts.MkAbs(args[0])))
	}
	// forkcp DB KEYFILE stores, beside the newest checkpoint (size L), a
	// checkpoint of size L-1 with a root no history of the log has,
	// validly signed by the log key in KEYFILE: a fork.
	cmds["forkcp"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: forkcp DB KEYFILE")
		}
		ts.Check(forkCheckpoint(ts.MkAbs(args[0]), ts.MkAbs(args[1])))
	}
	// jsonset FILE KEY JSON sets the top-level field KEY of the JSON
	// object in FILE to the JSON value given.
	cmds["jsonset"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 3 {
			ts.Fatalf("usage: jsonset FILE KEY JSON")
		}
		path := ts.MkAbs(args[0])
		var m map[string]json.RawMessage
		ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &m))
		if !json.Valid([]byte(args[2])) {
			ts.Fatalf("jsonset: %q is not JSON", args[2])
		}
		m[args[1]] = json.RawMessage(args[2])
		data, err := json.MarshalIndent(m, "", "  ")
		ts.Check(err)
		ts.Check(os.WriteFile(path, append(data, '\n'), 0o600))
	}
	// addrof URL VAR sets VAR to the host:port of URL.
	cmds["addrof"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 2 {
			ts.Fatalf("usage: addrof URL VAR")
		}
		u, err := url.Parse(args[0])
		ts.Check(err)
		if u.Host == "" {
			ts.Fatalf("addrof: %q has no host", args[0])
		}
		ts.Setenv(args[1], u.Host)
	}
	return cmds
}

var registerLeafHash sync.Once

// openDB opens the SQLite file at path (which must exist) the way a
// second process would, waiting for the server's writer when it holds the
// lock.
func openDB(path string) (*sql.DB, error) {
	registerLeafHash.Do(func() {
		// leaf_hash(body) is SHA-256(0x00 || body), the RFC 6962 leaf hash:
		// what an attacker who knows the format writes beside an edit.
		sqlite.MustRegisterDeterministicScalarFunction("leaf_hash", 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			var b []byte
			switch v := args[0].(type) {
			case []byte:
				b = v
			case string:
				b = []byte(v)
			default:
				return nil, fmt.Errorf("leaf_hash: want a blob or text, got %T", v)
			}
			h := sha256.Sum256(append([]byte{0}, b...))
			return h[:], nil
		})
	})
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // one connection: a TEMP table lives across statements
	return db, nil
}

func execSQL(path string, stdout io.Writer, stmts ...string) error {
	db, err := openDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range stmts {
		verb := strings.ToUpper(strings.Fields(q + " x")[0])
		if verb == "SELECT" {
			if err := printRows(ctx, tx, stdout, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			continue
		}
		res, err := tx.ExecContext(ctx, q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if n, _ := res.RowsAffected(); n == 0 && (verb == "UPDATE" || verb == "DELETE" || verb == "INSERT") {
			return fmt.Errorf("%s: changed no row", q)
		}
	}
	return tx.Commit()
}

func printRows(ctx context.Context, tx *sql.Tx, w io.Writer, q string) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			parts[i] = fmt.Sprint(v)
		}
		fmt.Fprintln(w, strings.Join(parts, "\t"))
	}
	return rows.Err()
}

// latestCheckpointRow returns the newest stored checkpoint's size and note.
func latestCheckpointRow(db *sql.DB) (int64, []byte, error) {
	var size int64
	var msg []byte
	err := db.QueryRow("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").Scan(&size, &msg)
	return size, msg, err
}

func forgeCheckpoint(path string) error {
	db, err := openDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	size, msg, err := latestCheckpointRow(db)
	if err != nil {
		return err
	}
	text, _, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		return fmt.Errorf("forgecp: the stored checkpoint is not a signed note")
	}
	origin, _, _ := strings.Cut(text, "\n")
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return err
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	forged, err := note.Sign(&note.Note{Text: text + "\n"}, s)
	if err != nil {
		return err
	}
	_, err = db.Exec("UPDATE checkpoints SET note = ? WHERE size = ?", forged, size)
	return err
}

func forkCheckpoint(path, keyFile string) error {
	skey, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return err
	}
	db, err := openDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	size, _, err := latestCheckpointRow(db)
	if err != nil {
		return err
	}
	if size < 2 {
		return fmt.Errorf("forkcp: the log has %d entries; a fork below it needs at least 2", size)
	}
	root := sha256.Sum256([]byte("writ test: a root no history of this log has"))
	text := fmt.Sprintf("%s\n%d\n%s\n", s.Name(), size-1, base64.StdEncoding.EncodeToString(root[:]))
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return err
	}
	_, err = db.Exec("INSERT OR REPLACE INTO checkpoints (size, root, note, created_at) SELECT ?, ?, ?, created_at FROM checkpoints WHERE size = ?",
		size-1, root[:], msg, size)
	return err
}

// waitLogged waits until the server's signed checkpoint holds at least n
// entries, retrying while the server does not answer yet.
func waitLogged(ctx context.Context, c *client.Client, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cp, err := c.AuditCheckpoint(ctx, n)
		if err == nil && checkpointSize(cp) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the log did not reach %d entries within %v (last: %v, %q)", n, timeout, err, cp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- writ serve as a subprocess ----

// serveProc is `writ serve --config` running as a child process: the test
// binary itself, installed as "writ" in $PATH by testscript.Main.
type serveProc struct {
	cmd  *exec.Cmd
	url  string
	logs *writtest.SyncBuffer // its stderr: JSON log lines
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

func startServe(t *testing.T, cfgPath string, extra ...string) *serveProc {
	t.Helper()
	bin, err := exec.LookPath("writ")
	if err != nil {
		t.Fatalf("the writ command testscript.Main installs: %v", err)
	}
	args := append([]string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0", "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, logs: &writtest.SyncBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.logs.Write(append(sc.Bytes(), '\n'))
			var m struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Msg == "writ serving" {
				select {
				case addr <- m.Addr:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("writ serve exited before serving: %v\n%s", p.err, p.logs.String())
	case <-time.After(60 * time.Second):
		p.kill()
		t.Fatalf("writ serve did not serve within 60s\n%s", p.logs.String())
	}
	return p
}

// kill SIGKILLs the server and waits for it to be gone.
func (p *serveProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop asks the server to shut down (SIGINT) and waits; a graceful
// shutdown exits 0.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		t.Fatalf("writ serve did not stop within 30s of SIGINT")
	}
	if p.err != nil {
		t.Errorf("writ serve exited with %v\n%s", p.err, p.logs.String())
	}
}

// installation is what `writ init` writes, with a bootstrap admin token.
type installation struct {
	dir, config, db string
	token           string
	// sign returns a trigger of the installation's human, changed by
	// mod, signed with its key.
	sign func(t *testing.T, mod func(*writ.Trigger)) []byte
}

// newInstallation runs `writ init` and `writ token create --bootstrap` in
// a new directory, in process, through the CLI's own dispatch.
func newInstallation(t *testing.T) *installation {
	t.Helper()
	dir := t.TempDir()
	res, err := server.Init(dir, server.InitOptions{TrustDomain: "writ.test", Listen: "127.0.0.1:0", Human: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(nil, "token", "create", "--bootstrap", "--config", res.Config, "--human", "alice")
	if code != 0 {
		t.Fatalf("token create --bootstrap: exit %d: %s", code, errOut)
	}
	pemBytes, err := os.ReadFile(res.HumanKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := trigger.LoadPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	inst := &installation{dir: dir, config: res.Config, token: strings.TrimSpace(out),
		db: strings.TrimPrefix(cfg.Store, "sqlite://")}
	inst.sign = func(t *testing.T, mod func(*writ.Trigger)) []byte {
		tr := trigger.Template(time.Now(), "alice")
		if mod != nil {
			mod(&tr)
		}
		p, err := json.Marshal(tr)
		if err != nil {
			t.Error(err)
			return nil
		}
		b, err := trigger.SignDSSE(p, writ.TriggerPayloadType, key)
		if err != nil {
			t.Error(err)
		}
		return b
	}
	return inst
}

// runCLI runs the writ CLI in process with the environment vars (and
// nothing else), returning its stdout, stderr and exit code.
func runCLI(vars map[string]string, args ...string) (string, string, int) {
	var stdout, stderr bytes.Buffer
	e := &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}
	code := runMain(context.Background(), e, args)
	return stdout.String(), stderr.String(), code
}

// outboxCounts returns the number of events in the outbox and how many of
// them are not yet in the log, read straight from the database file.
func outboxCounts(t *testing.T, path string) (total, unlogged int64) {
	t.Helper()
	db, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("SELECT COUNT(*), COUNT(*) - COUNT(seq) FROM outbox").Scan(&total, &unlogged); err != nil {
		t.Fatal(err)
	}
	return total, unlogged
}

// outboxBodies returns every event body in the outbox, logged or not.
func outboxBodies(t *testing.T, path string) [][]byte {
	t.Helper()
	db, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT body FROM outbox ORDER BY pos")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitAllLogged waits until every event the outbox holds is in the signed
// log of the server p — the integrator of a restarted server picks up what
// a killed one committed but did not sequence — and returns the log's size.
func waitAllLogged(t *testing.T, inst *installation, p *serveProc) int64 {
	t.Helper()
	c := client.New(p.url, inst.token)
	deadline := time.Now().Add(60 * time.Second)
	for {
		total, unlogged := outboxCounts(t, inst.db)
		if err := waitLogged(context.Background(), c, total, 30*time.Second); err != nil {
			t.Fatalf("%v\nserver log:\n%s", err, p.logs.String())
		}
		cp, err := c.AuditCheckpoint(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if size := checkpointSize(cp); unlogged == 0 && size == total {
			return size
		} else if now, _ := outboxCounts(t, inst.db); size > now {
			// Re-read: the server appends on its own meanwhile (run
			// attestations once an end is logged).
			t.Fatalf("the log has %d entries but the outbox only %d events", size, now)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d committed events are still not logged after 60s", unlogged, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- the crash test ----

var crashSeed = flag.Uint64("crash.seed", 0, "TestAuditCrash: replay this seed (0: a new one; WRIT_CRASH_SEED works too)")

// crashAcks records every call the server acknowledged (answered 2xx).
type crashAcks struct {
	mu      sync.Mutex
	started map[writ.RunID]bool
	ended   map[writ.RunID]bool
	n       atomic.Int64
}

// TestAuditCrash runs `writ serve` as a child process on one data
// directory, drives concurrent state-changing calls (runs started from
// signed triggers, some ended) from several goroutines, SIGKILLs it at a
// random moment, restarts it, and repeats. After each restart every
// committed event must reach the signed log and `writ audit verify` must
// pass, consistent with the checkpoint it trusted the round before; at the
// end every acknowledged call must have its events exactly once.
func TestAuditCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts writ serve several times")
	}
	seed := *crashSeed
	if s := os.Getenv("WRIT_CRASH_SEED"); s != "" && seed == 0 {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("WRIT_CRASH_SEED: %v", err)
		}
	}
	if seed == 0 {
		seed = mrand.Uint64()
	}
	t.Logf("seed %d (replay: go test -run TestAuditCrash ./cmd/writ -crash.seed=%d)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	inst := newInstallation(t)
	trustFile := filepath.Join(inst.dir, "audit-trust.json")
	acks := &crashAcks{started: map[writ.RunID]bool{}, ended: map[writ.RunID]bool{}}
	const rounds = 5
	for round := 0; round <= rounds; round++ {
		p := startServe(t, inst.config)
		if rng.IntN(3) == 0 {
			// Killed again while it catches up with what the last one
			// committed but did not log.
			time.Sleep(time.Duration(rng.Int64N(int64(20 * time.Millisecond))))
			p.kill()
			t.Logf("round %d: killed right after a restart", round)
			p = startServe(t, inst.config)
		}
		admin := client.New(p.url, inst.token)
		size := waitAllLogged(t, inst, p)
		vars := map[string]string{"WRIT_URL": p.url, "WRIT_TOKEN": inst.token}
		out, errOut, code := runCLI(vars, "audit", "verify", "--trust-file", trustFile)
		if code != 0 {
			t.Fatalf("round %d: writ audit verify: exit %d\n%s%s\nserver log:\n%s", round, code, out, errOut, p.logs.String())
		}
		// The log may have grown since (run attestations are signed once a
		// run's end is in a checkpoint): at least every entry counted.
		var verified int64
		if _, err := fmt.Sscanf(out, "ok: %d entries verified", &verified); err != nil || verified < size {
			t.Fatalf("round %d: writ audit verify: want \"ok: N entries verified\" with N ≥ %d, got:\n%s", round, size, out)
		}
		if round > 0 && !strings.Contains(out, "ok: consistent with the checkpoint of size") {
			t.Fatalf("round %d: writ audit verify did not check the checkpoint it trusted before:\n%s", round, out)
		}
		if round == rounds {
			checkCrashLog(t, admin, acks, size)
			p.stop(t)
			return
		}
		// Kill after a random number of acknowledged calls, and a random
		// moment after that.
		killAfter := acks.n.Load() + 1 + rng.Int64N(150)
		pause := time.Duration(rng.Int64N(int64(30 * time.Millisecond)))
		crashRound(t, p, inst, acks, round, killAfter, pause)
	}
}

// crashRound drives the load against p until acks reaches killAfter,
// waits pause, and SIGKILLs the server.
func crashRound(t *testing.T, p *serveProc, inst *installation, acks *crashAcks, round int, killAfter int64, pause time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	anon, admin := client.New(p.url, ""), client.New(p.url, inst.token)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				signed := inst.sign(t, func(tr *writ.Trigger) { tr.Ticket.ID = fmt.Sprintf("ENG-%d-%d-%d", round, w, i) })
				run, err := anon.StartRun(ctx, signed, nil)
				if err != nil {
					crashErr(t, ctx, "start a run", err)
					return
				}
				acks.mu.Lock()
				acks.started[run.ID] = true
				acks.mu.Unlock()
				acks.n.Add(1)
				if (i+w)%3 != 0 {
					continue
				}
				if _, err := admin.Transition(ctx, string(run.ID), "end", "crash test"); err != nil {
					crashErr(t, ctx, "end run "+string(run.ID), err)
					return
				}
				acks.mu.Lock()
				acks.ended[run.ID] = true
				acks.mu.Unlock()
				acks.n.Add(1)
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for acks.n.Load() < killAfter && time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("round %d: writ serve died on its own: %v\n%s", round, p.err, p.logs.String())
		case <-time.After(time.Millisecond):
		}
	}
	time.Sleep(pause)
	p.kill()
	cancel()
	wg.Wait()
	t.Logf("round %d: killed after %d acknowledged calls", round, acks.n.Load())
}

// crashErr reports a call's error unless the server simply was not there
// to answer (killed, or the round is over): an answer that is an error is
// a failure.
func crashErr(t *testing.T, ctx context.Context, what string, err error) {
	var we *writ.Error
	if ctx.Err() == nil && errors.As(err, &we) {
		t.Errorf("%s: the server answered %v", what, err)
	}
}

// checkCrashLog checks the whole log against what was acknowledged.
func checkCrashLog(t *testing.T, c *client.Client, acks *crashAcks, size int64) {
	t.Helper()
	entries, err := c.AuditEntries(context.Background(), 0, size)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(entries)) != size {
		t.Fatalf("the log serves %d entries, its checkpoint has %d", len(entries), size)
	}
	ids := map[string]int64{}
	byRun := map[writ.RunID]map[string]int{}
	for i, e := range entries {
		if e.Seq != int64(i) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		var ev writ.Event
		if err := json.Unmarshal(e.Body, &ev); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if ev.ID != e.ID || ev.Type != e.Type || ev.Run != e.Run {
			t.Fatalf("entry %d: the served id/type/run %s/%s/%s are not the body's %s/%s/%s", i, e.ID, e.Type, e.Run, ev.ID, ev.Type, ev.Run)
		}
		if prev, dup := ids[e.ID]; dup {
			t.Errorf("event %s is logged twice, at %d and %d", e.ID, prev, i)
		}
		ids[e.ID] = int64(i)
		if e.Run != "" {
			if byRun[e.Run] == nil {
				byRun[e.Run] = map[string]int{}
			}
			byRun[e.Run][e.Type]++
		}
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	if len(acks.started) == 0 {
		t.Fatal("no call was acknowledged: the test checked nothing")
	}
	for id := range acks.started {
		got := byRun[id]
		for _, typ := range []string{writ.EventTriggerAccepted, writ.EventRunStarted, writ.EventTokenIssued} {
			if got[typ] != 1 {
				t.Errorf("acknowledged run %s: %d %s events, want exactly 1", id, got[typ], typ)
			}
		}
		want := 0
		if acks.ended[id] {
			want = 1
		}
		// An end that was sent but not answered may or may not have
		// committed; one that was answered must have.
		if n := got[writ.EventRunEnded]; n != want && !(want == 0 && n == 1) {
			t.Errorf("run %s: %d run.ended events, want %d (acknowledged end: %v)", id, n, want, acks.ended[id])
		}
	}
	// Runs whose start was never answered are all-or-nothing too.
	for id, got := range byRun {
		for _, typ := range []string{writ.EventTriggerAccepted, writ.EventRunStarted, writ.EventTokenIssued} {
			if got[typ] != 1 {
				t.Errorf("run %s: %d %s events, want exactly 1 (a run starts with all three or none)", id, got[typ], typ)
			}
		}
	}
	t.Logf("%d entries; %d runs logged, %d acknowledged, %d acknowledged ends", size, len(byRun), len(acks.started), len(acks.ended))
}

// ---- the canary ----

// TestAuditCanary puts canary secrets where a user's secrets go — human
// API tokens (real ones, and a forged one carrying the canary), a run's
// tokens, a DPoP private key whose scalar is the canary — exercises the
// paths that handle them, and checks that none appears in any outbox
// event, the audit export or the server's debug log.
func TestAuditCanary(t *testing.T) {
	inst := newInstallation(t)
	p := startServe(t, inst.config, "--log-level", "debug")
	ctx := context.Background()
	admin, anon := client.New(p.url, inst.token), client.New(p.url, "")

	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	canary := "CANARY" + hex.EncodeToString(rnd[:]) // 30 bytes
	type secret struct{ what, value string }
	secrets := []secret{{"the canary", canary}}
	addToken := func(what, tok string) {
		secrets = append(secrets, secret{what, tok})
		if rest, ok := strings.CutPrefix(tok, "writ_"); ok {
			_, sec, _ := strings.Cut(rest, "_")
			secrets = append(secrets, secret{what + "'s secret", sec})
		}
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			secrets = append(secrets, secret{what + "'s signature", parts[2]})
		}
	}
	addToken("the bootstrap token", inst.token)

	// Human API tokens.
	mine, err := admin.CreateToken(ctx, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	addToken("a created human token", mine.Token)
	if _, err := client.New(p.url, mine.Token).ListRuns(ctx, writ.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	// A forged token for a real token id whose secret is the canary.
	forged := "writ_" + mine.ID + "_" + canary + strings.Repeat("x", 43-len(canary))
	if _, err := client.New(p.url, forged).ListRuns(ctx, writ.RunFilter{}); writ.ErrorCode(err) != "invalid_token" {
		t.Fatalf("the forged token: want invalid_token, got %v", err)
	}

	// A DPoP key whose private scalar is the canary (32 bytes, below the
	// P-256 order since it starts with 'C').
	d := []byte(canary + "!!")
	dpopKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{base64.RawURLEncoding.EncodeToString(d), base64.StdEncoding.EncodeToString(d), hex.EncodeToString(d)} {
		secrets = append(secrets, secret{"the DPoP private key", enc})
	}
	run, err := anon.StartRun(ctx, inst.sign(t, nil), dpopKey)
	if err != nil {
		t.Fatal(err)
	}
	if run.TokenType != "DPoP" {
		t.Fatalf("want a DPoP-bound run token, got %q", run.TokenType)
	}
	addToken("the run token", run.Token)
	self := client.NewRun(p.url, run.Token, dpopKey)
	if _, err := self.GetRun(ctx, string(run.ID)); err != nil {
		t.Fatal(err)
	}
	minted, err := self.MintToken(ctx, string(run.ID), "", false)
	if err != nil {
		t.Fatal(err)
	}
	addToken("a minted run token", minted.Token)
	bound, err := self.MintToken(ctx, string(run.ID), "", true)
	if err != nil {
		t.Fatal(err)
	}
	addToken("a minted bound run token", bound.Token)
	// The bound token stolen and used as a bearer token; a token-shaped
	// canary with the run's DPoP key.
	if _, err := client.New(p.url, run.Token).GetRun(ctx, string(run.ID)); err == nil {
		t.Fatal("a DPoP-bound token was accepted as a bearer token")
	}
	fake := canary + "." + canary + "." + canary
	if _, err := client.NewRun(p.url, fake, dpopKey).GetRun(ctx, string(run.ID)); err == nil {
		t.Fatal("a canary token was accepted")
	}
	if _, err := self.Transition(ctx, string(run.ID), "end", "canary test done"); err != nil {
		t.Fatal(err)
	}

	size := waitAllLogged(t, inst, p)
	vars := map[string]string{"WRIT_URL": p.url, "WRIT_TOKEN": inst.token}
	export, errOut, code := runCLI(vars, "audit", "export")
	if code != 0 {
		t.Fatalf("writ audit export: exit %d: %s", code, errOut)
	}
	out, errOut, code := runCLI(vars, "audit", "verify", "--trust-file", filepath.Join(inst.dir, "trust.json"))
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("ok: %d entries verified", size)) {
		t.Fatalf("writ audit verify: exit %d\n%s%s", code, out, errOut)
	}
	p.stop(t)

	bodies := outboxBodies(t, inst.db)
	// The export holds the bodies base64-encoded: decode them too.
	places := map[string]string{"the audit export": export, "the server log": p.logs.String()}
	var decoded strings.Builder
	sc := bufio.NewScanner(strings.NewReader(export))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e client.AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			decoded.Write(e.Body)
			decoded.WriteByte('\n')
		}
	}
	places["the export's entries"] = decoded.String()
	for i, b := range bodies {
		places[fmt.Sprintf("outbox event %d", i)] = string(b)
	}

	// The paths ran and were recorded, so silence about the secrets means
	// something: the events name the tokens by id, the log saw the calls.
	all := strings.Join(func() []string {
		var s []string
		for _, b := range bodies {
			s = append(s, string(b))
		}
		return s
	}(), "\n")
	for _, want := range []string{`"tokenId":"` + mine.ID + `"`, writ.EventRunEnded, "canary test done", string(run.ID)} {
		if !strings.Contains(all, want) {
			t.Errorf("the outbox lacks %q", want)
		}
	}
	if int64(len(bodies)) != size {
		t.Errorf("the outbox holds %d events, the log %d", len(bodies), size)
	}
	for _, want := range []string{"writ serving", "audit log integrated", "writ shutting down"} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("the server log lacks %q", want)
		}
	}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s.value) {
				t.Errorf("%s holds %s", where, s.what)
			}
		}
	}
}

// ---- writ audit verify while the log grows ----

// TestAuditVerifyWhileWriting runs `writ audit verify` again and again
// while runs start concurrently: a log that grows between the requests a
// verification makes must still verify.
func TestAuditVerifyWhileWriting(t *testing.T) {
	inst := newInstallation(t)
	p := startServe(t, inst.config)
	anon := client.New(p.url, "")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := anon.StartRun(ctx, inst.sign(t, nil), nil); err != nil && ctx.Err() == nil {
					t.Errorf("start a run: %v", err)
					return
				}
			}
		})
	}
	vars := map[string]string{"WRIT_URL": p.url, "WRIT_TOKEN": inst.token}
	trust := filepath.Join(inst.dir, "trust.json")
	for i := range 10 {
		out, errOut, code := runCLI(vars, "audit", "verify", "--trust-file", trust)
		if code != 0 {
			t.Errorf("verification %d while writing: exit %d\n%s%s\nserver log:\n%s", i, code, out, errOut, serverErrors(p.logs.String()))
			break
		}
	}
	cancel()
	wg.Wait()
	p.stop(t)
}

// ---- writ audit tail -f ----

// TestAuditTailFollow follows the log with `writ audit tail -f`, plain
// and --json: every new entry is printed once, in order, and an interrupt
// (the context, as Ctrl-C cancels it) ends the command cleanly.
func TestAuditTailFollow(t *testing.T) {
	inst := newInstallation(t)
	p := startServe(t, inst.config)
	anon := client.New(p.url, "")
	ctx := context.Background()
	// 2 entries from the installation, 3 from a run.
	if _, err := anon.StartRun(ctx, inst.sign(t, nil), nil); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"WRIT_URL": p.url, "WRIT_TOKEN": inst.token}
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			size := waitAllLogged(t, inst, p)
			args := []string{"audit", "tail", "-n", "2", "-f"}
			if asJSON {
				args = append(args, "--json")
			}
			var stdout, stderr writtest.SyncBuffer
			tctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan int, 1)
			go func() {
				done <- runMain(tctx, &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}, args)
			}()
			// once it has printed the newest two, two runs: six new entries
			waitOutput(t, &stdout, fmt.Sprintf("\n%d ", size-1))
			for range 2 {
				if _, err := anon.StartRun(ctx, inst.sign(t, nil), nil); err != nil {
					t.Fatal(err)
				}
			}
			want := size + 6
			waitOutput(t, &stdout, fmt.Sprintf("\n%d ", want-1))
			time.Sleep(100 * time.Millisecond) // room for a duplicate to show
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("interrupted tail -f: exit %d: %s", code, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("tail -f did not stop within 30s of its context being cancelled")
			}
			var seqs []string
			for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				seqs = append(seqs, strings.Fields(line)[0])
			}
			var wantSeqs []string
			for s := size - 2; s < want; s++ {
				wantSeqs = append(wantSeqs, strconv.FormatInt(s, 10))
			}
			if strings.Join(seqs, " ") != strings.Join(wantSeqs, " ") {
				out := stdout.String()
				t.Errorf("tail -f printed entries %.300v, want %v\n%.2000s", seqs, wantSeqs, out)
			}
		})
	}
	p.stop(t)
}

// waitOutput waits (up to 30 s) until out holds s.
func waitOutput(t *testing.T, out *writtest.SyncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the output lacks %q after 30s:\n%.2000s", s, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverErrors returns the log lines of level WARN or above.
func serverErrors(logs string) string {
	var b strings.Builder
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
