-- 0004: the key-value space (store.KV) for node state that is not FHIR:
-- accounts, clients, tokens, one-time values, break-glass grants.
--
-- expires is Unix microseconds, 0 for never (an integer, as in SQLite, so
-- both stores compare instants the same way). An expired row is treated as
-- absent by every read and replaced by a create; writes delete a few
-- expired rows of their bucket (kv_expiry finds them), so one-time values
-- such as client assertion jtis do not pile up.
CREATE TABLE kv (
    bucket  text COLLATE "C" NOT NULL,
    key     text COLLATE "C" NOT NULL,
    value   bytea  NOT NULL,
    version bigint NOT NULL,
    expires bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX kv_expiry ON kv (bucket, expires) WHERE expires > 0;
