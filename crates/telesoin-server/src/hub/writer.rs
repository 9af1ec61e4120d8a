//! The presence writer: every presence event of this node goes through one queue and is
//! appended in order, in batches. While a batch is being written, what arrives waits and goes
//! in the next one, in one transaction (group commit): a burst of thousands of closes is a few
//! transactions, not thousands of autocommits fighting for the pool.
//!
//! What ends a seat (`socket_lost`, `left`, `refused`) is **never dropped**: when the store
//! cannot take it (pool timeout, locked or full database, Postgres away), it stays first in the
//! queue, with the instant it happened, and is retried until it is written; meanwhile the node
//! is not ready (see [`crate::health`]). Billing reads events by (time, seq), so a write that
//! came late counts exactly as one written at once. Only a join's own events fail fast: the
//! join is refused (`unavailable`) rather than seated without its record.
//!
//! A session's events go through one queue (one of [`SHARDS`], by session), which keeps their
//! order: an event is never written before one of its session submitted earlier, so a seat's
//! `left` that waits for the store cannot land after the `joined` of its return. Sessions of
//! different queues are written side by side, so one slow transaction does not hold them all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use telesoin_core::SessionId;
use telesoin_store::{Appended, NewEvent, Store, StoreError};
use tokio::sync::oneshot;

use crate::health::Health;

/// Events per transaction at most.
const BATCH: usize = 256;
/// Queues, each with at most one transaction in flight.
const SHARDS: usize = 4;
/// The longest pause between two tries while the store refuses writes.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type Reply = oneshot::Sender<Result<Appended, String>>;

struct Job {
    session: SessionId,
    event: NewEvent,
    /// Retried until written (the end of a seat), rather than failed at once.
    keep: bool,
    reply: Reply,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    /// A writer task is running; it takes what is pending when its transaction is done.
    writing: bool,
}

pub(crate) struct PresenceWriter {
    store: Arc<dyn Store>,
    health: Arc<Health>,
    shards: Vec<Arc<Mutex<Pending>>>,
}

impl std::fmt::Debug for PresenceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceWriter")
            .field("queued", &self.queued())
            .finish()
    }
}

impl PresenceWriter {
    pub(crate) fn new(store: Arc<dyn Store>, health: Arc<Health>) -> Self {
        PresenceWriter {
            store,
            health,
            shards: (0..SHARDS)
                .map(|_| Arc::new(Mutex::new(Pending::default())))
                .collect(),
        }
    }

    /// Events waiting for the store (for /metrics).
    pub(crate) fn queued(&self) -> usize {
        self.shards.iter().map(|p| p.lock().jobs.len()).sum()
    }

    /// Queues `event` and returns what tells its fate. A `keep` event is retried until it is
    /// written, even if the returned receiver is dropped.
    pub(crate) fn submit(
        &self,
        session: SessionId,
        event: NewEvent,
        keep: bool,
    ) -> oneshot::Receiver<Result<Appended, String>> {
        let (reply, rx) = oneshot::channel();
        let pending = &self.shards[(session.0.as_u128() % SHARDS as u128) as usize];
        let start = {
            let mut p = pending.lock();
            p.jobs.push_back(Job {
                session,
                event,
                keep,
                reply,
            });
            !std::mem::replace(&mut p.writing, true)
        };
        if start {
            // A task of its own: the writer goes on whatever becomes of the submitters.
            let (store, health, pending) =
                (self.store.clone(), self.health.clone(), pending.clone());
            tokio::spawn(write_loop(store, health, pending));
        }
        rx
    }

    /// Appends and waits for the outcome.
    pub(crate) async fn append(
        &self,
        session: SessionId,
        event: NewEvent,
        keep: bool,
    ) -> Result<Appended, StoreError> {
        self.submit(session, event, keep)
            .await
            .unwrap_or_else(|_| Err("the presence writer stopped".into()))
            .map_err(StoreError::Unavailable)
    }
}

async fn write_loop(store: Arc<dyn Store>, health: Arc<Health>, pending: Arc<Mutex<Pending>>) {
    let mut failures: u32 = 0;
    loop {
        let batch: Vec<Job> = {
            let mut p = pending.lock();
            if p.jobs.is_empty() {
                p.writing = false;
                return;
            }
            let n = p.jobs.len().min(BATCH);
            p.jobs.drain(..n).collect()
        };
        let events: Vec<(SessionId, NewEvent)> =
            batch.iter().map(|j| (j.session, j.event.clone())).collect();
        match store.append_events(&events).await {
            Ok(outcomes) => {
                if failures > 0 {
                    tracing::warn!(
                        tries = failures + 1,
                        "presence events written after the store came back"
                    );
                }
                failures = 0;
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let reason = e.to_string();
                let now = Utc::now();
                for job in &batch {
                    health.write_failed(Some(job.session), now, &reason);
                }
                let mut kept = Vec::new();
                for job in batch {
                    if job.keep {
                        kept.push(job);
                    } else {
                        let _ = job.reply.send(Err(reason.clone()));
                    }
                }
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(error = %e, kept = kept.len(), tries = failures, "presence events not written yet: retrying, never dropped");
                }
                {
                    // First again, in their order: nothing submitted later goes before them.
                    let mut p = pending.lock();
                    for job in kept.into_iter().rev() {
                        p.jobs.push_front(job);
                    }
                }
                let pause = Duration::from_millis(50u64.saturating_mul(1 << failures.min(6)));
                tokio::time::sleep(pause.min(MAX_BACKOFF)).await;
            }
        }
    }
}
