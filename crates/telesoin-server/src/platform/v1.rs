//! `/api/v1`: the dashboard's operations for a platform's kinés, behind an API key. Every route
//! names its kiné (`/kines/{kine}/...`); the key must be scoped to that kiné and to the
//! operation. Lists are paged by an opaque cursor; errors have the one shape of `ApiError`.

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use telesoin_core::SessionId;
use telesoin_core::model::Role;
use telesoin_proto::Refusal;
use telesoin_proto::rest;
use telesoin_proto::signal as wire;
use utoipa::{IntoParams, IntoResponses, ToSchema};
use uuid::Uuid;

use crate::api;
use crate::app::AppState;
use crate::auth::kine_json;
use crate::error::{ApiError, ApiResult};
use crate::hub::wire_role;
use crate::platform::auth::{ApiCaller, Scope};
use crate::platform::{tokens, webhooks};
use crate::records;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/kines", get(list_kines))
        .route("/acts", get(acts))
        .route(
            "/kines/{kine}/patients",
            get(list_patients).post(create_patient),
        )
        .route("/kines/{kine}/patients/{patient}", get(patient_detail))
        .route("/kines/{kine}/patients/{patient}/ins", put(set_patient_ins))
        .route("/kines/{kine}/patients/{patient}/visits", post(add_visit))
        .route(
            "/kines/{kine}/patients/{patient}/consents",
            post(add_consent),
        )
        .route(
            "/kines/{kine}/patients/{patient}/prescriptions",
            post(add_prescription),
        )
        .route(
            "/kines/{kine}/consents/{consent}/withdraw",
            post(withdraw_consent),
        )
        .route(
            "/kines/{kine}/sessions",
            get(list_sessions).post(create_session),
        )
        .route("/kines/{kine}/sessions/bulk", post(bulk_sessions))
        .route("/kines/{kine}/sessions/{session}", get(get_session))
        .route(
            "/kines/{kine}/sessions/{session}/cancel",
            post(cancel_session),
        )
        .route("/kines/{kine}/sessions/{session}/end", post(end_session))
        .route("/kines/{kine}/sessions/{session}/seats", post(create_seat))
        .route("/kines/{kine}/sessions/{session}/links", post(issue_link))
        .route("/kines/{kine}/sessions/{session}/record", get(record))
        .route(
            "/kines/{kine}/sessions/{session}/report",
            get(get_report).post(write_report),
        )
        .route("/kines/{kine}/exports", get(export))
        .route("/kines/{kine}/links/{jti}/revoke", post(revoke_link))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}/delete", post(webhooks::delete))
        .route("/signing-keys", get(tokens::list).post(tokens::register))
        .route("/signing-keys/{kid}/revoke", post(tokens::revoke))
        .merge(crate::reach::v1::routes())
}

/// `Json` whose rejections have the API's error shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(|e: JsonRejection| ApiError::invalid("body", &e.body_text()))
    }
}

/// `Path` whose rejections have the API's error shape.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| ApiError {
                status: StatusCode::NOT_FOUND,
                ..ApiError::invalid("path", &e.body_text())
            })
    }
}

/// `Query` whose rejections have the API's error shape.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::invalid("query", &e.body_text()))
    }
}

/// The errors every authenticated route may answer, in the one shape.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// No key, an unknown or a revoked key (`unauthenticated`).
    #[response(status = 401)]
    Unauthenticated(#[to_schema] Refusal),
    /// The key is not scoped to this operation (`scope_missing`), or a precondition refuses.
    #[response(status = 403)]
    Forbidden(#[to_schema] Refusal),
    /// Unknown, or not one of the key's kinés or their patients and sessions (`not_found`).
    #[response(status = 404)]
    NotFound(#[to_schema] Refusal),
    /// Not possible in the current state (`conflict`).
    #[response(status = 409)]
    Conflict(#[to_schema] Refusal),
    /// A field, the body, the query or the Idempotency-Key is invalid.
    #[response(status = 422)]
    Invalid(#[to_schema] Refusal),
    /// The key's rate limit is reached (`rate_limited`).
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    RateLimited(#[to_schema] Refusal),
    /// The store cannot answer (`unavailable`).
    #[response(status = 503)]
    Unavailable(#[to_schema] Refusal),
}

/// A page of a list; `next_cursor` is absent on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatientPage {
    pub items: Vec<rest::Patient>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    pub items: Vec<rest::Session>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 100, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Sessions starting at or after this instant (default: 30 days ago).
    pub from: Option<DateTime<Utc>>,
    /// Sessions starting before this instant (default: a year after `from`).
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<String>,
    /// 1 to 100, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSeat {
    pub role: wire::Role,
}

/// A seat of a session: the `sub` of a join token the platform signs for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seat {
    pub participant: Uuid,
    pub role: wire::Role,
}

fn limit(l: Option<u32>) -> ApiResult<usize> {
    match l.unwrap_or(50) {
        n @ 1..=100 => Ok(n as usize),
        _ => Err(ApiError::invalid("limit", "1 to 100")),
    }
}

/// Cursor: base64url of `MILLIS:UUID`, the sort key of the last item of the previous page.
fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.timestamp_millis()))
}

fn decode_cursor(c: &str) -> ApiResult<(i64, Uuid)> {
    let bad = || ApiError::invalid("cursor", "a next_cursor from a previous page");
    let text =
        String::from_utf8(URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
    let (ms, id) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        ms.parse().map_err(|_| bad())?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    ))
}

