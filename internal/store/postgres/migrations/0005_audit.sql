-- 0005: the tamper-evident audit log (issue 7, store.AuditStore), in tables
-- of its own, apart from the resources. See the SQLite migration of the
-- same number for the layout; here audit_head's one row is also the lock
-- every node's append takes (SELECT ... FOR UPDATE), so that nodes sharing
-- the database append one after another and leaf numbers never collide or
-- gap.
CREATE TABLE audit_head (
    one  integer PRIMARY KEY CHECK (one = 1),
    size bigint NOT NULL
);
INSERT INTO audit_head (one, size) VALUES (1, 0);

CREATE TABLE audit_entries (
    idx        bigint PRIMARY KEY,
    time       bigint NOT NULL,
    who_user   text COLLATE "C" NOT NULL,
    who_role   text COLLATE "C" NOT NULL,
    who_org    text COLLATE "C" NOT NULL,
    who_client text COLLATE "C" NOT NULL,
    patients   text COLLATE "C" NOT NULL,
    action     text NOT NULL,
    outcome    text NOT NULL,
    flags      text NOT NULL,
    restricted boolean NOT NULL,
    event      bytea NOT NULL
);
CREATE INDEX audit_by_user ON audit_entries (who_user, idx) WHERE who_user <> '';
CREATE INDEX audit_by_org ON audit_entries (who_org, idx) WHERE who_org <> '';
CREATE INDEX audit_by_time ON audit_entries (time, idx);
CREATE INDEX audit_flagged ON audit_entries (idx) WHERE flags <> '';

CREATE TABLE audit_patients (
    patient    text COLLATE "C" NOT NULL,
    idx        bigint NOT NULL,
    restricted boolean NOT NULL,
    PRIMARY KEY (patient, idx)
);
-- Verification reads an entry's index rows by idx (store.AuditEntry.Indexed).
CREATE INDEX audit_patients_by_idx ON audit_patients (idx, patient);

CREATE TABLE audit_hashes (
    id   bigint PRIMARY KEY,
    hash bytea NOT NULL
);

CREATE TABLE audit_checkpoints (
    id   bigserial PRIMARY KEY,
    size bigint NOT NULL,
    root bytea NOT NULL,
    note bytea NOT NULL,
    time bigint NOT NULL
);
CREATE INDEX audit_checkpoints_size ON audit_checkpoints (size, id);
