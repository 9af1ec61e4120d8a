//! SQLite: the WAL is copied back into the database file by a task of its own, on a
//! connection of its own, beside the writers, rather than by whichever writer's commit crosses
//! SQLite's autocheckpoint (1,000 pages). That writer copied the whole WAL and synced the file
//! inside its commit, holding the write turn: 3-6 ms every 90-110 presence batches at 500
//! joins/s, the slow appends behind the SQLite join's p99 (BENCHMARKS.md).
//!
//! Every [`TICK`], when the WAL file changed and has once reached [`RESTART_AT`] frames (below
//! that, SQLite's writers would not have checkpointed yet either: a small WAL is left as it is),
//! the task runs a `PASSIVE` checkpoint, which never waits for a lock and lets the writers go
//! on appending meanwhile. Once the WAL holds [`RESTART_AT`] frames, the
//! checkpoint must also be complete (every frame copied), so that the next write starts the WAL
//! over from its beginning instead of growing it: the task runs a few more passes, each with
//! only the frames written during the one before to copy, and one without a commit during it
//! is complete. Only when [`QUICK_PASSES`] were not enough does it take the write turn for one
//! last pass, which no writer of this process can then race.
//!
//! The writers' own autocheckpoint stays as the fallback ([`WRITERS_AUTOCHECKPOINT`] pages):
//! should this task fall behind (a reader holding an old snapshot, the task gone), a writer
//! checkpoints as before and the WAL stays bounded.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection, Executor, Row};

/// Between two passive checkpoints.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// WAL frames from which the task completes a checkpoint (SQLite's own autocheckpoint size).
pub(crate) const RESTART_AT: i64 = 1_000;
/// Passes without the turn before the completing one takes it.
const QUICK_PASSES: u32 = 4;
/// The writers' autocheckpoint, set on every connection of the pool: far above
/// [`RESTART_AT`], reached only if the task falls behind.
pub(crate) const WRITERS_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 10000";

/// The running task; it ends when the last [`crate::SqlStore`] holding this is dropped, or at
/// [`Checkpointer::stop`].
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Opens the task's connection to `url` (a SQLite URL) and starts it. `turn` is the
    /// writers' turn, held only for the completing checkpoint.
    pub(crate) async fn start(
        url: &str,
        turn: &Arc<tokio::sync::Mutex<()>>,
    ) -> Result<Checkpointer, sqlx::Error> {
        let wal = {
            use std::str::FromStr;
            let db = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
            let mut name = db.get_filename().as_os_str().to_owned();
            name.push("-wal");
            std::path::PathBuf::from(name)
        };
        let mut conn = AnyConnection::connect(url).await?;
        // NORMAL, as the writers: a checkpoint syncs the WAL, then the database file.
        conn.execute("PRAGMA synchronous = NORMAL").await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(conn, wal, Arc::downgrade(turn), stopped));
        Ok(Checkpointer {
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// Stops the task and waits until its connection is closed (then the pool's last
    /// connection, closing, checkpoints the rest and removes the WAL).
    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reported: frames in the WAL, frames copied.
struct Pass {
    log: i64,
    copied: i64,
}

async fn passive(conn: &mut AnyConnection) -> Result<Pass, sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Pass {
        log: row.try_get("log")?,
        copied: row.try_get("checkpointed")?,
    })
}

/// The WAL file's size and last change, read without a hop to SQLite.
fn wal_file(wal: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(wal).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// The size of a WAL file of `frames` frames of 4 KiB pages (SQLite's default page size).
const fn wal_bytes(frames: i64) -> u64 {
    32 + frames.unsigned_abs() * (24 + 4096)
}

async fn run(
    mut conn: AnyConnection,
    wal: std::path::PathBuf,
    turn: Weak<tokio::sync::Mutex<()>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = None;
    loop {
        tokio::select! {
            // Stopped, or every store dropped (the sender with them).
            _ = stopped.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(TICK) => {}
        }
        let Some(turn) = turn.upgrade() else {
            break;
        };
        // Nothing written since the last look, or a WAL that never reached the size at which
        // SQLite's own writers would checkpoint: nothing to do, and not even a hop to SQLite.
        let file = wal_file(&wal);
        if file == seen || file.is_none_or(|(len, _)| len < wal_bytes(RESTART_AT)) {
            continue;
        }
        seen = file;
        let started = Instant::now();
        let first = match passive(&mut conn).await {
            Ok(pass) => pass,
            Err(e) => {
                // Busy (a writer's fallback checkpoint running): the next tick tries again;
                // that fallback keeps the WAL bounded meanwhile.
                tracing::debug!(error = %e, "WAL checkpoint failed");
                continue;
            }
        };
        let passive_us = started.elapsed().as_micros();
        if first.log < RESTART_AT {
            continue;
        }
        // A pass with no commit during it completes the checkpoint. The frames left after the
        // first pass are few: a few more passes without the turn mostly get there.
        let mut last = first;
        let mut passes = 1;
        while last.copied < last.log && passes < QUICK_PASSES {
            match passive(&mut conn).await {
                Ok(pass) => last = pass,
                Err(e) => {
                    tracing::debug!(error = %e, "WAL checkpoint failed");
                    break;
                }
            }
            passes += 1;
        }
        if last.copied == last.log {
            // Durations and frame counts only (`bench/run --join-timings`).
            tracing::debug!(
                target: "telesoin_store::write_turn",
                frames = last.log,
                passes,
                passive_us,
                all_us = started.elapsed().as_micros(),
                "checkpoint without the turn"
            );
            continue;
        }
        let asked = Instant::now();
        let held = turn.lock().await;
        let waited_us = asked.elapsed().as_micros();
        let pass = passive(&mut conn).await;
        let held_us = asked.elapsed().as_micros() - waited_us;
        drop(held);
        match pass {
            Ok(pass) => tracing::debug!(
                target: "telesoin_store::write_turn",
                frames = pass.log,
                complete = pass.copied == pass.log,
                passes,
                passive_us,
                waited_us,
                held_us,
                "checkpoint with the turn"
            ),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    let _ = conn.close().await;
}
