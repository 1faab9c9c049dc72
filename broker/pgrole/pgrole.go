// Package pgrole is the broker's PostgreSQL backend: dynamic database
// roles the way Vault's database secrets engine makes them. Each lease is
// a new role, "writ_" + the lease's ULID, created with LOGIN, a random
// password, VALID UNTIL the lease's expiry and a connection limit, and
// granted exactly the permissions asked for (and allowed by the
// database's configuration and by policy):
//
//	read:<schema>   USAGE on the schema, SELECT on its tables and sequences
//	write:<schema>  read, plus INSERT, UPDATE, DELETE on its tables and
//	                USAGE on its sequences
//
// Revoking takes LOGIN away, terminates the role's sessions, drops what
// it owns or was granted (DROP OWNED) and drops the role. VALID UNTIL alone
// would not end sessions already open, which is why writ revokes at a
// lease's expiry too.
//
// Grants cover the tables that exist when the lease is issued; tables
// created later are not readable through it (as with Vault's usual
// creation statements).
//
// Part of the writ server; no API stability. With sqlstore, the only
// package that imports the PostgreSQL driver: it manages a target
// database, not writ's own store.
package pgrole

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/broker"
)

// Database is one target database runs may get roles on.
type Database struct {
	// Name is the credential target runs ask for.
	Name string
	// DSN connects as a role that may CREATE ROLE and grant on the
	// schemas (it comes from a file or the environment, never writ.yaml).
	DSN string
	// Allow lists the permissions a lease may have (read:<schema>,
	// write:<schema>); policy sees the same list.
	Allow []string
	// ConnLimit caps each role's connections (default 5).
	ConnLimit int
	// Owner names the writ installation (its trust domain). Each role is
	// commented with it, and [Source.Outstanding] lists only roles with
	// its comment, so installations sharing a PostgreSQL cluster (roles
	// are cluster-wide) never sweep each other's. Empty: roles are not
	// commented and nothing is listed.
	Owner string
}

// ownerComment is the comment on the roles of owner's leases on database
// name.
func ownerComment(owner, name string) string { return "writ lease role of " + owner + " on " + name }

// Source issues PostgreSQL roles on the configured databases.
type Source struct {
	dbs map[string]*database
}

type database struct {
	cfg  Database
	pool *pgxpool.Pool
	// What a run needs to connect, besides its role and password.
	host, dbname string
	port         uint16
}

var (
	_ broker.Source  = (*Source)(nil)
	_ broker.Planner = (*Source)(nil)
	_ broker.Lister  = (*Source)(nil)
)

// New connects to each database (lazily: a database that is down fails
// the leases on it, not writ's start).
func New(dbs []Database) (*Source, error) {
	s := &Source{dbs: make(map[string]*database)}
	for _, d := range dbs {
		if !writ.ValidName(d.Name) {
			return nil, fmt.Errorf("postgres database %q: want a short lowercase name", d.Name)
		}
		if _, dup := s.dbs[d.Name]; dup {
			return nil, fmt.Errorf("postgres database %q: configured twice", d.Name)
		}
		for _, p := range d.Allow {
			if _, _, err := parsePermission(p); err != nil {
				return nil, fmt.Errorf("postgres database %q: allow: %w", d.Name, err)
			}
		}
		if d.ConnLimit <= 0 {
			d.ConnLimit = 5
		}
		pc, err := pgxpool.ParseConfig(d.DSN)
		if err != nil {
			// The DSN may hold a password: never echo it.
			return nil, fmt.Errorf("postgres database %q: the admin DSN does not parse", d.Name)
		}
		pc.MaxConns = 4
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			return nil, fmt.Errorf("postgres database %q: %w", d.Name, err)
		}
		s.dbs[d.Name] = &database{cfg: d, pool: pool, host: pc.ConnConfig.Host, port: pc.ConnConfig.Port, dbname: pc.ConnConfig.Database}
	}
	return s, nil
}

// Close closes the connection pools.
func (s *Source) Close() {
	for _, d := range s.dbs {
		d.pool.Close()
	}
}

