package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations
var migrationsFS embed.FS

// A migration is one numbered SQL script.
type migration struct {
	version int
	name    string // the file name
	sql     string
}

// migrations returns d's migrations in version order. File names are
// NNNN_description.sql; versions start at 1 and have no gaps.
func (d *dialect) loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationsFS, d.migrations)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("sqlstore: migration %s: name must be NNNN_description.sql", name)
		}
		b, err := fs.ReadFile(migrationsFS, path.Join(d.migrations, name))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("sqlstore: migration %s: want version %d (versions start at 1 with no gaps or repeats)", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, in
// order, each in its own transaction together with its record. It runs on
// the write connection before the writer starts. Another process migrating
// the same database at once is safe: the write lock (on PostgreSQL, an
// advisory lock held for the whole migration) serializes the two, and each
// migration is applied only if, holding the lock, it is still missing.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := db.d.loadMigrations()
	if err != nil {
		return err
	}
	c := db.wconn
	if db.d.migrateLock != "" {
		if _, err := c.ExecContext(ctx, db.d.migrateLock); err != nil {
			return fmt.Errorf("sqlstore: migrate: lock: %w", err)
		}
		defer func() {
			if _, err := c.ExecContext(context.Background(), db.d.migrateUnlock); err != nil {
				db.log.ErrorContext(ctx, "unlock migrations", slog.Any("error", err))
			}
		}()
	}
	if _, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT NOT NULL PRIMARY KEY,
	applied_at BIGINT NOT NULL
)`); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	applied, err := appliedVersions(ctx, c)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	for v := range applied {
		if v > len(ms) {
			return fmt.Errorf("sqlstore: the database schema has version %d but this writ knows versions up to %d; run a newer writ", v, len(ms))
		}
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		if err := db.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func appliedVersions(ctx context.Context, c *sql.Conn) (map[int]bool, error) {
	rows, err := c.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := make(map[int]bool)
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (db *DB) apply(ctx context.Context, m migration) (err error) {
	c := db.wconn
	if _, err := c.ExecContext(ctx, db.d.begin); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
	}
	defer func() {
		if err != nil {
			if _, rerr := c.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				db.log.ErrorContext(ctx, "rollback failed migration", slog.String("migration", m.name), slog.Any("error", rerr))
			}
		}
	}()
	var n int
	if err := c.QueryRowContext(ctx, db.d.q("SELECT COUNT(*) FROM schema_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
	}
	if n > 0 { // another process applied it meanwhile
		_, err := c.ExecContext(ctx, "COMMIT")
		return err
	}
	if _, err := c.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
	}
	if _, err := c.ExecContext(ctx, db.d.q("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"), m.version, db.now().UnixNano()); err != nil {
		return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("sqlstore: migration %s: commit: %w", m.name, err)
	}
	db.log.InfoContext(ctx, "applied migration", slog.Int("version", m.version), slog.String("migration", m.name))
	return nil
}
