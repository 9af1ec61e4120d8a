-- The rules in force in 2026 (issue 9): the hospital-discharge bilan as a visit kind, the
-- territory (département) of practice and patient, the legal representative who consents for a
-- minor, HN price acceptances, and the per-kiné invoice sequence.

-- A visit may be the in-person bilan of a hospital kiné before discharge (the convention's
-- exception).
ALTER TABLE in_person_visits DROP CONSTRAINT IF EXISTS in_person_visits_kind_check;
ALTER TABLE in_person_visits ADD CONSTRAINT in_person_visits_kind_check
    CHECK (kind IN ('bilan', 'session', 'hospital_bilan'));

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
    price_cents     BIGINT NOT NULL,
    accepted_at     BIGINT NOT NULL,
    PRIMARY KEY (session_id, participant_id)
);

-- Invoice numbers: a continuous, chronological sequence per kiné, without gap or duplicate.
-- The number is chosen by the issuer under a lock (SQLite BEGIN IMMEDIATE, Postgres LOCK
-- TABLE) from the kiné's counter, which never goes back (a retention purge deletes invoices,
-- never a number); a session has one invoice.
CREATE TABLE invoice_counters (
    kine_id     TEXT PRIMARY KEY REFERENCES kines(id),
    last_seq    BIGINT NOT NULL
);
CREATE TABLE invoices (
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    seq         BIGINT NOT NULL,
    session_id  TEXT NOT NULL UNIQUE REFERENCES sessions(id),
    issued_at   BIGINT NOT NULL,
    PRIMARY KEY (kine_id, seq)
);
