-- 0004: the key-value space (store.KV) for node state that is not FHIR:
-- accounts, clients, tokens, one-time values, break-glass grants.
--
-- expires is Unix microseconds, 0 for never. An expired row is treated as
-- absent by every read and replaced by a create; writes delete a few
-- expired rows of their bucket (kv_expiry finds them), so one-time values
-- such as client assertion jtis do not pile up.
CREATE TABLE kv (
	bucket  TEXT    NOT NULL,
	key     TEXT    NOT NULL,
	value   BLOB    NOT NULL,
	version INTEGER NOT NULL,
	expires INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE INDEX kv_expiry ON kv (bucket, expires) WHERE expires > 0;
