//! `Idempotency-Key` on a POST of `/api/v1`: the first answer (status and body) is kept per
//! platform and key, with a hash of the request; the same request again gets that answer
//! (`Idempotent-Replayed: true`), a different request with the same key gets
//! `idempotency_key_reused`, and one that arrives while the first still runs gets `conflict`.
//! An answer of 5xx is not kept: the request may be retried with the same key.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};
use telesoin_core::RefusalCode;
use telesoin_store::Idempotency;

use crate::app::AppState;
use crate::error::ApiError;
use crate::platform::auth::{ApiCaller, hex};

/// Largest request or response body handled here (the API's bodies are small).
const MAX_BODY: usize = 1024 * 1024;

pub const HEADER: &str = "idempotency-key";

pub async fn layer(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().map(str::to_owned))
    else {
        return next.run(req).await;
    };
    let key = match key {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k,
        _ => {
            return ApiError::invalid("Idempotency-Key", "1 to 255 visible ASCII characters")
                .into_response();
        }
    };
    let Some(caller) = req.extensions().get::<ApiCaller>().cloned() else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return ApiError::invalid("body", "at most 1 MiB").into_response();
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str().as_bytes());
    h.update(b" ");
    h.update(parts.uri.path().as_bytes());
    h.update(b"\n");
    h.update(&bytes);
    let hash = hex(&h.finalize());
    match app
        .store
        .idempotency_begin(caller.platform, &key, &hash, Utc::now())
        .await
    {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Idempotency::Seen { request_hash, .. }) if request_hash != hash => {
            return ApiError {
                details: serde_json::json!({ "field": "Idempotency-Key" }),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    RefusalCode::IdempotencyKeyReused,
                )
            }
            .into_response();
        }
        Ok(Idempotency::Seen { status: 0, .. }) => {
            return ApiError::conflict("a request with this Idempotency-Key is still running")
                .into_response();
        }
        Ok(Idempotency::Seen { status, body, .. }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res = (status, body.unwrap_or_default()).into_response();
            let h = res.headers_mut();
            if status != StatusCode::NO_CONTENT {
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            h.insert("idempotent-replayed", HeaderValue::from_static("true"));
            return res;
        }
        Ok(Idempotency::New) => {}
    }
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = res.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let _ = app.store.idempotency_abort(caller.platform, &key).await;
            return ApiError::refusal(RefusalCode::Unavailable).into_response();
        }
    };
    let kept = if parts.status.is_server_error() {
        app.store.idempotency_abort(caller.platform, &key).await
    } else {
        app.store
            .idempotency_finish(
                caller.platform,
                &key,
                parts.status.as_u16(),
                &String::from_utf8_lossy(&bytes),
            )
            .await
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, "idempotency answer not kept");
    }
    Response::from_parts(parts, Body::from(bytes))
}
