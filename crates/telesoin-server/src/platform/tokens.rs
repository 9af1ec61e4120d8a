//! Join tokens minted by a platform. A platform registers a public key (a JWK with `kid`:
//! Ed25519 for `EdDSA`, or P-256 for `ES256`) and the roles it may mint for; a token it signs
//! passes the same checks as ours: `typ` `telesoin-join+jwt`, `iss` = the platform's registered
//! issuer, `aud` `telesoin-join`, `nbf`/`exp` inside the session's window and around now. Then:
//!
//! - the session (`sid`) must have been scheduled through this platform's API;
//! - the role must be one the key is registered for;
//! - `sub` must be a seat of that session with that role (the platform gets it from
//!   `POST /api/v1/kines/{kine}/sessions/{session}/seats`);
//! - on first use the token is recorded as a link (`jti`), so that it is checked and revoked
//!   exactly like ours: a revoked link, a cancelled or ended session refuse it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use telesoin_core::RefusalCode;
use telesoin_core::claims::{self, Expectations, JOIN_TOKEN_TYPE, JoinClaims, VerifiedClaims};
use telesoin_core::model::Role;
use telesoin_proto::signal as wire;
use telesoin_store::{LinkRow, PlatformJwkRow, StoreError};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::hub::wire_role;
use crate::keys::MAX_TOKEN_BYTES;
use crate::platform::auth::{ApiCaller, Scope};
use crate::platform::v1::{ApiJson, ApiPath, Errors};
use crate::ws::JOIN_AUDIENCE;

/// Clock skew tolerated on `nbf` and `exp` of join tokens, in seconds.
pub const LEEWAY_SECS: i64 = 5;

fn store_down(e: StoreError) -> RefusalCode {
    tracing::warn!(error = %e, "store unavailable: refusing");
    RefusalCode::Unavailable
}

fn ours(app: &AppState, kid: &str) -> bool {
    app.keys.jwks()["keys"]
        .as_array()
        .is_some_and(|ks| ks.iter().any(|k| k["kid"] == kid))
}

/// Verifies a join token, ours or a platform's, up to [`VerifiedClaims`]; the hub then checks
/// the link row (`Hub::linked_session`) as for any token.
pub async fn verify_join(
    app: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedClaims, RefusalCode> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(RefusalCode::TokenInvalid);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| RefusalCode::TokenInvalid)?;
    let kid = header.kid.clone().ok_or(RefusalCode::TokenInvalid)?;
    if ours(app, &kid) {
        let claims = app.keys.verify(token)?;
        return claims::check(
            claims,
            &Expectations {
                issuer: &app.public_url,
                audience: JOIN_AUDIENCE,
                leeway_secs: LEEWAY_SECS,
            },
            now,
        );
    }
    let key = app
        .store
        .jwk(&kid)
        .await
        .map_err(store_down)?
        .ok_or(RefusalCode::TokenInvalid)?;
    let alg = match key.alg.as_str() {
        "EdDSA" => Algorithm::EdDSA,
        "ES256" => Algorithm::ES256,
        _ => return Err(RefusalCode::TokenInvalid),
    };
    if header.alg != alg || header.typ.as_deref() != Some(JOIN_TOKEN_TYPE) {
        return Err(RefusalCode::TokenInvalid);
    }
    let jwk: Jwk = serde_json::from_str(&key.jwk).map_err(|_| RefusalCode::TokenInvalid)?;
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| RefusalCode::TokenInvalid)?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims: JoinClaims = jsonwebtoken::decode(token, &decoding, &validation)
        .map_err(|_| RefusalCode::TokenInvalid)?
        .claims;
    let platform = app
        .store
        .platform(key.platform)
        .await
        .map_err(store_down)?
        .ok_or(RefusalCode::TokenInvalid)?;
    let (nbf, exp) = (claims.nbf, claims.exp);
    let verified = claims::check(
        claims,
        &Expectations {
            issuer: &platform.issuer,
            audience: JOIN_AUDIENCE,
            leeway_secs: LEEWAY_SECS,
        },
        now,
    )?;
    if !key.roles.contains(&verified.role()) {
        return Err(RefusalCode::TokenWrongRole);
    }
    let session = verified.session();
    if app
        .store
        .session_platform(session)
        .await
        .map_err(store_down)?
        != Some(platform.id)
    {
        return Err(RefusalCode::TokenWrongSession);
    }
    let row = app
        .store
        .session(session)
        .await
        .map_err(store_down)?
        .ok_or(RefusalCode::SessionNotFound)?;
    // A kiné's token may open before the window (the kiné may open the room early). `nbf` and
    // `exp` are whole seconds and the window is not: a platform may round its start down and
    // its end up (the window still closes the room at its end).
    let early_ok = verified.role() == Role::Kine;
    let end_secs = (row.session.window_end.timestamp_millis() + 999).div_euclid(1000);
    if (!early_ok && nbf < row.session.window_start.timestamp()) || exp > end_secs {
        return Err(RefusalCode::TokenInvalid);
    }
    let seat_role = app
        .store
        .participant_role(session, verified.participant())
        .await
        .map_err(store_down)?;
    if seat_role != Some(verified.role()) {
        return Err(RefusalCode::TokenWrongRole);
    }
    if app
        .store
        .link(verified.jti())
        .await
        .map_err(store_down)?
        .is_none()
    {
        let link = LinkRow {
            jti: verified.jti(),
            session,
            participant: verified.participant(),
            role: verified.role(),
            issued_at: now,
            not_before: DateTime::from_timestamp(nbf, 0).unwrap_or(row.session.window_start),
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or(row.session.window_end),
        };
        match app.store.issue_link(&link).await {
            // Two first uses at once: the other one recorded it.
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(store_down(e)),
        }
    }
    Ok(verified)
}

