//! telesoin-store: persistence behind traits.
//!
//! Concepts:
//! - [`Store`]: everything the server persists, split by concept ([`KineStore`],
//!   [`PatientStore`], [`SessionStore`], [`EventStore`]). The server holds an
//!   `Arc<dyn Store>` chosen once at start-up and never sees SQL.
//! - [`SqlStore`] (module [`sql`]): the one implementation, for both backends, chosen by a
//!   database URL ([`Backend`]): SQLite, the embedded default (one file in the data directory,
//!   WAL), or Postgres when several nodes share one database. Migrations live in
//!   `migrations/sqlite` and `migrations/postgres`, embedded in the binary, and are applied on
//!   connect.
//! - [`StoreError`]: what can go wrong, with `Unavailable` (transient: retry, fail closed) kept
//!   apart from `Rejected` (a constraint refuses the write for good).
//!
//! Why one implementation over `sqlx::Any` rather than one per backend: the queries are plain
//! SQL that both databases accept (`$n` placeholders, `RETURNING`, `ON CONFLICT ... DO NOTHING`),
//! and the schemas store the same shapes (UUID text, `i64` milliseconds, `0`/`1` flags), so a
//! second copy of every query would only be a place for the two to drift apart. What differs
//! stays small and explicit: the migration folder and SQLite's per-connection settings. The one
//! test suite in `tests/store.rs` runs against both.
//!
//! This crate stores and reads; it never decides. Whether someone may join, or how long a call
//! is billed, is `telesoin-core`'s answer, computed by the caller from what this crate returns.
//! Presence events are append-only: no method changes one, and both schemas make the database
//! refuse an `UPDATE`, and a `DELETE` except inside a retention purge ([`RecordStore::purge_patient`]).
//! - [`rules`]: territories, a minor's representative, HN price acceptances, the per-kiné
//!   invoice sequence.
//! - [`identity`]: the patient's INS, the kiné by RPPS, the OpenID Connect login state.
//! - [`reach`]: patient contact details, short link codes, reminder offsets and the message
//!   outbox (claimed by lease, sent once).
//! - [`outbound`]: what announces a change (webhook rows, the patient's notices, the reminders
//!   it stops) written in the change's own transaction: cancel, move, finalize, message done.
//! - [`records`]: billing facts, the versioned compte rendu, the hash-chained audit trail, retention. It never logs or puts in an
//! error a database URL (it may hold a password) or a row's personal data.

mod checkpoint;
pub mod identity;
pub mod outbound;
pub mod platform;
pub mod reach;
pub mod records;
pub mod rules;
pub mod sql;
mod types;

