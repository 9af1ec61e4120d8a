//! The SMS gateway adapter: one request shape any French SMS provider can be plugged behind
//! (directly, or through a small proxy of the operator's).
//!
//! ```text
//! POST {sms_gateway_url}
//! {sms_gateway_auth_header}: {sms_gateway_auth}      (when set)
//! Content-Type: application/json
//! Idempotency-Key: {id}
//!
//! {"to": "+33612345678", "text": "...", "sender": "{sms_sender}", "id": "{id}"}
//! ```
//!
//! `to` is E.164, `text` fits one GSM-7 segment when the host name leaves room, `id` is the
//! message's id (the same on every retry: a gateway may drop one it has already sent). Any 2xx
//! answer is success; anything else (or no answer within `message_timeout_seconds`) is retried.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use uuid::Uuid;

use crate::config::Config;

pub fn configured(cfg: &Config) -> bool {
    cfg.sms_gateway_url.is_some()
}

fn client(cfg: &Config) -> Result<reqwest::Client, String> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(StdDuration::from_secs(cfg.message_timeout_seconds))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("telesoin-sms/1")
        .build()
        .map_err(|e| e.to_string())
}

/// Sends one SMS; the error says what the gateway answered (never the number or the text).
pub async fn send(cfg: &Config, to: &str, text: &str, id: Uuid) -> Result<(), String> {
    let url = cfg.sms_gateway_url.as_deref().ok_or("sms_not_configured")?;
    let body = serde_json::json!({
        "to": to,
        "text": text,
        "sender": cfg.sms_sender,
        "id": id,
    });
    let mut req = client(cfg)?
        .post(url)
        .header("idempotency-key", id.to_string())
        .json(&body);
    if let Some(auth) = &cfg.sms_gateway_auth {
        req = req.header(cfg.sms_gateway_auth_header.as_str(), auth);
    }
    match req.send().await {
        Ok(res) if res.status().is_success() => Ok(()),
        Ok(res) => Err(format!("sms gateway: HTTP {}", res.status().as_u16())),
        Err(e) if e.is_timeout() => Err("sms gateway: no answer in time".into()),
        Err(e) if e.is_connect() => Err("sms gateway: unreachable".into()),
        Err(_) => Err("sms gateway: request failed".into()),
    }
}
