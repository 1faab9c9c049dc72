-- Webhook notification cursors (docs/design.md §4.10 `notify:`). The outbox is
-- the notifier's queue: each webhook remembers the outbox position up to
-- which it has handled events (delivered, dropped after its retries, or
-- skipped as not wanted), so a restart resumes where it stopped. A cursor
-- is bookkeeping, not a state change: moving one writes no audit event.
CREATE TABLE notify_cursors (
	name TEXT    NOT NULL PRIMARY KEY,
	pos  INTEGER NOT NULL
);
