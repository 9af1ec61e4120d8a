//! The platform API: what appointment sites, insurers and practice software use to embed
//! telesoin for the kinés who gave them access.
//!
//! - [`auth`]: API keys (random, shown once, stored as SHA-256), their scopes (which kinés,
//!   which operations), revocation and a token bucket per key; the [`auth::ApiCaller`] extractor.
//! - [`idempotency`]: an `Idempotency-Key` on a POST makes a retry return the first answer.
//! - [`v1`]: the `/api/v1` routes; each calls the same operation as the dashboard (`crate::api`).
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the code (utoipa), served at
//!   `/api/v1/openapi.json` and kept in `docs/openapi.json`.
//! - [`tokens`]: join tokens minted by a platform with its own registered key (JWK).
//! - [`webhooks`]: the outbox listener on domain events and the signed, ordered, retried delivery.
//! - [`dashboard`]: a kiné creates and revokes API keys for a platform from the dashboard.
//! - [`cli`]: `telesoin platform add` and `telesoin api-key create|revoke`.
//!
//! A platform only ever sees its kinés: every route resolves the kiné through the key's scope
//! first, and answers `not_found` for anything else. No key, secret or token reaches a log.

pub mod auth;
pub mod cli;
pub mod dashboard;
pub mod idempotency;
pub mod openapi;
pub mod tokens;
pub mod v1;
pub mod webhooks;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Extension, Router, middleware};

use crate::app::AppState;

/// The `/api/v1` routes and the dashboard's key management, to merge into the app's router.
pub fn router(state: &AppState) -> Router<AppState> {
    let limiter = Arc::new(auth::Limiter::new(
        state.cfg.api_rate_per_second,
        state.cfg.api_burst,
    ));
    let authed = v1::routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(Extension(limiter));
    let v1 = Router::new()
        .route("/openapi.json", get(openapi::serve))
        .merge(authed)
        .fallback(crate::api::not_found);
    Router::new()
        .nest("/api/v1", v1)
        .route("/api/platforms", get(dashboard::platforms))
        .route(
            "/api/platforms/{platform}/api-keys",
            get(dashboard::list_keys).post(dashboard::create_key),
        )
        .route(
            "/api/platforms/{platform}/api-keys/{id}/revoke",
            post(dashboard::revoke_key),
        )
}
