// Package sqlstore is writ's database: runs, the trigger ids that started
// them, refused triggers, human API tokens and the event outbox, in SQL
// through database/sql. It is part of the writ server; no API stability.
//
// SQLite (modernc.org/sqlite, pure Go, so CGO_ENABLED=0 builds work) is the
// embedded default; PostgreSQL (github.com/jackc/pgx/v5 through its
// database/sql driver, a postgres:// DSN) runs the same conformance suite.
// For now one writ process writes a PostgreSQL database at a time: the
// single writer below is per process, and several replicas (an elected
// sequencer for the audit log, LISTEN/NOTIFY for run changes) are still to
// come. What differs between databases is confined to a
// small dialect value (placeholders, insert-or-ignore and upsert, how a
// constraint violation looks, how a write transaction starts) and to one
// directory of numbered migrations per dialect under migrations/, embedded
// in the binary and applied in order by [Open], each in its own transaction
// and recorded in schema_migrations. A database whose schema is newer than
// the binary is refused rather than used.
//
// # Events
//
// Every mutation takes the [writ.Event] values that record it and writes
// them into the outbox table in the same transaction as the change: a
// change is never stored without its events, nor an event without its
// change. The store fills in each event's ID (a new ULID when empty) and
// Time (the commit time of the transaction, which is also the time written
// into the changed rows, such as a run's ended_at), serializes it once with
// [writ.Event.Marshal] and stores those bytes verbatim. [DB.Events] reads
// them back in commit order for the audit log's integrator. Commit times
// never go backwards, so after the clock steps back they run ahead of it;
// they decide nothing: deadline checks read the clock itself, as package
// runs does (docs/design.md §5).
//
// # One writer, group commit
//
// All writes go through one goroutine that owns the only write connection.
// A method that writes hands the writer a function and waits. The writer
// takes every request queued at that moment (up to 256) as one
// batch, opens one transaction (BEGIN IMMEDIATE), and runs each request's
// function inside its own SAVEPOINT: a request whose function fails is
// rolled back to its savepoint alone and gets its error, and the others in
// the batch are unaffected. Then one COMMIT makes the whole batch durable,
// and only then does each waiting method return nil. If the COMMIT fails,
// every request in the batch fails. A request whose context is done before
// its batch starts is skipped with the context's error; once its batch has
// started, the method waits for the batch's outcome, so an error return
// after a cancelled context means the change was not committed.
//
// So durability is paid per batch, not per request: under load, many
// requests share one commit, which is what makes the write throughput of
// SQLite enough for a busy server. Requests in a batch see each other's
// writes in order (two requests with the same trigger id in one batch: the
// second one is refused as a replay).
//
// Reads use a separate pool of read-only connections. SQLite's WAL mode
// (or PostgreSQL's MVCC) lets them read concurrently with the writer, each
// from the last committed state, so a read started after a write returned
// sees that write.
//
// # Durability
//
// "Acknowledged" means committed before the method returned. The database
// runs in WAL mode. With Durability "normal" (the default,
// synchronous=NORMAL) a committed transaction survives the writ process
// being killed (kill -9), but the last transactions before a power loss or
// an operating-system crash may be lost. With "full" (synchronous=FULL)
// every commit is synced to disk before it is acknowledged and survives
// power loss too, at the cost of one fsync per batch. On PostgreSQL the
// server's own settings (synchronous_commit) decide instead.
//
// # Security properties
//
// Only the SHA-256 hash of a human token's secret is stored. A trigger id is
// recorded in the same transaction as the run it starts, so a replayed
// trigger is refused even when both copies arrive in one batch. Pruned
// trigger ids and DPoP proof jtis stay refused: a prune raises a replay
// horizon ([DB.ReplayHorizon]) by the database's clock in the transaction
// that deletes them, and recording an id checks it in the transaction
// that inserts it. Errors
// returned to callers as [writ.Error] carry messages safe to show; other
// errors are internal.
package sqlstore
