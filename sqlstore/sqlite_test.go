package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ"
)

func TestParseDSN(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dsn     string
		want    string // "" for an error
		wantErr string
		pg      bool // want the PostgreSQL dialect
	}{
		{dsn: "sqlite:///var/lib/writ/writ.db", want: "/var/lib/writ/writ.db"},
		{dsn: "sqlite://writ.db", want: filepath.Join(wd, "writ.db")},
		{dsn: "sqlite3:///a/b.db", want: "/a/b.db"},
		{dsn: "/var/lib/writ/writ.db", want: "/var/lib/writ/writ.db"},
		{dsn: "data/writ.db", want: filepath.Join(wd, "data/writ.db")},
		{dsn: "/odd/na?me#1%.db", want: "/odd/na?me#1%.db"},
		{dsn: "", wantErr: "empty DSN"},
		{dsn: "sqlite://", wantErr: "empty DSN"},
		{dsn: ":memory:", wantErr: "want a file path"},
		{dsn: "file:writ.db?mode=ro", wantErr: "want a file path"},

		{dsn: "mysql://localhost/writ", wantErr: `scheme "mysql"`},
		{dsn: "postgres://writ@localhost/writ", want: "postgres://writ@localhost/writ", pg: true},
		{dsn: "postgresql://writ:pw@db:5432/writ?sslmode=disable", want: "postgresql://writ:pw@db:5432/writ?sslmode=disable", pg: true},
	}
	for _, tt := range tests {
		d, got, err := parseDSN(tt.dsn)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseDSN(%q) = %q, %v; want error containing %q", tt.dsn, got, err, tt.wantErr)
			}
			continue
		}
		want := sqliteDialect
		if tt.pg {
			want = postgresDialect
		}
		if err != nil || got != tt.want || d != want {
			t.Errorf("parseDSN(%q) = %v, %q, %v; want %s, %q, nil", tt.dsn, d, got, err, want.name, tt.want)
		}
	}
}

func TestOpenSettings(t *testing.T) {
	tests := []struct {
		durability string
		want       int // PRAGMA synchronous
	}{
		{"", 1},
		{DurabilityNormal, 1},
		{DurabilityFull, 2},
	}
	for _, tt := range tests {
		t.Run("durability="+tt.durability, func(t *testing.T) {
			db := openSQLite(t, Config{Durability: tt.durability})
			ctx := context.Background()
			pragma := func(c interface {
				QueryRowContext(context.Context, string, ...any) *sql.Row
			}, name string) string {
				var v string
				if err := c.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
					t.Fatalf("PRAGMA %s: %v", name, err)
				}
				return v
			}
			// The write connection is the writer's; borrow it through a write.
			var got map[string]string
			if err := db.write(ctx, func(tx *wtx) error {
				got = map[string]string{}
				for _, p := range []string{"journal_mode", "synchronous", "foreign_keys", "busy_timeout"} {
					got[p] = pragma(tx.db.wconn, p)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"journal_mode": "wal", "synchronous": fmt.Sprint(tt.want), "foreign_keys": "1", "busy_timeout": "10000"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("write connection: PRAGMA %s = %s; want %s", k, got[k], v)
				}
			}
			if v := pragma(db.rdb, "query_only"); v != "1" {
				t.Errorf("read pool: PRAGMA query_only = %s; want 1", v)
			}
			if _, err := db.rdb.ExecContext(ctx, "DELETE FROM runs"); err == nil {
				t.Errorf("the read pool wrote")
			}
		})
	}
	if _, err := Open(context.Background(), Config{DSN: filepath.Join(t.TempDir(), "x.db"), Durability: "paranoid"}); err == nil {
		t.Errorf("Open with durability paranoid = nil; want an error")
	}
}

