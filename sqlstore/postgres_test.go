package sqlstore

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMigrationsMirror: every dialect has the same numbered migrations, one
// for one, so a schema version means the same thing on each.
func TestMigrationsMirror(t *testing.T) {
	names := func(d *dialect) []string {
		ms, err := d.loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.name)
		}
		return out
	}
	s, p := names(sqliteDialect), names(postgresDialect)
	if strings.Join(s, " ") != strings.Join(p, " ") {
		t.Errorf("migrations differ:\n sqlite   %v\n postgres %v", s, p)
	}
}

// TestPostgresOpenConcurrent opens one new PostgreSQL database from several
// DB values at once (as several replicas starting together would): the
// migrations apply once, under the advisory lock, and all of them work.
func TestPostgresOpenConcurrent(t *testing.T) {
	first := openPostgres(t, postgresTestDSN(t), Config{})
	// A second, empty database on the same server, opened n times at once.
	dsn := first.cfg.DSN
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/") + "_c"
	admin := openAdmin(t, dsn)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(context.Background(), Config{DSN: u.String()})
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
	want, err := postgresDialect.loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var versions int
	if err := dbs[0].rdb.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&versions); err != nil || versions != len(want) {
		t.Errorf("schema_migrations rows = %d, %v; want %d", versions, err, len(want))
	}
}

// TestPostgresReadersReadOnly: the read pool cannot write.
func TestPostgresReadersReadOnly(t *testing.T) {
	db := openPostgres(t, postgresTestDSN(t), Config{})
	_, err := db.rdb.Exec("INSERT INTO notify_cursors (name, pos) VALUES ('x', 1)")
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("insert through the read pool = %v; want a read-only refusal", err)
	}
}

// TestPostgresWriterReconnects: when the server drops the write connection
// between batches, the next write opens a new one and succeeds.
func TestPostgresWriterReconnects(t *testing.T) {
	db := openPostgres(t, postgresTestDSN(t), Config{})
	ctx := context.Background()
	createRun(t, db, time.Now())
	var pid int
	if err := db.write(ctx, func(tx *wtx) error { return tx.queryRow("SELECT pg_backend_pid()").Scan(&pid) }); err != nil {
		t.Fatal(err)
	}
	admin := openAdmin(t, db.cfg.DSN)
	var ok bool
	if err := admin.QueryRow("SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
	createRun(t, db, time.Now())
	if n := runCount(t, db); n != 2 {
		t.Errorf("runs = %d; want 2", n)
	}
}