// Allowed returns each database's allowed permissions, for policy data.
func (s *Source) Allowed() map[string][]string {
	out := make(map[string][]string, len(s.dbs))
	for n, d := range s.dbs {
		out[n] = slices.Clone(d.cfg.Allow)
	}
	return out
}

// parsePermission splits read:<schema> or write:<schema>.
func parsePermission(p string) (access, schema string, err error) {
	access, schema, ok := strings.Cut(p, ":")
	if !ok || (access != "read" && access != "write") || !validIdent(schema) {
		return "", "", fmt.Errorf("permission %q: want read:<schema> or write:<schema>, the schema a lowercase SQL name", p)
	}
	return access, schema, nil
}

func validIdent(s string) bool {
	if s == "" || len(s) > 63 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] == '_') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// roleName is the role of a lease.
func roleName(lease string) (string, error) {
	ulid, ok := strings.CutPrefix(lease, "lse_")
	if !ok || len(ulid) != 26 {
		return "", fmt.Errorf("lease id %q is not lse_<ulid>", lease)
	}
	return "writ_" + strings.ToLower(ulid), nil
}

// Plan names the role before it exists: the handle is database + NUL +
// role.
func (s *Source) Plan(req *broker.IssueRequest) ([]byte, error) {
	if _, ok := s.dbs[req.Target]; !ok {
		return nil, s.unknown(req.Target)
	}
	role, err := roleName(req.Lease)
	if err != nil {
		return nil, err
	}
	return []byte(req.Target + "\x00" + role), nil
}

func (s *Source) unknown(target string) error {
	names := make([]string, 0, len(s.dbs))
	for n := range s.dbs {
		names = append(names, n)
	}
	slices.Sort(names)
	return writ.Errorf(writ.KindInvalid, "postgres_database_unknown", "no PostgreSQL database %q is configured for leases (configured: %s)", target, strings.Join(names, ", "))
}

// Issue creates the role with its grants, in one transaction.
func (s *Source) Issue(ctx context.Context, req *broker.IssueRequest) (*broker.Issued, error) {
	d, ok := s.dbs[req.Target]
	if !ok {
		return nil, s.unknown(req.Target)
	}
	if len(req.Permissions) == 0 {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_permissions", "a PostgreSQL lease needs permissions such as read:<schema>")
	}
	type grant struct{ access, schema string }
	var grants []grant
	for _, p := range req.Permissions {
		access, schema, err := parsePermission(p)
		if err != nil {
			return nil, writ.Errorf(writ.KindInvalid, "invalid_permissions", "%v", err)
		}
		if !slices.Contains(d.cfg.Allow, p) {
			return nil, writ.Errorf(writ.KindDenied, "postgres_permission_not_allowed", "permission %q is not allowed on database %q (allowed: %s)", p, d.cfg.Name, strings.Join(d.cfg.Allow, ", "))
		}
		grants = append(grants, grant{access, schema})
	}
	role, err := roleName(req.Lease)
	if err != nil {
		return nil, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	ident := pgx.Identifier{role}.Sanitize()
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", d.cfg.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The password and the time are from fixed alphabets (base64url,
	// RFC 3339); identifiers are quoted. CREATE ROLE takes no parameters.
	stmts := []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN NOINHERIT PASSWORD '%s' VALID UNTIL '%s' CONNECTION LIMIT %d",
			ident, password, req.ExpiresAt.UTC().Format(time.RFC3339), d.cfg.ConnLimit),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgx.Identifier{d.dbname}.Sanitize(), ident),
	}
	if d.cfg.Owner != "" {
		stmts = append(stmts, fmt.Sprintf("COMMENT ON ROLE %s IS '%s'", ident, strings.ReplaceAll(ownerComment(d.cfg.Owner, d.cfg.Name), "'", "''")))
	}
	for _, g := range grants {
		schema := pgx.Identifier{g.schema}.Sanitize()
		stmts = append(stmts,
			fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", schema, ident),
			fmt.Sprintf("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s", schema, ident),
			fmt.Sprintf("GRANT SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s", schema, ident))
		if g.access == "write" {
			stmts = append(stmts,
				fmt.Sprintf("GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s", schema, ident),
				fmt.Sprintf("GRANT USAGE ON ALL SEQUENCES IN SCHEMA %s TO %s", schema, ident))
		}
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			return nil, fmt.Errorf("postgres %s: creating role %s: %s", d.cfg.Name, role, pgMessage(err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres %s: creating role %s: %s", d.cfg.Name, role, pgMessage(err))
	}
	conn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s", d.host, d.port, d.dbname, role, password)
	return &broker.Issued{
		Credential: writ.Credential{
			"username": role, "password": password, "host": d.host, "port": fmt.Sprint(d.port), "database": d.dbname, "dsn": conn,
		},
		Handle:  []byte(d.cfg.Name + "\x00" + role),
		Details: map[string]string{"role": role, "database": d.dbname},
	}, nil
}

// pgMessage is a server error's message (never the statement, which holds
// the password).
func pgMessage(err error) string {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		msg := err.Error()
		if i := strings.Index(msg, "PASSWORD"); i >= 0 {
			msg = msg[:i]
		}
		return msg
	}
	return err.Error()
}

