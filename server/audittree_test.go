package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	wapi "github.com/writ-dev/writ/api"
	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
)

// TestAuditTreeZeroedHash: stored tree hashes zeroed or deleted on disk
// while writ is stopped (plain SQL on the SQLite file) are noticed at the
// next start.
// Every inclusion proof, consistency proof and tile served — before the
// check has run, while the damage is known and until it is repaired —
// verifies as a client verifies it against the signed checkpoint; the
// damage is an alert event and a /readyz failure naming it until the
// rows are repaired, exactly as they were, and an audit.tree.repaired
// event follows.
func TestAuditTreeZeroedHash(t *testing.T) {
	d := prepareDev(t)
	ctx := context.Background()
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	anon := client.New(r.url, "")
	for i := range 12 {
		if _, err := anon.StartRun(ctx, d.sign(t, time.Now().Add(time.Duration(i)*time.Millisecond), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	db := r.srv.Store()
	waitAllLogged(t, db)
	size, err := db.LogSize(ctx)
	if err != nil || size < 30 {
		t.Fatalf("log size %d, %v; want at least 30 entries", size, err)
	}
	// Zeroed: a leaf's row (in tile 0/000 and in its neighbour's proofs)
	// and an interior node (in the proofs of entries 0–5); deleted:
	// another leaf's row.
	damaged := []int64{tlog.StoredHashIndex(1, 3), tlog.StoredHashIndex(0, 9), tlog.StoredHashIndex(0, 21)} // 12, 16, 39
	orig, err := db.ReadLogHashes(ctx, damaged)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	raw, err := sql.Open("sqlite", sqlitePath(d.cfg.Store))
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range damaged {
		q := "UPDATE tlog_hashes SET hash = zeroblob(32) WHERE idx = ?"
		if i == 2 {
			q = "DELETE FROM tlog_hashes WHERE idx = ?"
		}
		res, err := raw.ExecContext(ctx, q, x)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s with idx %d changed %d rows", q, x, n)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	// Hold the tree check before it runs, and again before it repairs.
	reached := map[string]chan struct{}{"check": make(chan struct{}), "repair": make(chan struct{})}
	release := map[string]chan struct{}{"check": make(chan struct{}), "repair": make(chan struct{})}
	held := map[string]bool{}
	t.Cleanup(server.SetAuditTreeHook(func(ctx context.Context, stage string) {
		if held[stage] { // the loop's goroutine is the only caller
			return
		}
		held[stage] = true
		close(reached[stage])
		select {
		case <-release[stage]:
		case <-ctx.Done():
		}
	}))
	r = start(t, d.cfg, server.Options{}, nil)
	wait := func(stage string) {
		t.Helper()
		select {
		case <-reached[stage]:
		case <-time.After(pollTimeout):
			t.Fatalf("the tree check did not reach %q within %v", stage, pollTimeout)
		}
	}
	a := newAuditAPI(t, r.url, d.env.Token)
	var key struct{ Key, Origin string }
	a.getJSON("/v1/audit/key", &key)
	verifyAll := func(when string) {
		t.Helper()
		cp := a.checkpoint(size)
		for i := range cp.Size {
			var ir wapi.InclusionResponse
			a.getJSON("/v1/audit/proof/inclusion?index="+strconv.FormatInt(i, 10), &ir)
			if ir.Checkpoint == "" {
				t.Fatalf("%s: entry %d: no checkpoint with the proof", when, i)
			}
			if _, err := auditlog.CheckEntryProof([]byte(ir.Checkpoint), key.Key, key.Origin, i, ir.Entry.Body, ir.Proof); err != nil {
				t.Fatalf("%s: the inclusion proof of entry %d served by writ fails client verification: %v", when, i, err)
			}
		}
		for _, from := range []int64{1, 5, 9, 17, size - 1} {
			var cr wapi.ConsistencyResponse
			a.getJSON(fmt.Sprintf("/v1/audit/proof/consistency?from=%d&to=%d", from, cp.Size), &cr)
			old := tlog.Tree{N: from, Hash: subtreeRoot(t, a, from)}
			if err := tlog.CheckTree(toTreeProof(t, cr.Proof), cp.Size, cp.Root, old.N, old.Hash); err != nil {
				t.Fatalf("%s: the consistency proof %d → %d fails verification: %v", when, from, cp.Size, err)
			}
		}
		// Tiles, authenticated as a tlog client does.
		thr := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: cp.Root}, &httpTiles{t: t, url: r.url, token: d.env.Token})
		if _, err := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, 9), tlog.StoredHashIndex(0, cp.Size-1)}); err != nil {
			t.Fatalf("%s: the served tiles fail client verification: %v", when, err)
		}
	}

	// Before any check: the proofs' self-check catches the damage.
	wait("check")
	verifyAll("before the check")
	close(release["check"])

	// The check found it: alert, /readyz, proofs from the leaves.
	wait("repair")
	status, body := getReady(t, r.url)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "not_ready") ||
		!strings.Contains(body, "audit log tree hashes damaged at 3 places; repairing") {
		t.Fatalf("readyz while damaged: %d %s", status, body)
	}
	alert := findEvent(t, r.srv.Store(), "alert")
	if alert == nil {
		t.Fatal("no alert event for the damaged tree")
	}
	if alert.Details["code"] != auditlog.AlertTreeDamaged || alert.Details["hashes"] != float64(3) ||
		fmt.Sprint(alert.Details["hashIndexes"]) != fmt.Sprint([]any{float64(damaged[0]), float64(damaged[1]), float64(damaged[2])}) ||
		!strings.Contains(fmt.Sprint(alert.Details["message"]), "3 stored audit log tree hashes differ") || alert.Details["leaves"] != nil {
		t.Fatalf("alert %+v", alert.Details)
	}
	verifyAll("while damaged")
	close(release["repair"])

	// Repaired: ready again, the rows as they were, the repair recorded.
	deadline := time.Now().Add(pollTimeout)
	for {
		status, body = getReady(t, r.url)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz after the repair: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := r.srv.Store().ReadLogHashes(ctx, damaged)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != orig[0] || got[1] != orig[1] || got[2] != orig[2] {
		t.Fatalf("stored hashes after the repair %x; want %x", got, orig)
	}
	repaired := findEvent(t, r.srv.Store(), auditlog.EventTreeRepaired)
	if repaired == nil || repaired.Details["alert"] == "" || repaired.Details["rows"] != float64(3) {
		t.Fatalf("repair event %+v", repaired)
	}
	verifyAll("after the repair")
}

