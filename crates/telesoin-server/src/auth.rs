//! Kiné login: argon2id password hashes, and a random cookie whose SHA-256 alone is stored.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use telesoin_core::RefusalCode;
use telesoin_core::model::Kine;
use telesoin_proto::rest;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;
use telesoin_core::KineId;

use crate::app::AppState;
use crate::csrf;
use crate::error::{ApiError, ApiResult};
use crate::events::DomainEvent;
use crate::throttle::Key;

pub const COOKIE: &str = "telesoin_session";

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hash: {e}"))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn cookie_hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    named_cookie(headers, COOKIE)
}

fn named_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

pub fn kine_json(k: &Kine) -> rest::Kine {
    rest::Kine {
        id: k.id.0,
        rpps: k.rpps.clone(),
        name: k.name.clone(),
        email: k.email.clone(),
    }
}

/// A logged-in kiné: the only way into the dashboard's API.
#[derive(Debug, Clone)]
pub struct CurrentKine(pub Kine);

impl FromRequestParts<AppState> for CurrentKine {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = cookie_value(&parts.headers)
            .ok_or_else(|| ApiError::refusal(RefusalCode::Unauthenticated))?;
        let id = app
            .store
            .web_session(&cookie_hash(&value), Utc::now())
            .await?
            .ok_or_else(|| ApiError::refusal(RefusalCode::Unauthenticated))?;
        let kine = app
            .store
            .kine(id)
            .await?
            .ok_or_else(|| ApiError::refusal(RefusalCode::Unauthenticated))?;
        Ok(CurrentKine(kine))
    }
}

/// The readable-by-nobody cookie of a browser that logged into an account before: its failed
/// attempts are counted apart from everyone else's (see `throttle`).
const DEVICE_COOKIE: &str = "telesoin_device";
/// Days a device cookie is recognised.
const DEVICE_DAYS: i64 = 180;

fn device_mac(app: &AppState, kine: KineId, exp: i64) -> [u8; 32] {
    let key = app.keys.derive("device-cookie");
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{}.{exp}", kine.0).as_bytes());
    mac.finalize().into_bytes().into()
}

fn device_cookie(app: &AppState, kine: KineId, now: chrono::DateTime<Utc>) -> String {
    let exp = (now + Duration::days(DEVICE_DAYS)).timestamp();
    let mac = URL_SAFE_NO_PAD.encode(device_mac(app, kine, exp));
    format!(
        "{DEVICE_COOKIE}={}.{exp}.{mac}; Path=/api/login; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        kine.0,
        DEVICE_DAYS * 86_400
    )
}

/// The kiné a valid, unexpired device cookie names, and the cookie's MAC (the device's key).
fn known_device(
    app: &AppState,
    headers: &HeaderMap,
    now: chrono::DateTime<Utc>,
) -> Option<(KineId, String)> {
    let value = named_cookie(headers, DEVICE_COOKIE)?;
    let mut parts = value.split('.');
    let kine = KineId(parts.next()?.parse().ok()?);
    let exp: i64 = parts.next()?.parse().ok()?;
    let mac = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    if parts.next().is_some() || exp < now.timestamp() {
        return None;
    }
    let want = device_mac(app, kine, exp);
    bool::from(mac.as_slice().ct_eq(&want)).then(|| (kine, URL_SAFE_NO_PAD.encode(&want[..16])))
}

/// The client's address: the TCP peer, or for a trusted proxy the last `X-Forwarded-For` entry
/// that is not itself a trusted proxy.
pub fn client_address(app: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let trusted = |ip: &IpAddr| {
        app.cfg
            .trusted_proxies
            .iter()
            .any(|p| p.parse::<IpAddr>().is_ok_and(|p| p == *ip))
    };
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .find(|ip| !trusted(ip))
        .or(Some(peer))
}

fn throttled(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut e = ApiError::refusal(RefusalCode::LoginThrottled);
    e.details = serde_json::json!({ "retry_after_seconds": seconds });
    let mut res = e.into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    res
}

pub async fn login(
    State(app): State<AppState>,
    parts: Parts,
    Json(body): Json<rest::LoginRequest>,
) -> ApiResult<Response> {
    let now = Utc::now();
    let clock = tokio::time::Instant::now();
    let email = body.email.trim();
    let found = app.store.kine_by_email(email).await?;
    // The keys this attempt counts on: the account on this known browser, or the account and
    // the client address. Decided the same way whether the account exists or not.
    let device = known_device(&app, &parts.headers, now)
        .filter(|(kine, _)| found.as_ref().is_some_and(|(k, _)| k.id == *kine));
    let keys: Vec<Key> = match &device {
        Some((_, device)) => vec![Key::Device {
            account: Key::account(email).name(),
            device: device.clone(),
        }],
        None => std::iter::once(Key::account(email))
            .chain(client_address(&app, &parts).map(Key::address))
            .collect(),
    };
    if let Some(wait) = app.logins.wait(&keys, clock) {
        tracing::info!(wait_seconds = wait.as_secs(), "login throttled");
        return Ok(throttled(wait));
    }
    let ok = match &found {
        Some((_, hash)) => verify_password(&body.password, hash),
        None => {
            // Same work for an unknown address, so timing does not tell which addresses exist.
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let dummy = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
            let _ = verify_password(&body.password, dummy);
            false
        }
    };
    let Some((kine, _)) = found.as_ref().filter(|_| ok).cloned() else {
        tracing::info!("login failed");
        let events = app.hub.events();
        events.emit(now, DomainEvent::LoginFailed).await;
        for locked in app.logins.failed(&keys, clock) {
            tracing::info!(
                scope = locked.key.scope(),
                seconds = locked.seconds,
                "login locked"
            );
            let kine = match locked.key {
                Key::Address(_) => None,
                _ => found.as_ref().map(|(k, _)| k.id),
            };
            let event = DomainEvent::LoginLocked {
                kine,
                scope: locked.key.scope(),
                seconds: locked.seconds,
            };
            events.emit(now, event).await;
        }
        return Err(ApiError::refusal(RefusalCode::BadCredentials));
    };
    app.logins.succeeded(&keys);
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let value = URL_SAFE_NO_PAD.encode(raw);
    let hours = app.cfg.login_hours;
    app.store
        .create_web_session(
            &cookie_hash(&value),
            kine.id,
            now,
            now + Duration::hours(hours),
        )
        .await?;
    tracing::info!(kine = %kine.id, "login succeeded");
    app.hub
        .events()
        .emit(now, DomainEvent::LoginSucceeded { kine: kine.id })
        .await;
    let cookie = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        hours * 3600
    );
    let mut res = Json(kine_json(&kine)).into_response();
    for c in [cookie, device_cookie(&app, kine.id, now)] {
        res.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&c).map_err(|e| anyhow::anyhow!(e))?,
        );
    }
    // For the dashboard's script, which sends it back in `X-CSRF-Token` (never a cookie: a page
    // on another port of this host could read a cookie, not this response).
    csrf::hand_over(&mut res, &value);
    Ok(res)
}

pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(value) = cookie_value(&headers) {
        app.store.delete_web_session(&cookie_hash(&value)).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "telesoin_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(res)
}

/// The logged-in kiné, and the session's CSRF token in `X-CSRF-Token` (a reloaded page gets
/// it here).
pub async fn me(CurrentKine(kine): CurrentKine, headers: HeaderMap) -> Response {
    let mut res = Json(kine_json(&kine)).into_response();
    if let Some(value) = cookie_value(&headers) {
        csrf::hand_over(&mut res, &value);
    }
    res
}
