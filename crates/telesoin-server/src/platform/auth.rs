//! API keys: `tsk_` and 43 characters of base64url (256 random bits), shown once; only their
//! SHA-256 is stored (a fast hash is enough for a key this long: there is nothing to guess).
//! A key belongs to one platform and is scoped to kinés and to operations ([`Scope`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use telesoin_core::model::Kine;
use telesoin_core::{KineId, RefusalCode};
use telesoin_store::ApiKeyRow;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// What a key may do. Reading a kiné's list needs no scope beyond the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    PatientsRead,
    PatientsWrite,
    SessionsRead,
    SessionsWrite,
    LinksWrite,
    RecordsRead,
    RecordsWrite,
    WebhooksManage,
    SigningKeysManage,
}

impl Scope {
    pub const ALL: [Scope; 9] = [
        Scope::PatientsRead,
        Scope::PatientsWrite,
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::LinksWrite,
        Scope::RecordsRead,
        Scope::RecordsWrite,
        Scope::WebhooksManage,
        Scope::SigningKeysManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PatientsRead => "patients:read",
            Scope::PatientsWrite => "patients:write",
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::LinksWrite => "links:write",
            Scope::RecordsRead => "records:read",
            Scope::RecordsWrite => "records:write",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::SigningKeysManage => "signing_keys:manage",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Parses a comma- or space-separated list; `all` means every scope.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for w in s.split([',', ' ']).map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                return Ok(Scope::ALL.to_vec());
            }
            let scope = Scope::parse(w).ok_or_else(|| {
                format!(
                    "unknown scope {w:?}; known: all, {}",
                    Scope::ALL.map(Scope::as_str).join(", ")
                )
            })?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        if out.is_empty() {
            return Err("at least one scope is needed".into());
        }
        Ok(out)
    }
}

/// The SHA-256 of a key, hex: what the store keeps.
pub fn key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new key and its row; the key is returned once and never stored.
pub fn new_key(
    platform: Uuid,
    kines: Vec<KineId>,
    scopes: &[Scope],
    now: DateTime<Utc>,
) -> (String, ApiKeyRow) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let key = format!("tsk_{}", URL_SAFE_NO_PAD.encode(raw));
    let row = ApiKeyRow {
        id: Uuid::new_v4(),
        platform,
        key_hash: key_hash(&key),
        prefix: key.chars().take(10).collect(),
        kines,
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        created_at: now,
        revoked_at: None,
    };
    (key, row)
}

/// The authenticated caller of `/api/v1`: a platform, through one of its keys.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub key: Uuid,
    pub platform: Uuid,
    pub kines: Arc<Vec<KineId>>,
    pub scopes: Arc<Vec<Scope>>,
}

impl ApiCaller {
    pub fn require(&self, scope: Scope) -> ApiResult<()> {
        if self.scopes.contains(&scope) {
            return Ok(());
        }
        Err(ApiError {
            details: serde_json::json!({ "scope": scope.as_str() }),
            ..ApiError::new(StatusCode::FORBIDDEN, RefusalCode::ScopeMissing)
        })
    }

    /// The kiné `id`, if this key is scoped to them (`not_found` otherwise: another platform's
    /// kinés are not even said to exist), after checking the operation's scope.
    pub async fn kine(&self, app: &AppState, id: Uuid, scope: Scope) -> ApiResult<Kine> {
        if !self.kines.contains(&KineId(id)) {
            return Err(ApiError::not_found());
        }
        self.require(scope)?;
        app.store
            .kine(KineId(id))
            .await?
            .ok_or_else(ApiError::not_found)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ApiCaller>()
            .cloned()
            .ok_or_else(|| ApiError::refusal(RefusalCode::Unauthenticated))
    }
}

/// A token bucket per API key, on this node.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Limiter {
            rate: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says in how many seconds one will be there.
    pub fn take(&self, key: Uuid) -> Result<(), u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let (tokens, last) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

fn bearer(parts: &Request) -> Option<&str> {
    let v = parts.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
}

/// Resolves the key (`Authorization: Bearer tsk_...`), applies its rate limit and hands the
/// request on with an [`ApiCaller`]. The key itself is never logged.
pub async fn authenticate(
    State(app): State<AppState>,
    Extension(limiter): Extension<Arc<Limiter>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(key) = bearer(&req).filter(|k| k.starts_with("tsk_") && k.len() < 200) else {
        return ApiError::refusal(RefusalCode::Unauthenticated).into_response();
    };
    let row = match app.store.api_key_by_hash(&key_hash(key)).await {
        Ok(Some(row)) => row,
        Ok(None) => return ApiError::refusal(RefusalCode::Unauthenticated).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Err(retry) = limiter.take(row.id) {
        let mut res = ApiError {
            details: serde_json::json!({ "retry_after_seconds": retry }),
            ..ApiError::refusal(RefusalCode::RateLimited)
        }
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry));
        return res;
    }
    let caller = ApiCaller {
        key: row.id,
        platform: row.platform,
        kines: Arc::new(row.kines),
        scopes: Arc::new(row.scopes.iter().filter_map(|s| Scope::parse(s)).collect()),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_buckets() {
        assert_eq!(
            Scope::parse_list("patients:read, sessions:write"),
            Ok(vec![Scope::PatientsRead, Scope::SessionsWrite])
        );
        assert_eq!(
            Scope::parse_list("all").map(|s| s.len()),
            Ok(Scope::ALL.len())
        );
        assert!(Scope::parse_list("patients:delete").is_err());
        assert!(Scope::parse_list("").is_err());
        let (key, row) = new_key(Uuid::nil(), vec![], &[Scope::PatientsRead], Utc::now());
        assert_eq!(key.len(), 4 + 43);
        assert_eq!(row.key_hash, key_hash(&key));
        assert!(!row.key_hash.contains(&key[4..]));
        let l = Limiter::new(1, 2);
        let k = Uuid::new_v4();
        assert_eq!((l.take(k), l.take(k)), (Ok(()), Ok(())));
        assert_eq!(l.take(k), Err(1));
        assert_eq!(l.take(Uuid::new_v4()), Ok(()), "one bucket per key");
    }
}
