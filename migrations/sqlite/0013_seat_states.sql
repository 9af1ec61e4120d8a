-- The last state of every seat, kept by the database with each presence event (issue 10):
-- a join reads one row (was the seat admitted, did it leave) instead of the session's whole
-- event list, and the append refuses anything after a seat's `left` but a new `joined`.
CREATE TABLE seat_states (
    session_id      TEXT NOT NULL REFERENCES sessions(id),
    participant_id  TEXT NOT NULL,
    last_seq        INTEGER NOT NULL,
    last_kind       TEXT NOT NULL,
    -- The seat's admission stands: set by `admitted`, kept across a hang-up or a leave (a
    -- return in the session goes straight in), lost by any other `left` and by `refused`.
    admitted        INTEGER NOT NULL,
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

-- Per seat, in order: after `left`, only a new `joined`.
CREATE TRIGGER presence_events_after_left BEFORE INSERT ON presence_events
WHEN NEW.participant_id IS NOT NULL AND NEW.kind <> 'joined'
  AND (SELECT last_kind FROM seat_states
       WHERE session_id = NEW.session_id AND participant_id = NEW.participant_id) = 'left'
BEGIN SELECT RAISE(ABORT, 'seat_left: after a seat''s left, only a new joined'); END;

CREATE TRIGGER presence_events_seat_state AFTER INSERT ON presence_events
WHEN NEW.participant_id IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO seat_states (session_id, participant_id, last_seq, last_kind, admitted)
    VALUES (NEW.session_id, NEW.participant_id, NEW.seq, NEW.kind,
        CASE
            WHEN NEW.kind = 'admitted' THEN 1
            WHEN NEW.kind = 'refused' THEN 0
            WHEN NEW.kind = 'left' AND COALESCE(NEW.detail, '') NOT IN ('hangup', 'leave') THEN 0
            ELSE COALESCE((SELECT admitted FROM seat_states
                           WHERE session_id = NEW.session_id
                             AND participant_id = NEW.participant_id), 0)
        END);
END;
