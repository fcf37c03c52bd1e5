-- The audit log's own file (auditdb.go), user_version 1: the tables
-- migration 0005 first created in the store's file, unchanged.
--
-- audit_entries holds one row per entry: idx is its Merkle leaf number
-- (0-based, no gaps), time Unix microseconds, patients and flags
-- space-separated (ids and flag codes never contain a space). The row is
-- everything the leaf hash is computed from (package audit), so verify
-- needs no other table to recompute the tree.
--
-- audit_patients is the person's own view: one row per (patient, entry),
-- searched newest first by its key, with restricted beside it so that the
-- person's view never reads an entry it will not show.
--
-- audit_hashes are the tree's stored hashes, numbered as tlog numbers them;
-- audit_head holds the size.
CREATE TABLE audit_head (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	size INTEGER NOT NULL
);
INSERT INTO audit_head (one, size) VALUES (1, 0);

CREATE TABLE audit_entries (
	idx        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	who_user   TEXT    NOT NULL,
	who_role   TEXT    NOT NULL,
	who_org    TEXT    NOT NULL,
	who_client TEXT    NOT NULL,
	patients   TEXT    NOT NULL,
	action     TEXT    NOT NULL,
	outcome    TEXT    NOT NULL,
	flags      TEXT    NOT NULL,
	restricted INTEGER NOT NULL,
	event      BLOB    NOT NULL
);
CREATE INDEX audit_by_user ON audit_entries (who_user, idx) WHERE who_user <> '';
CREATE INDEX audit_by_org ON audit_entries (who_org, idx) WHERE who_org <> '';
CREATE INDEX audit_by_time ON audit_entries (time, idx);
CREATE INDEX audit_flagged ON audit_entries (idx) WHERE flags <> '';

CREATE TABLE audit_patients (
	patient    TEXT    NOT NULL,
	idx        INTEGER NOT NULL,
	restricted INTEGER NOT NULL,
	PRIMARY KEY (patient, idx)
) WITHOUT ROWID;
-- Verification reads an entry's index rows by idx (store.AuditEntry.Indexed).
CREATE INDEX audit_patients_by_idx ON audit_patients (idx, patient);

CREATE TABLE audit_hashes (
	id   INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
	id   INTEGER PRIMARY KEY AUTOINCREMENT,
	size INTEGER NOT NULL,
	root BLOB    NOT NULL,
	note BLOB    NOT NULL,
	time INTEGER NOT NULL
);
CREATE INDEX audit_checkpoints_size ON audit_checkpoints (size, id);