/// One page of items sorted by `(instant, id)`.
fn page<T>(
    mut items: Vec<(DateTime<Utc>, Uuid, T)>,
    cursor: Option<&str>,
    limit: usize,
) -> ApiResult<(Vec<T>, Option<String>)> {
    items.sort_by_key(|(at, id, _)| (*at, *id));
    let after = cursor.map(decode_cursor).transpose()?;
    let mut rest: Vec<_> = items
        .into_iter()
        .filter(|(at, id, _)| {
            after.is_none_or(|(ms, aid)| (at.timestamp_millis(), *id) > (ms, aid))
        })
        .collect();
    let next = (rest.len() > limit).then(|| {
        let (at, id, _) = &rest[limit - 1];
        encode_cursor(*at, *id)
    });
    rest.truncate(limit);
    Ok((rest.into_iter().map(|(_, _, t)| t).collect(), next))
}

/// The kinés this key may act for.
#[utoipa::path(get, path = "/api/v1/kines", tag = "kines",
    responses((status = 200, body = Vec<rest::Kine>), Errors))]
pub async fn list_kines(
    State(app): State<AppState>,
    caller: ApiCaller,
) -> ApiResult<Json<Vec<rest::Kine>>> {
    let mut out = Vec::new();
    for k in caller.kines.iter() {
        if let Some(kine) = app.store.kine(*k).await? {
            out.push(kine_json(&kine));
        }
    }
    Ok(Json(out))
}

/// The NGAP acts a session may be scheduled for.
#[utoipa::path(get, path = "/api/v1/acts", tag = "sessions",
    responses((status = 200, body = Vec<rest::Act>), Errors))]
pub async fn acts(_caller: ApiCaller) -> Json<Vec<rest::Act>> {
    api::acts().await
}

#[utoipa::path(get, path = "/api/v1/kines/{kine}/patients", tag = "patients",
    params(("kine" = Uuid, Path), PageQuery),
    responses((status = 200, body = PatientPage), Errors))]
pub async fn list_patients(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<PatientPage>> {
    let kine = caller.kine(&app, kine, Scope::PatientsRead).await?;
    let limit = limit(q.limit)?;
    let all = api::list_patients_for(&app, &kine).await?;
    let (items, next_cursor) = page(
        all.into_iter().map(|p| (p.created_at, p.id, p)).collect(),
        q.cursor.as_deref(),
        limit,
    )?;
    Ok(Json(PatientPage { items, next_cursor }))
}

#[utoipa::path(post, path = "/api/v1/kines/{kine}/patients", tag = "patients",
    params(("kine" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = rest::NewPatient,
    responses((status = 201, body = rest::Patient), Errors))]
pub async fn create_patient(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiJson(body): ApiJson<rest::NewPatient>,
) -> ApiResult<(StatusCode, Json<rest::Patient>)> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    let p = api::create_patient_for(&app, &kine, body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

#[utoipa::path(get, path = "/api/v1/kines/{kine}/patients/{patient}", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path)),
    responses((status = 200, body = rest::PatientDetail), Errors))]
