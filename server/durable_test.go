package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/sqlstore"
)

// pinnedSize reads the checkpoint pin's log size (0: no pin yet).
func pinnedSize(t *testing.T, cfg server.Config) int64 {
	t.Helper()
	data, err := os.ReadFile(server.PinPath(cfg))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Checkpoint string }
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("pin: %v", err)
	}
	lines := strings.SplitN(f.Checkpoint, "\n", 3)
	if len(lines) < 3 {
		t.Fatalf("pin checkpoint %q: not a checkpoint", f.Checkpoint)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("pin checkpoint size %q: %v", lines[1], err)
	}
	return n
}

// waitPinned waits until every event the store holds is logged and the
// pin covers them.
func waitPinned(t *testing.T, r *running, cfg server.Config) int64 {
	t.Helper()
	store := r.srv.Store()
	var want int64
	poll(t, "the checkpoint pin to cover every event", func() bool {
		want = int64(len(storeEvents(t, store)))
		return pinnedSize(t, cfg) >= want
	})
	return want
}

// startRuns starts n runs from fresh triggers.
func startRuns(t *testing.T, d *dev, url string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := client.New(url, "").StartRun(context.Background(), d.sign(t, time.Now(), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// alerts returns the details of the store's alert events with code.
func alerts(t *testing.T, store *sqlstore.DB, code string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range storeEvents(t, store) {
		if e.Type == writ.EventAlert && e.Details["code"] == code {
			out = append(out, e.Details)
		}
	}
	return out
}

// replaceStore puts the SQLite file src where cfg's store is, as an
// operator copying an old file back by hand would (its WAL and shared
// memory removed).
func replaceStore(t *testing.T, cfg server.Config, src string) {
	t.Helper()
	dst := strings.TrimPrefix(cfg.Store, "sqlite://")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"-wal", "-shm"} {
		if err := os.Remove(dst + s); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// backupThenUse starts a dev server, starts runs, takes a backup while it
// serves and then uses one more trigger, which the backup does not know.
func backupThenUse(t *testing.T) (d *dev, r *running, backup string, rep *server.BackupReport, used []byte) {
	t.Helper()
	ctx := context.Background()
	d = prepareDev(t)
	r = start(t, d.cfg, server.Options{}, d.finish(t))
	startRuns(t, d, r.url, 3)
	waitPinned(t, r, d.cfg)
	backup = filepath.Join(t.TempDir(), "backup.db")
	rep, err := server.Backup(ctx, d.cfg, backup)
	if err != nil {
		t.Fatal(err)
	}
	if rep.LogSize == 0 || rep.Checkpoint.Size == 0 || rep.Checkpoint.Size > rep.LogSize {
		t.Fatalf("backup report %+v: want a logged, checkpointed copy", rep)
	}
	used = d.sign(t, time.Now(), nil)
	if _, err := client.New(r.url, "").StartRun(ctx, used, nil); err != nil {
		t.Fatal(err)
	}
	return d, r, backup, rep, used
}

// TestRollbackRefused is issue 21's rolled-back store: a backup taken
// while writ serves, a trigger used after it, writ stopped and the old
// file copied back by hand. writ refuses to start, naming both sizes and
// the way out; with --accept-rollback it starts, records an alert, keeps
// refusing the trigger used after the backup, and resets the pin.
func TestRollbackRefused(t *testing.T) {
	ctx := context.Background()
	d, r, backup, rep, used := backupThenUse(t)
	pinned := waitPinned(t, r, d.cfg)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	replaceStore(t, d.cfg, backup)
	_, err := server.New(ctx, d.cfg, server.Options{})
	var rb *server.RollbackError
	if !errors.As(err, &rb) {
		t.Fatalf("start on the rolled-back store: %v; want a RollbackError", err)
	}
	if rb.StoreSize != rep.LogSize || rb.PinSize < pinned || rb.Rewritten {
		t.Errorf("RollbackError %+v; want store %d, pin at least %d, not rewritten", rb, rep.LogSize, pinned)
	}
	for _, want := range []string{strconv.FormatInt(rep.LogSize, 10) + " entries", strconv.FormatInt(rb.PinSize, 10), "--accept-rollback", "writ restore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	r = start(t, d.cfg, server.Options{AcceptRollback: true}, nil)
	_, err = client.New(r.url, "").StartRun(ctx, used, nil)
	if writ.ErrorCode(err) != "replay" {
		t.Errorf("the trigger used after the backup, on the rolled-back store: %v; want replay (the pin's trigger horizon)", err)
	}
	startRuns(t, d, r.url, 1) // a new trigger still starts a run
	got := alerts(t, r.srv.Store(), "store_rollback_accepted")
	if len(got) != 1 || got[0]["pin_size"] != float64(rb.PinSize) || got[0]["store_size"] != float64(rep.LogSize) {
		t.Errorf("store_rollback_accepted alerts %v; want one naming pin %d and store %d", got, rb.PinSize, rep.LogSize)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// The pin was reset: the next start is an ordinary one.
	r = start(t, d.cfg, server.Options{}, nil)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefusesTriggersUsedAfterBackup is issue 21's restore test:
// `writ restore` of a backup taken before a trigger was used; after it,
// that trigger stays refused, the replaced file is kept, an alert records
// the restore, and writ starts on the restored store without
// --accept-rollback. A second writ on the same store (or a restore while
// writ serves) is refused by the store's lock.
func TestRestoreRefusesTriggersUsedAfterBackup(t *testing.T) {
	ctx := context.Background()
	d, r, backup, rep, used := backupThenUse(t)
	if _, err := server.Backup(ctx, d.cfg, backup); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a backup over an existing file: %v; want a refusal", err)
	}
	startRuns(t, d, r.url, 2)
	if _, err := server.Restore(ctx, d.cfg, backup, nil); err == nil || !strings.Contains(err.Error(), "in use by another writ process") {
		t.Errorf("restore while writ serves: %v; want the store's lock to refuse it", err)
	}
	if _, err := server.New(ctx, d.cfg, server.Options{}); err == nil || !strings.Contains(err.Error(), "in use by another writ process") {
		t.Errorf("a second writ serve on the same store: %v; want the store's lock to refuse it", err)
	}
	pinned := waitPinned(t, r, d.cfg)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	res, err := server.Restore(ctx, d.cfg, backup, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Backup.LogSize != rep.LogSize || res.PinSize < pinned || res.Previous == "" {
		t.Errorf("restore report %+v; want the backup's %d entries, the pin's %d, the replaced file kept", res, rep.LogSize, pinned)
	}
	if _, err := os.Stat(res.Previous); err != nil {
		t.Errorf("the replaced store: %v", err)
	}
	r = start(t, d.cfg, server.Options{}, nil)
	_, err = client.New(r.url, "").StartRun(ctx, used, nil)
	if writ.ErrorCode(err) != "replay" {
		t.Errorf("the trigger used after the backup, after the restore: %v; want replay", err)
	}
	startRuns(t, d, r.url, 1)
	if got := alerts(t, r.srv.Store(), "store_restored"); len(got) != 1 || got[0]["backup"] != backup {
		t.Errorf("store_restored alerts %v; want one naming %s", got, backup)
	}
	if n := storeEvents(t, r.srv.Store()); int64(len(n)) <= rep.LogSize {
		t.Errorf("%d events after the restore; want more than the backup's %d (the alert, the new run)", len(n), rep.LogSize)
	}
}

// TestDamagedWALRefused is issue 21's "bytes in the WAL": a crash image
// of the store (the file and its WAL as a kill -9 leaves them), a flipped
// byte in the WAL's first frame. SQLite then drops every frame from there
// on without a word; writ notices by the pin and refuses to start.
func TestDamagedWALRefused(t *testing.T) {
	ctx := context.Background()
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	startRuns(t, d, r.url, 5)
	pinned := waitPinned(t, r, d.cfg)
	// The crash image: copied while the server holds the store open, idle
	// (every event logged and pinned), so the WAL holds the recent commits.
	src := strings.TrimPrefix(d.cfg.Store, "sqlite://")
	crash := t.TempDir()
	for _, s := range []string{"", "-wal"} {
		data, err := os.ReadFile(src + s)
		if err != nil {
			t.Fatal(err)
		}
		if s == "-wal" {
			damageWAL(t, data)
		}
		if err := os.WriteFile(filepath.Join(crash, "writ.db"+s), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pin, err := os.ReadFile(server.PinPath(d.cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	cfg := d.cfg
	cfg.DataDir = crash
	cfg.Store = "sqlite://" + filepath.Join(crash, "writ.db")
	if err := os.WriteFile(server.PinPath(cfg), pin, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = server.New(ctx, cfg, server.Options{})
	var rb *server.RollbackError
	if !errors.As(err, &rb) || rb.PinSize != pinned || rb.StoreSize >= pinned {
		t.Fatalf("start on the store with a damaged WAL: %v; want a RollbackError (pin %d, store fewer)", err, pinned)
	}
	if !strings.Contains(err.Error(), "damaged WAL") {
		t.Errorf("refusal %q does not name a damaged WAL as a cause", err)
	}
}

// damagePage overwrites the b-tree page header of table's root page in
// the SQLite file at path (writ stopped, the WAL checkpointed into it).
func damagePage(t *testing.T, path, table string) {
	t.Helper()
	db, err := sqlstore.InspectFile(context.Background(), path)
	if err != nil || len(db.Problems) > 0 {
		t.Fatalf("the store before the damage: %+v, %v", db, err)
	}
	root, pageSize := rootPage(t, path, table)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, 64)
	for i := range junk {
		junk[i] = 0xa5
	}
	if _, err := f.WriteAt(junk, (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedPageRefused is issue 21's damaged page: writ refuses to
// start on the store, saying it is damaged and how to proceed; with the
// check outliving its start-up budget, writ starts but /readyz fails
// with the same message once the check finds the damage.
func TestDamagedPageRefused(t *testing.T) {
	ctx := context.Background()
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	startRuns(t, d, r.url, 20)
	waitPinned(t, r, d.cfg)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(d.cfg.Store, "sqlite://")
	damagePage(t, path, "trigger_replay")

	_, err := server.New(ctx, d.cfg, server.Options{})
	var de *server.DamagedStoreError
	if !errors.As(err, &de) || len(de.Problems) == 0 {
		t.Fatalf("start on a damaged store: %v; want a DamagedStoreError", err)
	}
	for _, want := range []string{path, "is damaged", "writ restore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	// A check that outlives its budget (a huge store) goes on in the
	// background: writ serves, and /readyz reports the damage when found.
	// (A negative budget does not wait at all: whichever of a tiny budget
	// and a small store's check ended first would decide otherwise.)
	r = start(t, d.cfg, server.Options{IntegrityBudget: -1}, nil)
	var body string
	poll(t, "/readyz to report the damaged store", func() bool {
		var status int
		status, body = getReady(t, r.url)
		return status == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "is damaged") || !strings.Contains(body, "writ restore") {
		t.Errorf("/readyz said %s; want the damage and the way out", body)
	}
	// A request that reads the damaged table is told so, not "internal
	// error".
	_, err = client.New(r.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), nil)
	if writ.ErrorCode(err) != "store_damaged" || !strings.Contains(err.Error(), "writ restore") {
		t.Errorf("a run start on the damaged table: %v; want 503 store_damaged naming writ restore", err)
	}
}

// damageWAL flips a byte in the page of the middle frame of the WAL's
// current generation (frames whose salts match the header's): SQLite
// keeps the frames before it and drops it and every later one.
func damageWAL(t *testing.T, wal []byte) {
	t.Helper()
	if len(wal) < 32 {
		t.Fatalf("the WAL holds %d bytes: no header", len(wal))
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:12]))
	frame := 24 + pageSize
	n := 0
	for off := 32; off+frame <= len(wal); off += frame {
		if !bytes.Equal(wal[off+8:off+16], wal[16:24]) {
			break
		}
		n++
	}
	if n < 4 {
		t.Fatalf("the WAL holds %d current frames: too few to damage one in the middle", n)
	}
	wal[32+(n/2)*frame+24+100] ^= 0xff
}

// rootPage returns table's root page number and the page size of the
// SQLite file at path.
func rootPage(t *testing.T, path, table string) (int64, int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root, size int64
	if err := db.QueryRow("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("PRAGMA page_size").Scan(&size); err != nil {
		t.Fatal(err)
	}
	return root, size
}

// TestPinCheckSurvivesDamagedTreeHashes: stored tree hashes and recorded
// leaf hashes zeroed on disk do not make writ take the store for a
// rewritten one — the pin check recomputes the root from the entries'
// bytes, which still reproduce it — while a changed entry does.
func TestPinCheckSurvivesDamagedTreeHashes(t *testing.T) {
	ctx := context.Background()
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	startRuns(t, d, r.url, 3)
	waitPinned(t, r, d.cfg)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(d.cfg.Store, "sqlite://")
	sqlExec(t, path, "UPDATE tlog_hashes SET hash = zeroblob(32)", "UPDATE outbox SET leaf = zeroblob(32) WHERE seq IS NOT NULL")
	r = start(t, d.cfg, server.Options{}, nil)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// An entry's bytes changed: the log no longer hashes to the pin.
	sqlExec(t, path, `UPDATE outbox SET body = CAST(replace(CAST(body AS TEXT), 'run.started', 'run.startex') AS BLOB) WHERE type = 'run.started'`)
	_, err := server.New(ctx, d.cfg, server.Options{})
	var rb *server.RollbackError
	if !errors.As(err, &rb) || !rb.Rewritten || !strings.Contains(err.Error(), "do not hash to the root") {
		t.Fatalf("start on a store whose entries changed: %v; want a RollbackError for a rewritten log", err)
	}
}

// sqlExec runs statements on the SQLite file at path (writ stopped).
func sqlExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
