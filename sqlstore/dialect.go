package sqlstore

import (
	"errors"
	"strconv"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// A dialect is what differs between the SQL databases the store runs on.
// Queries are written once, in the common subset of SQLite and PostgreSQL,
// with ? placeholders; the dialect rewrites what must differ.
//
// SQLite (sqliteDialect) and PostgreSQL (postgresDialect, pgx's stdlib
// driver) are implemented; each has its migrations directory and its DSN
// prefixes in [parseDSN], and how a connection is opened differs in
// [DB.open]. Nothing else in the package names a database.
type dialect struct {
	name string
	// driver is the database/sql driver name.
	driver string
	// migrations is the directory of this dialect's numbered migrations
	// inside the embedded migrations tree.
	migrations string
	// numbered is true when placeholders are $1, $2, … rather than ?.
	numbered bool
	// begin starts a write transaction that already holds the write lock,
	// so a batch never fails half-way for want of it.
	begin string
	// uniqueViolation reports whether err is a unique or primary-key
	// constraint violation.
	uniqueViolation func(error) bool
	// constraintViolation reports whether err is any constraint violation
	// (unique, foreign key, check, not null).
	constraintViolation func(error) bool
	// liveByDeadline is the FROM clause that reads live runs in deadline
	// order. SQLite's planner prefers the (state, …) index for
	// "state IN (…)" and so scans every live run; naming the partial index
	// keeps the expiry queries O(due runs).
	liveByDeadline string
	// migrateLock and migrateUnlock, when set, are run on the write
	// connection around applying migrations, so that several processes
	// migrating the same database at once apply each migration once. (On
	// SQLite the BEGIN IMMEDIATE of each migration does that.)
	migrateLock, migrateUnlock string
	// reconnect is true when the write connection can break (a server on
	// the network) and the writer opens a new one when BEGIN fails.
	reconnect bool
	// batchLock, when set, runs right after begin in every write batch:
	// it serializes the batches of several processes (replicas) writing
	// the same database, so that outbox positions are committed in the
	// order they are handed out and each batch reads what the batches
	// before it committed. (On SQLite BEGIN IMMEDIATE does that.)
	batchLock string
	// clock, when set, is a query of the database's own clock in Unix
	// nanoseconds, read by prunes so that every replica moves the replay
	// horizons by the same clock. Unset (SQLite, one writing process):
	// the store's clock.
	clock string
	// notify is true when the writer notifies other processes of its
	// commits (PostgreSQL's NOTIFY) and [DB.listen] listens for theirs.
	notify bool
}

// sqliteDialect is SQLite through modernc.org/sqlite.
var sqliteDialect = &dialect{
	name:       "sqlite",
	driver:     "sqlite",
	migrations: "migrations/sqlite",
	// IMMEDIATE takes the write lock at BEGIN: with one writer per process
	// it never waits, and busy_timeout covers another process (writ
	// migrate) holding the file.
	begin:          "BEGIN IMMEDIATE",
	liveByDeadline: "runs INDEXED BY runs_live_deadline",
	uniqueViolation: func(err error) bool {
		code, ok := sqliteCode(err)
		return ok && (code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	constraintViolation: func(err error) bool {
		code, ok := sqliteCode(err)
		return ok && code&0xff == sqlite3.SQLITE_CONSTRAINT
	},
}

// sqliteCode returns the extended result code of a SQLite error in err's
// chain.
func sqliteCode(err error) (int, bool) {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code(), true
	}
	return 0, false
}

// q returns query with its ? placeholders in this dialect's form. Queries
// hold no ? other than placeholders (no string literals with one).
func (d *dialect) q(query string) string {
	if !d.numbered {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// insertIgnore returns an INSERT of cols into table that does nothing when
// a row with the same conflict key exists; the statement's RowsAffected
// tells which happened. Both SQLite (3.24+) and PostgreSQL spell it ON
// CONFLICT … DO NOTHING; a dialect that does not would branch here.
func (d *dialect) insertIgnore(table, conflict string, cols ...string) string {
	return d.q("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" +
		placeholders(len(cols)) + ") ON CONFLICT (" + conflict + ") DO NOTHING")
}

// upsert returns an INSERT of cols into table that, when a row with the same
// conflict key exists, sets the columns in update to the new values instead.
func (d *dialect) upsert(table, conflict string, cols []string, update ...string) string {
	set := make([]string, len(update))
	for i, c := range update {
		set[i] = c + " = excluded." + c
	}
	return d.q("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" +
		placeholders(len(cols)) + ") ON CONFLICT (" + conflict + ") DO UPDATE SET " + strings.Join(set, ", "))
}

// placeholders returns n comma-separated ? placeholders.
func placeholders(n int) string {
	if n == 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}