pub async fn patient_detail(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<rest::PatientDetail>> {
    let kine = caller.kine(&app, kine, Scope::PatientsRead).await?;
    api::patient_detail_for(&app, &kine, patient)
        .await
        .map(Json)
}

/// Records or replaces the patient's INS (NIR or NIA with its OID) and its five reference traits,
/// with the identity status of the RNIV. The format and the NIR key are checked (`ins_format`,
/// `ins_key`, `ins_oid`, `ins_status`, `ins_traits`, `ins_mismatch`); no INSi call is made: the
/// status is the platform's. Documents and exports carry the INS only when `qualifiee`.
#[utoipa::path(put, path = "/api/v1/kines/{kine}/patients/{patient}/ins", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path)),
    request_body = rest::PatientIns,
    responses((status = 200, body = rest::PatientIns), Errors))]
pub async fn set_patient_ins(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<rest::PatientIns>,
) -> ApiResult<Json<rest::PatientIns>> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    crate::patient_ins::set_ins_for(&app, &kine, patient, body)
        .await
        .map(Json)
}

/// Records an in-person visit (`bilan` or `session`) that has happened.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/patients/{patient}/visits", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = rest::NewVisit,
    responses((status = 201, body = rest::Visit), Errors))]
pub async fn add_visit(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<rest::NewVisit>,
) -> ApiResult<(StatusCode, Json<rest::Visit>)> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    let v = api::add_visit_for(&app, &kine, patient, body).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Records the patient's consent to télésoin, collected by the kiné.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/patients/{patient}/consents", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = rest::NewConsent,
    responses((status = 201, body = rest::Consent), Errors))]
pub async fn add_consent(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<rest::NewConsent>,
) -> ApiResult<(StatusCode, Json<rest::Consent>)> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    let c = api::add_consent_for(&app, &kine, patient, body).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(post, path = "/api/v1/kines/{kine}/patients/{patient}/prescriptions", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = rest::NewPrescription,
    responses((status = 201, body = rest::Prescription), Errors))]
pub async fn add_prescription(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<rest::NewPrescription>,
) -> ApiResult<(StatusCode, Json<rest::Prescription>)> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    let r = api::add_prescription_for(&app, &kine, patient, body).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(post, path = "/api/v1/kines/{kine}/consents/{consent}/withdraw", tag = "patients",
    params(("kine" = Uuid, Path), ("consent" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = rest::Consent), Errors))]
pub async fn withdraw_consent(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, consent)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<rest::Consent>> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    api::withdraw_consent_for(&app, &kine, consent)
        .await
        .map(Json)
}

#[utoipa::path(get, path = "/api/v1/kines/{kine}/sessions", tag = "sessions",
    params(("kine" = Uuid, Path), SessionQuery),
    responses((status = 200, body = SessionPage), Errors))]
pub async fn list_sessions(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Json<SessionPage>> {
    let kine = caller.kine(&app, kine, Scope::SessionsRead).await?;
    let limit = limit(q.limit)?;
    let from = q.from.unwrap_or_else(|| Utc::now() - Duration::days(30));
    let to = q.to.unwrap_or(from + Duration::days(366));
    if to <= from || to - from > Duration::days(3660) {
        return Err(ApiError::invalid(
            "to",
            "after from, at most ten years later",
        ));
    }
    let rows = app.store.sessions_between(kine.id, from, to).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let name = app
            .store
            .patient(kine.id, row.session.patient)
            .await?
            .map(|p| p.patient.display_name)
            .unwrap_or_default();
        items.push((
            row.session.starts_at,
            row.session.id.0,
            api::session_json(&app, row, name).await,
        ));
    }
    let (items, next_cursor) = page(items, q.cursor.as_deref(), limit)?;
    Ok(Json(SessionPage { items, next_cursor }))
}

/// Schedules a session. The platform that schedules it may mint join tokens for it.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions", tag = "sessions",
    params(("kine" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = rest::NewSession,
    responses((status = 201, body = rest::Session), Errors))]
