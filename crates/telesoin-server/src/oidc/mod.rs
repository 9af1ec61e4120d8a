//! OpenID Connect login for kinés, configured for Pro Santé Connect by default (any provider by
//! configuration): `GET /api/login/oidc/start` sends the browser to the provider with `state`,
//! `nonce` and a PKCE S256 challenge; `GET /api/login/oidc/callback` takes the pending request
//! back (once: a replay finds nothing), exchanges the code, checks the ID token ([`client`]),
//! matches the userinfo's RPPS to a kiné and opens the same dashboard session as the password
//! login. The logout ends the session at the provider too (`end_session_endpoint`).
//!
//! The pending request lives in the store (any node of a cluster may receive the callback),
//! keyed by the SHA-256 of `state`; the browser also holds `state` in a `SameSite=Lax` cookie
//! scoped to the callback, so that a callback opened in another browser is refused. Errors send
//! the browser back to the login page with `?login_error=CODE`, whose French and English words
//! `GET /api/login/options` gives.

pub mod client;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use telesoin_core::RefusalCode;
use telesoin_proto::Refusal;
use telesoin_store::OidcLogin;

use crate::app::AppState;
use crate::auth;
use crate::error::refusal_body;
use crate::events::DomainEvent;

pub use client::OidcClient;

/// The cookie holding `state` between the start and the callback.
const STATE_COOKIE: &str = "telesoin_oidc_state";
/// How long a login may take at the provider.
const PENDING_MINUTES: i64 = 10;

/// The refusals a login redirect may carry back to the login page.
const LOGIN_ERRORS: [RefusalCode; 5] = [
    RefusalCode::OidcNotConfigured,
    RefusalCode::OidcUnavailable,
    RefusalCode::OidcFailed,
    RefusalCode::OidcAcr,
    RefusalCode::OidcUnknownRpps,
];

