-- Decisions of the policy decision point (DESIGN.md §4.4). The audit log
-- holds the same decision as one `decision` event; this table is the
-- run's history that policy reads (budgets, thresholds, scope creep) and
-- where outcomes are attached. Action arguments are kept here, never in
-- the log.
CREATE TABLE decisions (
	id            TEXT    PRIMARY KEY,
	run           TEXT    NOT NULL,
	time          INTEGER NOT NULL,
	kind          TEXT    NOT NULL,
	name          TEXT    NOT NULL,
	verdict       TEXT    NOT NULL CHECK (verdict IN ('allow', 'deny', 'approval_required')),
	via           TEXT    NOT NULL,
	call_ref      TEXT    NOT NULL,
	dry_run       INTEGER NOT NULL,
	enforced      INTEGER NOT NULL,
	approval      TEXT,
	body          BLOB    NOT NULL,
	outcome       BLOB,
	outcome_at    INTEGER
);
CREATE INDEX decisions_run ON decisions (run, time);
-- A hook's repeated call (same run, via and callRef) is one decision.
CREATE UNIQUE INDEX decisions_call_ref ON decisions (run, via, call_ref) WHERE call_ref <> '' AND dry_run = 0;

-- Approval requests created by approval_required decisions. The approvals
-- issue adds signatures and resolution; identical pending requests are one.
CREATE TABLE approvals (
	id             TEXT    PRIMARY KEY,
	run            TEXT    NOT NULL,
	decision       TEXT    NOT NULL,
	subject_kind   TEXT    NOT NULL,
	subject_digest TEXT    NOT NULL,
	state          TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'voided', 'expired')),
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	body           BLOB    NOT NULL
);
CREATE UNIQUE INDEX approvals_pending ON approvals (run, subject_kind, subject_digest) WHERE state = 'pending';
CREATE INDEX approvals_state ON approvals (state, expires_at);
