-- 0008: each token row carries the span of its resource's "date" rows
-- (date_lo the earliest lo, date_hi the latest hi), so that a search by a
-- code and a date range (Observation?code=...&date=ge2021&date=lt2022)
-- walks the code's rows and drops, inside the index, those whose resource
-- cannot have a date in the range, before probing the dates of the rest.
-- Every date prefix but ne implies a bound on that span (see
-- translate.go, spanPred), so the test only ever narrows what is probed.
-- A resource without "date" rows has date_lo the largest bigint and
-- date_hi the smallest (no range holds it); NULL, on rows written before
-- this migration that it does not reach, means unknown: probed as before.
ALTER TABLE idx_token ADD COLUMN date_lo bigint, ADD COLUMN date_hi bigint;

UPDATE idx_token t SET date_lo = d.lo, date_hi = d.hi
FROM (SELECT rid, min(lo) AS lo, max(hi) AS hi FROM idx_date WHERE param = 'date' GROUP BY rid) d
WHERE d.rid = t.rid;

DROP INDEX idx_token_value;
CREATE INDEX idx_token_value ON idx_token (param, code, system, type, rid) INCLUDE (date_lo, date_hi)
    WHERE octet_length(code) + octet_length(system) < 2000;
