-- 0002: make history _since cheap.
--
-- lu_hw is the high-water mark of last_updated over all versions up to this
-- seq: never below the row's own last_updated, and non-decreasing in seq.
-- Every version updated at or after T therefore has a seq at or above the
-- first seq whose lu_hw reaches T, which one seek in resource_versions_hw
-- finds; a _since query then scans only the versions written since, not the
-- whole history. (last_updated itself is not monotonic in seq: the engine
-- stamps it before the single writer orders the commits.) The index is
-- appended to at its end, as lu_hw only grows.
ALTER TABLE resource_versions ADD COLUMN lu_hw INTEGER NOT NULL DEFAULT 0;
WITH w AS (SELECT seq, max(last_updated) OVER (ORDER BY seq) AS hw FROM resource_versions)
UPDATE resource_versions SET lu_hw = w.hw FROM w WHERE w.seq = resource_versions.seq;
CREATE INDEX resource_versions_hw ON resource_versions (lu_hw);
