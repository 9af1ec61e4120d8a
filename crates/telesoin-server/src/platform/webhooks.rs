//! Webhooks: signed, ordered, retried deliveries of domain events to the platforms concerned.
//!
//! - Every event a platform receives ([`TYPES`]) is written in the outbox (one row per
//!   endpoint of every platform the kiné gave access to) in the transaction of the change it
//!   announces (`telesoin_store::outbound`): a presence event (waiting, admitted, refused, the
//!   media report that makes the call connected) with its row, a consent with its recording or
//!   withdrawal, a compte rendu with its version, a scheduling, cancellation, move, end or
//!   message state with theirs. A crash cannot come in between, and a change refused announces
//!   nothing. The [`Announcer`] makes the announcement; on a single node it knows without a
//!   query when no endpoint exists at all (until one is added through this process), so that
//!   joins and admissions cost no look-up for a feature not configured. No listener of
//!   `events::Events` writes webhooks any more.
//! - [`spawn_worker`] drains the outbox: the oldest pending delivery of each (endpoint, session)
//!   only, so a session's events arrive in order; a failure is retried after
//!   `webhook_retry_seconds`, doubling up to an hour, for `webhook_retry_hours`, then given up
//!   (and the next event of that session goes). Rows are claimed in the database, so several
//!   workers or nodes never send the same delivery at once, and a delivery interrupted by a
//!   restart is sent again once its claim lapses.
//! - Each request carries `Telesoin-Signature: t=UNIX_SECONDS,v1=HEX(HMAC_SHA256(secret,
//!   t + "." + body))`, `Telesoin-Event-Id` (also `id` in the body: the same for every retry)
//!   and `Telesoin-Event-Type`. Receivers should refuse a `t` more than 5 minutes away from
//!   their clock (the replay window) and drop event ids they already handled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use telesoin_store::{Announcement, DueDelivery, Store, WebhookEndpointRow};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::egress::{Policy, Resolver};
use crate::error::{ApiError, ApiResult};
use crate::events::DomainEvent;
use crate::hub::wire_role;
use crate::platform::auth::{ApiCaller, Scope, hex};
use crate::platform::v1::{ApiJson, ApiPath, Errors};

/// How far a receiver should accept a signature's timestamp from its own clock.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// The event types sent to platforms.
pub const TYPES: [&str; 15] = [
    "session.scheduled",
    "session.cancelled",
    "session.moved",
    "participant.waiting",
    "participant.admitted",
    "admission.refused",
    "call.connected",
    "session.ended",
    "consent.recorded",
    "consent.withdrawn",
    "report.written",
    "message.sent",
    "message.failed",
    "message.skipped",
    "message.cancelled",
];

/// `t=...,v1=...` for `body` at `t`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

/// Bumped after every change of the webhook endpoints made by this process: what the
/// [`Announcer`] knows of "no endpoint at all" holds for one generation only.
static ENDPOINTS_CHANGED: AtomicU64 = AtomicU64::new(0);

/// Says that an endpoint was added or removed (after the store has it).
pub fn endpoints_changed() {
    ENDPOINTS_CHANGED.fetch_add(1, Ordering::AcqRel);
}

/// Decides whether a change carries its webhooks, and makes them. The change's store method
/// writes them in its own transaction (`telesoin_store::outbound`): one row per endpoint of every
/// platform the session's (or patient's) kiné gave access to, found by one read inside it.
pub struct Announcer {
    store: Arc<dyn Store>,
    /// On a single node: the generation at which the store said no endpoint exists, so that
    /// changes carry no announcement (and their writes no look-up) while no webhook is
    /// configured. None on a cluster, where another node may add an endpoint at any time.
    none_since: Option<Mutex<Option<u64>>>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("single_node", &self.none_since.is_some())
            .finish()
    }
}

impl Announcer {
    /// `single_node`: endpoints are only added through this process (no `redis_url`).
    pub fn new(store: Arc<dyn Store>, single_node: bool) -> Arc<Self> {
        Arc::new(Announcer {
            store,
            none_since: single_node.then(|| Mutex::new(None)),
        })
    }

