-- The write probe (docs/design.md §4.8, issue 22): DB.Writable updates
-- this one row, so /readyz fails while the store cannot commit a write (a
-- full disk, a read-only file system, a database that is down), not only
-- while it cannot answer a ping.
CREATE TABLE write_probe (
	id      INTEGER NOT NULL PRIMARY KEY,
	n       BIGINT  NOT NULL,
	written BIGINT  NOT NULL
);
INSERT INTO write_probe (id, n, written) VALUES (1, 0, 0);
