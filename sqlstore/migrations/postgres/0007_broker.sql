-- Leases of the credential broker (docs/design.md §2 "lease"): one issued
-- credential bound to its run. The credential itself is never stored: a
-- credential writ checks itself (git) keeps only the SHA-256 of its secret
-- part (verifier), and what a backend needs to revoke it (handle) is
-- sealed by the broker's key when one is configured.
--
-- The revocation queue is this table: a lease is due when it is still
-- issuing or active and its run is no longer active, it has expired, or
-- someone asked (revoke_reason set). The run's state change and the
-- lease's row are both durable, so no revocation is lost across a restart;
-- claim_until keeps two replicas from revoking the same lease at once.
CREATE TABLE leases (
	id            TEXT    PRIMARY KEY,
	run           TEXT    NOT NULL REFERENCES runs (id),
	kind          TEXT    NOT NULL,
	target        TEXT    NOT NULL,
	state         TEXT    NOT NULL CHECK (state IN ('issuing', 'active', 'revoked')),
	issued_at     BIGINT  NOT NULL,
	expires_at    BIGINT  NOT NULL,
	revoked_at    BIGINT,
	revoke_reason TEXT    NOT NULL DEFAULT '',
	attempts      INTEGER NOT NULL DEFAULT 0,
	next_attempt  BIGINT  NOT NULL DEFAULT 0,
	claim_until   BIGINT  NOT NULL DEFAULT 0,
	alerted       INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT    NOT NULL DEFAULT '',
	verifier      BYTEA,
	handle        BYTEA,
	body          BYTEA   NOT NULL
);
CREATE INDEX leases_run ON leases (run);
-- The revoker's scan: only leases not yet revoked, a handful at any time.
CREATE INDEX leases_live ON leases (expires_at) WHERE state <> 'revoked';

-- Static secrets (the broker's "secret" backend), sealed with a key the
-- store never sees; additional data binds each sealed value to its
-- environment, name and version, so rows cannot be swapped.
CREATE TABLE secrets (
	environment TEXT    NOT NULL,
	name        TEXT    NOT NULL,
	version     INTEGER NOT NULL,
	sealed      BYTEA   NOT NULL,
	updated_at  BIGINT  NOT NULL,
	updated_by  TEXT    NOT NULL,
	PRIMARY KEY (environment, name)
);
