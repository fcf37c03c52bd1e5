-- 0006: token rows by their plain (system, code) values, for index-only
-- reads. idx_token_code is built on left(code, 256) and left(system, 256),
-- and PostgreSQL answers a query from an index alone only when every
-- column the query names is in it: a test on left(code, 256) names code,
-- so every row the search walked was also read from the table, one random
-- page each. Observation by code and date range walks a common code's rows
-- in rid order until a page is full (thousands for a rare year), and those
-- table reads were most of its time (119 ms against 10 ms index-only for
-- 1,349 rows). Here the columns themselves are indexed; rows whose values
-- are too long for a btree entry stay out (the predicate), and a search
-- for such a value uses idx_token_code as before. Queries repeat the
-- predicate word for word so that the planner knows the index covers them.
CREATE INDEX idx_token_value ON idx_token (param, code, system, type, rid)
    WHERE octet_length(code) + octet_length(system) < 2000;