// TestAuditTreeAlteredEntry: an entry's stored bytes changed on disk
// while writ is stopped are not "repaired": the check at the next start
// records an audit_entries_altered alert naming the entry, /readyz fails
// with it, and the entry's inclusion proof is refused while the others
// still verify.
func TestAuditTreeAlteredEntry(t *testing.T) {
	d := prepareDev(t)
	ctx := context.Background()
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	anon := client.New(r.url, "")
	for i := range 4 {
		if _, err := anon.StartRun(ctx, d.sign(t, time.Now().Add(time.Duration(i)*time.Millisecond), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitAllLogged(t, r.srv.Store())
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", sqlitePath(d.cfg.Store))
	if err != nil {
		t.Fatal(err)
	}
	res, err := raw.ExecContext(ctx, "UPDATE outbox SET body = ? WHERE seq = 5", []byte(`{"id":"forged"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("altering entry 5 changed %d rows", n)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	r = start(t, d.cfg, server.Options{}, nil)
	alert := findEvent(t, r.srv.Store(), "alert")
	if alert == nil {
		t.Fatal("no alert for the altered entry")
	}
	if alert.Details["code"] != auditlog.AlertEntriesAltered || fmt.Sprint(alert.Details["alteredEntries"]) != "[5]" ||
		!strings.Contains(fmt.Sprint(alert.Details["message"]), "are not those the log signed") {
		t.Fatalf("alert %+v", alert.Details)
	}
	// The health problem is set before the alert is recorded, and no
	// repair clears it.
	status, body := getReady(t, r.url)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "entries (the first [5]) are not those the log signed") {
		t.Fatalf("readyz with an altered entry: %d %s", status, body)
	}
	status, body = getAuth(t, r.url+"/v1/audit/proof/inclusion?index=5", d.env.Token)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "audit_entry_altered") {
		t.Fatalf("inclusion proof of the altered entry: %d %s", status, body)
	}
	a := newAuditAPI(t, r.url, d.env.Token)
	var key struct{ Key, Origin string }
	a.getJSON("/v1/audit/key", &key)
	var ir wapi.InclusionResponse
	a.getJSON("/v1/audit/proof/inclusion?index=6", &ir)
	if _, err := auditlog.CheckEntryProof([]byte(ir.Checkpoint), key.Key, key.Origin, 6, ir.Entry.Body, ir.Proof); err != nil {
		t.Fatalf("the inclusion proof of entry 6 fails client verification: %v", err)
	}
}

// sqlitePath is the file of a sqlite:// store DSN.
func sqlitePath(dsn string) string {
	path := strings.TrimPrefix(dsn, "sqlite://")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path
}

func getAuth(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitAllLogged waits until every committed event is in the log.
func waitAllLogged(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for {
		pend, err := db.Unsequenced(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(pend) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still unlogged after %v", pollTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// findEvent returns the first stored event of type typ, polling for it.
func findEvent(t *testing.T, db *sqlstore.DB, typ string) *struct {
	ID      string         `json:"id"`
	Details map[string]any `json:"details"`
} {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for {
		after := int64(0)
		for {
			evs, err := db.Events(context.Background(), after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if e.Type == typ {
					var ev struct {
						ID      string         `json:"id"`
						Details map[string]any `json:"details"`
					}
					if err := json.Unmarshal(e.Body, &ev); err != nil {
						t.Fatal(err)
					}
					return &ev
				}
				after = e.Pos
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getReady(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// subtreeRoot computes the root of the first n entries from their bytes
// as served, the way a client that kept an older tree knows its root.
func subtreeRoot(t *testing.T, a *auditAPI, n int64) tlog.Hash {
	t.Helper()
	var es wapi.AuditEntries
	a.getJSON(fmt.Sprintf("/v1/audit/entries?start=0&end=%d", n), &es)
	bodies := make([][]byte, len(es.Entries))
	for i, e := range es.Entries {
		bodies[i] = e.Body
	}
	root := refRoot(t, bodies)
	var h tlog.Hash
	copy(h[:], root)
	return h
}

func toTreeProof(t *testing.T, in []string) tlog.TreeProof {
	t.Helper()
	out := make(tlog.TreeProof, len(in))
	for i, b := range decodeHashes(t, in) {
		copy(out[i][:], b)
	}
	return out
}
