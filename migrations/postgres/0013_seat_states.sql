-- The last state of every seat, kept by the database with each presence event (issue 10):
-- a join reads one row (was the seat admitted, did it leave) instead of the session's whole
-- event list, and the append refuses anything after a seat's `left` but a new `joined`.
CREATE TABLE seat_states (
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    participant_id  TEXT NOT NULL,
    last_seq        BIGINT NOT NULL,
    last_kind       TEXT NOT NULL,
    -- The seat's admission stands: set by `admitted`, kept across a hang-up or a leave (a
    -- return in the session goes straight in), lost by any other `left` and by `refused`.
    admitted        BIGINT NOT NULL,
    PRIMARY KEY (session_id, participant_id)
);

INSERT INTO seat_states (session_id, participant_id, last_seq, last_kind, admitted)
SELECT e.session_id, e.participant_id, e.seq, e.kind,
       COALESCE((SELECT CASE WHEN a.kind = 'admitted' THEN 1 ELSE 0 END
                 FROM presence_events a
                 WHERE a.session_id = e.session_id AND a.participant_id = e.participant_id
                   AND (a.kind IN ('admitted', 'refused')
                        OR (a.kind = 'left' AND COALESCE(a.detail, '') NOT IN ('hangup', 'leave')))
                 ORDER BY a.seq DESC LIMIT 1), 0)
FROM presence_events e
WHERE e.participant_id IS NOT NULL
  AND e.seq = (SELECT MAX(m.seq) FROM presence_events m
               WHERE m.session_id = e.session_id AND m.participant_id = e.participant_id);

-- Per seat, in order: after `left`, only a new `joined`. The upsert locks the seat's row, so
-- two nodes appending for one seat at once are ordered, and the check sees the latest state.
CREATE FUNCTION presence_events_seat_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.participant_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO seat_states AS s (session_id, participant_id, last_seq, last_kind, admitted)
    VALUES (NEW.session_id, NEW.participant_id, NEW.seq, NEW.kind,
            CASE WHEN NEW.kind = 'admitted' THEN 1 ELSE 0 END)
    ON CONFLICT (session_id, participant_id) DO UPDATE SET
        last_seq = EXCLUDED.last_seq,
        last_kind = EXCLUDED.last_kind,
        admitted = CASE
            WHEN EXCLUDED.last_kind = 'admitted' THEN 1
            WHEN EXCLUDED.last_kind = 'refused' THEN 0
            WHEN EXCLUDED.last_kind = 'left'
                 AND COALESCE(NEW.detail, '') NOT IN ('hangup', 'leave') THEN 0
            ELSE s.admitted
        END
    WHERE s.last_kind <> 'left' OR EXCLUDED.last_kind = 'joined';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'seat_left: after a seat''s left, only a new joined';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER presence_events_seat_state AFTER INSERT ON presence_events
    FOR EACH ROW EXECUTE FUNCTION presence_events_seat_state();
