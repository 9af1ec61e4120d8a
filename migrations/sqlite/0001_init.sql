-- telesoin schema, SQLite. Instants are INTEGER milliseconds since the Unix epoch (UTC), dates
-- ISO 8601 text, ids UUID text: the same shapes the Postgres schema uses.

CREATE TABLE kines (
    id            TEXT PRIMARY KEY,
    rpps          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Dashboard logins: only a hash of the cookie value is kept.
CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE patients (
    id               TEXT PRIMARY KEY,
    kine_id          TEXT NOT NULL REFERENCES kines(id),
    display_name     TEXT NOT NULL,
    birth_date       TEXT NOT NULL,
    loss_of_autonomy INTEGER NOT NULL,
    gp_contact       TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX patients_kine ON patients(kine_id);

CREATE TABLE in_person_visits (
    id          TEXT PRIMARY KEY,
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    date        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('bilan', 'session')),
    created_at  INTEGER NOT NULL
);
CREATE INDEX visits_pair ON in_person_visits(kine_id, patient_id);

CREATE TABLE consents (
    id            TEXT PRIMARY KEY,
    kine_id       TEXT NOT NULL REFERENCES kines(id),
    patient_id    TEXT NOT NULL REFERENCES patients(id),
    recorded_by   TEXT NOT NULL CHECK (recorded_by IN ('kine', 'patient')),
    method        TEXT NOT NULL,
    text_version  TEXT NOT NULL,
    recorded_at   INTEGER NOT NULL,
    withdrawn_at  INTEGER
);
CREATE INDEX consents_pair ON consents(kine_id, patient_id);

CREATE TABLE prescriptions (
    id          TEXT PRIMARY KEY,
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    date        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX prescriptions_patient ON prescriptions(patient_id);

CREATE TABLE sessions (
    id                      TEXT PRIMARY KEY,
    kine_id                 TEXT NOT NULL REFERENCES kines(id),
    patient_id              TEXT NOT NULL REFERENCES patients(id),
    starts_at               INTEGER NOT NULL,
    window_start            INTEGER NOT NULL,
    window_end              INTEGER NOT NULL,
    act_code                TEXT NOT NULL,
    status                  TEXT NOT NULL CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
    auto_admit              INTEGER NOT NULL,
    patient_consent_on_join INTEGER NOT NULL,
    billing_class           TEXT NOT NULL,
    created_at              INTEGER NOT NULL,
    -- Set once, by the single finalization.
    ended_at                INTEGER,
    billable_seconds        INTEGER,
    finalized_at            INTEGER
);
CREATE INDEX sessions_kine_start ON sessions(kine_id, starts_at);
CREATE INDEX sessions_status ON sessions(status);

-- One seat per (session, role) for the kiné and the patient.
CREATE TABLE participants (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    role        TEXT NOT NULL CHECK (role IN ('kine', 'patient', 'companion')),
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX participants_seat ON participants(session_id, role) WHERE role <> 'companion';

CREATE TABLE links (
    jti             TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    participant_id  TEXT NOT NULL REFERENCES participants(id),
    role            TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    not_before      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE INDEX links_session ON links(session_id);

-- Append-only: rows are never updated or deleted.
CREATE TABLE presence_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    at              INTEGER NOT NULL,
    participant_id  TEXT,
    role            TEXT,
    kind            TEXT NOT NULL,
    detail          TEXT
);
CREATE INDEX presence_session ON presence_events(session_id, seq);

CREATE TRIGGER presence_events_no_update BEFORE UPDATE ON presence_events
BEGIN SELECT RAISE(ABORT, 'presence_events is append-only'); END;
CREATE TRIGGER presence_events_no_delete BEFORE DELETE ON presence_events
BEGIN SELECT RAISE(ABORT, 'presence_events is append-only'); END;
