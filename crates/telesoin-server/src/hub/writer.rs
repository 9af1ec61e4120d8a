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
//! An event the store refuses **for good** (a constraint: its session was deleted or purged, a
//! value out of its domain; [`StoreError::Rejected`]) is not retried: retrying would block its
//! queue forever and keep the node not ready. When a batch is refused that way, its events are
//! written one by one; the refused one is answered with the error, logged (session and kind
//! only) and counted (`telesoin_presence_events_rejected_total`), and the others are written.
//!
//! A job may hold several events of one session (a join's `joined` and the `admitted` decided
//! with it): they are written together, in the same transaction, in their order, or not at all.
//!
//! A session's events go through one queue (one of [`SHARDS`], by session), which keeps their
//! order: an event is never written before one of its session submitted earlier, so a seat's
//! `left` that waits for the store cannot land after the `joined` of its return. Sessions of
//! different queues are written side by side, so one slow transaction does not hold them all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

type Outcome = Result<Appended, StoreError>;
type Outcomes = Result<Vec<Appended>, StoreError>;
type Reply = oneshot::Sender<Outcomes>;

struct Job {
    session: SessionId,
    /// Written in one transaction, in this order (one event, most of the time).
    events: Vec<NewEvent>,
    /// Retried until written (the end of a seat), rather than failed at once.
    keep: bool,
    reply: Reply,
    /// When it was queued (for the writer's timings).
    queued: std::time::Instant,
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
    /// Events the store refused for good (for /metrics).
    rejected: Arc<AtomicU64>,
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
            rejected: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Events the store refused for good since start (for /metrics).
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Events waiting for the store (for /metrics).
    pub(crate) fn queued(&self) -> usize {
        self.shards.iter().map(|p| p.lock().jobs.len()).sum()
    }

    /// Queues `event` and returns what tells its fate. A `keep` event is retried until it is
    /// written, even if the returned future is dropped (it is queued before this returns).
    pub(crate) fn submit(
        &self,
        session: SessionId,
        event: NewEvent,
        keep: bool,
    ) -> impl Future<Output = Result<Outcome, oneshot::error::RecvError>> + use<> {
        let rx = self.submit_all(session, vec![event], keep);
        async move {
            rx.await.map(|outcomes| {
                outcomes?
                    .pop()
                    .ok_or_else(|| StoreError::Unavailable("the append returned no outcome".into()))
            })
        }
    }

    /// Queues events of one session to be written together, in one transaction and in their
    /// order (with what else is queued), and returns what tells their fate, one outcome each.
    pub(crate) fn submit_all(
        &self,
        session: SessionId,
        events: Vec<NewEvent>,
        keep: bool,
    ) -> oneshot::Receiver<Outcomes> {
        let (reply, rx) = oneshot::channel();
        let pending = &self.shards[(session.0.as_u128() % SHARDS as u128) as usize];
        let start = {
            let mut p = pending.lock();
            p.jobs.push_back(Job {
                session,
                events,
                keep,
                reply,
                queued: std::time::Instant::now(),
            });
            !std::mem::replace(&mut p.writing, true)
        };
        if start {
            // A task of its own: the writer goes on whatever becomes of the submitters.
            let shard = Shard {
                store: self.store.clone(),
                health: self.health.clone(),
                pending: pending.clone(),
                rejected: self.rejected.clone(),
            };
            tokio::spawn(shard.write_loop());
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
            .unwrap_or_else(|_| Err(stopped()))
    }

    /// Appends events of one session together (one transaction) and waits for their outcomes.
    pub(crate) async fn append_all(
        &self,
        session: SessionId,
        events: Vec<NewEvent>,
        keep: bool,
    ) -> Result<Vec<Appended>, StoreError> {
        self.submit_all(session, events, keep)
            .await
            .unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the presence writer stopped".into())
}

/// A store error worth retrying: the store is away, locked, full. Any other one (a constraint)
/// would be the same on every try.
fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

/// What one queue's writer task holds.
struct Shard {
    store: Arc<dyn Store>,
    health: Arc<Health>,
    pending: Arc<Mutex<Pending>>,
    rejected: Arc<AtomicU64>,
}

impl Shard {
    async fn write_loop(self) {
        let mut failures: u32 = 0;
        loop {
            let batch: Vec<Job> = {
                let mut p = self.pending.lock();
                if p.jobs.is_empty() {
                    p.writing = false;
                    return;
                }
                let n = p.jobs.len().min(BATCH);
                p.jobs.drain(..n).collect()
            };
            let events: Vec<(SessionId, NewEvent)> = batch
                .iter()
                .flat_map(|j| j.events.iter().map(|e| (j.session, e.clone())))
                .collect();
            let started = std::time::Instant::now();
            let appended = self.store.append_events(&events).await;
            // Durations only (`bench/run --join-timings`): how long the batch's first job
            // waited for the transaction before it, and how long the store took with it
            // (SQLite: the writers' turn included).
            tracing::debug!(
                target: "telesoin_server::join_timing",
                events = events.len(),
                queued_us = batch
                    .first()
                    .map_or(0, |j| started.saturating_duration_since(j.queued).as_micros()),
                store_us = started.elapsed().as_micros(),
                "writer batch"
            );
            let left = match appended {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for job in batch {
                        let mine: Vec<Appended> =
                            outcomes.by_ref().take(job.events.len()).collect();
                        let _ = job.reply.send(Ok(mine));
                    }
                    None
                }
                Err(e) if transient(&e) => Some((batch, e)),
                // One of them is refused for good: each alone, so that the others are written.
                Err(_) => self.one_by_one(batch).await,
            };
            match left {
                None => {
                    if failures > 0 {
                        tracing::warn!(
                            tries = failures + 1,
                            "presence events written after the store came back"
                        );
                    }
                    failures = 0;
                }
                Some((batch, e)) => {
                    failures = failures.saturating_add(1);
                    self.retry_later(batch, &e, failures).await;
                }
            }
        }
    }

    /// Writes the jobs one by one: the refused ones are answered with their error and the
    /// others written. Returns the jobs not tried yet when the store became unavailable meanwhile
    /// (the first of them with its error).
    async fn one_by_one(&self, batch: Vec<Job>) -> Option<(Vec<Job>, StoreError)> {
        let mut jobs = batch.into_iter();
        while let Some(job) = jobs.next() {
            let one: Vec<(SessionId, NewEvent)> = job
                .events
                .iter()
                .map(|e| (job.session, e.clone()))
                .collect();
            match self.store.append_events(&one).await {
                Ok(outcomes) => {
                    let _ = job.reply.send(Ok(outcomes));
                }
                Err(e) if transient(&e) => {
                    let mut rest = vec![job];
                    rest.extend(jobs);
                    return Some((rest, e));
                }
                Err(e) => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    // Ids and the kind only: the store's message may name a constraint, never
                    // personal data, but it is not needed to find the event.
                    tracing::error!(
                        session = %job.session,
                        kind = job.events.first().map_or("", |e| e.kind.as_str()),
                        "presence event refused by the store for good: not written"
                    );
                    let _ = job.reply.send(Err(e));
                }
            }
        }
        None
    }

