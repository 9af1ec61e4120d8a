//! Rows returned by the store: domain values plus what only storage knows (ids, creation time).

use chrono::{DateTime, NaiveDate, Utc};
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::{Consent, InPersonVisit, Patient, Role, Session};
use telesoin_core::{ParticipantId, PatientId};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct PatientRow {
    pub patient: Patient,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct VisitRow {
    pub id: Uuid,
    pub patient: PatientId,
    pub visit: InPersonVisit,
}

#[derive(Debug, Clone)]
pub struct ConsentRow {
    pub id: Uuid,
    pub patient: PatientId,
    pub consent: Consent,
}

/// What admission reads of a patient: the patient, their in-person visits (by date) and their
/// consents (by time recorded), read together in one statement.
#[derive(Debug, Clone)]
pub struct AdmissionFacts {
    pub patient: PatientRow,
    pub visits: Vec<VisitRow>,
    pub consents: Vec<ConsentRow>,
}

#[derive(Debug, Clone)]
pub struct PrescriptionRow {
    pub id: Uuid,
    pub patient: PatientId,
    pub date: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session: Session,
    pub billing_class: String,
    /// Why the class is what it is (`ClassReason::code`), once classified.
    pub class_reason: Option<String>,
    /// Privacy mode: media through TURN only, so that nobody sees the patient's IP address.
    pub relay_only: bool,
    pub ended_at: Option<DateTime<Utc>>,
    pub billable_seconds: Option<i64>,
    pub finalized_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct LinkRow {
    pub jti: Uuid,
    pub session: telesoin_core::SessionId,
    pub participant: ParticipantId,
    pub role: Role,
    pub issued_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: DateTime<Utc>,
    pub participant: Option<ParticipantId>,
    pub role: Option<Role>,
    pub kind: PresenceKind,
    /// Short machine text (an incident label, a refusal code); never personal data.
    pub detail: Option<String>,
    /// The platforms' webhook that announces this event (`participant.admitted`, ...), written
    /// with it in its transaction, and only if the event is written (not when it is refused).
    pub announce: Option<crate::Announcement>,
    /// The session moves from `scheduled` to `live` in this event's transaction, if the event
    /// is written and the session is still `scheduled` (the first admission opens it): one
    /// commit, not two, and never a `live` session without its `admitted`.
    pub opens_session: bool,
    /// Written only while the seat's last recorded event is still this one (its `seq`),
    /// checked in the event's own transaction (the seat's row locked on Postgres, under the
    /// write lock on SQLite); otherwise nothing is written and the append answers
    /// [`Appended::Superseded`]. A decision taken from the record (a grace that expired: the
    /// seat still ends with its `socket_lost`) so holds when it is written: a return recorded
    /// in between is never followed by it. An event without a participant never holds it.
    pub expect_last_seq: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub participant: Option<ParticipantId>,
    pub role: Option<Role>,
    pub kind: PresenceKind,
    pub detail: Option<String>,
}

/// What became of one event of [`crate::EventStore::append_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written, with its sequence number.
    Written(i64),
    /// Refused: the seat had left, and this is not a new `joined`.
    SeatLeft,
    /// Not written: the seat's last event is no longer the one the event expected
    /// ([`NewEvent::expect_last_seq`]); something was recorded for the seat since.
    Superseded,
}

/// What a join reads in one statement: the link's seat, its session, the kiné's name, the
/// HN price to accept and the one accepted, the seat's last state and, for a patient's side,
/// the patient's admission facts.
#[derive(Debug, Clone)]
pub struct LinkedSession {
    pub seat: telesoin_core::claims::IssuedSeat,
    pub row: SessionRow,
    pub kine_name: String,
    /// The session's own HN price, else the kiné's default (what `hn_price_cents` reads).
    pub hn_price_cents: i64,
    /// The price last accepted for the session (what `hn_price_acceptance` reads), if any.
    pub hn_accepted_cents: Option<i64>,
    /// The seat's last state (what `seat_state` reads), if it has any event.
    pub seat_state: Option<SeatState>,
    /// The patient's facts (what `admission_facts` reads), when asked for and the patient is
    /// the kiné's.
    pub facts: Option<AdmissionFacts>,
}

/// A seat's last state, as its events left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatState {
    pub last_seq: i64,
    pub last_kind: PresenceKind,
    /// Its admission stands (`admitted`, and no `refused` or `left` since but a hang-up or a
    /// leave, which keep it for a return in the session).
    pub admitted: bool,
}
