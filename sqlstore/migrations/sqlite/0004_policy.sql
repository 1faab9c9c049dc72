-- Decisions of the policy decision point (docs/design.md §4.4). The audit log
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

-- Approval requests created by approval_required decisions (docs/design.md
-- §4.5): pending, then approved (enough distinct humans signed), denied,
-- voided (the subject changed, the policy changed), expired, or used (the
-- gated action consumed it: an approval is single-use). Identical live
-- requests (same run, subject kind and digest) are one. slot names what the
-- subject is of (a branch, a secret in an environment, a tool), so a new
-- subject in the same slot voids the old one.
CREATE TABLE approvals (
	id             TEXT    PRIMARY KEY,
	run            TEXT    NOT NULL,
	decision       TEXT    NOT NULL,
	subject_kind   TEXT    NOT NULL,
	subject_digest TEXT    NOT NULL,
	slot           TEXT    NOT NULL,
	state          TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'voided', 'expired', 'used')),
	used_by        TEXT,
	created_at     INTEGER NOT NULL,
	expires_at     INTEGER NOT NULL,
	body           BLOB    NOT NULL
);
CREATE UNIQUE INDEX approvals_live ON approvals (run, subject_kind, subject_digest) WHERE state IN ('pending', 'approved');
CREATE INDEX approvals_slot ON approvals (run, slot) WHERE state IN ('pending', 'approved');
CREATE INDEX approvals_state ON approvals (state, expires_at);

-- One row per human who signed a verdict on an approval request: the exact
-- statement they signed, their envelope, and writ's countersignature.
CREATE TABLE approval_grants (
	approval         TEXT    NOT NULL REFERENCES approvals (id),
	human            TEXT    NOT NULL,
	verdict          TEXT    NOT NULL CHECK (verdict IN ('approve', 'deny')),
	key_id           TEXT    NOT NULL,
	format           TEXT    NOT NULL,
	statement        BLOB    NOT NULL,
	envelope         BLOB    NOT NULL,
	countersignature BLOB    NOT NULL,
	time             INTEGER NOT NULL,
	PRIMARY KEY (approval, human)
);
