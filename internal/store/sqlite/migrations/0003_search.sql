-- 0003: the index kinds and access paths of the full search (issue 4).
--
-- _lastUpdated conditions and sorts within a type seek this index instead
-- of reading every resource of the type.
CREATE INDEX resources_type_lu ON resources (type, last_updated);

-- Date conditions that bound the row's upper end (gt, ge, eb, ap) seek by
-- hi; idx_date_lo serves those that bound lo (eq, lt, le, sa).
CREATE INDEX idx_date_hi ON idx_date (param, hi, lo, type, rid);

-- Composite search parameters: one row per element instance holding every
-- part (store.Composite), so that a search ties the parts to the same
-- instance. Columns of absent parts are '' and 0. Keyed rid << 16 | n like
-- every index table.
CREATE TABLE idx_composite (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid       INTEGER NOT NULL,
	type      TEXT    NOT NULL,
	param     TEXT    NOT NULL,
	p0_system TEXT    NOT NULL,
	p0_code   TEXT    NOT NULL,
	p0_text   TEXT    NOT NULL,
	p0_lo     REAL    NOT NULL,
	p0_hi     REAL    NOT NULL,
	p1_system TEXT    NOT NULL,
	p1_code   TEXT    NOT NULL,
	p1_text   TEXT    NOT NULL,
	p1_lo     REAL    NOT NULL,
	p1_hi     REAL    NOT NULL,
	p2_system TEXT    NOT NULL,
	p2_code   TEXT    NOT NULL,
	p2_text   TEXT    NOT NULL,
	p2_lo     REAL    NOT NULL,
	p2_hi     REAL    NOT NULL
);
CREATE INDEX idx_composite_code ON idx_composite (param, p0_code, type, rid);

-- Patient-compartment membership (store.Compartment). By rid it is a key
-- range like every index table (the access filter probes it for every
-- resource a query touches); by patient it is idx_compartment_member
-- (Patient/x/Observation, $everything, the filter's driving lookups).
CREATE TABLE idx_compartment (
	key INTEGER PRIMARY KEY, -- rid << 16 | n
	rid       INTEGER NOT NULL,
	type      TEXT    NOT NULL,
	comp_type TEXT    NOT NULL,
	comp_id   TEXT    NOT NULL
);
CREATE INDEX idx_compartment_member ON idx_compartment (comp_type, comp_id, type, rid);

-- _text and _content (store.Text): a contentless FTS5 table (the values
-- are never read back, only matched), rowid = rid << 16 | n, the value in
-- the column of its parameter. contentless_delete lets an update delete a
-- resource's rows by rowid range without supplying the old values. The
-- engine normalises values already; unicode61 splits terms at what is not
-- a letter or digit, which is the contract's definition of a term.
CREATE VIRTUAL TABLE idx_text USING fts5 (
	t_text, t_content,
	content = '', contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 0'
);