func TestOpenRelativeDSN(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	db, err := Open(context.Background(), Config{DSN: "sqlite://rel.db"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(filepath.Join(dir, "rel.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestOpenMissingDir(t *testing.T) {
	_, err := Open(context.Background(), Config{DSN: filepath.Join(t.TempDir(), "no", "such", "dir", "writ.db")})
	if err == nil {
		t.Errorf("Open in a missing directory = nil; want an error")
	}
}

func TestOpenNewerSchema(t *testing.T) {
	db := openSQLite(t, Config{})
	path := db.cfg.DSN
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", strings.TrimPrefix(path, "sqlite://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = Open(context.Background(), Config{DSN: path})
	if err == nil || !strings.Contains(err.Error(), "run a newer writ") {
		t.Errorf("Open of a newer schema = %v; want a refusal", err)
	}
}

// TestOpenConcurrent opens one new database from several DB values at once
// (as two processes might): migrations apply once and all of them work.
func TestOpenConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "writ.db")
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(context.Background(), Config{DSN: path})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d = %v", i, err)
		}
		defer dbs[i].Close()
	}
	for _, db := range dbs {
		createRun(t, db, time.Now())
	}
	if n := runCount(t, dbs[0]); n != len(dbs) {
		t.Errorf("runs = %d; want %d", n, len(dbs))
	}
	// Each migration applied exactly once, however many opened at once.
	want, err := sqliteDialect.loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var versions int
	if err := dbs[0].rdb.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&versions); err != nil || versions != len(want) {
		t.Errorf("schema_migrations rows = %d, %v; want %d", versions, err, len(want))
	}
}

// TestCommitTimeMonotonic checks that a clock stepping back does not make
// a later commit's time earlier.
func TestCommitTimeMonotonic(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var clock []time.Time // set after Open, whose migrations read the clock too
	db := openSQLite(t, Config{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if len(clock) == 0 {
			return base
		}
		now := clock[0]
		if len(clock) > 1 {
			clock = clock[1:]
		}
		return now
	}})
	mu.Lock()
	clock = []time.Time{base.Add(time.Hour), base, base.Add(2 * time.Hour)}
	mu.Unlock()
	var got []time.Time
	for range 3 {
		if err := db.write(context.Background(), func(tx *wtx) error {
			got = append(got, tx.now)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Time{base.Add(time.Hour), base.Add(time.Hour), base.Add(2 * time.Hour)}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("commit times = %v; want %v", got, want)
			break
		}
	}
}

// TestOpenOddPath opens a database whose path holds characters that mean
// something in a URI.
func TestOpenOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag%20", "writ.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), Config{DSN: path})
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	createRun(t, db, time.Now())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
}

// TestCommitFailureFailsBatch makes the COMMIT of a batch fail (a deferred
// foreign key that one request breaks is checked only then): every request
// of the batch gets an error, none of them is stored, and the writer goes
// on working.
func TestCommitFailureFailsBatch(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, Config{})
	fns := make([]func() error, 3)
	for i := range fns {
		r, trig, evs := testRun(time.Now())
		fns[i] = func() error { return db.CreateRun(ctx, r, trig, evs...) }
	}
	fns[1] = func() error {
		return db.write(ctx, func(tx *wtx) error {
			if err := tx.execRaw("PRAGMA defer_foreign_keys = ON"); err != nil {
				return err
			}
			r, trig, _ := testRun(time.Now())
			r.Parent = writ.RunID(writ.NewULID(time.Now(), nil))
			_, err := tx.exec("INSERT INTO runs (id, agent, profile, ticket_system, ticket_id, ticket_url, task, scope, scope_digest, trigger_id, trigger_digest, issuer, signer_key, state, created_at, deadline, end_reason, parent, depth) VALUES (?, '', '', '', '', '', '', '{}', '', ?, '', '', '', 'active', 1, 2, '', ?, 1)",
				string(r.ID), trig.ID, string(r.Parent))
			return err
		})
	}
	release := holdWriter(t, db)
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
		waitQueued(t, db, i+1)
	}
	release()
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "commit") {
			t.Errorf("request %d: error %v; want the commit's error", i, err)
		}
	}
	if n := runCount(t, db); n != 0 {
		t.Errorf("runs = %d after a failed commit; want 0", n)
	}
	if evs := allEvents(t, db); len(evs) != 0 {
		t.Errorf("events = %v after a failed commit; want none", eventTypes(evs))
	}
	// The same runs go in afterwards.
	for i, fn := range []func() error{fns[0], fns[2]} {
		if err := fn(); err != nil {
			t.Errorf("retry %d = %v; want nil", i, err)
		}
	}
	if n := runCount(t, db); n != 2 {
		t.Errorf("runs = %d; want 2", n)
	}
}
