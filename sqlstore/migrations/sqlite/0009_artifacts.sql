-- Builds, releases and deployments (issue 12): an index from an artifact
-- digest to the events about it. The events themselves (build, release,
-- deployment, with the signed provenance or release attestation in their
-- details) are in the outbox and the audit log; this table only finds
-- them by digest, for the release gate and `writ trace ARTIFACT`.
CREATE TABLE artifact_events (
	digest      TEXT    NOT NULL,
	kind        TEXT    NOT NULL,             -- build, release, deployment
	environment TEXT    NOT NULL DEFAULT '',  -- release and deployment
	event       TEXT    NOT NULL,             -- outbox id of the event
	PRIMARY KEY (digest, kind, environment, event)
);
