package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/writ-dev/writ"
)

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as a child that writes runs
	// until it is killed; see crash_test.go.
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// forEachDialect runs suite against every database the store supports:
// SQLite always, in t.TempDir(), and PostgreSQL when WRIT_TEST_POSTGRES_DSN
// is set, each open in a database of its own created on that server. Without
// the variable the PostgreSQL leg is skipped, or fails when
// WRIT_TEST_REQUIRE_ALL=1 (docs/design.md §6). open returns a new, empty,
// migrated database, closed when the test ends.
func forEachDialect(t *testing.T, suite func(t *testing.T, open func(t *testing.T) *DB)) {
	t.Run("sqlite", func(t *testing.T) {
		suite(t, func(t *testing.T) *DB { return openSQLite(t, Config{}) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := postgresTestDSN(t)
		suite(t, func(t *testing.T) *DB { return openPostgres(t, dsn, Config{}) })
	})
}

// postgresTestDSN returns WRIT_TEST_POSTGRES_DSN, a server on which the
// tests may create and drop databases, or skips t when it is unset (fails
// it when WRIT_TEST_REQUIRE_ALL=1).
func postgresTestDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("WRIT_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
			t.Fatal("WRIT_TEST_POSTGRES_DSN is unset and WRIT_TEST_REQUIRE_ALL=1: the PostgreSQL tests must run")
		}
		t.Skip("WRIT_TEST_POSTGRES_DSN is unset (scripts/test.sh starts a throwaway PostgreSQL)")
	}
	return dsn
}

// openAdmin opens a connection pool to the server of dsn for creating and
// dropping test databases, closed when the test ends (after the cleanups
// registered later, which may use it).
func openAdmin(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

// openPostgres creates a new database on the server of dsn, opens it, and
// closes and drops it when the test ends. cfg.DSN is set by it.
func openPostgres(t testing.TB, dsn string, cfg Config) *DB {
	t.Helper()
	ctx := context.Background()
	admin := openAdmin(t, dsn)
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("writ_test_%x", rnd)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database (is WRIT_TEST_POSTGRES_DSN=%s reachable, with CREATEDB?): %v", dsn, err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	cfg.DSN = u.String()
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	db, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%q) = %v", cfg.DSN, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	forEachDialect(t, runConformance)
}

// openSQLite opens a new SQLite database in t.TempDir(), closed when the
// test ends. cfg.DSN is set by it.
func openSQLite(t testing.TB, cfg Config) *DB {
	t.Helper()
	cfg.DSN = "sqlite://" + filepath.Join(t.TempDir(), "writ.db")
	db, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%q) = %v", cfg.DSN, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return db
}

// reopen closes db and opens the same database again, closed when the
// test ends.
func reopen(t *testing.T, db *DB) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	db2, err := Open(context.Background(), db.cfg)
	if err != nil {
		t.Fatalf("Open(%q) again = %v", db.cfg.DSN, err)
	}
	t.Cleanup(func() { db2.Close() })
	return db2
}

// testRun returns a run with every field set (except Parent and EndedAt),
// created at created, its trigger record and the two events that record
// its start.
func testRun(created time.Time) (*writ.Run, writ.TriggerRecord, []*writ.Event) {
	id := writ.RunID(writ.NewULID(created, nil))
	trigID := writ.NewULID(created, nil)
	digest := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(trigID)))
	r := &writ.Run{
		ID:      id,
		Agent:   "claude",
		Profile: "refactor",
		Ticket:  writ.Ticket{System: "jira", ID: "WRIT-42", URL: "https://jira.example.org/browse/WRIT-42"},
		Task:    "rename the config loader",
		Scope: writ.Scope{
			Repos: []writ.RepoScope{
				{Name: "acme/api", Base: "main", Write: true, Paths: []string{"internal/config/**", "go.mod"}},
				{Name: "acme/docs", Base: "main", Paths: []string{}},
			},
			Tools:        []string{"git", "go"},
			Hosts:        []string{"proxy.golang.org"},
			Environments: nil,
			Secrets:      []string{},
			MaxDuration:  writ.Duration(30 * time.Minute),
		},
		ScopeDigest:   "sha256:5c0pe",
		TriggerID:     trigID,
		TriggerDigest: digest,
		Issuer:        "alice",
		SignerKey:     "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
		State:         writ.RunActive,
		CreatedAt:     created,
		Deadline:      created.Add(30 * time.Minute),
		EndReason:     "",
		Depth:         0,
	}
	trig := writ.TriggerRecord{ID: trigID, Digest: digest, Signer: "alice", ExpiresAt: created.Add(time.Hour)}
	return r, trig, startEvents(trig)
}

