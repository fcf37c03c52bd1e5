-- 0001: the first schema, built for the full search engine (issue 4).
--
-- resources holds one row per logical resource: its current version, as a
-- pointer (seq) into resource_versions, which holds every version's body once.
-- rid is the resource's stable internal key: index rows refer to it, search
-- pages are ordered by it (it never changes on update, and new resources get
-- larger rids, so keyset cursors neither skip nor repeat unchanged rows).
CREATE TABLE resources (
	rid          INTEGER PRIMARY KEY,
	type         TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	seq          INTEGER NOT NULL, -- resource_versions.seq of the current version
	last_updated INTEGER NOT NULL, -- Unix microseconds
	deleted      INTEGER NOT NULL DEFAULT 0,
	idx_mask     INTEGER NOT NULL DEFAULT 0, -- bit per idx_* table holding rows for rid
	UNIQUE (type, id)
);
-- Type-level scans in rid order (search without clauses); rid is implicit.
CREATE INDEX resources_type ON resources (type);

-- resource_versions holds every version ever written. seq is the store-wide
-- write sequence: the single writer assigns it, so it is strictly increasing
-- in commit order, and history pages by it.
CREATE TABLE resource_versions (
	seq          INTEGER PRIMARY KEY,
	rid          INTEGER NOT NULL,
	type         TEXT    NOT NULL,
	version      INTEGER NOT NULL,
	last_updated INTEGER NOT NULL, -- Unix microseconds
	deleted      INTEGER NOT NULL DEFAULT 0,
	body         BLOB              -- NULL for a deletion marker
);
CREATE UNIQUE INDEX resource_versions_rid ON resource_versions (rid, version);
-- Type history newest first; seq is implicit.
CREATE INDEX resource_versions_type ON resource_versions (type);

-- Search index tables, one per kind of search parameter (store/index.go).
-- Each carries the resource type so that type-level searches stay inside the
-- index, and has a covering search index ending in rid.
--
-- The rowid of an index row is rid << 16 | n, n being the row's position
-- among the resource's rows of that kind, so a resource's rows are one
-- rowid range: replacing them on update is a range delete on the table,
-- with no separate rid index to maintain on every insert (measured: a
-- third fewer B-tree inserts per index row).
CREATE TABLE idx_token (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid    INTEGER NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	system TEXT    NOT NULL,
	code   TEXT    NOT NULL,
	text   TEXT    NOT NULL
);
CREATE INDEX idx_token_code ON idx_token (param, code, system, type, rid);

CREATE TABLE idx_string (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	norm  TEXT    NOT NULL,
	exact TEXT    NOT NULL
);
CREATE INDEX idx_string_norm ON idx_string (param, norm, type, rid);

CREATE TABLE idx_date (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	lo    INTEGER NOT NULL, -- Unix milliseconds, inclusive
	hi    INTEGER NOT NULL  -- Unix milliseconds, inclusive
);
CREATE INDEX idx_date_lo ON idx_date (param, lo, hi, type, rid);

CREATE TABLE idx_number (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	lo    REAL    NOT NULL,
	hi    REAL    NOT NULL
);
CREATE INDEX idx_number_lo ON idx_number (param, lo, hi, type, rid);

CREATE TABLE idx_quantity (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid    INTEGER NOT NULL,
	type   TEXT    NOT NULL,
	param  TEXT    NOT NULL,
	system TEXT    NOT NULL,
	code   TEXT    NOT NULL,
	lo     REAL    NOT NULL,
	hi     REAL    NOT NULL
);
CREATE INDEX idx_quantity_lo ON idx_quantity (param, code, lo, hi, type, rid);

CREATE TABLE idx_reference (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid      INTEGER NOT NULL,
	type     TEXT    NOT NULL,
	param    TEXT    NOT NULL,
	ref_type TEXT    NOT NULL,
	ref_id   TEXT    NOT NULL,
	url      TEXT    NOT NULL
);
CREATE INDEX idx_reference_target ON idx_reference (param, ref_id, ref_type, type, rid);
CREATE INDEX idx_reference_url ON idx_reference (param, url) WHERE url <> '';

CREATE TABLE idx_uri (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid   INTEGER NOT NULL,
	type  TEXT    NOT NULL,
	param TEXT    NOT NULL,
	value TEXT    NOT NULL
);
CREATE INDEX idx_uri_value ON idx_uri (param, value, type, rid);

-- Node secrets (token signing keys and the like), created once.
CREATE TABLE secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
