-- `sessions_status` is the first column of `sessions_status_window_end` (0017), which serves
-- every look-up by status alone. Two indexes on the status meant every opening and ending of
-- a session rewrote two index entries twice; on SQLite, four more WAL pages per admission that
-- opens its session, and an automatic checkpoint (the SQLite join's p99) that much sooner.
DROP INDEX sessions_status;