pub async fn create_session(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiJson(body): ApiJson<rest::NewSession>,
) -> ApiResult<(StatusCode, Json<rest::Session>)> {
    let kine = caller.kine(&app, kine, Scope::SessionsWrite).await?;
    let s = api::create_session_for(&app, &kine, body, Some(caller.platform)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Most sessions one bulk request may schedule (its answer, with two links per session, stays
/// well under the 1 MiB an idempotent answer may hold).
pub const BULK_MAX_SESSIONS: usize = 200;

/// Several sessions of one kiné, and their links, in one request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSessions {
    /// 1 to 200 sessions, made in this order.
    pub sessions: Vec<BulkSession>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkSession {
    pub session: rest::NewSession,
    /// The links to issue for it, in this order: `kine` and `patient` at most once each, and
    /// at most 4 links (each `companion` link is a new seat). Needs `links:write`.
    #[serde(default)]
    pub links: Vec<wire::Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkScheduled {
    /// One per requested session, in the request's order.
    pub items: Vec<ScheduledSession>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledSession {
    pub session: rest::Session,
    pub links: Vec<rest::Link>,
}

/// The refusal of one item of a bulk request: its index in `details`.
fn at_index(mut e: ApiError, index: usize) -> ApiError {
    match &mut e.details {
        serde_json::Value::Object(m) => {
            m.insert("index".into(), index.into());
        }
        d => *d = serde_json::json!({ "index": index }),
    }
    e
}

/// Schedules up to 200 sessions of a kiné and issues their links, in one request. Every
/// session is checked before any is made: one that would be refused refuses the whole request
/// (`details.index` names it) and nothing is written. Send an `Idempotency-Key`: a retry then
/// returns the first answer instead of scheduling again. Counts as one request for the rate
/// limit.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/bulk", tag = "sessions",
    params(("kine" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = BulkSessions,
    responses((status = 201, body = BulkScheduled), Errors))]
pub async fn bulk_sessions(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiJson(body): ApiJson<BulkSessions>,
) -> ApiResult<(StatusCode, Json<BulkScheduled>)> {
    let kine = caller.kine(&app, kine, Scope::SessionsWrite).await?;
    if body.sessions.iter().any(|s| !s.links.is_empty()) {
        caller.require(Scope::LinksWrite)?;
    }
    if body.sessions.is_empty() || body.sessions.len() > BULK_MAX_SESSIONS {
        return Err(ApiError::invalid("sessions", "1 to 200 sessions"));
    }
    let now = Utc::now();
    for (i, s) in body.sessions.iter().enumerate() {
        let once = |r: wire::Role| s.links.iter().filter(|l| **l == r).count() <= 1;
        if s.links.len() > 4 || !once(wire::Role::Kine) || !once(wire::Role::Patient) {
            return Err(at_index(
                ApiError::invalid("links", "at most 4, kine and patient once each"),
                i,
            ));
        }
        api::check_new_session(&app, &kine, &s.session, now)
            .await
            .map_err(|e| at_index(e, i))?;
    }
    let mut items = Vec::with_capacity(body.sessions.len());
    for s in body.sessions {
        let session =
            api::create_session_for(&app, &kine, s.session, Some(caller.platform)).await?;
        let mut links = Vec::with_capacity(s.links.len());
        for role in s.links {
            links.push(api::issue_link_for(&app, &kine, session.id, rest::NewLink { role }).await?);
        }
        items.push(ScheduledSession { session, links });
    }
    Ok((StatusCode::CREATED, Json(BulkScheduled { items })))
}

#[utoipa::path(get, path = "/api/v1/kines/{kine}/sessions/{session}", tag = "sessions",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path)),
    responses((status = 200, body = rest::Session), Errors))]
pub async fn get_session(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<rest::Session>> {
    let kine = caller.kine(&app, kine, Scope::SessionsRead).await?;
    api::get_session_for(&app, &kine, session).await.map(Json)
}

/// Cancels a session: its links stop working at once.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/cancel", tag = "sessions",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = rest::Session), Errors))]
pub async fn cancel_session(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<rest::Session>> {
    let kine = caller.kine(&app, kine, Scope::SessionsWrite).await?;
    api::cancel_session_for(&app, &kine, session)
        .await
        .map(Json)
}

/// Ends a session and returns its record (billable time finalized once).
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/end", tag = "sessions",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = rest::Record), Errors))]
pub async fn end_session(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<rest::Record>> {
    let kine = caller.kine(&app, kine, Scope::SessionsWrite).await?;
    api::end_session_for(&app, &kine, session).await.map(Json)
}

/// The seat of a role in a session (created on first use; a new one for each companion): the
/// `sub` of a join token the platform signs itself.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/seats", tag = "links",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = NewSeat,
    responses((status = 201, body = Seat), Errors))]
pub async fn create_seat(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<NewSeat>,
) -> ApiResult<(StatusCode, Json<Seat>)> {
    let kine = caller.kine(&app, kine, Scope::LinksWrite).await?;
    let row = api::own_session(&app, kine.id, session).await?;
    if row.session.status.is_closed() {
        return Err(ApiError::conflict("the session is over"));
    }
    let role = core_role(body.role);
    let participant = app.store.seat(SessionId(session), role, Utc::now()).await?;
    Ok((
        StatusCode::CREATED,
        Json(Seat {
            participant: participant.0,
            role: wire_role(role),
        }),
    ))
}

fn core_role(r: wire::Role) -> Role {
    match r {
        wire::Role::Kine => Role::Kine,
        wire::Role::Patient => Role::Patient,
        wire::Role::Companion => Role::Companion,
    }
}

/// Issues a join link signed by telesoin (`url` carries the token in its fragment).
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/links", tag = "links",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = rest::NewLink,
    responses((status = 201, body = rest::Link), Errors))]
pub async fn issue_link(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<rest::NewLink>,
) -> ApiResult<(StatusCode, Json<rest::Link>)> {
    let kine = caller.kine(&app, kine, Scope::LinksWrite).await?;
    let link = api::issue_link_for(&app, &kine, session, body).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// Revokes one link (also one the platform minted, once used): its holder is refused at once.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/links/{jti}/revoke", tag = "links",
    params(("kine" = Uuid, Path), ("jti" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 204, description = "Revoked"), Errors))]
pub async fn revoke_link(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, jti)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let kine = caller.kine(&app, kine, Scope::LinksWrite).await?;
    api::revoke_link_for(&app, &kine, jti).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The session record: presence events, incidents, billable time.
#[utoipa::path(get, path = "/api/v1/kines/{kine}/sessions/{session}/record", tag = "records",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path)),
    responses((status = 200, body = rest::Record), Errors))]
