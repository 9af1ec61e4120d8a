-- The rules in force in 2026 (issue 9): the hospital-discharge bilan as a visit kind, the
-- territory (département) of practice and patient, the legal representative who consents for a
-- minor, HN price acceptances, and the per-kiné invoice sequence.

-- A visit may be the in-person bilan of a hospital kiné before discharge (the convention's
-- exception). SQLite cannot alter a CHECK: the table is rebuilt.
CREATE TABLE in_person_visits_new (
    id          TEXT PRIMARY KEY,
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    patient_id  TEXT NOT NULL REFERENCES patients(id),
    date        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('bilan', 'session', 'hospital_bilan')),
    created_at  INTEGER NOT NULL
);
INSERT INTO in_person_visits_new (id, kine_id, patient_id, date, kind, created_at)
    SELECT id, kine_id, patient_id, date, kind, created_at FROM in_person_visits;
DROP TABLE in_person_visits;
ALTER TABLE in_person_visits_new RENAME TO in_person_visits;
CREATE INDEX visits_pair ON in_person_visits(kine_id, patient_id);

-- The territory check (convention): the practice's département and the patient's.
ALTER TABLE kines ADD COLUMN practice_departement TEXT;
ALTER TABLE patients ADD COLUMN departement TEXT;

-- A minor's consent is given by the legal representative: who, and their relation.
ALTER TABLE consents ADD COLUMN representative_name TEXT;
ALTER TABLE consents ADD COLUMN representative_relation TEXT;

-- An HN session's price, shown on the join page and accepted before the call (traced like a
-- consent): which price, by whom, when.
CREATE TABLE hn_price_acceptances (
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    participant_id  TEXT NOT NULL,
    price_cents     INTEGER NOT NULL,
    accepted_at     INTEGER NOT NULL,
    PRIMARY KEY (session_id, participant_id)
);

-- Invoice numbers: a continuous, chronological sequence per kiné, without gap or duplicate.
-- The number is chosen by the issuer under a lock (SQLite BEGIN IMMEDIATE, Postgres LOCK
-- TABLE) from the kiné's counter, which never goes back (a retention purge deletes invoices,
-- never a number); a session has one invoice.
CREATE TABLE invoice_counters (
    kine_id     TEXT PRIMARY KEY REFERENCES kines(id),
    last_seq    INTEGER NOT NULL
);
CREATE TABLE invoices (
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    seq         INTEGER NOT NULL,
    session_id  TEXT NOT NULL UNIQUE REFERENCES sessions(id),
    issued_at   INTEGER NOT NULL,
    PRIMARY KEY (kine_id, seq)
);