    /// True when no platform has an endpoint (known on a single node without a query, until
    /// an endpoint is added; asked of the store on a cluster: one indexed read, instead of the
    /// look-up and a transaction in the change's write, while no webhook is configured).
    async fn none_configured(&self) -> bool {
        let Some(cache) = &self.none_since else {
            return matches!(self.store.any_webhook().await, Ok(false));
        };
        let generation = ENDPOINTS_CHANGED.load(Ordering::Acquire);
        if *cache.lock() == Some(generation) {
            return true;
        }
        match self.store.any_webhook().await {
            Ok(false) => {
                *cache.lock() = Some(generation);
                true
            }
            _ => false,
        }
    }

    /// The announcement of `event_type` with `data` (an object: the store adds `session` and
    /// `kine`, or `kine` and `patient`), or None while no webhook is configured.
    pub async fn announce(
        &self,
        event_type: &str,
        at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Option<Announcement> {
        if self.none_configured().await {
            return None;
        }
        Some(Announcement::new(event_type, at, data))
    }

    /// The announcement of a domain event platforms receive (None for the others, and while no
    /// webhook is configured). The bodies are those of docs/embedding.md.
    pub async fn of(&self, at: DateTime<Utc>, event: &DomainEvent) -> Option<Announcement> {
        use DomainEvent::*;
        let data = match event {
            CallConnected { .. } => serde_json::json!({}),
            ParticipantWaiting {
                participant,
                role,
                reason,
                ..
            } => serde_json::json!({
                "participant": participant.0, "role": wire_role(*role), "reason": reason,
            }),
            ParticipantAdmitted {
                participant, role, ..
            } => serde_json::json!({ "participant": participant.0, "role": wire_role(*role) }),
            AdmissionRefused {
                participant,
                role,
                code,
                ..
            } => serde_json::json!({
                "participant": participant.0, "role": wire_role(*role), "code": code,
            }),
            ConsentRecorded { by, .. } => serde_json::json!({ "recorded_by": by }),
            ConsentWithdrawn { .. } | ReportWritten { .. } => serde_json::json!({}),
            _ => return None,
        };
        self.announce(event.name(), at, data).await
    }
}

/// The HTTP client of deliveries: rustls with ring and the webpki roots, no proxy, no
/// redirects, and a resolver that drops the addresses the egress policy forbids.
fn client(timeout: StdDuration, policy: Arc<Policy>) -> anyhow::Result<reqwest::Client> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(Resolver { policy }))
        .user_agent("telesoin-webhooks/1")
        .build()?)
}

/// Runs the delivery loop until aborted.
pub fn spawn_worker(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let timeout = StdDuration::from_secs(app.cfg.webhook_timeout_seconds);
        let http = match client(timeout, app.egress.clone()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhook client unavailable: no deliveries");
                return;
            }
        };
        let mut tick = tokio::time::interval(StdDuration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Utc::now();
            let due = match app.store.due_deliveries(now, 32).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox unavailable");
                    continue;
                }
            };
            // The claim outlives the request by a second: a restart mid-request resends after it.
            let until = now + Duration::seconds(app.cfg.webhook_timeout_seconds as i64 + 1);
            let mut sends = Vec::new();
            for d in due {
                match app.store.claim_delivery(d.seq, now, until).await {
                    Ok(true) => sends.push(tokio::spawn(deliver(app.clone(), http.clone(), d))),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook claim failed"),
                }
            }
            for s in sends {
                let _ = s.await;
            }
        }
    })
}

/// An IP-literal host the policy forbids (names are filtered by the resolver at connection).
fn literal_forbidden(policy: &Policy, url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return true;
    };
    match url.host() {
        Some(url::Host::Ipv4(v4)) => policy.refuse(v4.into()).is_some(),
        Some(url::Host::Ipv6(v6)) => policy.refuse(v6.into()).is_some(),
        Some(url::Host::Domain(_)) => false,
        None => true,
    }
}

