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
    cookie_named(headers, COOKIE)
}

/// The value of the cookie `name` in the request.
pub fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
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

pub async fn login(
    State(app): State<AppState>,
    Json(body): Json<rest::LoginRequest>,
) -> ApiResult<Response> {
    if !app.cfg.password_login {
        return Err(ApiError::refusal(RefusalCode::PasswordLoginDisabled));
    }
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
            .emit(Utc::now(), DomainEvent::LoginFailed { method: "password" })
            .await;
        return Err(ApiError::refusal(RefusalCode::BadCredentials));
    };
    let cookie = open_session(&app, &kine, "password", None).await?;
    let mut res = Json(kine_json(&kine)).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| anyhow::anyhow!(e))?,
    );
    Ok(res)
}

/// Opens a dashboard session for `kine`, logged in by `method` (`password` or `oidc`, with the
/// provider's ID token for the logout there); returns the `Set-Cookie` value.
pub async fn open_session(
    app: &AppState,
    kine: &Kine,
    method: &'static str,
    id_token: Option<&str>,
) -> ApiResult<String> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let value = URL_SAFE_NO_PAD.encode(raw);
    let now = Utc::now();
    let hours = app.cfg.login_hours;
    let hash = cookie_hash(&value);
    app.store
        .create_web_session(&hash, kine.id, now, now + Duration::hours(hours))
        .await?;
    app.store
        .set_web_session_login(&hash, method, id_token)
        .await?;
    tracing::info!(kine = %kine.id, method, "login succeeded");
    app.hub
        .events()
        .emit(
            now,
            DomainEvent::LoginSucceeded {
                kine: kine.id,
                method,
            },
        )
        .await;
    Ok(format!(
        "{COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        hours * 3600
    ))
}

/// Ends the dashboard session. A session opened through the OpenID provider answers 200 with
/// `end_session_url`, where the browser goes to end it at the provider too; otherwise 204.
pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let mut provider_logout = None;
    if let Some(value) = cookie_value(&headers) {
        let hash = cookie_hash(&value);
        if let (Some((method, id_token)), Some(oidc)) =
            (app.store.web_session_login(&hash).await?, app.oidc.as_ref())
            && method == "oidc"
        {
            provider_logout = oidc.end_session_url(id_token.as_deref()).await;
        }
        app.store.delete_web_session(&hash).await?;
    }
    let mut res = match provider_logout {
        Some(url) => Json(serde_json::json!({ "end_session_url": url })).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
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