pub use identity::*;
pub use outbound::*;
pub use platform::*;
pub use reach::*;
pub use records::*;
pub use rules::*;
pub use sql::{Backend, SqlStore};
pub use types::*;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use telesoin_core::billing::PresenceEvent;
use telesoin_core::claims::IssuedSeat;
use telesoin_core::model::{Consent, InPersonVisit, Kine, Patient, Role, Session, SessionStatus};
use telesoin_core::{KineId, ParticipantId, PatientId, SessionId};
use uuid::Uuid;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the operation: the caller fails closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (an e-mail or RPPS already registered, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database refuses this write for good: a foreign key (its session was deleted or
    /// purged), a `CHECK` or a `NOT NULL` constraint. Retrying the same write cannot help,
    /// unlike [`StoreError::Unavailable`]. The message names the constraint, not the row.
    #[error("refused by a constraint: {0}")]
    Rejected(String),
    /// The database URL cannot be used (an unknown scheme, a malformed URL). The message never
    /// repeats the URL, which may hold a password.
    #[error("configuration: {0}")]
    Config(String),
    /// A row could not be read back into a value (a corrupted or hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The append was refused: after a seat's `left`, only a new `joined` may be recorded for
    /// it (the seat's events are ordered; see [`EventStore::append_events`]).
    #[error("the seat left: only a new joined may follow")]
    SeatLeft,
    /// The append was not made: the seat's last event is no longer the one it expected
    /// ([`NewEvent::expect_last_seq`]).
    #[error("the seat changed since: its last event is not the one expected")]
    Superseded,
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[async_trait]
pub trait KineStore: Send + Sync {
    async fn create_kine(&self, kine: &Kine, password_hash: &str, now: DateTime<Utc>)
    -> Result<()>;
    /// The kiné and their password hash, for login.
    async fn kine_by_email(&self, email: &str) -> Result<Option<(Kine, String)>>;
    async fn kine(&self, id: KineId) -> Result<Option<Kine>>;
    async fn create_web_session(
        &self,
        token_hash: &[u8],
        kine: KineId,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// The kiné logged in with this cookie, if it has not expired at `now`.
    async fn web_session(&self, token_hash: &[u8], now: DateTime<Utc>) -> Result<Option<KineId>>;
    async fn delete_web_session(&self, token_hash: &[u8]) -> Result<()>;
}

#[async_trait]
pub trait PatientStore: Send + Sync {
    async fn create_patient(&self, patient: &Patient, now: DateTime<Utc>) -> Result<()>;
    async fn patients(&self, kine: KineId) -> Result<Vec<PatientRow>>;
    /// A patient of this kiné (None for another kiné's patient).
    async fn patient(&self, kine: KineId, id: PatientId) -> Result<Option<PatientRow>>;
    async fn add_visit(
        &self,
        kine: KineId,
        patient: PatientId,
        id: Uuid,
        visit: InPersonVisit,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn visits(&self, kine: KineId, patient: PatientId) -> Result<Vec<VisitRow>>;
    /// Records a consent and, for a minor's, the representative who gave it (in its row: never
    /// a consent without the name it was given under), in one transaction with the webhooks of
    /// `recorded` (`consent.recorded`: its data gets `kine` and `patient`; ordered by patient).
    async fn add_consent(
        &self,
        kine: KineId,
        patient: PatientId,
        id: Uuid,
        consent: &Consent,
        representative: Option<&Representative>,
        recorded: Option<&Announcement>,
    ) -> Result<()>;
    async fn consents(&self, kine: KineId, patient: PatientId) -> Result<Vec<ConsentRow>>;
    /// [`PatientStore::patient`], [`PatientStore::visits`] and [`PatientStore::consents`] in
    /// one statement (a join evaluates admission with them): None when the patient is not this
    /// kiné's.
    async fn admission_facts(
        &self,
        kine: KineId,
        patient: PatientId,
    ) -> Result<Option<AdmissionFacts>>;
    /// Withdraws a consent of this kiné's patient, in one transaction with the webhooks of
    /// `withdrawn` (`consent.withdrawn`, as for `add_consent`); None, and nothing written, if
    /// there was none to withdraw.
    async fn withdraw_consent(
        &self,
        kine: KineId,
        id: Uuid,
        at: DateTime<Utc>,
        withdrawn: Option<&Announcement>,
    ) -> Result<Option<ConsentRow>>;
    async fn add_prescription(
        &self,
        patient: PatientId,
        id: Uuid,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn prescriptions(&self, patient: PatientId) -> Result<Vec<PrescriptionRow>>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(
        &self,
        session: &Session,
        billing_class: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn session(&self, id: SessionId) -> Result<Option<SessionRow>>;
    /// This kiné's sessions starting in `[from, to)`, by start time.
    async fn sessions_between(
        &self,
        kine: KineId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SessionRow>>;
    /// Sessions whose status is `live`, for recovery after a restart.
    async fn live_sessions(&self) -> Result<Vec<SessionRow>>;
    /// Sessions still `live` whose appointment window ended at or before `at`, for the
    /// end-of-window sweep: the sessions under way are neither read nor decoded (an index
    /// range, migration 0017), however many there are.
    async fn live_sessions_closed_by(&self, at: DateTime<Utc>) -> Result<Vec<SessionRow>>;
    /// Moves a session to `to` only if it is currently one of `from`; true if it moved.
    async fn transition(
        &self,
        id: SessionId,
        from: &[SessionStatus],
        to: SessionStatus,
    ) -> Result<bool>;
    /// The seat for `role` in this session, created on first use (one kiné and one patient seat).
    async fn seat(
        &self,
        session: SessionId,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<ParticipantId>;
    async fn issue_link(&self, link: &LinkRow) -> Result<()>;
    async fn link(&self, jti: Uuid) -> Result<Option<IssuedSeat>>;
    /// What a join needs in one read: the link's seat, its session, the kiné's name, the HN
    /// price to accept and the one accepted, the seat's last state and, with `facts`, the
    /// patient's admission facts ([`LinkedSession`]).
    async fn link_session(&self, jti: Uuid, facts: bool) -> Result<Option<LinkedSession>>;
    async fn revoke_link(&self, jti: Uuid, at: DateTime<Utc>) -> Result<Option<SessionId>>;
    async fn revoke_session_links(&self, session: SessionId, at: DateTime<Utc>) -> Result<u64>;
    /// Ends the session and stores its billable time, exactly once: true for the one call that
    /// did it, false for every later (or concurrent) one.
    async fn finalize(
        &self,
        session: SessionId,
        ended_at: DateTime<Utc>,
        billable_seconds: i64,
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends one presence event with server time; returns its sequence number.
    /// [`StoreError::SeatLeft`] when the seat's last event is `left` and this one is not a new
    /// `joined`: a seat's events are ordered, nothing follows its `left` but a return.
    /// [`StoreError::Superseded`] when the event expects a last event of its seat
    /// ([`NewEvent::expect_last_seq`]) that is not the last any more.
    async fn append_event(&self, session: SessionId, event: &NewEvent) -> Result<i64>;
    /// Appends events in order, in one transaction (one write for a burst of them), each with
    /// its announcement (webhook rows) if it has one and the opening of its session if it
    /// opens it ([`NewEvent::opens_session`]); each one the seat rule refuses is
    /// [`Appended::SeatLeft`], each one whose expected last event of its seat is not the last
    /// any more is [`Appended::Superseded`], both without their announcement, and the others
    /// are still written. An error means that none was written: [`StoreError::Rejected`] when
    /// a constraint refuses one of them for good (its session is gone, ...), which the caller
    /// finds by writing them one by one.
    async fn append_events(&self, batch: &[(SessionId, NewEvent)]) -> Result<Vec<Appended>>;
    async fn events(&self, session: SessionId) -> Result<Vec<EventRow>>;
    /// The seat's last state (one row, kept with every event), None before its first event.
    async fn seat_state(
        &self,
        session: SessionId,
        participant: ParticipantId,
    ) -> Result<Option<SeatState>>;
}

/// Everything the server persists.
#[async_trait]
pub trait Store:
    KineStore
    + PatientStore
    + SessionStore
    + EventStore
    + RecordStore
    + PlatformStore
    + RulesStore
    + IdentityStore
    + ReachStore
    + OutboundStore
{
    /// Cheap liveness probe of the backend, for /readyz and fail-closed admission.
    async fn ping(&self) -> Result<()>;
}

impl EventRow {
    pub fn presence(&self) -> PresenceEvent {
        PresenceEvent {
            seq: self.seq,
            at: self.at,
            participant: self.participant,
            role: self.role,
            kind: self.kind,
            media: telesoin_core::billing::MediaReport::from_event(
                self.kind,
                self.detail.as_deref(),
            ),
        }
    }
}
