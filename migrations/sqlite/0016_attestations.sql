-- Who was attested present next to the patient (issue 9, item 6): a parent or an aidant, by
-- name and relation ("mère", "fils"...), when. An attestation, never a technical incident: the
-- record, the report, the invoice and the FHIR export say "En présence de <nom> (<relation>)".
CREATE TABLE attestations (
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    participant_id  TEXT NOT NULL,
    companion       TEXT NOT NULL CHECK (companion IN ('parent', 'aidant')),
    name            TEXT NOT NULL,
    relation        TEXT NOT NULL,
    attested_at     INTEGER NOT NULL
);
CREATE INDEX attestations_session ON attestations(session_id, attested_at);
