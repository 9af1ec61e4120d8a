//! Short link codes: `https://HOST/j#CODE`, exchanged by the join page for a join token.
//!
//! A code is 16 random bytes (128 bits) in base64url without padding: 22 characters, opaque.
//! Only its SHA-256 is stored, with the link (`jti`) it stands for. The exchange signs a fresh
//! token for that same `jti`, seat and role, over the session's current window (so a moved
//! session's code keeps working), after the same checks a token meets: the link is not revoked,
//! the session is neither cancelled nor ended.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use telesoin_core::claims::JoinClaims;
use telesoin_core::model::{Role, SessionStatus};
use telesoin_core::{RefusalCode, SessionId};
use telesoin_proto::reach::{JoinCode, JoinCodeRequest};
use telesoin_proto::rest;
use telesoin_store::SessionRow;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::ws::JOIN_AUDIENCE;

/// Length of a code in characters.
pub const CODE_LEN: usize = 22;

/// A new random code.
pub fn new_code() -> String {
    let mut raw = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// What is stored of a code: SHA-256, hex.
pub fn hash(code: &str) -> String {
    Sha256::digest(code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` has the shape of a code (and so is not a token).
pub fn looks_like_code(s: &str) -> bool {
    s.len() == CODE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Mints a link for `role` (a new jti on the seat) with a short code; `short_url` set.
pub async fn mint_short(
    app: &AppState,
    row: &SessionRow,
    role: Role,
    now: DateTime<Utc>,
) -> ApiResult<rest::Link> {
    let mut link = crate::api::mint(app, row, role, now).await?;
    let code = new_code();
    app.store
        .add_join_code(&hash(&code), link.jti, row.session.id, now)
        .await?;
    link.short_url = Some(format!("{}/j#{code}", app.public_url));
    Ok(link)
}

/// `POST /api/join-code {code}`: the join token the code stands for, and when the session is.
pub async fn exchange(
    State(app): State<AppState>,
    Json(body): Json<JoinCodeRequest>,
) -> ApiResult<Json<JoinCode>> {
    let now = Utc::now();
    if !looks_like_code(&body.code) {
        return Err(ApiError::refusal(RefusalCode::TokenInvalid));
    }
    let (jti, session) = app
        .store
        .join_code(&hash(&body.code))
        .await?
        .ok_or_else(|| ApiError::refusal(RefusalCode::TokenInvalid))?;
    let seat = app
        .store
        .link(jti)
        .await?
        .ok_or_else(|| ApiError::refusal(RefusalCode::TokenInvalid))?;
    if seat.revoked {
        return Err(ApiError::refusal(RefusalCode::TokenRevoked));
    }
    if seat.session != session {
        return Err(ApiError::refusal(RefusalCode::TokenWrongSession));
    }
    let row = app
        .store
        .session(session)
        .await?
        .ok_or_else(|| ApiError::refusal(RefusalCode::SessionNotFound))?;
    match row.session.status {
        SessionStatus::Cancelled => return Err(ApiError::refusal(RefusalCode::SessionCancelled)),
        SessionStatus::Ended => return Err(ApiError::refusal(RefusalCode::SessionEnded)),
        _ => {}
    }
    if now >= row.session.window_end {
        return Err(ApiError::refusal(RefusalCode::TooLate));
    }
    let token = sign_for(&app, &row, seat.participant.0, seat.role, jti, now)?;
    let kine = app
        .store
        .kine(row.session.kine)
        .await?
        .ok_or_else(|| ApiError::refusal(RefusalCode::SessionNotFound))?;
    Ok(Json(JoinCode {
        token,
        session: row.session.id.0,
        kine_name: kine.name,
        starts_at: row.session.starts_at,
        window_start: row.session.window_start,
        window_end: row.session.window_end,
        server_now: now,
    }))
}

fn sign_for(
    app: &AppState,
    row: &SessionRow,
    participant: uuid::Uuid,
    role: Role,
    jti: uuid::Uuid,
    now: DateTime<Utc>,
) -> ApiResult<String> {
    let claims = JoinClaims {
        iss: app.public_url.to_string(),
        aud: JOIN_AUDIENCE.into(),
        sub: participant,
        sid: row.session.id.0,
        role,
        jti,
        nbf: row.session.window_start.timestamp(),
        exp: row.session.window_end.timestamp(),
        iat: now.timestamp(),
    };
    Ok(app.keys.sign(&claims)?)
}

/// The short link of a new patient link for a message (each message its own code).
pub async fn message_link(
    app: &AppState,
    session: SessionId,
    now: DateTime<Utc>,
) -> ApiResult<String> {
    let row = app
        .store
        .session(session)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let link = mint_short(app, &row, Role::Patient, now).await?;
    Ok(link.short_url.unwrap_or(link.url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_22_url_safe_characters_of_128_bits() {
        let a = new_code();
        let b = new_code();
        assert_ne!(a, b);
        assert_eq!(a.len(), CODE_LEN);
        assert!(looks_like_code(&a) && looks_like_code(&b));
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).expect("b64").len(), 16);
        assert!(!looks_like_code("eyJhbGciOiJFZERTQSJ9.e30.sig"));
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }
}
