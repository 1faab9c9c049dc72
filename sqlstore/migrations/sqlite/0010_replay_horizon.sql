-- Replay horizons (docs/design.md §4.1, §4.2, issue 21).
--
-- One row per kind of one-time id ('trigger': trigger_replay, 'dpop':
-- dpop_proofs). horizon (Unix nanoseconds, by the database's clock) only
-- moves forward, in the transaction of the prune that deletes the ids
-- whose expiry is at or before it; an id whose expiry is at or before the
-- horizon is refused even when its row is gone (a clock stepped back, a
-- restored database, a replica whose clock is behind).
CREATE TABLE replay_horizon (
	kind    TEXT    NOT NULL PRIMARY KEY,
	horizon INTEGER NOT NULL
);
INSERT INTO replay_horizon (kind, horizon) VALUES ('trigger', 0), ('dpop', 0);
