-- Identity (issue 14): the patient's INS, and the kiné's OpenID Connect login.

-- The INS of a patient (RNIV): status, matricule (NIR or NIA) with its OID when retrieved from the
-- national register, and the five reference traits. Gone with the patient (retention purge).
CREATE TABLE patient_ins (
    patient_id   TEXT PRIMARY KEY REFERENCES patients(id) ON DELETE CASCADE,
    status       TEXT NOT NULL,
    matricule    TEXT,
    oid          TEXT,
    birth_names  TEXT NOT NULL,
    first_names  TEXT NOT NULL,
    birth_date   TEXT NOT NULL,
    sex          TEXT NOT NULL,
    birth_place  TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- An authorization request sent to the OpenID provider and not yet answered: the hash of its
-- `state`, with the `nonce` and PKCE verifier the answer is checked against. Used once.
CREATE TABLE oidc_logins (
    state_hash   TEXT PRIMARY KEY,
    nonce        TEXT NOT NULL,
    verifier     TEXT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- How a dashboard login was made, and the provider's ID token kept for the logout at the
-- provider (`id_token_hint`). Gone with the web session.
CREATE TABLE web_session_logins (
    token_hash   TEXT PRIMARY KEY REFERENCES web_sessions(token_hash) ON DELETE CASCADE,
    method       TEXT NOT NULL,
    id_token     TEXT
);
