//! Routes: the patient's contact, "Envoyer le lien", the messages of a session, the kiné's
//! reminder offsets, moving a session; for the dashboard (cookie) and `/api/v1` (API key), both
//! through the same `*_for` operations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use telesoin_core::model::Kine;
use telesoin_core::reach::{self, Channel, Contact, Preference};
use telesoin_core::{PatientId, RefusalCode};
use telesoin_proto::reach as wire;
use telesoin_proto::rest;
use telesoin_store::MessageRow;
use uuid::Uuid;

use crate::api::{own_patient, own_session};
use crate::app::AppState;
use crate::auth::CurrentKine;
use crate::error::{ApiError, ApiResult};

fn contact_json(c: &Contact) -> wire::Contact {
    wire::Contact {
        phone: c.phone.clone(),
        email: c.email.clone(),
        preferred_channel: c.preference.as_str().into(),
    }
}

pub fn message_json(m: &MessageRow) -> wire::Message {
    wire::Message {
        id: m.id,
        session: m.session.0,
        kind: m.kind.as_str().into(),
        channel: m.channel.as_str().into(),
        state: m.state.as_str().into(),
        due_at: m.due_at,
        attempts: m.attempts,
        detail: m.detail.clone(),
        done_at: m.done_at,
    }
}

/// Parses a contact as typed: phone normalised to E.164, e-mail checked; empty means none.
pub fn parse_contact(body: &wire::Contact) -> ApiResult<Contact> {
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let phone = blank(&body.phone)
        .map(|p| reach::normalize_phone(&p))
        .transpose()
        .map_err(|_| {
            ApiError::invalid(
                "phone",
                "a phone number: 06 12 34 56 78, +33 6 12 34 56 78 or +CC...",
            )
        })?;
    let email = blank(&body.email)
        .map(|e| reach::normalize_email(&e))
        .transpose()
        .map_err(|_| ApiError::invalid("email", "an e-mail address"))?;
    let preference = Preference::parse(&body.preferred_channel)
        .ok_or_else(|| ApiError::invalid("preferred_channel", "email, sms, both or none"))?;
    Ok(Contact {
        phone,
        email,
        preference,
    })
}

pub async fn get_contact_for(
    app: &AppState,
    kine: &Kine,
    patient: Uuid,
) -> ApiResult<wire::Contact> {
    let p = own_patient(app, kine.id, patient).await?;
    let c = app.store.contact(p.patient.id).await?.unwrap_or_default();
    Ok(contact_json(&c))
}

pub async fn put_contact_for(
    app: &AppState,
    kine: &Kine,
    patient: Uuid,
    body: &wire::Contact,
) -> ApiResult<wire::Contact> {
    let p = own_patient(app, kine.id, patient).await?;
    let c = parse_contact(body)?;
    app.store.set_contact(p.patient.id, &c, Utc::now()).await?;
    // The patient's id only: never the number or the address.
    tracing::info!(patient = %p.patient.id, "contact details updated");
    Ok(contact_json(&c))
}

pub async fn get_contact(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<wire::Contact>> {
    get_contact_for(&app, &kine, id).await.map(Json)
}

pub async fn put_contact(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<wire::Contact>,
) -> ApiResult<Json<wire::Contact>> {
    put_contact_for(&app, &kine, id, &body).await.map(Json)
}

fn refusal(code: RefusalCode, details: serde_json::Value) -> ApiError {
    ApiError {
        details,
        ..ApiError::new(StatusCode::CONFLICT, code)
    }
}

/// Sends the link now by the channels asked for (default: the patient's preferred ones that
/// this server can use); refused, with what is missing, when none can go.
pub async fn send_link_for(
    app: &AppState,
    kine: &Kine,
    session: Uuid,
    body: &wire::SendLink,
) -> ApiResult<Vec<wire::Message>> {
    let row = own_session(app, kine.id, session).await?;
    if row.session.status.is_closed() {
        return Err(ApiError::conflict("the session is over"));
    }
    let contact = app
        .store
        .contact(PatientId(row.session.patient.0))
        .await?
        .unwrap_or_default();
    let asked: Vec<Channel> = match &body.channels {
        Some(list) => {
            let mut out = Vec::new();
            for c in list {
                let ch = Channel::parse(c)
                    .ok_or_else(|| ApiError::invalid("channels", "email and/or sms"))?;
                if !out.contains(&ch) {
                    out.push(ch);
                }
            }
            if out.is_empty() {
                return Err(ApiError::invalid("channels", "email and/or sms"));
            }
            out
        }
        None => Channel::ALL
            .into_iter()
            .filter(|c| contact.preference.wants(*c))
            .collect(),
    };
    let names = |cs: &[Channel]| cs.iter().map(|c| c.as_str()).collect::<Vec<_>>();
    if asked.is_empty() {
        // The patient asked to be sent nothing.
        return Err(refusal(
            RefusalCode::ContactMissing,
            serde_json::json!({ "preferred_channel": "none" }),
        ));
    }
    let configured: Vec<Channel> = asked
        .iter()
        .copied()
        .filter(|c| crate::reach::configured(&app.cfg, *c))
        .collect();
    if configured.is_empty() {
        return Err(refusal(
            RefusalCode::ChannelNotConfigured,
            serde_json::json!({ "channels": names(&asked) }),
        ));
    }
    let usable: Vec<Channel> = configured
        .iter()
        .copied()
        .filter(|c| match c {
            Channel::Email => contact.email.is_some(),
            Channel::Sms => contact.phone.is_some(),
        })
        .collect();
    if usable.is_empty() {
        return Err(refusal(
            RefusalCode::ContactMissing,
            serde_json::json!({ "channels": names(&configured) }),
        ));
    }
    let sent = crate::reach::outbox::send_link(app, &row, &usable, Utc::now()).await?;
    Ok(sent.iter().map(message_json).collect())
}

pub async fn send_link(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    body: Option<Json<wire::SendLink>>,
) -> ApiResult<(StatusCode, Json<Vec<wire::Message>>)> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let sent = send_link_for(&app, &kine, id, &body).await?;
    Ok((StatusCode::CREATED, Json(sent)))
}

