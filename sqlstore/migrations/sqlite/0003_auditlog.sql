-- The audit log (docs/design.md §4.6): the single integrator gives each
-- committed outbox event its log index (seq) in commit order and records
-- its leaf hash, SHA-256(0x00 || body), when it logs it.
ALTER TABLE outbox ADD COLUMN seq INTEGER;
ALTER TABLE outbox ADD COLUMN leaf BLOB;
CREATE UNIQUE INDEX outbox_seq ON outbox (seq) WHERE seq IS NOT NULL;
CREATE INDEX outbox_unsequenced ON outbox (pos) WHERE seq IS NULL;
CREATE INDEX outbox_leaf ON outbox (leaf) WHERE leaf IS NOT NULL;

-- The Merkle tree's stored hashes, by tlog stored-hash index: what
-- inclusion and consistency proofs need, O(log n) reads each.
CREATE TABLE tlog_hashes (
	idx  INTEGER NOT NULL PRIMARY KEY,
	hash BLOB    NOT NULL
);

-- Signed checkpoints (C2SP signed notes). The newest is what the log
-- serves; older ones are kept sparsely (see PruneCheckpoints) so a
-- verifier can narrow down where a rewritten log went wrong.
CREATE TABLE checkpoints (
	size       INTEGER NOT NULL PRIMARY KEY,
	root       BLOB    NOT NULL,
	note       BLOB    NOT NULL,
	created_at INTEGER NOT NULL
);
