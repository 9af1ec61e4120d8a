-- Platforms (appointment sites, insurers, practice software) and what they use: API keys,
-- signing keys for the join tokens they mint, idempotent POSTs and the webhook outbox.
-- The same shapes as migrations/sqlite/0003_platforms.sql: ids UUID text, instants BIGINT
-- milliseconds (UTC), flags 0/1.

CREATE TABLE platforms (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- The `iss` of the join tokens the platform signs.
    issuer      TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Kinés who gave a platform access to their patients and sessions.
CREATE TABLE platform_kines (
    platform_id TEXT NOT NULL REFERENCES platforms(id),
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (platform_id, kine_id)
);
CREATE INDEX platform_kines_kine ON platform_kines(kine_id);

-- Only the SHA-256 of a key is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL REFERENCES platforms(id),
    key_hash    TEXT NOT NULL UNIQUE,
    -- The first characters of the key, to tell keys apart in lists.
    prefix      TEXT NOT NULL,
    -- Space-separated operations (`patients:read sessions:write ...`).
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_platform ON api_keys(platform_id);

CREATE TABLE api_key_kines (
    key_id      TEXT NOT NULL REFERENCES api_keys(id),
    kine_id     TEXT NOT NULL REFERENCES kines(id),
    PRIMARY KEY (key_id, kine_id)
);

-- Sessions scheduled through a platform's API: the only ones it may mint join tokens for.
CREATE TABLE platform_sessions (
    session_id  TEXT PRIMARY KEY REFERENCES sessions(id),
    platform_id TEXT NOT NULL REFERENCES platforms(id)
);

-- Public keys (JWK) a platform signs join tokens with; `roles` limits what it may mint.
CREATE TABLE platform_jwks (
    kid         TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL REFERENCES platforms(id),
    alg         TEXT NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
    jwk         TEXT NOT NULL,
    roles       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX platform_jwks_platform ON platform_jwks(platform_id);

-- The first answer to a POST with an Idempotency-Key (status 0 while it runs).
CREATE TABLE idempotency_keys (
    platform_id  TEXT NOT NULL REFERENCES platforms(id),
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (platform_id, key)
);

CREATE TABLE webhook_endpoints (
    id          TEXT PRIMARY KEY,
    platform_id TEXT NOT NULL REFERENCES platforms(id),
    url         TEXT NOT NULL,
    -- The HMAC key of the signatures: needed in clear to sign.
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX webhook_endpoints_platform ON webhook_endpoints(platform_id);

-- One row per (event, endpoint). Delivered in `seq` order per (endpoint, order_key).
CREATE TABLE webhook_outbox (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id),
    order_key       TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    -- pending, delivered, failed (gave up)
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_status     BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox(state, next_attempt_at);
CREATE INDEX webhook_outbox_order ON webhook_outbox(endpoint_id, order_key, seq);
