-- 0010: a resource's security labels on its "_source" URI row, so that the
-- access filter, which finds that row for every candidate already, tests
-- them there with one array overlap instead of a subquery on idx_token
-- per grant (write.go, labelKeys; translate.go, writeFilter). PostgreSQL
-- sets up every subquery of a prepared statement on each run, whether or
-- not a row reaches it: a GP clinician's search for one person carried
-- two, about 15 us of the server's CPU a search.
--
-- labels holds each label's code as 'c:' || code and, with a system,
-- also 's:' || system || E'\n' || code; '{}' when the resource has none.
-- It is NULL on the rows of every other parameter. A "_source" row whose
-- labels are NULL is treated as labelled with everything (withheld
-- wherever a grant denies a label).
--
-- The backfill rewrites every "_source" row once: 14 s for a million of
-- them (and five million token rows) on the 2-core test machine.
ALTER TABLE idx_uri ADD COLUMN labels text[];

UPDATE idx_uri u SET labels = coalesce((
        SELECT array_agg(k ORDER BY k) FROM (
            SELECT 'c:' || t.code AS k FROM idx_token t
            WHERE t.rid = u.rid AND t.param = '_security'
            UNION ALL
            SELECT 's:' || t.system || E'\n' || t.code FROM idx_token t
            WHERE t.rid = u.rid AND t.param = '_security' AND t.system <> ''
        ) keys), '{}')
    WHERE u.param = '_source';
