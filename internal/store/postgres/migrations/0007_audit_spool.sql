-- 0007: how far each node's audit spool has been moved into the log.
--
-- A node first writes an audit entry durably to its spool, a sequential
-- file in its data directory (package audit), and moves it into
-- audit_entries later in a transaction that also advances its row here;
-- after a crash the node moves what its spool holds beyond pos, so an
-- acknowledged entry is moved once and never lost. node is the name of
-- the node's signing key, so nodes sharing the database keep one row each.
CREATE TABLE audit_spool (
    node text COLLATE "C" PRIMARY KEY,
    pos  bigint NOT NULL
);
