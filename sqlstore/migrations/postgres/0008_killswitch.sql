-- Heartbeats and kill switches (docs/design.md §4.3, issue 13). PostgreSQL mirror
-- of migrations/sqlite/0008_killswitch.sql.
--
-- heartbeat_at is the last heartbeat a launcher sent for the run (NULL:
-- none ever; such a run is never killed for silence). One UPDATE per
-- heartbeat, no event: the heartbeat loop reads this column to kill runs
-- whose launcher went silent.
ALTER TABLE runs ADD COLUMN heartbeat_at BIGINT;
CREATE INDEX runs_live_heartbeat ON runs (heartbeat_at) WHERE heartbeat_at IS NOT NULL AND state IN ('active', 'suspended');

-- Agents an admin disabled: no run of theirs starts until re-enabled.
CREATE TABLE disabled_agents (
	name        TEXT    NOT NULL PRIMARY KEY,
	disabled_at BIGINT  NOT NULL,
	disabled_by TEXT    NOT NULL,
	reason      TEXT    NOT NULL
);

-- The global freeze: one row while it is on.
CREATE TABLE global_freeze (
	id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	frozen_at BIGINT  NOT NULL,
	frozen_by TEXT    NOT NULL,
	reason    TEXT    NOT NULL
);

-- The runs the freeze suspended, resumed when it is lifted (the others
-- stay as they were).
CREATE TABLE freeze_suspended (
	run TEXT NOT NULL PRIMARY KEY REFERENCES runs (id)
);
