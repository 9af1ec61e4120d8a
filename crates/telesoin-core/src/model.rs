//! The things télésoin is about, as plain values.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{KineId, PatientId, SessionId};

/// A masseur-kinésithérapeute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kine {
    pub id: KineId,
    /// Répertoire partagé des professionnels de santé number (11 digits).
    pub rpps: String,
    pub name: String,
    pub email: String,
}

/// Checks an RPPS number: 11 digits.
pub fn valid_rpps(rpps: &str) -> bool {
    rpps.len() == 11 && rpps.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub id: PatientId,
    pub kine: KineId,
    pub display_name: String,
    pub birth_date: NaiveDate,
    /// Perte d'autonomie: an aidant must be present at every session.
    pub loss_of_autonomy: bool,
    /// Médecin traitant, who receives the compte rendu.
    pub gp_contact: Option<String>,
}

impl Patient {
    /// Age in whole years on `date`: a patient born on 2008-11-22 is 18 on 2026-11-22.
    pub fn age_on(&self, date: NaiveDate) -> i32 {
        age_on(self.birth_date, date)
    }
}

/// Age in whole years on `date`. A birthday on 29 February counts on 1 March in other years.
pub fn age_on(birth: NaiveDate, date: NaiveDate) -> i32 {
    let mut age = date.year() - birth.year();
    if (date.month(), date.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// The initial assessment (bilan diagnostic kinésithérapique).
    Bilan,
    /// A treatment session.
    Session,
    /// The in-person bilan done by a kiné before the patient left hospital, the discharge
    /// summary passed on to this kiné: the convention's hospital-discharge exception. It stands
    /// for the in-person bilan and the recent in-person care under the convention, never under
    /// the arrêté of 2021 (which wants a session with this kiné).
    HospitalBilan,
}

impl VisitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitKind::Bilan => "bilan",
            VisitKind::Session => "session",
            VisitKind::HospitalBilan => "hospital_bilan",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bilan" => Some(VisitKind::Bilan),
            "session" => Some(VisitKind::Session),
            "hospital_bilan" => Some(VisitKind::HospitalBilan),
            _ => None,
        }
    }
}

/// Care given in person, "en présence du patient", by this kiné (or, for
/// [`VisitKind::HospitalBilan`], by a hospital kiné before discharge, recorded by this one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InPersonVisit {
    pub date: NaiveDate,
    pub kind: VisitKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRecorder {
    /// The kiné recorded the patient's consent (orally or on paper).
    Kine,
    /// The patient gave it on the join page.
    Patient,
}

impl ConsentRecorder {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentRecorder::Kine => "kine",
            ConsentRecorder::Patient => "patient",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kine" => Some(ConsentRecorder::Kine),
            "patient" => Some(ConsentRecorder::Patient),
            _ => None,
        }
    }
}

/// A traced consent: who, how, to which text, when, and when withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub recorded_by: ConsentRecorder,
    /// `oral`, `written` or `join_page`.
    pub method: String,
    pub text_version: String,
    pub recorded_at: DateTime<Utc>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

impl Consent {
    /// In force at `now`: recorded before it and not withdrawn by then.
    pub fn in_force_at(&self, now: DateTime<Utc>) -> bool {
        self.recorded_at <= now && self.withdrawn_at.is_none_or(|w| w > now)
    }
}

/// The consent methods a kiné may record.
pub const CONSENT_METHODS: [&str; 3] = ["oral", "written", "join_page"];

/// The current text of the télésoin consent the patient agrees to; its version is traced.
pub const CONSENT_TEXT_VERSION: &str = "2026-11-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Kine,
    Patient,
    Companion,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Kine => "kine",
            Role::Patient => "patient",
            Role::Companion => "companion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kine" => Some(Role::Kine),
            "patient" => Some(Role::Patient),
            "companion" => Some(Role::Companion),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Companion {
    Parent,
    Aidant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Scheduled,
    Live,
    Ended,
    Cancelled,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Scheduled => "scheduled",
            SessionStatus::Live => "live",
            SessionStatus::Ended => "ended",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(SessionStatus::Scheduled),
            "live" => Some(SessionStatus::Live),
            "ended" => Some(SessionStatus::Ended),
            "cancelled" => Some(SessionStatus::Cancelled),
            _ => None,
        }
    }

    /// Ended and cancelled sessions take nobody in and their links are dead.
    pub fn is_closed(self) -> bool {
        matches!(self, SessionStatus::Ended | SessionStatus::Cancelled)
    }
}

/// What became of a session, as the kiné reads it and billing counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Scheduled or live: not decided yet.
    Open,
    /// Ended or cancelled with billable time: "réalisée", billed.
    Held,
    /// Ended or cancelled without a billable second: "non réalisée". No amount; excluded from
    /// billing exports and from the télésoin share.
    NotHeld,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "open",
            Outcome::Held => "held",
            Outcome::NotHeld => "not_held",
        }
    }

    /// Only a held session bills anything.
    pub fn billable(self) -> bool {
        self == Outcome::Held
    }
}

/// The outcome of a session of `status` with `billable_seconds` fixed at its end (`None`: not
/// fixed). A closed session held only if at least one second was billable.
pub fn outcome(status: SessionStatus, billable_seconds: Option<i64>) -> Outcome {
    if !status.is_closed() {
        Outcome::Open
    } else if billable_seconds.is_some_and(|s| s > 0) {
        Outcome::Held
    } else {
        Outcome::NotHeld
    }
}

/// How long before and after the start a link works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub before: Duration,
    pub after: Duration,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            before: Duration::minutes(15),
            after: Duration::hours(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub kine: KineId,
    pub patient: PatientId,
    pub starts_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub act_code: String,
    pub status: SessionStatus,
    pub auto_admit: bool,
    pub patient_consent_on_join: bool,
}

impl Session {
    /// The appointment window of a session starting at `starts_at`.
    pub fn window_for(starts_at: DateTime<Utc>, window: Window) -> (DateTime<Utc>, DateTime<Utc>) {
        (starts_at - window.before, starts_at + window.after)
    }

    pub fn in_window(&self, now: DateTime<Utc>) -> bool {
        self.window_start <= now && now < self.window_end
    }

    /// The session day in France (Europe/Paris), which decides whether the patient is a minor.
    pub fn day(&self) -> NaiveDate {
        local_date(self.starts_at)
    }
}

/// The calendar date in France of an instant: what "the session day" means to a kiné.
pub fn local_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&chrono_tz::Europe::Paris).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_table() {
        use SessionStatus::*;
        for (status, seconds, want) in [
            (Scheduled, None, Outcome::Open),
            (Live, Some(120), Outcome::Open),
            (Ended, Some(1), Outcome::Held),
            (Ended, Some(1800), Outcome::Held),
            // The kiné opened the room and pressed "Terminer la séance": nothing was held.
            (Ended, Some(0), Outcome::NotHeld),
            (Ended, None, Outcome::NotHeld),
            (Cancelled, None, Outcome::NotHeld),
            (Cancelled, Some(0), Outcome::NotHeld),
            (Cancelled, Some(300), Outcome::Held),
            (Ended, Some(-5), Outcome::NotHeld),
        ] {
            assert_eq!(outcome(status, seconds), want, "{status:?} {seconds:?}");
        }
        assert!(Outcome::Held.billable());
        assert!(!Outcome::NotHeld.billable());
        assert!(!Outcome::Open.billable());
    }
}
