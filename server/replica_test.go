package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/internal/writtest"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
)

// postgresDatabase creates a database of its own on the PostgreSQL server
// of WRIT_TEST_POSTGRES_DSN, dropped when the test ends, and returns its
// DSN. Without the variable the test is skipped, or fails when
// WRIT_TEST_REQUIRE_ALL=1 (as sqlstore's forEachDialect does).
func postgresDatabase(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("WRIT_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("WRIT_TEST_POSTGRES_DSN is unset and WRIT_TEST_REQUIRE_ALL=1: the PostgreSQL tests must run")
		}
		t.Skip("WRIT_TEST_POSTGRES_DSN is unset (scripts/test.sh starts a throwaway PostgreSQL)")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { admin.Close() })
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("writ_test_%x", rnd)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create test database (is WRIT_TEST_POSTGRES_DSN=%s reachable, with CREATEDB?): %v", dsn, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// TestReplicas runs two servers on one PostgreSQL database, as replicas
// behind one public URL: a run killed on one is refused by the other, the
// events written through both end up in one consistent log, and when the
// replica that sequences the log stops the other takes over.
func TestReplicas(t *testing.T) {
	dsn := postgresDatabase(t)
	d := prepareDev(t)
	d.cfg.Store = dsn
	d.cfg.PublicURL = "http://writ-replicas.test" // the load balancer's
	var logA writtest.SyncBuffer
	loggerA, err := server.NewLogger(&logA, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	a := start(t, d.cfg, server.Options{Logger: loggerA}, d.finish(t))
	b := start(t, d.cfg, server.Options{}, nil)
	ctx := context.Background()
	adminA, adminB := client.New(a.url, d.env.Token), client.New(b.url, d.env.Token)

	// Runs start through both replicas; each replica accepts the tokens
	// the other issued.
	var runs []*client.Run
	for i := range 6 {
		via := []string{a.url, b.url}[i%2]
		run, err := client.New(via, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil)
		if err != nil {
			t.Fatalf("start run %d via %s: %v", i, via, err)
		}
		runs = append(runs, run)
	}
	for _, run := range runs {
		for _, via := range []string{a.url, b.url} {
			if _, err := client.New(via, run.Token).GetRun(ctx, string(run.ID)); err != nil {
				t.Fatalf("run %s reads itself via %s: %v", run.ID, via, err)
			}
		}
	}

	// A kill on A reaches B.
	victim := runs[1] // started on B
	if _, err := adminA.Transition(ctx, string(victim.ID), "kill", "replica test"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(a.url, victim.Token).GetRun(ctx, string(victim.ID)); err == nil {
		t.Fatal("A accepts the token of the run it killed")
	}
	poll(t, "B to refuse the killed run's token", func() bool {
		_, err := client.New(b.url, victim.Token).GetRun(ctx, string(victim.ID))
		return err != nil
	})
	if _, err := adminB.Transition(ctx, string(runs[2].ID), "end", "replica test"); err != nil {
		t.Fatal(err)
	}

	// One log holds every event, whichever replica wrote it; both serve it.
	first := waitLogged(t, b.srv.Store(), adminA, newAuditAPI(t, a.url, d.env.Token))
	waitLogged(t, a.srv.Store(), adminB, newAuditAPI(t, b.url, d.env.Token))

	// Stop the sequencer (A, which started first and took the lock: its
	// log says so), and B takes over.
	poll(t, "A to hold the sequencer lock", func() bool { return strings.Contains(logA.String(), "sequencing the audit log") })
	if err := a.stop(); err != nil {
		t.Fatalf("stop A: %v", err)
	}
	for range 3 {
		if _, err := client.New(b.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	latest := waitLogged(t, b.srv.Store(), adminB, newAuditAPI(t, b.url, d.env.Token))
	if latest.Size <= first.Size {
		t.Fatalf("after A stopped the log stays at %d entries", latest.Size)
	}
	es, err := adminB.AuditEntries(ctx, 0, latest.Size)
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]auditlog.Entry, len(es))
	for i, e := range es {
		entries[i] = auditlog.Entry{Seq: e.Seq, Body: e.Body}
	}
	if _, err := auditlog.Verify(latest, entries, []auditlog.Checkpoint{first}); err != nil {
		t.Fatalf("the log B extended after A stopped: %v", err)
	}
}

// waitLogged waits until every event committed in store is in the log, and
// returns the checkpoint c serves for it (checked with api's key) after
// verifying the whole log against it.
func waitLogged(t *testing.T, store *sqlstore.DB, c *client.Client, api *auditAPI) auditlog.Checkpoint {
	t.Helper()
	ctx := context.Background()
	var n int
	poll(t, "every event to be logged", func() bool {
		un, err := store.Unsequenced(ctx, 1)
		if err != nil || len(un) > 0 {
			return false
		}
		n = len(storeEvents(t, store))
		size, err := store.LogSize(ctx)
		return err == nil && size == int64(n)
	})
	var cp auditlog.Checkpoint
	poll(t, "the served checkpoint to cover every event", func() bool {
		note, err := c.AuditCheckpoint(ctx, int64(n))
		if err != nil {
			return false
		}
		cp = api.open(note)
		return cp.Size >= int64(n)
	})
	es, err := c.AuditEntries(ctx, 0, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	entries := make([]auditlog.Entry, len(es))
	for i, e := range es {
		entries[i] = auditlog.Entry{Seq: e.Seq, Body: e.Body}
	}
	if _, err := auditlog.Verify(cp, entries, nil); err != nil {
		t.Fatalf("the log served by %s: %v", c.BaseURL(), err)
	}
	return cp
}

// TestReplicasRevokeEachLeaseOnce: two replicas on one database, both
// running the revoker; a run holding leases issued through both ends on
// one of them; every lease is revoked, each exactly once (one
// credential.revoked event per lease), whichever replica took it.
func TestReplicasRevokeEachLeaseOnce(t *testing.T) {
	dsn := postgresDatabase(t)
	d := prepareDev(t)
	d.cfg.Store = dsn
	d.cfg.PublicURL = "http://writ-replicas.test"
	a := start(t, d.cfg, server.Options{}, d.finish(t))
	b := start(t, d.cfg, server.Options{}, nil)
	ctx := context.Background()
	run, err := client.New(a.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	ids := map[string]bool{}
	for i := range n {
		via := []string{a.url, b.url}[i%2]
		out, err := client.New(via, run.Token).RequestCredential(ctx, string(run.ID), &writ.CredentialRequest{Kind: "git", Target: "acme/api"})
		if err != nil {
			t.Fatalf("lease %d via %s: %v", i, via, err)
		}
		ids[out.Lease.ID] = true
	}
	if _, err := client.New(b.url, d.env.Token).Transition(ctx, string(run.ID), "end", "replica test"); err != nil {
		t.Fatal(err)
	}
	adminA := client.New(a.url, d.env.Token)
	poll(t, "every lease revoked", func() bool {
		ls, err := adminA.ListLeases(ctx, string(run.ID), "active")
		return err == nil && len(ls) == 0
	})
	cp := waitLogged(t, b.srv.Store(), adminA, newAuditAPI(t, a.url, d.env.Token))
	es, err := adminA.AuditEntries(ctx, 0, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]int{}
	for _, e := range es {
		if e.Type != writ.EventCredentialRevoked {
			continue
		}
		var ev writ.Event
		if err := json.Unmarshal(e.Body, &ev); err != nil {
			t.Fatal(err)
		}
		revoked[ev.Subject]++
	}
	for id := range ids {
		if revoked[id] != 1 {
			t.Errorf("lease %s: %d credential.revoked events, want 1", id, revoked[id])
		}
	}
	if len(revoked) != n {
		t.Errorf("%d leases revoked, want %d", len(revoked), n)
	}
}

// TestReplicasShareGitRepos: with several replicas the hosted repositories
// live on a filesystem they all mount (here, one data directory); a push
// through replica A is fetched through replica B and the other way round,
// with the same run's git credential (leases are in the shared database).
func TestReplicasShareGitRepos(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	dsn := postgresDatabase(t)
	d := prepareDev(t)
	d.cfg.Store = dsn
	// Each replica's public URL is its own bound address here: the run's
	// DPoP-bound client talks to A only.
	a := start(t, d.cfg, server.Options{}, d.finish(t))
	b := start(t, d.cfg, server.Options{}, nil)
	p := &policyRig{t: t, d: d, r: a, human: client.New(a.url, d.env.Token)}
	g := newGitRun(t, p, map[string][]byte{"src/a.go": []byte("package a\n")})
	sha := g.commit("src/a.go", "package a // through A\n")
	g.push()
	branch := "refs/heads/writ/" + string(g.run) + "/work"
	viaB := strings.Replace(g.url, a.url, b.url, 1)
	if got := gitCmd(t, g.dir, "-c", "credential.helper=", "ls-remote", viaB, branch); !strings.HasPrefix(got, sha) {
		t.Fatalf("B serves %q for the branch A received %s", got, sha)
	}
	// And the other way: a push through B is what A serves.
	gitCmd(t, g.workDir, "remote", "add", "b", viaB)
	sha2 := g.commit("src/a.go", "package a // through B\n")
	gitCmd(t, g.workDir, "-c", "credential.helper=", "push", "-q", "b", "HEAD:"+branch)
	if got := gitCmd(t, g.dir, "-c", "credential.helper=", "ls-remote", g.url, branch); !strings.HasPrefix(got, sha2) {
		t.Fatalf("A serves %q for the branch B received %s", got, sha2)
	}
	// A push to main is refused on either replica.
	for _, remote := range []string{"origin", "b"} {
		c := exec.Command("git", "-c", "credential.helper=", "push", remote, "HEAD:refs/heads/main")
		c.Dir = g.workDir
		if out, err := c.CombinedOutput(); err == nil || !strings.Contains(string(out), "writ:") {
			t.Errorf("push to main through %s: %v\n%s", remote, err, out)
		}
	}
}
