-- 0006: what the access filter tests of a resource, kept on its own row
-- (store.Index.Source, Labels). A filtered search tested each candidate's source by
-- probing its "_source" row in idx_uri, and each candidate of a grant with
-- denied labels by probing its "_security" rows in idx_token; it now tests
-- the resources row it has already read, and probes the labels only of a
-- resource that has some.
--
-- source is meta.source as written (NULL without one); labelled is 1 when
-- the current version carries any meta.security label. Both describe the
-- current version, like the index rows, and are NULL and 0 for a deleted
-- resource.
ALTER TABLE resources ADD COLUMN source TEXT;
ALTER TABLE resources ADD COLUMN labelled INTEGER NOT NULL DEFAULT 0;

UPDATE resources SET source = (
	SELECT value FROM idx_uri
	WHERE key BETWEEN resources.rid * 65536 AND resources.rid * 65536 + 65535 AND param = '_source'
	ORDER BY key LIMIT 1
) WHERE NOT deleted;

UPDATE resources SET labelled = 1 WHERE NOT deleted AND EXISTS (
	SELECT 1 FROM idx_token
	WHERE key BETWEEN resources.rid * 65536 AND resources.rid * 65536 + 65535 AND param = '_security'
);
