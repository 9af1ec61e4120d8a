//! Reaching the patient: contact details, the short link, sending invitations by e-mail and SMS,
//! reminders and notices, exactly once.
//!
//! - [`codes`]: the short link `https://HOST/j#CODE` (128 random bits, 22 base64url characters,
//!   only its SHA-256 stored) and the join page's exchange of a code for its link's join token.
//!   A code stands for a link (`jti`): revoking the link, cancelling or ending the session close
//!   the code exactly as they close the token.
//! - [`mail`]: e-mail through an SMTP relay (lettre, rustls on ring; STARTTLS, implicit TLS, or
//!   plain text to a loopback relay), a text and an HTML part and an `.ics` invitation.
//! - [`sms`]: the provider-agnostic HTTP SMS gateway adapter (one JSON POST).
//! - [`outbox`]: scheduling (invitations, reminders at the kiné's offsets, the notice of a
//!   cancellation or a move) and the worker that sends each queued message once: claimed by
//!   lease in the database, retried with backoff, checked against the session when it goes.
//! - [`v1`]: the same for platforms, under `/api/v1`.
//! - [`http`]: the dashboard's and `/api/v1`'s routes: contact, send, messages, reminder
//!   offsets, move; and the join page's code exchange.
//!
//! What the patient reads is `telesoin_core::reach::Wording` (French, Europe/Paris). Addresses,
//! codes and tokens never reach a log or an error detail: failures are stored as the relay's or
//! gateway's status with the recipient masked.

pub mod codes;
pub mod http;
pub mod mail;
pub mod outbox;
pub mod sms;
pub mod v1;

use telesoin_core::reach::Channel;

use crate::config::Config;

/// Whether this server can send on `channel`.
pub fn configured(cfg: &Config, channel: Channel) -> bool {
    match channel {
        Channel::Email => mail::configured(cfg),
        Channel::Sms => sms::configured(cfg),
    }
}

/// A failure's words for storage and display: the recipient masked, control characters gone,
/// at most 200 characters.
pub fn scrub(text: &str, address: &str) -> String {
    let masked = if address.is_empty() {
        text.to_owned()
    } else {
        text.replace(address, "<destinataire>")
    };
    masked
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}
