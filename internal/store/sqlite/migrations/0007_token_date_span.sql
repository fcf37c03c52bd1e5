-- 0007: each token row carries the span of its resource's "date" rows
-- (date_lo the earliest lo, date_hi the latest hi; store.Index.DateSpan),
-- and idx_token_code holds it after the rid, so that a search by a code
-- and a date range (Observation?code=...&date=ge2021&date=lt2022) walks
-- the code's index entries and drops those whose resource cannot have a
-- date in the range (store.SpanTests) before it reads the resource or
-- probes its dates. A resource without "date" rows has the empty span
-- (date_lo the largest integer, date_hi the smallest), which no range
-- holds. The default, never left once this file has run, is the widest
-- span: a row it stood for would only be probed, never wrongly dropped.
-- The unary + keeps SQLite seeking each resource's date rows by key range
-- rather than walking idx_date's (param, ...) index for every token row.
ALTER TABLE idx_token ADD COLUMN date_lo INTEGER NOT NULL DEFAULT -9223372036854775808;
ALTER TABLE idx_token ADD COLUMN date_hi INTEGER NOT NULL DEFAULT 9223372036854775807;

UPDATE idx_token SET
	date_lo = coalesce((SELECT min(lo) FROM idx_date
		WHERE key BETWEEN idx_token.rid * 65536 AND idx_token.rid * 65536 + 65535 AND +param = 'date'),
		9223372036854775807),
	date_hi = coalesce((SELECT max(hi) FROM idx_date
		WHERE key BETWEEN idx_token.rid * 65536 AND idx_token.rid * 65536 + 65535 AND +param = 'date'),
		-9223372036854775808);

DROP INDEX idx_token_code;
CREATE INDEX idx_token_code ON idx_token (param, code, system, type, rid, date_lo, date_hi);
