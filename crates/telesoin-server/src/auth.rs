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

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::DomainEvent;

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

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
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

pub async fn login(
    State(app): State<AppState>,
    Json(body): Json<rest::LoginRequest>,
) -> ApiResult<Response> {
    let found = app.store.kine_by_email(body.email.trim()).await?;
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
    let Some((kine, _)) = found.filter(|_| ok) else {
        tracing::info!("login failed");
        app.hub
            .events()
            .emit(Utc::now(), DomainEvent::LoginFailed)
            .await;
        return Err(ApiError::refusal(RefusalCode::BadCredentials));
    };
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let value = URL_SAFE_NO_PAD.encode(raw);
    let now = Utc::now();
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
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| anyhow::anyhow!(e))?,
    );
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

pub async fn me(CurrentKine(kine): CurrentKine) -> Json<rest::Kine> {
    Json(kine_json(&kine))
}
