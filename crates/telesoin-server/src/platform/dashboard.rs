//! API keys from the dashboard: a logged-in kiné gives a platform access to their own patients
//! and sessions by creating a key scoped to themselves, shown once; they can list and revoke
//! the keys that name them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::CurrentKine;
use crate::error::{ApiError, ApiResult};
use crate::platform::auth::{Scope, new_key};

#[derive(Debug, Serialize)]
pub struct Platform {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Scope names (`patients:read`, ...), or `["all"]`.
    pub scopes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Key {
    pub id: Uuid,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Only in the answer to the creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

pub async fn platforms(
    State(app): State<AppState>,
    CurrentKine(_): CurrentKine,
) -> ApiResult<Json<Vec<Platform>>> {
    let all = app.store.platforms().await?;
    Ok(Json(
        all.into_iter()
            .map(|p| Platform {
                id: p.id,
                name: p.name,
            })
            .collect(),
    ))
}

pub async fn create_key(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(platform): Path<Uuid>,
    Json(body): Json<NewKey>,
) -> ApiResult<(StatusCode, Json<Key>)> {
    app.store
        .platform(platform)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let scopes =
        Scope::parse_list(&body.scopes.join(" ")).map_err(|e| ApiError::invalid("scopes", &e))?;
    let (key, row) = new_key(platform, vec![kine.id], &scopes, Utc::now());
    app.store.create_api_key(&row).await?;
    tracing::info!(platform = %platform, key = %row.id, "API key created from the dashboard");
    Ok((
        StatusCode::CREATED,
        Json(Key {
            id: row.id,
            prefix: row.prefix,
            scopes: row.scopes,
            created_at: row.created_at,
            revoked_at: None,
            key: Some(key),
        }),
    ))
}

pub async fn list_keys(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(platform): Path<Uuid>,
) -> ApiResult<Json<Vec<Key>>> {
    let keys = app.store.api_keys(platform).await?;
    Ok(Json(
        keys.into_iter()
            .filter(|k| k.kines.contains(&kine.id))
            .map(|k| Key {
                id: k.id,
                prefix: k.prefix,
                scopes: k.scopes,
                created_at: k.created_at,
                revoked_at: k.revoked_at,
                key: None,
            })
            .collect(),
    ))
}

/// Revokes a key that names this kiné.
pub async fn revoke_key(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path((platform, id)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let keys = app.store.api_keys(platform).await?;
    if !keys
        .iter()
        .any(|k| k.id == id && k.kines.contains(&kine.id))
    {
        return Err(ApiError::not_found());
    }
    app.store.revoke_api_key(platform, id, Utc::now()).await?;
    tracing::info!(platform = %platform, key = %id, "API key revoked from the dashboard");
    Ok(StatusCode::NO_CONTENT)
}