func startEvents(trig writ.TriggerRecord) []*writ.Event {
	return []*writ.Event{
		{Type: writ.EventTriggerAccepted, Actor: writ.SignerActor(trig.Signer), Subject: trig.Digest},
		{Type: writ.EventRunStarted, Actor: writ.ActorSystem, Details: map[string]any{"trigger": trig.ID}},
	}
}

// createRun stores a new run created at created with its start events,
// after applying mods to it, and returns it.
func createRun(t *testing.T, db *DB, created time.Time, mods ...func(*writ.Run)) *writ.Run {
	t.Helper()
	r, trig, evs := testRun(created)
	for _, m := range mods {
		m(r)
	}
	if err := db.CreateRun(context.Background(), r, trig, evs...); err != nil {
		t.Fatalf("CreateRun(%s) = %v", r.ID, err)
	}
	return r
}

// allEvents returns every event in the outbox.
func allEvents(t *testing.T, db *DB) []StoredEvent {
	t.Helper()
	return eventsAfter(t, db, 0)
}

// eventsAfter returns every event in the outbox after position pos.
func eventsAfter(t *testing.T, db *DB, pos int64) []StoredEvent {
	t.Helper()
	var out []StoredEvent
	for {
		evs, err := db.Events(context.Background(), pos, 0)
		if err != nil {
			t.Fatalf("Events(%d) = %v", pos, err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		pos = evs[len(evs)-1].Pos
	}
}

func lastPos(t *testing.T, db *DB) int64 {
	t.Helper()
	evs := allEvents(t, db)
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Pos
}

func eventTypes(evs []StoredEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// checkStored checks that stored holds exactly the bytes of want, as the
// store filled it in, and that they decode back to want.
func checkStored(t *testing.T, stored StoredEvent, want *writ.Event) {
	t.Helper()
	wantBody, err := want.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v) = %v", want, err)
	}
	if !bytes.Equal(stored.Body, wantBody) {
		t.Errorf("stored body = %s; want %s", stored.Body, wantBody)
	}
	var got writ.Event
	if err := json.Unmarshal(stored.Body, &got); err != nil {
		t.Fatalf("unmarshal stored event: %v", err)
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("stored event mismatch (-want +got):\n%s", diff)
	}
	if stored.ID != want.ID || stored.Type != want.Type || stored.Run != want.Run {
		t.Errorf("stored event columns = (%s, %s, %s); want (%s, %s, %s)", stored.ID, stored.Type, stored.Run, want.ID, want.Type, want.Run)
	}
}

// wantError checks that err is a *writ.Error of the given kind and code.
func wantError(t *testing.T, err error, kind writ.Kind, code string) {
	t.Helper()
	var we *writ.Error
	if !errors.As(err, &we) {
		t.Fatalf("error = %v (%T); want *writ.Error %s/%s", err, err, kind, code)
	}
	if we.Kind != kind || we.Code != code {
		t.Fatalf("error = %s/%s %q; want %s/%s", we.Kind, we.Code, we.Message, kind, code)
	}
}

func runCount(t *testing.T, db *DB) int {
	t.Helper()
	counts, err := db.CountRuns(context.Background())
	if err != nil {
		t.Fatalf("CountRuns() = %v", err)
	}
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func tokenHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
