-- 0002: the index kinds and access paths of the full search (issue 4), the
-- same set as the SQLite store's 0003_search.sql.

-- _lastUpdated conditions and sorts within a type seek this index instead
-- of reading every resource of the type.
CREATE INDEX resources_type_lu ON resources (type, last_updated);

-- Date conditions that bound the row's upper end (gt, ge, eb, ap) seek by
-- hi; idx_date_range serves those that bound lo (eq, lt, le, sa).
CREATE INDEX idx_date_hi ON idx_date (param, hi, lo, type, rid);

-- Composite search parameters: one row per element instance holding every
-- part (store.Composite), so that a search ties the parts to the same
-- instance. Columns of absent parts are '' and 0.
CREATE TABLE idx_composite (
    rid       bigint NOT NULL,
    type      text COLLATE "C" NOT NULL,
    param     text COLLATE "C" NOT NULL,
    p0_system text COLLATE "C" NOT NULL,
    p0_code   text COLLATE "C" NOT NULL,
    p0_text   text COLLATE "C" NOT NULL,
    p0_lo     double precision NOT NULL,
    p0_hi     double precision NOT NULL,
    p1_system text COLLATE "C" NOT NULL,
    p1_code   text COLLATE "C" NOT NULL,
    p1_text   text COLLATE "C" NOT NULL,
    p1_lo     double precision NOT NULL,
    p1_hi     double precision NOT NULL,
    p2_system text COLLATE "C" NOT NULL,
    p2_code   text COLLATE "C" NOT NULL,
    p2_text   text COLLATE "C" NOT NULL,
    p2_lo     double precision NOT NULL,
    p2_hi     double precision NOT NULL
);
CREATE INDEX idx_composite_rid ON idx_composite (rid);
CREATE INDEX idx_composite_code ON idx_composite (param, left(p0_code, 256), type, rid);

-- Patient-compartment membership (store.Compartment), both ways: by rid
-- (the access filter probes it for every resource a query touches) and by
-- patient (Patient/x/Observation, $everything, the filter's lookups).
CREATE TABLE idx_compartment (
    rid       bigint NOT NULL,
    type      text COLLATE "C" NOT NULL,
    comp_type text COLLATE "C" NOT NULL,
    comp_id   text COLLATE "C" NOT NULL
);
CREATE INDEX idx_compartment_rid ON idx_compartment (rid, comp_type, comp_id);
CREATE INDEX idx_compartment_member ON idx_compartment (comp_type, left(comp_id, 256), type, rid);

-- _text and _content (store.Text): the terms of the value as a tsvector
-- built by the store itself (array_to_tsvector of the terms the contract
-- defines: runs of letters and digits), not by to_tsvector, whose parser
-- keeps "1.5" or "a-b" as one token where SQLite's FTS5 sees two; built
-- this way both stores match the same terms. GIN serves "every term".
CREATE TABLE idx_text (
    rid   bigint NOT NULL,
    type  text COLLATE "C" NOT NULL,
    param text COLLATE "C" NOT NULL,
    tsv   tsvector NOT NULL
);
CREATE INDEX idx_text_rid ON idx_text (rid);
CREATE INDEX idx_text_tsv ON idx_text USING gin (tsv);
