-- Reaching the patient (issue 12): contact details, short link codes, the kiné's reminder
-- offsets, and the outbox of messages (invitations, reminders, notices). The same shapes as
-- migrations/sqlite/0010_reach.sql: ids UUID text, instants BIGINT milliseconds (UTC).

-- Optional; deleted with the patient by the retention purge. Never logged.
CREATE TABLE patient_contacts (
    patient_id  TEXT PRIMARY KEY REFERENCES patients(id),
    -- E.164 (`+33612345678`).
    phone       TEXT,
    email       TEXT,
    preference  TEXT NOT NULL CHECK (preference IN ('email', 'sms', 'both', 'none')),
    updated_at  BIGINT NOT NULL
);

-- Short link codes (`/j#CODE`): only the SHA-256 of the code is kept. A code opens the seat of
-- its link; revoking the link (or cancelling, ending the session) closes the code with it.
CREATE TABLE join_codes (
    code_hash   TEXT PRIMARY KEY,
    jti         TEXT NOT NULL REFERENCES links(jti),
    session_id  TEXT NOT NULL REFERENCES sessions(id),
    created_at  BIGINT NOT NULL
);
CREATE INDEX join_codes_session ON join_codes(session_id);

-- Minutes before the start at which reminders go, comma-separated (`1440,60`); no row: the
-- server's default.
CREATE TABLE kine_reminders (
    kine_id  TEXT PRIMARY KEY REFERENCES kines(id),
    offsets  TEXT NOT NULL
);

-- One row per message and channel, sent exactly once: claimed by one UPDATE (a lease), marked
-- sent by its claimant only, retried with backoff. `dedupe_key` makes scheduling idempotent.
-- No address and no link in here: both are read when the message goes.
CREATE TABLE message_outbox (
    id             TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL REFERENCES sessions(id),
    kind           TEXT NOT NULL CHECK (kind IN ('invitation', 'reminder', 'cancelled', 'moved')),
    channel        TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    dedupe_key     TEXT NOT NULL UNIQUE,
    due_at         BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'skipped', 'cancelled')),
    attempts       BIGINT NOT NULL,
    claimed_by     TEXT,
    claimed_until  BIGINT,
    -- Why it failed or was skipped: a code and short words, never an address.
    detail         TEXT,
    created_at     BIGINT NOT NULL,
    done_at        BIGINT
);
CREATE INDEX message_outbox_due ON message_outbox(state, due_at);
CREATE INDEX message_outbox_session ON message_outbox(session_id);
