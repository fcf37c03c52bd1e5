-- 0001: the resource store, its history, the search index tables and the
-- node secrets.
--
-- Identifier-like text columns use the "C" collation: comparisons are
-- bytewise (as in SQLite), do not depend on the database's locale, and let a
-- plain btree serve prefix (LIKE 'abc%') searches.

-- resources holds one row per logical resource: a pointer (seq) to its
-- current version in resource_versions. rid is a compact surrogate key so
-- that index rows do not repeat (type, id); it is also the stable order in
-- which searches page (a resource keeps its place when it is updated).
CREATE TABLE resources (
    rid          bigint GENERATED ALWAYS AS IDENTITY,
    type         text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    version_id   bigint NOT NULL,
    seq          bigint NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean NOT NULL,
    PRIMARY KEY (type, id)
);
CREATE UNIQUE INDEX resources_rid ON resources (rid);
CREATE INDEX resources_type_rid ON resources (type, rid);

-- seq is the store-wide write sequence (store.Version.Seq): one value per
-- version written, increasing across all writes.
CREATE SEQUENCE resource_seq;

-- resource_versions keeps every version, the current one included. The body
-- is bytea because the contract returns it byte for byte as written (jsonb
-- would reorder keys and normalise numbers).
CREATE TABLE resource_versions (
    seq          bigint PRIMARY KEY,
    type         text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    version_id   bigint NOT NULL,
    last_updated timestamptz NOT NULL,
    deleted      boolean NOT NULL,
    body         bytea,
    UNIQUE (type, id, version_id)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (type, seq);

-- One narrow table per kind of search index row (store.Index), holding rows
-- of current versions only. rid points at resources.rid; there is no foreign
-- key because the store replaces a resource's rows in the same transaction
-- that writes the version, and a foreign key check per row would cost ingest
-- time for nothing. Each table has a rid index (to replace a resource's rows)
-- and a search index that leads with param and the value, then type and rid
-- (as in the SQLite store): a value is the selective part, system-level
-- searches (no type) use the same index, and rid at the end lets the
-- planner answer "rid IN (...)" from the index alone.
--
-- Long text is indexed through left(col, 256): a btree entry must stay under
-- about 2.7 kB and FHIR strings have no length limit. Queries compare
-- left(col, 256) first (to use the index) and then the whole value, so the
-- truncation never widens a result.
CREATE TABLE idx_token (
    rid    bigint NOT NULL,
    type   text COLLATE "C" NOT NULL,
    param  text COLLATE "C" NOT NULL,
    system text COLLATE "C" NOT NULL,
    code   text COLLATE "C" NOT NULL,
    text   text NOT NULL
);
CREATE INDEX idx_token_rid ON idx_token (rid);
CREATE INDEX idx_token_code ON idx_token (param, left(code, 256), left(system, 256), type, rid);

CREATE TABLE idx_string (
    rid   bigint NOT NULL,
    type  text COLLATE "C" NOT NULL,
    param text COLLATE "C" NOT NULL,
    norm  text COLLATE "C" NOT NULL,
    exact text COLLATE "C" NOT NULL
);
CREATE INDEX idx_string_rid ON idx_string (rid);
CREATE INDEX idx_string_norm ON idx_string (param, left(norm, 256), type, rid);

CREATE TABLE idx_date (
    rid   bigint NOT NULL,
    type  text COLLATE "C" NOT NULL,
    param text COLLATE "C" NOT NULL,
    lo    bigint NOT NULL,
    hi    bigint NOT NULL
);
CREATE INDEX idx_date_rid ON idx_date (rid);
CREATE INDEX idx_date_range ON idx_date (param, lo, hi, type, rid);

CREATE TABLE idx_number (
    rid   bigint NOT NULL,
    type  text COLLATE "C" NOT NULL,
    param text COLLATE "C" NOT NULL,
    lo    double precision NOT NULL,
    hi    double precision NOT NULL
);
CREATE INDEX idx_number_rid ON idx_number (rid);
CREATE INDEX idx_number_range ON idx_number (param, lo, hi, type, rid);

CREATE TABLE idx_quantity (
    rid    bigint NOT NULL,
    type   text COLLATE "C" NOT NULL,
    param  text COLLATE "C" NOT NULL,
    system text COLLATE "C" NOT NULL,
    code   text COLLATE "C" NOT NULL,
    lo     double precision NOT NULL,
    hi     double precision NOT NULL
);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid);
CREATE INDEX idx_quantity_range ON idx_quantity (param, left(code, 256), lo, hi, type, rid);

CREATE TABLE idx_reference (
    rid      bigint NOT NULL,
    type     text COLLATE "C" NOT NULL,
    param    text COLLATE "C" NOT NULL,
    ref_type text COLLATE "C" NOT NULL,
    ref_id   text COLLATE "C" NOT NULL,
    url      text COLLATE "C" NOT NULL
);
CREATE INDEX idx_reference_rid ON idx_reference (rid);
-- Serves both "subject=Patient/1" and _revinclude (who points at these ids).
CREATE INDEX idx_reference_target ON idx_reference (param, left(ref_id, 256), left(ref_type, 256), type, rid);
CREATE INDEX idx_reference_url ON idx_reference (param, left(url, 256), type, rid) WHERE url <> '';

CREATE TABLE idx_uri (
    rid   bigint NOT NULL,
    type  text COLLATE "C" NOT NULL,
    param text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL
);
CREATE INDEX idx_uri_rid ON idx_uri (rid);
CREATE INDEX idx_uri_value ON idx_uri (param, left(value, 256), type, rid);

-- secrets holds node-wide secrets (token signing keys), shared by every
-- process that uses this database.
CREATE TABLE secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