async fn deliver(app: AppState, http: reqwest::Client, d: DueDelivery) {
    let t = Utc::now().timestamp();
    let sent = if literal_forbidden(&app.egress, &d.url) {
        // An endpoint stored before the policy, or an allowlist since narrowed: never connected.
        tracing::info!(event_type = %d.event_type, "webhook delivery to a forbidden address not attempted");
        Err(None)
    } else {
        http.post(&d.url)
            .header("content-type", "application/json")
            .header("telesoin-signature", signature(&d.secret, t, &d.body))
            .header("telesoin-event-id", d.event_id.to_string())
            .header("telesoin-event-type", &d.event_type)
            .body(d.body.clone())
            .send()
            .await
            .map_err(Some)
    };
    let now = Utc::now();
    let status = match &sent {
        Ok(res) => Some(res.status().as_u16()),
        Err(_) => None,
    };
    let result = if status.is_some_and(|s| (200..300).contains(&s)) {
        app.store
            .delivery_succeeded(d.seq, status.unwrap_or(200), now)
            .await
    } else {
        let base = app.cfg.webhook_retry_seconds as i64;
        let delay = (base << d.attempts.clamp(0, 20)).min(3600);
        let next = now + Duration::seconds(delay);
        let give_up = next - d.created_at > Duration::hours(app.cfg.webhook_retry_hours);
        tracing::info!(event_type = %d.event_type, status = status.unwrap_or(0), attempts = d.attempts + 1, give_up, "webhook delivery failed");
        app.store
            .delivery_failed(d.seq, status, (!give_up).then_some(next))
            .await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "webhook outcome not stored");
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://...` (plain `http://` only when the server allows it).
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub created_at: DateTime<Utc>,
    /// Only in the answer to the creation: the HMAC key of the signatures. Keep it secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn webhook_json(w: &WebhookEndpointRow, secret: bool) -> Webhook {
    Webhook {
        id: w.id,
        url: w.url.clone(),
        created_at: w.created_at,
        secret: secret.then(|| w.secret.clone()),
    }
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Webhook>), Errors))]
pub async fn list(State(app): State<AppState>, caller: ApiCaller) -> ApiResult<Json<Vec<Webhook>>> {
    caller.require(Scope::WebhooksManage)?;
    let hooks = app.store.webhooks(caller.platform).await?;
    Ok(Json(hooks.iter().map(|w| webhook_json(w, false)).collect()))
}

/// Adds an endpoint; the answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = NewWebhook,
    responses((status = 201, body = Webhook), Errors))]
pub async fn create(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiJson(body): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, Json<Webhook>)> {
    caller.require(Scope::WebhooksManage)?;
    let url = body.url.trim();
    let parsed = reqwest::Url::parse(url).ok();
    let scheme_ok = parsed.as_ref().is_some_and(|u| {
        u.scheme() == "https" || (u.scheme() == "http" && app.cfg.webhook_allow_http)
    });
    let Some(parsed) = parsed.filter(|u| {
        url.len() <= 2000
            && scheme_ok
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
    }) else {
        return Err(ApiError::invalid(
            "url",
            "an https:// URL with a host and no credentials",
        ));
    };
    if let Err(why) = app.egress.check_url(&parsed).await {
        tracing::info!(platform = %caller.platform, reason = why, "webhook URL refused by the egress policy");
        return Err(ApiError::invalid(
            "url",
            &format!(
                "a public address: this one is {why} (an operator may allow private receivers with webhook_allowed_networks)"
            ),
        ));
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let row = WebhookEndpointRow {
        id: Uuid::new_v4(),
        platform: caller.platform,
        url: url.to_owned(),
        secret: format!("whsec_{}", URL_SAFE_NO_PAD.encode(raw)),
        created_at: Utc::now(),
    };
    app.store.create_webhook(&row).await?;
    endpoints_changed();
    tracing::info!(platform = %caller.platform, webhook = %row.id, "webhook endpoint added");
    Ok((StatusCode::CREATED, Json(webhook_json(&row, true))))
}

/// Removes an endpoint: nothing more is sent to it.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/delete", tag = "webhooks",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 204, description = "Removed"), Errors))]
pub async fn delete(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::WebhooksManage)?;
    if !app
        .store
        .delete_webhook(caller.platform, id, Utc::now())
        .await?
    {
        return Err(ApiError::not_found());
    }
    endpoints_changed();
    Ok(StatusCode::NO_CONTENT)
}
