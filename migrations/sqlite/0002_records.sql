-- Billing-grade records: billing facts per kiné and session, the compte rendu (versioned), the
-- hash-chained audit trail, and retention purges.

-- Per kiné: a declared cooperation protocol (direct access) and the default HN price.
ALTER TABLE kines ADD COLUMN cooperation_protocol INTEGER NOT NULL DEFAULT 0;
ALTER TABLE kines ADD COLUMN hn_price_cents INTEGER NOT NULL DEFAULT 0;

-- Per session: the direct-access ground declared, the HN price, and why the class is what it is.
ALTER TABLE sessions ADD COLUMN direct_access TEXT;
ALTER TABLE sessions ADD COLUMN hn_price_cents INTEGER;
ALTER TABLE sessions ADD COLUMN class_reason TEXT;

-- The compte rendu: every version is kept; an amendment adds a row.
CREATE TABLE reports (
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    version     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    author      TEXT NOT NULL,
    written_at  INTEGER NOT NULL,
    PRIMARY KEY (session_id, version)
);

-- Audit trail: each row carries the SHA-256 chain hash over the previous row's hash and its
-- own canonical content (telesoin_core::audit). Rows hold ids and codes, never personal data.
-- The seq is chosen by the writer inside BEGIN IMMEDIATE, because it is part of what is hashed.
CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    TEXT NOT NULL
);

-- The chain's head (last seq and hash), kept apart so that rows cut off the end are detected.
CREATE TABLE audit_head (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    seq     INTEGER NOT NULL,
    hash    TEXT NOT NULL
);

-- Retention purges may delete presence events; nothing else may.
CREATE TABLE maintenance (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    purging INTEGER NOT NULL
);
INSERT INTO maintenance (id, purging) VALUES (1, 0);
DROP TRIGGER presence_events_no_delete;
CREATE TRIGGER presence_events_no_delete BEFORE DELETE ON presence_events
WHEN (SELECT purging FROM maintenance WHERE id = 1) = 0
BEGIN SELECT RAISE(ABORT, 'presence_events is append-only'); END;