pub async fn record(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<rest::Record>> {
    let kine = caller.kine(&app, kine, Scope::RecordsRead).await?;
    api::record_for(&app, &kine, session).await.map(Json)
}

/// The compte rendu: every version, oldest first (the last one is in force).
#[utoipa::path(get, path = "/api/v1/kines/{kine}/sessions/{session}/report", tag = "records",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path)),
    responses((status = 200, body = records::http::Report), Errors))]
pub async fn get_report(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<records::http::Report>> {
    let kine = caller.kine(&app, kine, Scope::RecordsRead).await?;
    records::http::get_report_for(&app, &kine, session)
        .await
        .map(Json)
}

/// Writes the compte rendu once the session is over, or amends it (a new version; the earlier
/// ones are kept).
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/report", tag = "records",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = records::http::NewReport,
    responses((status = 201, body = records::http::Report), Errors))]
pub async fn write_report(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<records::http::NewReport>,
) -> ApiResult<(StatusCode, Json<records::http::Report>)> {
    let kine = caller.kine(&app, kine, Scope::RecordsWrite).await?;
    let report = records::http::write_report_for(&app, &kine, session, &body.text).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// The billing export of a kiné's finalized sessions over a range of days: CSV (one row per
/// session) or a FHIR R4 Bundle (`format=fhir`).
#[utoipa::path(get, path = "/api/v1/kines/{kine}/exports", tag = "records",
    params(("kine" = Uuid, Path), records::http::RangeQuery),
    responses(
        (status = 200, description = "CSV or FHIR R4 Bundle", content(
            (String = "text/csv"),
            (Object = "application/fhir+json"),
        )),
        Errors))]
pub async fn export(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<records::http::RangeQuery>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let kine = caller.kine(&app, kine, Scope::RecordsRead).await?;
    records::http::check_range(&q)?;
    let format = q.format.as_deref().unwrap_or("csv");
    let schedule = app.cfg.key_letter_schedule();
    let (body, mime) = records::http::export_body(
        app.store.as_ref(),
        &schedule,
        app.hub.billing_policy(),
        Some(kine.id),
        q.from,
        q.to,
        format,
    )
    .await?;
    let name: &'static str = match format {
        "csv" => "csv",
        "csv_fr" => "csv_fr",
        _ => "fhir",
    };
    let exported = crate::events::DomainEvent::Exported {
        kine: kine.id,
        format: name,
    };
    app.hub.events().emit(Utc::now(), exported).await;
    let mut res = body.into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(mime),
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_cursor() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).expect("t");
        let items: Vec<_> = (0..5u128)
            .map(|i| (t(i as i64 / 2), Uuid::from_u128(i), i))
            .collect();
        let (a, next) = page(items.clone(), None, 2).expect("page");
        assert_eq!(a, [0, 1]);
        let (b, next) = page(items.clone(), next.as_deref(), 2).expect("page");
        assert_eq!(b, [2, 3]);
        let (c, next) = page(items.clone(), next.as_deref(), 2).expect("page");
        assert_eq!((c, next), (vec![4], None));
        assert!(page(items, Some("nope"), 2).is_err());
    }
}
