package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/writ-dev/writ"
)

// Config says which database to open and how.
type Config struct {
	// DSN names the database: "sqlite:///abs/path/writ.db",
	// "sqlite://relative.db" or a bare file path (the file is created when
	// missing; its directory must exist), or a PostgreSQL URL,
	// "postgres://user@host/db?sslmode=…" (pgx's URL form; the database
	// must exist).
	DSN string
	// Durability is "normal" (the default: WAL with synchronous=NORMAL; a
	// commit survives kill -9 of writ) or "full" (synchronous=FULL; a commit
	// survives power loss too). It applies to SQLite; on PostgreSQL the
	// server's synchronous_commit decides.
	Durability string
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock that stamps commits; nil means time.Now.
	Now func() time.Time
	// OnEvents, when set, is called (on the writer goroutine, so it must
	// not block) after every commit that stored events — the audit log's
	// integrator wakes on it. On PostgreSQL it is also called, from
	// another goroutine, when another process (a replica) on the same
	// database commits events.
	OnEvents func()
	// OnRunChanged, when set, is called on PostgreSQL for every run whose
	// state a commit changed, by any process on the database (this one's
	// included), about when that commit is done — so replicas drop what
	// they cached of it. It is called from one goroutine, in commit order;
	// it may block briefly (notifications wait meanwhile). On SQLite, with
	// one process, it is never called.
	OnRunChanged func(writ.RunID)
	// OnRunsChanged, when set, is called on the writer goroutine (so it
	// must not block) after every commit of this process that changed the
	// state of some run — the broker's revoker wakes on it.
	OnRunsChanged func()
}

// Durability levels for [Config].
const (
	DurabilityNormal = "normal"
	DurabilityFull   = "full"
)

// ErrClosed is returned by every method called after [DB.Close].
var ErrClosed = &writ.Error{Kind: writ.KindUnavailable, Code: "store_closed", Message: "the server is shutting down"}

// Read pool size: WAL readers do not block each other or the writer.
const maxReadConns = 8

// busyTimeout is how long SQLite waits for a lock held by another process
// (another writ opening the same file, or writ migrate).
const busyTimeout = 10 * time.Second

// DB is an open store. Its methods are safe for concurrent use. All writes
// go through one writer goroutine, started by [Open] and stopped by
// [DB.Close]; see the package documentation.
type DB struct {
	cfg Config
	d   *dialect
	log *slog.Logger
	now func() time.Time

	wdb   *sql.DB   // the write pool: one connection, used only by the writer
	wconn *sql.Conn // that connection
	rdb   *sql.DB   // the read pool
	pgDSN string    // PostgreSQL: the DSN, for the sequencer's connection

	// mu guards closed and sending on reqs, so Close can close reqs
	// without racing a sender.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request

	closedFlag atomic.Bool // closed, for readers that do not take mu

	writerDone chan struct{} // closed when the writer goroutine returns
	closeOnce  sync.Once
	closeErr   error

	// Owned by the writer goroutine (and by Open before it starts).
	stmts map[string]*sql.Stmt
	last  time.Time // the previous batch's commit time

	// The goroutine listening for other processes' commits (PostgreSQL).
	listenStop context.CancelFunc
	listenDone chan struct{}

	// path is the SQLite database file ("" on PostgreSQL), for the free
	// space check of Writable.
	path string
	// The write probe's last answer (Writable).
	probeMu  sync.Mutex
	probeAt  time.Time
	probeErr error

	// Counters for tests and benchmarks.
	nBatches  atomic.Int64
	nRequests atomic.Int64
}

// Open opens the database named by cfg.DSN, creating the file when it does
// not exist, applies pending migrations and starts the writer goroutine.
// Call [DB.Close] to stop it.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	d, path, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	syncMode := "NORMAL"
	switch cfg.Durability {
	case "", DurabilityNormal:
	case DurabilityFull:
		syncMode = "FULL"
	default:
		return nil, fmt.Errorf("sqlstore: durability %q: want %q or %q", cfg.Durability, DurabilityNormal, DurabilityFull)
	}
	db := &DB{
		cfg:        cfg,
		d:          d,
		log:        cfg.Logger,
		now:        cfg.Now,
		reqs:       make(chan *request, maxBatch),
		writerDone: make(chan struct{}),
		stmts:      make(map[string]*sql.Stmt),
	}
	if d == sqliteDialect {
		db.path = path
	}
	if db.log == nil {
		db.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	db.log = db.log.With(slog.String("component", "sqlstore"))
	if db.now == nil {
		db.now = time.Now
	}
	if err := db.open(ctx, path, syncMode); err != nil {
		db.closeAll()
		return nil, err
	}
	if err := db.startListening(); err != nil {
		db.closeAll()
		return nil, err
	}
	go db.writer()
	return db, nil
}