    /// The store is away: the node is not ready, the kept jobs go first in the queue again, in
    /// their order, and the others are answered with the error; then a pause.
    async fn retry_later(&self, batch: Vec<Job>, e: &StoreError, failures: u32) {
        let reason = e.to_string();
        let now = Utc::now();
        for job in &batch {
            self.health.write_failed(Some(job.session), now, &reason);
        }
        let mut kept = Vec::new();
        for job in batch {
            if job.keep {
                kept.push(job);
            } else {
                let _ = job.reply.send(Err(StoreError::Unavailable(reason.clone())));
            }
        }
        if failures == 1 || failures.is_multiple_of(30) {
            tracing::warn!(error = %e, kept = kept.len(), tries = failures, "presence events not written yet: retrying, never dropped");
        }
        {
            // First again, in their order: nothing submitted later goes before them.
            let mut p = self.pending.lock();
            for job in kept.into_iter().rev() {
                p.jobs.push_front(job);
            }
        }
        let pause = Duration::from_millis(50u64.saturating_mul(1 << failures.min(6)));
        tokio::time::sleep(pause.min(MAX_BACKOFF)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telesoin_core::billing::PresenceKind;
    use telesoin_core::model::{Kine, Patient, Role, Session, SessionStatus, Window};
    use telesoin_core::{KineId, ParticipantId, PatientId};
    use telesoin_store::SqlStore;
    use uuid::Uuid;

    async fn session(store: &dyn Store) -> SessionId {
        let now = Utc::now();
        let kine = Kine {
            id: KineId(Uuid::new_v4()),
            rpps: "10001234567".into(),
            name: "Claire Martin".into(),
            email: "claire@example.fr".into(),
        };
        store.create_kine(&kine, "hash", now).await.expect("kine");
        let patient = Patient {
            id: PatientId(Uuid::new_v4()),
            kine: kine.id,
            display_name: "M. Petit".into(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1949, 7, 2).expect("date"),
            loss_of_autonomy: false,
            gp_contact: None,
        };
        store.create_patient(&patient, now).await.expect("patient");
        let (window_start, window_end) = Session::window_for(now, Window::default());
        let s = Session {
            id: SessionId(Uuid::new_v4()),
            kine: kine.id,
            patient: patient.id,
            starts_at: now,
            window_start,
            window_end,
            act_code: "MEMBRE".into(),
            status: SessionStatus::Scheduled,
            auto_admit: true,
            patient_consent_on_join: false,
        };
        store
            .create_session(&s, "reimbursable", now)
            .await
            .expect("session");
        s.id
    }

    /// A SQLite store with one live session, its writer, and a session of the same queue that
    /// does not exist (deleted, purged): what the store refuses for good.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        live: SessionId,
        health: Arc<Health>,
        writer: PresenceWriter,
        gone: SessionId,
    }

    impl Fixture {
        async fn new() -> Self {
            let dir = tempfile::tempdir().expect("dir");
            let store: Arc<dyn Store> = Arc::new(
                SqlStore::open_sqlite(&dir.path().join("telesoin.db"))
                    .await
                    .expect("store"),
            );
            let live = session(store.as_ref()).await;
            let health = Arc::new(Health::new(dir.path().to_path_buf(), 0));
            let writer = PresenceWriter::new(store.clone(), health.clone());
            let gone = loop {
                let s = SessionId(Uuid::new_v4());
                if s.0.as_u128() % SHARDS as u128 == live.0.as_u128() % SHARDS as u128 {
                    break s;
                }
            };
            Fixture {
                _dir: dir,
                store,
                live,
                health,
                writer,
                gone,
            }
        }
    }

    fn event(who: ParticipantId, kind: PresenceKind) -> NewEvent {
        NewEvent {
            at: Utc::now(),
            participant: Some(who),
            role: Some(Role::Companion),
            kind,
            detail: None,
            announce: None,
            opens_session: false,
            expect_last_seq: None,
        }
    }

    /// A batch (one queue, one transaction) holding an event the store refuses for good (its
    /// session does not exist: the foreign key) among kept ones: the refused one is answered
    /// with the error and counted, the others are written, the queue empties and the node stays
    /// ready. Before, the batch was retried forever and its queue never moved again.
    #[tokio::test]
    async fn an_event_refused_for_good_does_not_stop_its_batch() {
        let Fixture {
            _dir,
            store,
            live,
            health,
            writer,
            gone,
        } = Fixture::new().await;
        let (a, b) = (ParticipantId(Uuid::new_v4()), ParticipantId(Uuid::new_v4()));
        // Submitted before the writer task runs (one thread): one batch.
        let replies = [
            writer.submit(live, event(a, PresenceKind::Joined), true),
            writer.submit(gone, event(b, PresenceKind::Joined), true),
            writer.submit(live, event(a, PresenceKind::Left), true),
        ];
        let mut outcomes = Vec::new();
        for rx in replies {
            let outcome = tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .expect("answered: the queue is not stuck")
                .expect("reply");
            outcomes.push(outcome);
        }
        assert!(
            matches!(outcomes[0], Ok(Appended::Written(_))),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[1], Err(StoreError::Rejected(_))),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[2], Ok(Appended::Written(_))),
            "{outcomes:?}"
        );
        assert_eq!(writer.queued(), 0);
        assert_eq!(writer.rejected(), 1);
        assert!(!health.writes_failing(), "a refused event is no outage");
        let kinds: Vec<_> = store
            .events(live)
            .await
            .expect("events")
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, [PresenceKind::Joined, PresenceKind::Left]);
        // And the queue goes on.
        let next = writer
            .append(live, event(a, PresenceKind::Joined), false)
            .await;
        assert!(matches!(next, Ok(Appended::Written(_))), "{next:?}");
    }

    /// A join's `joined` and `admitted` submitted as one job are written together, in their
    /// order, with one outcome each, also when their batch is refused for another job's event
    /// and written job by job; a job refused for good writes none of its events.
    #[tokio::test]
    async fn a_job_of_several_events_is_written_whole() {
        let Fixture {
            _dir,
            store,
            live,
            health: _,
            writer,
            gone,
        } = Fixture::new().await;
        let (a, b) = (ParticipantId(Uuid::new_v4()), ParticipantId(Uuid::new_v4()));
        let pair = |who| {
            vec![
                event(who, PresenceKind::Joined),
                event(who, PresenceKind::Admitted),
            ]
        };
        // One batch: the refused job makes it go job by job.
        let replies = [
            writer.submit_all(live, pair(a), false),
            writer.submit_all(gone, pair(b), false),
        ];
        let mut outcomes = Vec::new();
        for rx in replies {
            let outcome = tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .expect("answered")
                .expect("reply");
            outcomes.push(outcome);
        }
        assert!(
            matches!(
                outcomes[0].as_deref(),
                Ok([Appended::Written(j), Appended::Written(ad)]) if j < ad
            ),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[1], Err(StoreError::Rejected(_))),
            "{outcomes:?}"
        );
        let kinds: Vec<_> = store
            .events(live)
            .await
            .expect("events")
            .iter()
            .map(|e| (e.participant, e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some(a), PresenceKind::Joined),
                (Some(a), PresenceKind::Admitted)
            ]
        );
        assert_eq!(writer.rejected(), 1);
    }
}