fn state_hash(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

#[derive(Debug, Serialize)]
pub struct OidcOption {
    /// The button's provider name (`Pro Santé Connect`).
    pub label: String,
    /// Where the button goes.
    pub start: &'static str,
}

/// What the login page offers.
#[derive(Debug, Serialize)]
pub struct LoginOptions {
    pub password: bool,
    pub oidc: Option<OidcOption>,
    /// The refusal a failed OpenID Connect login came back with, in words.
    pub error: Option<Refusal>,
}

#[derive(Debug, Deserialize)]
pub struct OptionsQuery {
    #[serde(default)]
    error: Option<String>,
}

/// `GET /api/login/options`: password login on or off, the OpenID Connect button, and the words
/// of `?error=CODE` when a login came back refused.
pub async fn options(
    State(app): State<AppState>,
    Query(q): Query<OptionsQuery>,
) -> Json<LoginOptions> {
    let error = q.error.as_deref().and_then(|c| {
        LOGIN_ERRORS
            .into_iter()
            .find(|r| r.code() == c)
            .map(|r| refusal_body(r, serde_json::Value::Null))
    });
    Json(LoginOptions {
        password: app.cfg.password_login,
        oidc: app.oidc.as_ref().map(|c| OidcOption {
            label: c.label.clone(),
            start: "/api/login/oidc/start",
        }),
        error,
    })
}

/// A 303 to `to`, with cookies.
fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

fn clear_state_cookie() -> String {
    format!("{STATE_COOKIE}=; Path=/api/login/oidc; HttpOnly; Secure; SameSite=Lax; Max-Age=0")
}

/// Back to the login page with the refusal's code (not secret: a stable code).
fn back_to_login(code: RefusalCode) -> Response {
    see_other(
        &format!("/app/?login_error={}", code.code()),
        &[clear_state_cookie()],
    )
}

/// `GET /api/login/oidc/start`.
pub async fn start(State(app): State<AppState>) -> Response {
    let Some(client) = app.oidc.clone() else {
        return back_to_login(RefusalCode::OidcNotConfigured);
    };
    let discovery = match client.discovery().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(cause = %e, "OpenID provider unavailable");
            return back_to_login(e.code());
        }
    };
    let authz = match client.authorize(&discovery) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(cause = %e, "OpenID provider unusable");
            return back_to_login(e.code());
        }
    };
    let pending = OidcLogin {
        nonce: authz.nonce.clone(),
        verifier: authz.verifier.clone(),
        expires_at: Utc::now() + Duration::minutes(PENDING_MINUTES),
    };
    if let Err(e) = app
        .store
        .create_oidc_login(&state_hash(&authz.state), &pending)
        .await
    {
        tracing::error!(cause = %e, "cannot store the pending login");
        return back_to_login(RefusalCode::Unavailable);
    }
    see_other(
        &authz.url,
        &[format!(
            "{STATE_COOKIE}={}; Path=/api/login/oidc; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
            authz.state,
            PENDING_MINUTES * 60
        )],
    )
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// RFC 9207's issuer identification.
    #[serde(default)]
    iss: Option<String>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /api/login/oidc/callback`.
pub async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match finish(&app, &headers, q).await {
        Ok(cookie) => see_other("/app/", &[cookie, clear_state_cookie()]),
        Err(code) => {
            app.hub
                .events()
                .emit(Utc::now(), DomainEvent::LoginFailed { method: "oidc" })
                .await;
            back_to_login(code)
        }
    }
}

async fn finish(
    app: &AppState,
    headers: &HeaderMap,
    q: CallbackQuery,
) -> Result<String, RefusalCode> {
    let client = app.oidc.clone().ok_or(RefusalCode::OidcNotConfigured)?;
    let state = q.state.as_deref().unwrap_or_default();
    let bound = auth::cookie_named(headers, STATE_COOKIE).unwrap_or_default();
    if state.is_empty() || !constant_time_eq(state.as_bytes(), bound.as_bytes()) {
        tracing::info!("OpenID login refused: state missing or not this browser's");
        return Err(RefusalCode::OidcFailed);
    }
    let now = Utc::now();
    let pending = app
        .store
        .take_oidc_login(&state_hash(state), now)
        .await
        .map_err(|e| {
            tracing::error!(cause = %e, "cannot read the pending login");
            RefusalCode::Unavailable
        })?
        .ok_or_else(|| {
            tracing::info!("OpenID login refused: unknown, used or expired state");
            RefusalCode::OidcFailed
        })?;
    if let Some(err) = &q.error {
        // The kiné cancelled, or the provider refused (a stable OAuth code, not personal data).
        tracing::info!(error = %err.chars().take(64).collect::<String>(), "OpenID provider returned an error");
        return Err(RefusalCode::OidcFailed);
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or(RefusalCode::OidcFailed)?;
    client
        .check_response_issuer(q.iss.as_deref())
        .await
        .map_err(|e| {
            tracing::info!(cause = %e, "OpenID login refused");
            e.code()
        })?;
    let login = client
        .finish(code, &pending.verifier, &pending.nonce, now)
        .await
        .map_err(|e| {
            tracing::info!(cause = %e, "OpenID login refused");
            e.code()
        })?;
    let Some(rpps) = client.rpps_of(&login) else {
        tracing::info!(claim = %client.rpps_claim, "OpenID login: no RPPS in the claims");
        return Err(RefusalCode::OidcUnknownRpps);
    };
    let kine = app
        .store
        .kine_by_rpps(&rpps)
        .await
        .map_err(|_| RefusalCode::Unavailable)?
        .ok_or_else(|| {
            tracing::info!("OpenID login: the RPPS matches no kiné");
            RefusalCode::OidcUnknownRpps
        })?;
    auth::open_session(app, &kine, "oidc", Some(&login.id_token))
        .await
        .map(|(cookie, _)| cookie)
        .map_err(|e| e.code)
}
