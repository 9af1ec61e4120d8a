//! REST bodies for reaching the patient: contact details, sending the link, the delivery state
//! of each message, reminder settings, the short link code exchange, moving a session.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A patient's contact details. `phone` is E.164 (`+33612345678`) once stored; French formats
/// (`06 12 34 56 78`, `+33 6 ...`, `0033 6 ...`) are accepted and normalised.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Contact {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `email`, `sms`, `both` (default) or `none`.
    #[serde(default = "both")]
    pub preferred_channel: String,
}

fn both() -> String {
    "both".to_owned()
}

/// "Envoyer le lien": which channels (default: the patient's preferred ones).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendLink {
    /// `email`, `sms`; absent: those the patient prefers among the configured ones.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// One message to the patient and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: Uuid,
    pub session: Uuid,
    /// `invitation`, `reminder`, `cancelled` or `moved`.
    pub kind: String,
    /// `email` or `sms`.
    pub channel: String,
    /// `pending`, `sent`, `failed`, `skipped` or `cancelled`.
    pub state: String,
    /// When it goes (or went, or is retried).
    pub due_at: DateTime<Utc>,
    pub attempts: i64,
    /// Why it failed or was skipped (`smtp: 550 ...`, `no_address`, `not_configured`).
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub done_at: Option<DateTime<Utc>>,
}

/// What this server can send, and the kiné's reminder offsets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReachSettings {
    /// An SMTP relay is configured.
    pub email_configured: bool,
    /// An SMS gateway is configured.
    pub sms_configured: bool,
    /// Minutes before the start at which reminders go (`[1440, 60]`).
    pub reminder_offsets_minutes: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReminderOffsets {
    /// Minutes before the start, at most 5, each 1 to 43200; `[]`: no reminders.
    pub reminder_offsets_minutes: Vec<i64>,
}

/// The join page's exchange of a short link code for the seat's join token (in a POST body:
/// the code, like a token, never travels in a URL that reaches a server).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JoinCodeRequest {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinCode {
    /// The join token of the link the code stands for, valid over the current window.
    pub token: String,
    pub session: Uuid,
    pub kine_name: String,
    pub starts_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// The server's clock, so that the page counts down on it rather than on the phone's.
    pub server_now: DateTime<Utc>,
}

/// Moves a scheduled session to another time: the patient is told (when they had been told of
/// it), the reminders follow, links and codes keep working over the new window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MoveSession {
    pub starts_at: DateTime<Utc>,
}
