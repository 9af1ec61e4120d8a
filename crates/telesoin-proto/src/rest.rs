//! REST bodies (JSON). Dates are ISO 8601 (`2026-11-22`), instants RFC 3339 in UTC.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signal::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kine {
    pub id: Uuid,
    pub rpps: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPatient {
    pub display_name: String,
    pub birth_date: NaiveDate,
    #[serde(default)]
    pub loss_of_autonomy: bool,
    #[serde(default)]
    pub gp_contact: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Patient {
    pub id: Uuid,
    pub display_name: String,
    pub birth_date: NaiveDate,
    pub loss_of_autonomy: bool,
    pub gp_contact: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `bilan` (initial assessment) or `session` (a treatment session), both in person.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewVisit {
    pub date: NaiveDate,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Visit {
    pub id: Uuid,
    pub patient: Uuid,
    pub date: NaiveDate,
    pub kind: String,
}

/// Consent recorded by the kiné (method `oral` or `written`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    pub text_version: String,
    #[serde(default = "default_method")]
    pub method: String,
}

fn default_method() -> String {
    "oral".to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consent {
    pub id: Uuid,
    pub patient: Uuid,
    /// `kine` or `patient`.
    pub recorded_by: String,
    /// `oral`, `written` or `join_page`.
    pub method: String,
    pub text_version: String,
    pub recorded_at: DateTime<Utc>,
    pub withdrawn_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPrescription {
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Prescription {
    pub id: Uuid,
    pub patient: Uuid,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub patient: Uuid,
    pub starts_at: DateTime<Utc>,
    /// NGAP act code from `GET /api/acts`.
    pub act_code: String,
    /// Let the patient in without waiting for the kiné's click (preconditions still apply).
    #[serde(default)]
    pub auto_admit: bool,
    /// Ask the patient for consent on the join page when none is on record.
    #[serde(default = "yes")]
    pub patient_consent_on_join: bool,
    /// Direct access without prescription (`acute_low_back_pain` or `ankle_sprain`), reimbursed
    /// only when the kiné declares a cooperation protocol.
    #[serde(default)]
    pub direct_access: Option<String>,
    /// The price of this session if it is hors nomenclature, in cents (default: the kiné's).
    #[serde(default)]
    pub hn_price_cents: Option<i64>,
    /// Privacy mode: media through TURN only, so that nobody sees the patient's IP address.
    /// Needs TURN configured on the server.
    #[serde(default)]
    pub relay_only: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub id: Uuid,
    pub patient: Uuid,
    pub patient_name: String,
    pub starts_at: DateTime<Utc>,
    /// Links work from `window_start` to `window_end`.
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub act_code: String,
    pub act_label: String,
    pub amk_coefficient: f64,
    /// `scheduled`, `live`, `ended` or `cancelled`.
    pub status: String,
    pub auto_admit: bool,
    pub patient_consent_on_join: bool,
    /// `reimbursable` or `hn`, as computed when scheduled (fixed at finalization).
    pub billing_class: String,
    /// Why: a stable code and plain words (French first), shown to kiné and patient up front.
    #[serde(default)]
    pub billing_reason: Option<BillingReason>,
    /// Privacy mode (media through TURN only).
    #[serde(default)]
    pub relay_only: bool,
    /// Live presence, when the session is open: who is connected and who waits.
    #[serde(default)]
    pub live: Vec<LivePresence>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LivePresence {
    pub participant: Uuid,
    pub role: Role,
    pub admitted: bool,
    pub connected: bool,
    pub media: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    pub role: Role,
}

/// A join link. `url` is `https://HOST/j#TOKEN`: the token sits in the fragment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    pub participant: Uuid,
    pub role: Role,
    pub jti: Uuid,
    pub url: String,
    pub token: String,
    /// The short link for a patient or companion (`https://HOST/j#CODE`, a 22-character code
    /// that the join page exchanges for `token`): what fits in an SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_url: Option<String>,
    pub not_before: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub participant: Option<Uuid>,
    pub role: Option<Role>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The session record: what billing and the patient file rely on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    pub session: Uuid,
    pub status: String,
    pub kine_rpps: String,
    pub act_code: String,
    pub amk_coefficient: f64,
    pub billing_class: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Set once, when the session is finalized.
    pub billable_seconds: Option<i64>,
    /// While the session is live: billable seconds so far.
    pub provisional_seconds: i64,
    pub finalized_at: Option<DateTime<Utc>>,
    pub incidents: Vec<Event>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Act {
    pub code: String,
    pub label: String,
    pub amk_coefficient: f64,
}

/// A patient with everything admission and billing look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientDetail {
    pub patient: Patient,
    pub visits: Vec<Visit>,
    pub consents: Vec<Consent>,
    pub prescriptions: Vec<Prescription>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinInfoRequest {
    pub token: String,
}

/// Why a session is reimbursable or hors nomenclature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BillingReason {
    pub code: String,
    pub message_fr: String,
    pub message_en: String,
}
