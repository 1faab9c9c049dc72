-- 0001_init: runs, trigger replay and refusal records, human tokens and the
-- event outbox.
--
-- Times are BIGINT nanoseconds since the Unix epoch, UTC, so they compare
-- and sort as numbers. A NULL time means "not set" (the zero time.Time).
--
-- PostgreSQL mirror of migrations/sqlite, one file for one: INTEGER
-- timestamps and positions are BIGINT, BLOB is BYTEA, flags stay INTEGER
-- (0 or 1, bound as Go ints), and the outbox position is an identity column.

CREATE TABLE runs (
	id             TEXT    NOT NULL PRIMARY KEY,
	agent          TEXT    NOT NULL,
	profile        TEXT    NOT NULL,
	ticket_system  TEXT    NOT NULL,
	ticket_id      TEXT    NOT NULL,
	ticket_url     TEXT    NOT NULL,
	task           TEXT    NOT NULL,
	scope          TEXT    NOT NULL, -- writ.Scope as JSON
	scope_digest   TEXT    NOT NULL,
	trigger_id     TEXT    NOT NULL,
	trigger_digest TEXT    NOT NULL,
	issuer         TEXT    NOT NULL,
	signer_key     TEXT    NOT NULL,
	state          TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'ended', 'killed', 'expired')),
	created_at     BIGINT  NOT NULL,
	deadline       BIGINT  NOT NULL,
	ended_at       BIGINT,
	end_reason     TEXT    NOT NULL,
	parent         TEXT    REFERENCES runs (id),
	depth          INTEGER NOT NULL CHECK (depth >= 0)
);

-- Listing: newest first, optionally by state or agent.
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_state_created ON runs (state, created_at, id);
CREATE INDEX runs_agent_created ON runs (agent, created_at, id);
CREATE INDEX runs_parent ON runs (parent) WHERE parent IS NOT NULL;

-- The expiry loop: live runs by deadline. Partial, so it holds live runs only.
CREATE INDEX runs_live_deadline ON runs (deadline) WHERE state IN ('active', 'suspended');

-- Trigger ids that started a run, kept until the trigger expires so a replay
-- of the same signed trigger is refused.
CREATE TABLE trigger_replay (
	id         TEXT    NOT NULL PRIMARY KEY,
	digest     TEXT    NOT NULL,
	signer     TEXT    NOT NULL,
	run        TEXT    NOT NULL,
	expires_at BIGINT  NOT NULL,
	created_at BIGINT  NOT NULL
);
CREATE INDEX trigger_replay_expires ON trigger_replay (expires_at);

-- One row per (trigger digest, reason) that was refused and audited, so a
-- refused trigger sent again is not audited again.
CREATE TABLE trigger_refusals (
	digest     TEXT    NOT NULL,
	code       TEXT    NOT NULL,
	event      TEXT    NOT NULL, -- the id of the trigger.refused event
	expires_at BIGINT  NOT NULL,
	created_at BIGINT  NOT NULL,
	PRIMARY KEY (digest, code)
);
CREATE INDEX trigger_refusals_expires ON trigger_refusals (expires_at);

-- Human API tokens: only the SHA-256 of the secret part is stored.
CREATE TABLE human_tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	human      TEXT    NOT NULL,
	hash       BYTEA   NOT NULL,
	created_at BIGINT  NOT NULL,
	expires_at BIGINT,
	created_by TEXT    NOT NULL
);
CREATE INDEX human_tokens_human ON human_tokens (human);

-- The outbox: every event, as the exact bytes the audit log hashes, written
-- in the transaction of the change it records. pos is the commit order.
CREATE TABLE outbox (
	pos  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id   TEXT    NOT NULL UNIQUE,
	type TEXT    NOT NULL,
	run  TEXT,
	body BYTEA   NOT NULL
);
CREATE INDEX outbox_run ON outbox (run, pos) WHERE run IS NOT NULL;
