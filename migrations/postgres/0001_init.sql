-- telesoin schema, Postgres. The same shapes as migrations/sqlite/0001_init.sql, so the one
-- store implementation reads both: instants are BIGINT milliseconds since the Unix epoch (UTC),
-- dates ISO 8601 text, ids UUID text, flags BIGINT 0/1.

CREATE TABLE kines (
    id            TEXT PRIMARY KEY,
    rpps          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Dashboard logins: only a hash of the cookie value is kept.
CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE patients (
    id               TEXT PRIMARY KEY,
    kine_id          TEXT NOT NULL REFERENCES kines(id),
    display_name     TEXT NOT NULL,
    birth_date       TEXT NOT NULL,
    loss_of_autonomy BIGINT NOT NULL CHECK (loss_of_autonomy IN (0, 1)),
    gp_contact       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX patients_kine ON patients(kine_id);

CREATE TABLE in_person_visits (
    id          TEXT PRIMARY KEY,
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    date        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('bilan', 'session')),
    created_at  BIGINT NOT NULL
);
CREATE INDEX visits_pair ON in_person_visits(kine_id, patient_id);

CREATE TABLE consents (
    id            TEXT PRIMARY KEY,
    kine_id       TEXT NOT NULL REFERENCES kines(id),
    patient_id    TEXT NOT NULL REFERENCES patients(id),
    recorded_by   TEXT NOT NULL CHECK (recorded_by IN ('kine', 'patient')),
    method        TEXT NOT NULL,
    text_version  TEXT NOT NULL,
    recorded_at   BIGINT NOT NULL,
    withdrawn_at  BIGINT
);
CREATE INDEX consents_pair ON consents(kine_id, patient_id);

CREATE TABLE prescriptions (
    id          TEXT PRIMARY KEY,
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    date        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX prescriptions_patient ON prescriptions(patient_id);

CREATE TABLE sessions (
    id                      TEXT PRIMARY KEY,
    kine_id                 TEXT NOT NULL REFERENCES kines(id),
    patient_id              TEXT NOT NULL REFERENCES patients(id),
    starts_at               BIGINT NOT NULL,
    window_start            BIGINT NOT NULL,
    window_end              BIGINT NOT NULL,
    act_code                TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
    auto_admit              BIGINT NOT NULL CHECK (auto_admit IN (0, 1)),
    patient_consent_on_join BIGINT NOT NULL CHECK (patient_consent_on_join IN (0, 1)),
    billing_class           TEXT NOT NULL,
    created_at              BIGINT NOT NULL,
    -- Set once, by the single finalization.
    ended_at                BIGINT,
    billable_seconds        BIGINT,
    finalized_at            BIGINT
);
CREATE INDEX sessions_kine_start ON sessions(kine_id, starts_at);
CREATE INDEX sessions_status ON sessions(status);

-- One seat per (session, role) for the kiné and the patient.
CREATE TABLE participants (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    role        TEXT NOT NULL CHECK (role IN ('kine', 'patient', 'companion')),
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX participants_seat ON participants(session_id, role) WHERE role <> 'companion';

CREATE TABLE links (
    jti             TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    participant_id  TEXT NOT NULL REFERENCES participants(id),
    role            TEXT NOT NULL,
    issued_at       BIGINT NOT NULL,
    not_before      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);
CREATE INDEX links_session ON links(session_id);

-- Append-only: rows are never updated or deleted. GENERATED ALWAYS: nobody picks a seq.
CREATE TABLE presence_events (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    at              BIGINT NOT NULL,
    participant_id  TEXT,
    role            TEXT,
    kind            TEXT NOT NULL,
    detail          TEXT
);
CREATE INDEX presence_session ON presence_events(session_id, seq);

-- Statement-level triggers (not rules, which would silently do nothing): any UPDATE, DELETE or
-- TRUNCATE fails, even one that matches no row.
CREATE FUNCTION presence_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'presence_events is append-only';
END;
$$;
CREATE TRIGGER presence_events_no_change
    BEFORE UPDATE OR DELETE OR TRUNCATE ON presence_events
    FOR EACH STATEMENT EXECUTE FUNCTION presence_events_append_only();
