//! The `/api/v1` routes of reaching the patient, for platforms that want telesoin to send:
//! the same operations as the dashboard, behind an API key scoped to the kiné.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use telesoin_proto::reach as wire;
use telesoin_proto::rest;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiResult;
use crate::platform::auth::{ApiCaller, Scope};
use crate::platform::v1::{ApiJson, ApiPath, Errors};
use crate::reach::http;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/kines/{kine}/patients/{patient}/contact",
            get(get_contact).put(put_contact),
        )
        .route("/kines/{kine}/sessions/{session}/send", post(send_link))
        .route("/kines/{kine}/sessions/{session}/messages", get(messages))
        .route("/kines/{kine}/sessions/{session}/move", post(move_session))
        .route(
            "/kines/{kine}/reminders",
            get(get_reminders).put(put_reminders),
        )
}

/// The kiné's reminder offsets (minutes before the start; the server's default, the day
/// before and one hour before, until set) and which channels this server can send on.
#[utoipa::path(get, path = "/api/v1/kines/{kine}/reminders", tag = "links",
    params(("kine" = Uuid, Path)),
    responses((status = 200, body = wire::ReachSettings), Errors))]
pub async fn get_reminders(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
) -> ApiResult<Json<wire::ReachSettings>> {
    let kine = caller.kine(&app, kine, Scope::SessionsRead).await?;
    http::settings_for(&app, &kine).await.map(Json)
}

/// Sets the kiné's reminder offsets: at most 5, each 1 to 43200 minutes before the start, `[]`
/// for none. A refusal is `invalid_input` with `details.field` = `reminder_offsets_minutes`,
/// `details.index` (the entry at fault, when one is) and `details.problem` / `problem_fr`.
#[utoipa::path(put, path = "/api/v1/kines/{kine}/reminders", tag = "links",
    params(("kine" = Uuid, Path)),
    request_body = wire::ReminderOffsets,
    responses((status = 200, body = wire::ReachSettings), Errors))]
pub async fn put_reminders(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath(kine): ApiPath<Uuid>,
    ApiJson(body): ApiJson<wire::ReminderOffsets>,
) -> ApiResult<Json<wire::ReachSettings>> {
    let kine = caller.kine(&app, kine, Scope::SessionsWrite).await?;
    http::set_offsets_for(&app, &kine, &body).await.map(Json)
}

/// The patient's contact details (phone in E.164, e-mail, preferred channel).
#[utoipa::path(get, path = "/api/v1/kines/{kine}/patients/{patient}/contact", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path)),
    responses((status = 200, body = wire::Contact), Errors))]
pub async fn get_contact(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<wire::Contact>> {
    let kine = caller.kine(&app, kine, Scope::PatientsRead).await?;
    http::get_contact_for(&app, &kine, patient).await.map(Json)
}

/// Sets the patient's contact details; French numbers (`06 12 34 56 78`) are normalised.
#[utoipa::path(put, path = "/api/v1/kines/{kine}/patients/{patient}/contact", tag = "patients",
    params(("kine" = Uuid, Path), ("patient" = Uuid, Path)),
    request_body = wire::Contact,
    responses((status = 200, body = wire::Contact), Errors))]
pub async fn put_contact(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, patient)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::Contact>,
) -> ApiResult<Json<wire::Contact>> {
    let kine = caller.kine(&app, kine, Scope::PatientsWrite).await?;
    http::put_contact_for(&app, &kine, patient, &body)
        .await
        .map(Json)
}

/// Sends the short link to the patient now (e-mail and/or SMS) and queues the reminders;
/// `contact_missing` or `channel_not_configured` when nothing can go. The delivery state of
/// each message is also a webhook event (`message.sent`, `message.failed`, `message.skipped`,
/// `message.cancelled`), written with the state itself.
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/send", tag = "links",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = wire::SendLink,
    responses((status = 201, body = Vec<wire::Message>), Errors))]
pub async fn send_link(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::SendLink>,
) -> ApiResult<(StatusCode, Json<Vec<wire::Message>>)> {
    let kine = caller.kine(&app, kine, Scope::LinksWrite).await?;
    let sent = http::send_link_for(&app, &kine, session, &body).await?;
    Ok((StatusCode::CREATED, Json(sent)))
}

/// Every message of the session (invitations, reminders, notices) and its delivery state.
#[utoipa::path(get, path = "/api/v1/kines/{kine}/sessions/{session}/messages", tag = "links",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path)),
    responses((status = 200, body = Vec<wire::Message>), Errors))]
pub async fn messages(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<Vec<wire::Message>>> {
    let kine = caller.kine(&app, kine, Scope::SessionsRead).await?;
    http::messages_for(&app, &kine, session).await.map(Json)
}

/// Moves a scheduled session; the patient is told if they had been, reminders follow; platforms
/// get `session.moved` (written with the move).
#[utoipa::path(post, path = "/api/v1/kines/{kine}/sessions/{session}/move", tag = "sessions",
    params(("kine" = Uuid, Path), ("session" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = wire::MoveSession,
    responses((status = 200, body = rest::Session), Errors))]
pub async fn move_session(
    State(app): State<AppState>,
    caller: ApiCaller,
    ApiPath((kine, session)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<wire::MoveSession>,
) -> ApiResult<Json<rest::Session>> {
    let kine = caller.kine(&app, kine, Scope::SessionsWrite).await?;
    http::move_session_for(&app, &kine, session, &body)
        .await
        .map(Json)
}