// Revoke drops the role: no new logins, sessions terminated, grants and
// owned objects dropped, role dropped. A role already gone is fine.
func (s *Source) Revoke(ctx context.Context, lease *writ.Lease, handle []byte) error {
	dbName, role, ok := strings.Cut(string(handle), "\x00")
	if !ok || !strings.HasPrefix(role, "writ_") || !validIdent(role) {
		return fmt.Errorf("postgres lease %s: malformed handle", lease.ID)
	}
	d, ok := s.dbs[dbName]
	if !ok {
		return fmt.Errorf("postgres lease %s: database %q is no longer configured", lease.ID, dbName)
	}
	var exists bool
	if err := d.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("postgres %s: %w", dbName, err)
	}
	if !exists {
		return nil
	}
	ident := pgx.Identifier{role}.Sanitize()
	if _, err := d.pool.Exec(ctx, "ALTER ROLE "+ident+" NOLOGIN"); err != nil {
		return fmt.Errorf("postgres %s: %s", dbName, pgMessage(err))
	}
	if _, err := d.pool.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role); err != nil {
		return fmt.Errorf("postgres %s: terminating %s's sessions: %s", dbName, role, pgMessage(err))
	}
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", dbName, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, q := range []string{"REASSIGN OWNED BY " + ident + " TO CURRENT_USER", "DROP OWNED BY " + ident, "DROP ROLE IF EXISTS " + ident} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres %s: dropping %s: %s", dbName, role, pgMessage(err))
		}
	}
	return tx.Commit(ctx)
}

// Outstanding lists the roles this installation made on each database
// ("writ_" and a lease's ULID, commented with [Database.Owner]) that still
// exist, for [broker.Broker.SweepOrphans].
func (s *Source) Outstanding(ctx context.Context) ([]broker.Outstanding, error) {
	var out []broker.Outstanding
	names := make([]string, 0, len(s.dbs))
	for n := range s.dbs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		d := s.dbs[name]
		if d.cfg.Owner == "" {
			continue
		}
		rows, err := d.pool.Query(ctx, `SELECT rolname FROM pg_roles WHERE rolname LIKE 'writ\_%' AND shobj_description(oid, 'pg_authid') = $1 ORDER BY rolname`,
			ownerComment(d.cfg.Owner, d.cfg.Name))
		if err != nil {
			return out, fmt.Errorf("postgres %s: list roles: %s", name, pgMessage(err))
		}
		roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return out, fmt.Errorf("postgres %s: list roles: %s", name, pgMessage(err))
		}
		for _, role := range roles {
			ulid, _ := strings.CutPrefix(role, "writ_")
			if len(ulid) != 26 || !validIdent(role) {
				continue // not a role of a lease: not writ's to drop
			}
			lease := "lse_" + ulid
			out = append(out, broker.Outstanding{Lease: lease, Handle: []byte(name + "\x00" + role), Where: name + "/" + role})
		}
	}
	return out, nil
}