pub async fn messages_for(
    app: &AppState,
    kine: &Kine,
    session: Uuid,
) -> ApiResult<Vec<wire::Message>> {
    let row = own_session(app, kine.id, session).await?;
    let rows = app.store.messages(row.session.id).await?;
    Ok(rows.iter().map(message_json).collect())
}

pub async fn messages(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<wire::Message>>> {
    messages_for(&app, &kine, id).await.map(Json)
}

pub async fn settings_for(app: &AppState, kine: &Kine) -> ApiResult<wire::ReachSettings> {
    Ok(wire::ReachSettings {
        email_configured: crate::reach::configured(&app.cfg, Channel::Email),
        sms_configured: crate::reach::configured(&app.cfg, Channel::Sms),
        reminder_offsets_minutes: crate::reach::outbox::offsets(app, kine.id).await?,
    })
}

pub async fn get_settings(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
) -> ApiResult<Json<wire::ReachSettings>> {
    settings_for(&app, &kine).await.map(Json)
}

/// The most reminders a kiné may set, and how far ahead one may go (30 days), in minutes.
pub const MAX_REMINDERS: usize = 5;
pub const MAX_OFFSET_MINUTES: i64 = 30 * 24 * 60;

fn offsets_refused(index: Option<usize>, fr: &str, en: &str) -> ApiError {
    let mut details = serde_json::json!({
        "field": "reminder_offsets_minutes", "problem": en, "problem_fr": fr,
    });
    if let Some(i) = index {
        details["index"] = serde_json::json!(i);
    }
    ApiError {
        details,
        ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, RefusalCode::InvalidInput)
    }
}

/// The kiné's reminder offsets as asked (minutes before the start), latest first and each once;
/// refused with the field, the offending entry's `index` and the problem in French and English.
pub fn check_offsets(offsets: &[i64]) -> ApiResult<Vec<i64>> {
    if offsets.len() > MAX_REMINDERS {
        return Err(offsets_refused(
            None,
            "au plus 5 rappels",
            "at most 5 reminders",
        ));
    }
    for (i, m) in offsets.iter().enumerate() {
        if !(1..=MAX_OFFSET_MINUTES).contains(m) {
            return Err(offsets_refused(
                Some(i),
                "chaque rappel entre 1 minute et 30 jours (43200 minutes) avant la séance",
                "each reminder 1 to 43200 minutes (30 days) before the start",
            ));
        }
    }
    let mut out = offsets.to_vec();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    Ok(out)
}

/// Sets the kiné's reminder offsets (`[]`: none), for the sessions already scheduled too: their
/// pending reminders at other offsets stop (in the same transaction) and those the new offsets
/// call for are queued (now for the sessions that had some, within a minute by the reconciler
/// for the others).
pub async fn set_offsets_for(
    app: &AppState,
    kine: &Kine,
    body: &wire::ReminderOffsets,
) -> ApiResult<wire::ReachSettings> {
    let offsets = check_offsets(&body.reminder_offsets_minutes)?;
    let now = Utc::now();
    let touched = app
        .store
        .change_reminder_offsets(kine.id, &offsets, now)
        .await?;
    for id in touched {
        if let Some(row) = app.store.session(id).await? {
            crate::reach::outbox::schedule_reminders(app, &row, now).await?;
        }
    }
    tracing::info!(kine = %kine.id, count = offsets.len(), "reminder offsets set");
    settings_for(app, kine).await
}

pub async fn put_settings(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Json(body): Json<wire::ReminderOffsets>,
) -> ApiResult<Json<wire::ReachSettings>> {
    set_offsets_for(&app, &kine, &body).await.map(Json)
}

/// Moves a scheduled session to `starts_at`.
pub async fn move_session_for(
    app: &AppState,
    kine: &Kine,
    session: Uuid,
    body: &wire::MoveSession,
) -> ApiResult<rest::Session> {
    let row = own_session(app, kine.id, session).await?;
    let now = Utc::now();
    if body.starts_at + Duration::minutes(app.cfg.link_after_minutes) <= now {
        return Err(ApiError::invalid(
            "starts_at",
            "a session cannot be moved into the past",
        ));
    }
    if !crate::reach::outbox::move_session(app, &row, body.starts_at, now).await? {
        return Err(ApiError::conflict(
            "only a session not yet started can be moved",
        ));
    }
    tracing::info!(session = %row.session.id, "session moved");
    crate::api::get_session_for(app, kine, session).await
}

pub async fn move_session(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<wire::MoveSession>,
) -> ApiResult<Json<rest::Session>> {
    move_session_for(&app, &kine, id, &body).await.map(Json)
}