/// A public key to register: the JWK (with `kid`, and `alg` `EdDSA` or `ES256`) and the roles
/// the platform may mint tokens for with it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSigningKey {
    #[schema(value_type = Object)]
    pub jwk: serde_json::Value,
    pub roles: Vec<wire::Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKey {
    pub kid: String,
    pub alg: String,
    pub roles: Vec<wire::Role>,
    pub created_at: DateTime<Utc>,
    /// The registered issuer: the `iss` tokens signed with this key must carry.
    pub issuer: String,
}

fn key_json(k: &PlatformJwkRow, issuer: &str) -> SigningKey {
    SigningKey {
        kid: k.kid.clone(),
        alg: k.alg.clone(),
        roles: k.roles.iter().map(|r| wire_role(*r)).collect(),
        created_at: k.created_at,
        issuer: issuer.to_owned(),
    }
}

async fn issuer(app: &AppState, caller: &ApiCaller) -> ApiResult<String> {
    Ok(app
        .store
        .platform(caller.platform)
        .await?
        .ok_or_else(|| ApiError::refusal(RefusalCode::Unauthenticated))?
        .issuer)
}

/// Checks a public JWK: only public parts, a known curve, and a `kid`.
fn parse_jwk(v: &serde_json::Value) -> ApiResult<(String, &'static str, String)> {
    let bad = |why: &str| ApiError::invalid("jwk", why);
    let obj = v.as_object().ok_or_else(|| bad("a JSON object"))?;
    if obj.contains_key("d") {
        return Err(bad("a public key: never send the private part (d)"));
    }
    let kid = obj
        .get("kid")
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty() && k.len() <= 100 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| bad("a kid of 1 to 100 visible ASCII characters"))?;
    let alg = match (
        obj.get("kty").and_then(|k| k.as_str()),
        obj.get("crv").and_then(|k| k.as_str()),
    ) {
        (Some("OKP"), Some("Ed25519")) => "EdDSA",
        (Some("EC"), Some("P-256")) => "ES256",
        _ => return Err(bad("kty OKP with crv Ed25519, or kty EC with crv P-256")),
    };
    if let Some(a) = obj.get("alg").and_then(|a| a.as_str())
        && a != alg
    {
        return Err(bad(
            "alg must match the key (EdDSA for Ed25519, ES256 for P-256)",
        ));
    }
    let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|_| bad("a valid JWK"))?;
    DecodingKey::from_jwk(&jwk).map_err(|_| bad("a valid public key"))?;
    Ok((kid.to_owned(), alg, v.to_string()))
}

#[utoipa::path(get, path = "/api/v1/signing-keys", tag = "signing keys",
    responses((status = 200, body = Vec<SigningKey>), Errors))]
pub async fn list(
    State(app): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<SigningKey>>> {
    caller.require(Scope::SigningKeysManage)?;
    let issuer = issuer(&app, &caller).await?;
    let keys = app.store.jwks(caller.platform).await?;
    Ok(Json(keys.iter().map(|k| key_json(k, &issuer)).collect()))
}

/// Registers a public key the platform signs join tokens with.
#[utoipa::path(post, path = "/api/v1/signing-keys", tag = "signing keys",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = NewSigningKey,
    responses((status = 201, body = SigningKey), Errors))]
pub async fn register(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<NewSigningKey>,
) -> ApiResult<(StatusCode, Json<SigningKey>)> {
    caller.require(Scope::SigningKeysManage)?;
    let (kid, alg, jwk) = parse_jwk(&body.jwk)?;
    if ours(&app, &kid) {
        return Err(ApiError::conflict("this kid is taken"));
    }
    let mut roles: Vec<Role> = Vec::new();
    for r in body.roles {
        let r = match r {
            wire::Role::Kine => Role::Kine,
            wire::Role::Patient => Role::Patient,
            wire::Role::Companion => Role::Companion,
        };
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    if roles.is_empty() {
        return Err(ApiError::invalid(
            "roles",
            "at least one of kine, patient, companion",
        ));
    }
    let row = PlatformJwkRow {
        kid,
        platform: caller.platform,
        alg: alg.to_owned(),
        jwk,
        roles,
        created_at: Utc::now(),
    };
    app.store.add_jwk(&row).await?;
    tracing::info!(platform = %caller.platform, kid = %row.kid, "platform signing key registered");
    let issuer = issuer(&app, &caller).await?;
    Ok((StatusCode::CREATED, Json(key_json(&row, &issuer))))
}

/// Revokes a signing key: tokens signed with it stop working at once.
#[utoipa::path(post, path = "/api/v1/signing-keys/{kid}/revoke", tag = "signing keys",
    params(("kid" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 204, description = "Revoked"), Errors))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kid): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::SigningKeysManage)?;
    if !app
        .store
        .revoke_jwk(caller.platform, &kid, Utc::now())
        .await?
    {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}
