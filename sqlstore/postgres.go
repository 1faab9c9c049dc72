package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// postgresDialect is PostgreSQL through pgx's database/sql driver.
var postgresDialect = &dialect{
	name:       "postgres",
	driver:     "pgx",
	migrations: "migrations/postgres",
	numbered:   true,
	// One writer per process commits one batch at a time, and batchLock
	// makes the batches of several processes (replicas) take turns, so
	// READ COMMITTED (the default) is enough: every statement of a batch
	// sees what the batches before it committed.
	begin: "BEGIN",
	// An identity column hands out outbox positions at INSERT, not at
	// COMMIT: without this lock a replica's lower position could commit
	// after another's higher one, and readers of the outbox in position
	// order (Events cursors, the audit log's integrator) would skip it.
	// Held until COMMIT; group commit keeps it cheap.
	batchLock: "SELECT pg_advisory_xact_lock(" + batchLockKey + ")",
	// The planner picks the partial index runs_live_deadline on its own
	// when the predicate implies the index's.
	liveByDeadline: "runs",
	// Migrations by several processes at once serialize on this advisory
	// lock (an arbitrary constant: "writ" in ASCII).
	migrateLock:   "SELECT pg_advisory_lock(2003069300)",
	migrateUnlock: "SELECT pg_advisory_unlock(2003069300)",
	reconnect:     true,
	notify:        true,
	// The server's wall clock, the same for every replica (microseconds:
	// PostgreSQL's resolution).
	clock: "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint * 1000",
	uniqueViolation: func(err error) bool {
		code, ok := pgCode(err)
		return ok && code == "23505" // unique_violation
	},
	constraintViolation: func(err error) bool {
		code, ok := pgCode(err)
		return ok && strings.HasPrefix(code, "23") // integrity_constraint_violation class
	},
}

// Advisory lock keys, arbitrary constants in one namespace with
// migrateLock's 2003069300 ("writ" in ASCII).
const (
	batchLockKey     = "2003069301"
	sequencerLockKey = "2003069302"
)

// pgCode returns the SQLSTATE of a PostgreSQL error in err's chain.
func pgCode(err error) (string, bool) {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return "", false
}

// openPostgres opens the write connection and the read pool of the
// PostgreSQL database at dsn (a postgres:// URL) and migrates it.
func (db *DB) openPostgres(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("sqlstore: DSN: %w", err)
	}
	name := u.Redacted()
	db.pgDSN = dsn
	db.wdb, err = sql.Open(db.d.driver, dsn)
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", name, err)
	}
	db.wdb.SetMaxOpenConns(1)
	db.wdb.SetMaxIdleConns(1)
	db.wdb.SetConnMaxLifetime(0)
	db.wdb.SetConnMaxIdleTime(0)
	db.wconn, err = db.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", name, err)
	}
	if err := db.migrate(ctx); err != nil {
		return err
	}
	// Readers never write: pgx passes unknown URL parameters to the server
	// as run-time settings.
	q := u.Query()
	q.Set("default_transaction_read_only", "on")
	u.RawQuery = q.Encode()
	db.rdb, err = sql.Open(db.d.driver, u.String())
	if err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", name, err)
	}
	db.rdb.SetMaxOpenConns(maxReadConns)
	db.rdb.SetMaxIdleConns(maxReadConns)
	if err := db.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: open %s: %w", name, err)
	}
	return nil
}
