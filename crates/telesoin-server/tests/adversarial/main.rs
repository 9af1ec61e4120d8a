//! The standing adversarial suite: each case is a real attack on the real server (port 0,
//! temporary SQLite file, real HTTPS and WebSocket clients) that fails if the defence goes.
//!
//! Organised by OWASP ASVS 5.0 chapters, as the issue names them (the ASVS 5.0 numbering in
//! brackets where it differs):
//! - [`v3_session`]: session management [V7] and browser-side request forgery [V3.5]: Origin and
//!   CSRF token on the dashboard, login throttling and lockout [V6.3], cookie flags, logout.
//! - [`v4_access`]: access control [V8]: every dashboard route with another kiné's ids,
//!   unauthenticated access.
//! - [`v8_authorisation`]: authorisation across the platform boundary [V8]: API keys of one
//!   platform or kiné against another's data, scopes, cookie vs bearer.
//! - [`v12_files`]: files and resources [V5]: path traversal on the static files, other kinés'
//!   PDFs and exports.
//! - [`v13_api`]: API and web services [V4]: webhook egress (SSRF), the bearer-only `/api/v1`,
//!   malformed bodies.
//! - [`v17_webrtc`]: WebRTC and the signaling channel [V17]: stuck sockets, close codes,
//!   relay isolation.
//! - [`rfc8725_tokens`]: JWT best current practice (RFC 8725) on join tokens: every forgery class.
//!
//! Run: `cargo test -p telesoin-server --test adversarial`.

#[path = "../spine/support.rs"]
#[allow(dead_code)]
mod support;

mod rfc8725_tokens;
mod v12_files;
mod v13_api;
mod v17_webrtc;
mod v3_session;
mod v4_access;
mod v8_authorisation;

use serde_json::Value;

/// A refusal body: the code, and French and English messages.
pub fn assert_refusal(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(
        (status, body["code"].as_str()),
        (want_status, Some(code)),
        "{body}"
    );
    for lang in ["message_fr", "message_en"] {
        assert!(
            body[lang].as_str().is_some_and(|m| m.len() > 10),
            "{lang} in {body}"
        );
    }
}
