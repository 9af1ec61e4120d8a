-- Billing-grade records: billing facts per kiné and session, the compte rendu (versioned), the
-- hash-chained audit trail, and retention purges. Same shapes as migrations/sqlite/0002.

ALTER TABLE kines ADD COLUMN cooperation_protocol BIGINT NOT NULL DEFAULT 0 CHECK (cooperation_protocol IN (0, 1));
ALTER TABLE kines ADD COLUMN hn_price_cents BIGINT NOT NULL DEFAULT 0;

ALTER TABLE sessions ADD COLUMN direct_access TEXT;
ALTER TABLE sessions ADD COLUMN hn_price_cents BIGINT;
ALTER TABLE sessions ADD COLUMN class_reason TEXT;

CREATE TABLE reports (
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    version     BIGINT NOT NULL,
    text        TEXT NOT NULL,
    author      TEXT NOT NULL,
    written_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, version)
);

-- The seq is chosen by the writer under the table lock, because it is part of what is hashed.
CREATE TABLE audit_log (
    seq     BIGINT PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL,
    hash    TEXT NOT NULL
);

CREATE TABLE audit_head (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    seq     BIGINT NOT NULL,
    hash    TEXT NOT NULL
);

-- Retention purges may delete presence events (inside a transaction that sets
-- telesoin.purging); nothing else may change them.
CREATE TABLE maintenance (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    purging BIGINT NOT NULL
);
INSERT INTO maintenance (id, purging) VALUES (1, 0);
CREATE OR REPLACE FUNCTION presence_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND (SELECT purging FROM maintenance WHERE id = 1) = 1 THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'presence_events is append-only';
END;
$$;