func (db *DB) open(ctx context.Context, path, syncMode string) error {
	if db.d == postgresDialect {
		return db.openPostgres(ctx, path)
	}
	var err error
	db.wdb, err = sql.Open(db.d.driver, sqliteDSN(path,
		"busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")",
		"foreign_keys(1)",
		"journal_mode(WAL)",
		"synchronous("+syncMode+")",
		// Savepoint sub-journals in memory: each request's savepoint
		// journals the pages it changes, and on disk that is a write
		// system call per page.
		"temp_store(MEMORY)",
	))
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	db.wdb.SetMaxOpenConns(1)
	db.wdb.SetMaxIdleConns(1)
	db.wdb.SetConnMaxLifetime(0)
	db.wdb.SetConnMaxIdleTime(0)
	db.wconn, err = db.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	var mode string
	if err := db.wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlstore: open %s: journal mode is %q, not wal (is the file on a filesystem without shared memory?)", path, mode)
	}
	if err := db.migrate(ctx); err != nil {
		return err
	}

	db.rdb, err = sql.Open(db.d.driver, sqliteDSN(path,
		"busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")",
		"foreign_keys(1)",
		"query_only(1)",
	))
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	db.rdb.SetMaxOpenConns(maxReadConns)
	db.rdb.SetMaxIdleConns(maxReadConns)
	if err := db.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	return nil
}

// parseDSN returns the dialect and the file path a DSN names; for
// PostgreSQL, the path is the DSN itself (a postgres:// URL).
func parseDSN(dsn string) (*dialect, string, error) {
	path := dsn
	if scheme, rest, ok := strings.Cut(dsn, "://"); ok && !strings.ContainsAny(scheme, `/\`) {
		switch scheme {
		case "sqlite", "sqlite3":
			path = rest
		case "postgres", "postgresql":
			if _, err := url.Parse(dsn); err != nil {
				return nil, "", fmt.Errorf("sqlstore: DSN: %w", err)
			}
			return postgresDialect, dsn, nil
		default:
			return nil, "", fmt.Errorf("sqlstore: DSN scheme %q: want sqlite://, postgres:// or a file path", scheme)
		}
	}
	switch {
	case path == "":
		return nil, "", fmt.Errorf("sqlstore: empty DSN: want sqlite:///path/to/writ.db or a file path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, "", fmt.Errorf("sqlstore: DSN %q: want a file path (the store needs a file its readers and writer share)", dsn)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("sqlstore: DSN %q: %w", dsn, err)
	}
	return sqliteDialect, abs, nil
}

// sqliteDSN returns the modernc.org/sqlite DSN of the file at path with
// pragmas run on every new connection. The path goes in a file: URI so no
// character of it is taken for a parameter.
func sqliteDSN(path string, pragmas ...string) string {
	q := url.Values{"_pragma": pragmas}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	if !strings.HasPrefix(u.Path, "/") { // a Windows volume
		u.Path = "/" + u.Path
	}
	return u.String()
}

// Close waits for the writes already queued to commit, stops the writer
// and closes the database. Calls after the first return its result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.closedFlag.Store(true)
		close(db.reqs)
		db.mu.Unlock()
		<-db.writerDone
		db.stopListening()
		db.closeErr = db.closeAll()
	})
	return db.closeErr
}

func (db *DB) isClosed() bool { return db.closedFlag.Load() }

func (db *DB) closeAll() error {
	var errs []error
	for _, s := range db.stmts {
		errs = append(errs, s.Close())
	}
	clear(db.stmts)
	if db.wconn != nil {
		errs = append(errs, db.wconn.Close())
	}
	if db.wdb != nil {
		errs = append(errs, db.wdb.Close())
	}
	if db.rdb != nil {
		errs = append(errs, db.rdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	return nil
}

// Ping checks that the database answers reads and that the writer commits,
// for a readiness probe.
func (db *DB) Ping(ctx context.Context) error {
	if db.isClosed() {
		return ErrClosed
	}
	if err := db.write(ctx, func(*wtx) error { return nil }); err != nil {
		return err
	}
	if err := db.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Time encoding: INTEGER nanoseconds since the Unix epoch, UTC. The zero
// time.Time is NULL where a column allows it.

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encTime encodes a required time.
func encTime(field string, t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, writ.Errorf(writ.KindInvalid, "invalid_time", "%s is not set", field)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return 0, writ.Errorf(writ.KindInvalid, "invalid_time", "%s %s is out of range (years 1678 to 2262)", field, t.UTC().Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// encOptTime encodes an optional time: nil for the zero time.
func encOptTime(field string, t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	return encTime(field, t)
}

func decTime(n int64) time.Time { return time.Unix(0, n).UTC() }

func decOptTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return decTime(n.Int64)
}

// Shared reports whether other processes may write the same database
// (PostgreSQL: replicas), so in-memory views of it go stale.
func (db *DB) Shared() bool { return db.d == postgresDialect }
