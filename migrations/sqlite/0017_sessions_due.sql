-- The end-of-window sweep reads the live sessions whose window has closed, every 15 s: an
-- index range on (status, window_end), not every live session (issue 15).
CREATE INDEX sessions_status_window_end ON sessions(status, window_end);
