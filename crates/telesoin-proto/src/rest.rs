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
    /// RPPS number (11 digits): the identifier a Pro Santé Connect login is matched on.
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
    /// The patient's département (`75`, `2A`, `971`) or postcode, for the convention's
    /// territory check.
    #[serde(default)]
    pub departement: Option<String>,
    /// The INS and its traits, when known (also settable later: `PUT .../ins`).
    #[serde(default)]
    pub ins: Option<PatientIns>,
}

/// The patient's INS (identité nationale de santé) and its five reference traits, with the
/// identity status of the RNIV. Documents and exports carry the matricule only when `qualifiee`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PatientIns {
    /// `provisoire`, `recuperee` (INS retrieved from INSi), `validee` (identity checked on an ID
    /// document) or `qualifiee` (both).
    pub status: String,
    /// NIR or NIA, 15 characters (13 and the 2-digit key; `2A`/`2B` for Corsica). Only for
    /// `recuperee` and `qualifiee`.
    #[serde(default)]
    pub matricule: Option<String>,
    /// OID of the assigning authority: `1.2.250.1.213.1.4.8` (NIR, the default),
    /// `1.2.250.1.213.1.4.9` (NIA), `1.2.250.1.213.1.4.10` / `.11` (test / demonstration NIR).
    #[serde(default)]
    pub oid: Option<String>,
    /// Nom(s) de naissance.
    pub birth_names: String,
    /// Prénom(s) de naissance, in order, separated by spaces.
    pub first_names: String,
    /// Must be the patient's birth date.
    pub birth_date: NaiveDate,
    /// `M`, `F` or `I` (indéterminé).
    pub sex: String,
    /// INSEE code of the birth place (`75056`, `2A004`; `99xxx` abroad).
    pub birth_place: String,
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
    /// For a minor (under 18 today): the legal representative who consents, by name.
    /// Required for a minor, refused for an adult.
    #[serde(default)]
    pub representative_name: Option<String>,
    /// Their relation to the patient (`mère`, `père`, `tuteur`...).
    #[serde(default)]
    pub representative_relation: Option<String>,
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
    /// Who consented for a minor, and their relation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representative_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representative_relation: Option<String>,
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
    /// The key letter that prices the session on its day (`TMK` since 2024-02-22, `AMK`
    /// before); absent for an HN session.
    #[serde(default)]
    pub key_letter: Option<String>,
    /// The act's coefficient as the NGAP writes it (`7.5`); absent for an HN session.
    #[serde(default)]
    pub coefficient: Option<String>,
    /// The value of `key_letter` on the session day, in cents.
    #[serde(default)]
    pub key_letter_value_cents: Option<i64>,
    /// What the session bills: coefficient x value, or the HN price. Absent when it cannot be
    /// priced (no value configured for the day) or was not held.
    #[serde(default)]
    pub amount_cents: Option<i64>,
    /// `scheduled`, `live`, `ended` or `cancelled`.
    pub status: String,
    /// `open` (scheduled or live), `held` ("réalisée"), or `not_held` ("non réalisée": ended or
    /// cancelled without a billable second; no amount, not exported, not in the share).
    #[serde(default)]
    pub outcome: String,
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
    /// `open` (scheduled or live), `held` ("réalisée"), or `not_held` ("non réalisée": ended or
    /// cancelled without a billable second; no amount, not exported, not in the share).
    #[serde(default)]
    pub outcome: String,
    pub kine_rpps: String,
    pub act_code: String,
    pub amk_coefficient: f64,
    /// The key letter that prices the session on its day (`TMK` since 2024-02-22, `AMK`
    /// before); absent for an HN session.
    #[serde(default)]
    pub key_letter: Option<String>,
    /// The act's coefficient as the NGAP writes it (`7.5`); absent for an HN session.
    #[serde(default)]
    pub coefficient: Option<String>,
    /// The value of `key_letter` on the session day, in cents.
    #[serde(default)]
    pub key_letter_value_cents: Option<i64>,
    /// What the session bills: coefficient x value, or the HN price. Absent when it cannot be
    /// priced (no value configured for the day) or was not held.
    #[serde(default)]
    pub amount_cents: Option<i64>,
    pub billing_class: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Set once, when the session is finalized.
    pub billable_seconds: Option<i64>,
    /// While the session is live: billable seconds so far.
    pub provisional_seconds: i64,
    pub finalized_at: Option<DateTime<Utc>>,
    /// Who consented, in words: "Consentement au télésoin donné par le patient", or "... par
    /// Sophie Petit (mère), représentant légal du patient mineur". Absent: no consent on record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// Companions attested present next to the patient (never incidents).
    #[serde(default)]
    pub attestations: Vec<Attestation>,
    /// HN: when the patient's side accepted the price shown on the join page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_accepted_at: Option<DateTime<Utc>>,
    pub incidents: Vec<Event>,
    pub events: Vec<Event>,
}

/// A companion attested present: a parent or an aidant, named.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attestation {
    /// `parent` or `aidant`.
    pub companion: String,
    pub name: String,
    /// Their relation to the patient, as typed ("mère", "fils"...).
    pub relation: String,
    pub attested_at: DateTime<Utc>,
    /// "En présence de Sophie Petit (mère)".
    pub words: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Act {
    pub code: String,
    pub label: String,
    /// The act's coefficient (the same in person and in télésoin).
    pub amk_coefficient: f64,
    /// The letter written when the act is done in person (`AMK`, `ARL`, `NMI`...), if known.
    #[serde(default)]
    pub in_person_letter: Option<String>,
    /// The letter télésoin bills it with today (`TMK`).
    #[serde(default)]
    pub telesoin_letter: String,
    /// Télésoin allows it; otherwise `not_remote` says why (`direct_contact`, `equipment`) and
    /// it cannot be scheduled.
    #[serde(default)]
    pub telesoin_allowed: bool,
    #[serde(default)]
    pub not_remote: Option<String>,
    /// `ngap_2024` or `ngap_2021`: the catalogue in force today.
    #[serde(default)]
    pub catalogue: String,
}

/// A patient with everything admission and billing look at.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatientDetail {
    pub patient: Patient,
    /// The INS and its traits, when recorded.
    #[serde(default)]
    pub ins: Option<PatientIns>,
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

/// The price of an HN session as the join page shows it before the call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinPrice {
    /// `reimbursable` (nothing to accept) or `hn`.
    pub billing_class: String,
    /// The kiné's price for this session, for an HN session.
    pub price_cents: Option<i64>,
    /// When the patient accepted it, if they did.
    pub accepted_at: Option<DateTime<Utc>>,
}

/// The patient accepts the HN price shown (the same amount, or `409 conflict`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptPrice {
    pub token: String,
    pub price_cents: i64,
}

/// Why a session is reimbursable or hors nomenclature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BillingReason {
    pub code: String,
    pub message_fr: String,
    pub message_en: String,
}
