-- Privacy mode: the patient's IP address is never shown to the other side; media goes through
-- TURN only (iceTransportPolicy "relay").
ALTER TABLE sessions ADD COLUMN relay_only BIGINT NOT NULL DEFAULT 0 CHECK (relay_only IN (0, 1));
