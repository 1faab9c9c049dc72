-- Signing key history: the public half of every identity (and later log
-- and attest) key. The current key of a kind has retired_at NULL; a retired
-- key stays published until not_after.
CREATE TABLE signing_keys (
	kind       TEXT    NOT NULL CHECK (kind IN ('identity', 'log', 'attest')),
	id         TEXT    NOT NULL,
	public     BYTEA   NOT NULL,
	created_at BIGINT  NOT NULL,
	retired_at BIGINT,
	not_after  BIGINT,
	PRIMARY KEY (kind, id)
);
CREATE UNIQUE INDEX signing_keys_current ON signing_keys (kind) WHERE retired_at IS NULL;

-- DPoP proof replay cache (RFC 9449 §11.1): a proof's jti is single-use per
-- key until the proof is too old to be accepted anyway. In the store, so
-- every replica sees every use.
CREATE TABLE dpop_proofs (
	jkt        TEXT    NOT NULL,
	jti        TEXT    NOT NULL,
	expires_at BIGINT  NOT NULL,
	PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires_at);
