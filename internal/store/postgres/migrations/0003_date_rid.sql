-- 0003: the date rows of a resource by (rid, param, lo, hi), replacing the
-- rid-only index. Date tests on a resource already found (the correlated
-- tests of every clause but the driving one) and date sort keys then read
-- the index alone, without a heap fetch per resource: on Observation by
-- code and date range that fetch was the larger part of each probe.
DROP INDEX idx_date_rid;
CREATE INDEX idx_date_rid ON idx_date (rid, param, lo, hi);
