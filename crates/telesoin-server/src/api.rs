//! The REST API of the dashboard (cookie-authenticated, scoped to the logged-in kiné), the join
//! page's session preview, JWKS and health probes.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use telesoin_core::admission::{self, AdmissionInput, Decision, session_open};
use telesoin_core::claims::JoinClaims;
use telesoin_core::model::{
    self, Companion, Consent, ConsentRecorder, InPersonVisit, Kine, Patient, Role, Session,
    SessionStatus, VisitKind,
};
use telesoin_core::reimbursement::DirectAccess;
use telesoin_core::representation::{self, ConsentChannel, ConsentGiver};
use telesoin_core::{KineId, ParticipantId, PatientId, RefusalCode, SessionId, acts};
use telesoin_proto::rest;
use telesoin_proto::signal as wire;
use telesoin_store::{ConsentRow, LinkRow, PatientRow, SessionRow};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::CurrentKine;
use crate::error::{ApiError, ApiResult};
use crate::events::DomainEvent;
use crate::hub::wire_role;
use crate::ws::JOIN_AUDIENCE;

pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers and the node is not draining; otherwise 503 with the reason.
pub async fn readyz(State(app): State<AppState>) -> Response {
    if app.hub.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    if let Some(reason) = app.hub.health().not_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    }
    if let Err(e) = app.store.ping().await {
        tracing::warn!(error = %e, "not ready: store");
        return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response();
    }
    if let Err(e) = app.hub.bus().ping().await {
        tracing::warn!(error = %e, "not ready: bus");
        return (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable").into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

/// Prometheus text: what an operator watches before it goes wrong (disk, store writes).
pub async fn metrics(State(app): State<AppState>) -> Response {
    let health = app.hub.health();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    };
    if let Some(free) = health.free_bytes() {
        gauge(
            "telesoin_data_dir_free_bytes",
            "Free bytes of the data directory's filesystem.",
            free.to_string(),
        );
    }
    gauge(
        "telesoin_data_dir_min_free_bytes",
        "Below this much free space the node is not ready (min_free_disk_mb).",
        health.min_free_bytes().to_string(),
    );
    gauge(
        "telesoin_store_writable",
        "1 while the store takes writes, 0 from a failed write until writing works again.",
        u8::from(!health.writes_failing()).to_string(),
    );
    gauge(
        "telesoin_presence_events_queued",
        "Presence events waiting for the store (kept and retried, never dropped).",
        app.hub.presence_queued().to_string(),
    );
    gauge(
        "telesoin_draining",
        "1 while the node is shutting down.",
        u8::from(app.hub.is_draining()).to_string(),
    );
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
        app.hub.presence_rejected(),
        name = "telesoin_presence_events_rejected_total",
        help = "Presence events the store refused for good (a constraint: their session is gone); not retried.",
    ));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

pub async fn jwks(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(app.keys.jwks().clone())
}

pub async fn embed_config(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "origins": app.cfg.embed_origins }))
}

/// The catalogue in force today (in France), with what télésoin allows.
pub async fn acts() -> Json<Vec<rest::Act>> {
    let today = model::local_date(Utc::now());
    let catalogue = acts::catalogue_on(today);
    let letter = telesoin_core::tariff::telesoin_letter(today);
    Json(
        catalogue
            .acts
            .iter()
            .map(|a| rest::Act {
                code: a.code.into(),
                label: a.label.into(),
                amk_coefficient: a.amk_coefficient,
                in_person_letter: a.in_person_letter.map(str::to_owned),
                telesoin_letter: letter.as_str().into(),
                telesoin_allowed: a.remote_allowed(),
                not_remote: match a.remote {
                    acts::Remote::Allowed => None,
                    acts::Remote::NotAllowed(why) => Some(why.as_str().into()),
                },
                catalogue: catalogue.id.into(),
            })
            .collect(),
    )
}

/// The price fields of a session or record: letter, coefficient, value, amount.
pub(crate) struct PriceJson {
    pub key_letter: Option<String>,
    pub coefficient: Option<String>,
    pub key_letter_value_cents: Option<i64>,
    pub amount_cents: Option<i64>,
}

pub(crate) async fn price_json(app: &AppState, row: &SessionRow) -> ApiResult<PriceJson> {
    use telesoin_core::tariff::{Billed, format_coefficient};
    let billing = app.store.session_billing(row.session.id).await?;
    let settings = app.store.kine_settings(row.session.kine).await?;
    let billed = crate::records::price(row, &billing, &settings, &app.cfg.key_letter_schedule());
    Ok(match billed {
        Some(Billed::Reimbursable {
            letter,
            coefficient_tenths,
            value_cents,
            cents,
        }) => PriceJson {
            key_letter: Some(letter.as_str().into()),
            coefficient: Some(format_coefficient(coefficient_tenths)),
            key_letter_value_cents: Some(value_cents),
            amount_cents: Some(cents),
        },
        Some(Billed::Hn { cents }) => PriceJson {
            key_letter: None,
            coefficient: None,
            key_letter_value_cents: None,
            amount_cents: Some(cents),
        },
        None => PriceJson {
            key_letter: None,
            coefficient: None,
            key_letter_value_cents: None,
            amount_cents: None,
        },
    })
}

fn patient_json(r: &PatientRow) -> rest::Patient {
    let p = &r.patient;
    rest::Patient {
        id: p.id.0,
        display_name: p.display_name.clone(),
        birth_date: p.birth_date,
        loss_of_autonomy: p.loss_of_autonomy,
        gp_contact: p.gp_contact.clone(),
        created_at: r.created_at,
    }
}

fn consent_json(r: &ConsentRow) -> rest::Consent {
    rest::Consent {
        id: r.id,
        patient: r.patient.0,
        recorded_by: r.consent.recorded_by.as_str().into(),
        method: r.consent.method.clone(),
        text_version: r.consent.text_version.clone(),
        recorded_at: r.consent.recorded_at,
        withdrawn_at: r.consent.withdrawn_at,
        representative_name: None,
        representative_relation: None,
    }
}

fn text_field(name: &str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            name,
            &format!("1 to {max} printable characters"),
        ));
    }
    Ok(v.to_owned())
}

pub async fn list_patients(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
) -> ApiResult<Json<Vec<rest::Patient>>> {
    list_patients_for(&app, &kine).await.map(Json)
}

// The operations below are shared by the dashboard (cookie, `CurrentKine`) and the platform API
// (`/api/v1`, an API key scoped to kinés): each handler resolves the kiné, then calls one.

pub async fn list_patients_for(app: &AppState, kine: &Kine) -> ApiResult<Vec<rest::Patient>> {
    Ok(app
        .store
        .patients(kine.id)
        .await?
        .iter()
        .map(patient_json)
        .collect())
}

pub async fn create_patient(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Json(body): Json<rest::NewPatient>,
) -> ApiResult<(StatusCode, Json<rest::Patient>)> {
    let p = create_patient_for(&app, &kine, body).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

pub async fn create_patient_for(
    app: &AppState,
    kine: &Kine,
    body: rest::NewPatient,
) -> ApiResult<rest::Patient> {
    let now = Utc::now();
    let display_name = text_field("display_name", &body.display_name, 120)?;
    // Dates are French days: at 00:30 in Paris it is already tomorrow there.
    if body.birth_date > model::local_date(now)
        || body.birth_date < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default()
    {
        return Err(ApiError::invalid(
            "birth_date",
            "a past date after 1900-01-01",
        ));
    }
    let gp_contact = body
        .gp_contact
        .as_deref()
        .map(|g| text_field("gp_contact", g, 200))
        .transpose()?;
    let departement = match body.departement.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => Some(admission::departement_of(d).ok_or_else(|| {
            ApiError::invalid(
                "departement",
                "a French département (75, 2A, 971) or postcode",
            )
        })?),
    };
    // Checked before the patient exists, so that a wrong INS creates nothing.
    let identity = body
        .ins
        .as_ref()
        .map(|i| crate::patient_ins::check(i, body.birth_date, "ins."))
        .transpose()?;
    let patient = Patient {
        id: PatientId(Uuid::new_v4()),
        kine: kine.id,
        display_name,
        birth_date: body.birth_date,
        loss_of_autonomy: body.loss_of_autonomy,
        gp_contact,
    };
    app.store.create_patient(&patient, now).await?;
    if let Some(d) = departement.as_deref() {
        app.store
            .set_patient_departement(patient.id, Some(d))
            .await?;
    }
    if let Some(identity) = &identity {
        crate::patient_ins::store(app, kine.id, patient.id, identity).await?;
    }
    Ok(patient_json(&PatientRow {
        patient,
        created_at: now,
    }))
}

pub(crate) async fn own_patient(app: &AppState, kine: KineId, id: Uuid) -> ApiResult<PatientRow> {
    app.store
        .patient(kine, PatientId(id))
        .await?
        .ok_or_else(ApiError::not_found)
}

pub async fn patient_detail(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<rest::PatientDetail>> {
    patient_detail_for(&app, &kine, id).await.map(Json)
}

pub async fn patient_detail_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
) -> ApiResult<rest::PatientDetail> {
    let p = own_patient(app, kine.id, id).await?;
    let visits = app.store.visits(kine.id, p.patient.id).await?;
    let consents = app.store.consents(kine.id, p.patient.id).await?;
    let mut consents_json = Vec::with_capacity(consents.len());
    for c in &consents {
        let mut json = consent_json(c);
        if let Some(r) = app.store.consent_representative(c.id).await? {
            json.representative_name = Some(r.name);
            json.representative_relation = Some(r.relation);
        }
        consents_json.push(json);
    }
    let prescriptions = app.store.prescriptions(p.patient.id).await?;
    let ins = app.store.patient_ins(p.patient.id).await?;
    Ok(rest::PatientDetail {
        patient: patient_json(&p),
        ins: ins.as_ref().map(crate::patient_ins::ins_json),
        visits: visits
            .iter()
            .map(|v| rest::Visit {
                id: v.id,
                patient: v.patient.0,
                date: v.visit.date,
                kind: v.visit.kind.as_str().into(),
            })
            .collect(),
        consents: consents_json,
        prescriptions: prescriptions
            .iter()
            .map(|r| rest::Prescription {
                id: r.id,
                patient: r.patient.0,
                date: r.date,
            })
            .collect(),
    })
}

pub async fn add_visit(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<rest::NewVisit>,
) -> ApiResult<(StatusCode, Json<rest::Visit>)> {
    let v = add_visit_for(&app, &kine, id, body).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

pub async fn add_visit_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
    body: rest::NewVisit,
) -> ApiResult<rest::Visit> {
    let p = own_patient(app, kine.id, id).await?;
    let kind = VisitKind::parse(&body.kind)
        .ok_or_else(|| ApiError::invalid("kind", "bilan or session"))?;
    let now = Utc::now();
    if body.date > model::local_date(now) {
        return Err(ApiError::invalid(
            "date",
            "an in-person visit is recorded once it has happened",
        ));
    }
    let vid = Uuid::new_v4();
    app.store
        .add_visit(
            kine.id,
            p.patient.id,
            vid,
            InPersonVisit {
                date: body.date,
                kind,
            },
            now,
        )
        .await?;
    Ok(rest::Visit {
        id: vid,
        patient: id,
        date: body.date,
        kind: kind.as_str().into(),
    })
}

pub async fn add_consent(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<rest::NewConsent>,
) -> ApiResult<(StatusCode, Json<rest::Consent>)> {
    let c = add_consent_for(&app, &kine, id, body).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

pub async fn add_consent_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
    body: rest::NewConsent,
) -> ApiResult<rest::Consent> {
    let p = own_patient(app, kine.id, id).await?;
    if !["oral", "written"].contains(&body.method.as_str()) {
        return Err(ApiError::invalid("method", "oral or written"));
    }
    let text_version = text_field("text_version", &body.text_version, 40)?;
    // A minor's consent is the legal representative's: the kiné names them (telesoin-core).
    let giver = representation::consent_giver(
        &p.patient,
        model::local_date(Utc::now()),
        ConsentChannel::Kine,
        body.representative_name.as_deref(),
        body.representative_relation.as_deref(),
    )
    .map_err(|code| match code {
        RefusalCode::InvalidInput => ApiError::invalid(
            "representative_name",
            "name: 1 to 120 printable characters; relation: 1 to 40",
        ),
        code => ApiError {
            details: serde_json::json!({ "field": "representative_name" }),
            ..ApiError::refusal(code)
        },
    })?;
    let representative = match giver {
        ConsentGiver::Patient => None,
        ConsentGiver::Representative(p) => Some(telesoin_store::Representative {
            name: p.name,
            relation: p.relation,
        }),
    };
    let consent = Consent {
        recorded_by: ConsentRecorder::Kine,
        method: body.method,
        text_version,
        recorded_at: Utc::now(),
        withdrawn_at: None,
    };
    let cid = Uuid::new_v4();
    let recorded = DomainEvent::ConsentRecorded {
        kine: kine.id,
        patient: p.patient.id,
        by: "kine",
    };
    // The webhook is written with the consent, in its transaction.
    let announce = app.hub.webhooks().of(consent.recorded_at, &recorded).await;
    app.store
        .add_consent(
            kine.id,
            p.patient.id,
            cid,
            &consent,
            representative.as_ref(),
            announce.as_ref(),
        )
        .await?;
    tracing::info!(patient = %p.patient.id, "consent recorded by the kiné");
    app.hub.events().emit(consent.recorded_at, recorded).await;
    let mut json = consent_json(&ConsentRow {
        id: cid,
        patient: p.patient.id,
        consent,
    });
    if let Some(r) = representative {
        json.representative_name = Some(r.name);
        json.representative_relation = Some(r.relation);
    }
    Ok(json)
}

pub async fn withdraw_consent(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<rest::Consent>> {
    withdraw_consent_for(&app, &kine, id).await.map(Json)
}

pub async fn withdraw_consent_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
) -> ApiResult<rest::Consent> {
    let now = Utc::now();
    // The webhook is written with the withdrawal (the store adds the kiné and the patient).
    let announce = app
        .hub
        .webhooks()
        .announce("consent.withdrawn", now, serde_json::json!({}))
        .await;
    let row = app
        .store
        .withdraw_consent(kine.id, id, now, announce.as_ref())
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(patient = %row.patient, "consent withdrawn");
    let withdrawn = DomainEvent::ConsentWithdrawn {
        kine: kine.id,
        patient: row.patient,
    };
    app.hub.events().emit(now, withdrawn).await;
    app.hub.consent_withdrawn(row.patient, now).await;
    Ok(consent_json(&row))
}

pub async fn add_prescription(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<rest::NewPrescription>,
) -> ApiResult<(StatusCode, Json<rest::Prescription>)> {
    let r = add_prescription_for(&app, &kine, id, body).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn add_prescription_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
    body: rest::NewPrescription,
) -> ApiResult<rest::Prescription> {
    let p = own_patient(app, kine.id, id).await?;
    let now = Utc::now();
    if body.date > model::local_date(now) {
        return Err(ApiError::invalid(
            "date",
            "a prescription cannot be dated in the future",
        ));
    }
    let rid = Uuid::new_v4();
    app.store
        .add_prescription(p.patient.id, rid, body.date, now)
        .await?;
    Ok(rest::Prescription {
        id: rid,
        patient: id,
        date: body.date,
    })
}

pub(crate) async fn session_json(
    app: &AppState,
    row: &SessionRow,
    patient_name: String,
) -> rest::Session {
    let s = &row.session;
    let act = acts::of_session(&s.act_code, s.day());
    let price = price_json(app, row).await.unwrap_or(PriceJson {
        key_letter: None,
        coefficient: None,
        key_letter_value_cents: None,
        amount_cents: None,
    });
    rest::Session {
        id: s.id.0,
        patient: s.patient.0,
        patient_name,
        starts_at: s.starts_at,
        window_start: s.window_start,
        window_end: s.window_end,
        act_code: s.act_code.clone(),
        act_label: act.map(|a| a.label.to_owned()).unwrap_or_default(),
        amk_coefficient: act.map(|a| a.amk_coefficient).unwrap_or_default(),
        key_letter: price.key_letter,
        coefficient: price.coefficient,
        key_letter_value_cents: price.key_letter_value_cents,
        amount_cents: price.amount_cents,
        status: s.status.as_str().into(),
        outcome: model::outcome(s.status, row.billable_seconds)
            .as_str()
            .into(),
        auto_admit: s.auto_admit,
        patient_consent_on_join: s.patient_consent_on_join,
        billing_class: row.billing_class.clone(),
        billing_reason: row
            .class_reason
            .as_deref()
            .and_then(crate::records::reason_of)
            .map(|r| rest::BillingReason {
                code: r.code().into(),
                message_fr: r.message_fr().into(),
                message_en: r.message_en().into(),
            }),
        relay_only: row.relay_only,
        live: app.hub.presence(s.id).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct DayQuery {
    day: Option<NaiveDate>,
}

pub async fn list_sessions(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Query(q): Query<DayQuery>,
) -> ApiResult<Json<Vec<rest::Session>>> {
    let day = q.day.unwrap_or_else(|| model::local_date(Utc::now()));
    list_sessions_for(&app, &kine, day).await.map(Json)
}

/// The kiné's sessions of one French day, by start time.
pub async fn list_sessions_for(
    app: &AppState,
    kine: &Kine,
    day: NaiveDate,
) -> ApiResult<Vec<rest::Session>> {
    // The French day, with a margin for the time zone; filtered on the local date below.
    let from = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - Duration::hours(3);
    let to = from + Duration::hours(30);
    let rows = app.store.sessions_between(kine.id, from, to).await?;
    let mut out = Vec::new();
    for row in rows.iter().filter(|r| r.session.day() == day) {
        let name = app
            .store
            .patient(kine.id, row.session.patient)
            .await?
            .map(|p| p.patient.display_name)
            .unwrap_or_default();
        out.push(session_json(app, row, name).await);
    }
    Ok(out)
}

pub async fn create_session(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Json(body): Json<rest::NewSession>,
) -> ApiResult<(StatusCode, Json<rest::Session>)> {
    let s = create_session_for(&app, &kine, body, None).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// What scheduling checks before anything is written: the kiné's patient, the act (in the
/// catalogue of the session day, and allowed in télésoin), the territory, a start not in the
/// past, the direct access, the price, privacy mode's TURN. Shared with the bulk route,
/// which checks every session of a request before making any.
pub async fn check_new_session(
    app: &AppState,
    kine: &Kine,
    body: &rest::NewSession,
    now: DateTime<Utc>,
) -> ApiResult<(PatientRow, Option<DirectAccess>)> {
    let p = own_patient(app, kine.id, body.patient).await?;
    match acts::schedulable(&body.act_code, model::local_date(body.starts_at)) {
        Ok(_) => {}
        Err(RefusalCode::ActNotRemote) => {
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                details: serde_json::json!({ "field": "act_code" }),
                ..ApiError::refusal(RefusalCode::ActNotRemote)
            });
        }
        Err(_) => {
            return Err(ApiError::invalid(
                "act_code",
                "one of GET /api/acts, in the catalogue of the session day",
            ));
        }
    }
    check_territory(app, kine.id, p.patient.id).await?;
    if body.starts_at + Duration::minutes(app.cfg.link_after_minutes) <= now {
        return Err(ApiError::invalid(
            "starts_at",
            "a session cannot be scheduled in the past",
        ));
    }
    let direct_access = match body.direct_access.as_deref() {
        None => None,
        Some(d) => Some(DirectAccess::parse(d).ok_or_else(|| {
            ApiError::invalid("direct_access", "acute_low_back_pain or ankle_sprain")
        })?),
    };
    if body
        .hn_price_cents
        .is_some_and(|c| !(0..=1_000_000).contains(&c))
    {
        return Err(ApiError::invalid(
            "hn_price_cents",
            "a price in cents, 0 to 1000000",
        ));
    }
    if body.relay_only && (app.cfg.turn_urls.is_empty() || app.cfg.turn_secret.is_none()) {
        return Err(ApiError::invalid(
            "relay_only",
            "privacy mode needs a TURN server (turn_urls and turn_secret in the configuration)",
        ));
    }
    Ok((p, direct_access))
}

/// Schedules a session; `platform` is the platform whose API asked for it, if any (it may then
/// mint join tokens for it).
pub async fn create_session_for(
    app: &AppState,
    kine: &Kine,
    body: rest::NewSession,
    platform: Option<Uuid>,
) -> ApiResult<rest::Session> {
    let now = Utc::now();
    let (p, direct_access) = check_new_session(app, kine, &body, now).await?;
    let (window_start, window_end) = Session::window_for(body.starts_at, app.cfg.window());
    let session = Session {
        id: SessionId(Uuid::new_v4()),
        kine: kine.id,
        patient: p.patient.id,
        starts_at: body.starts_at,
        window_start,
        window_end,
        act_code: body.act_code,
        status: SessionStatus::Scheduled,
        auto_admit: body.auto_admit,
        patient_consent_on_join: body.patient_consent_on_join,
    };
    // The session, its reminders and `session.scheduled` for platforms: one transaction.
    let row = crate::records::schedule(
        app,
        session,
        direct_access,
        body.hn_price_cents,
        body.relay_only,
        platform,
        now,
    )
    .await?;
    let session = &row.session;
    let scheduled = DomainEvent::SessionScheduled {
        kine: kine.id,
        session: session.id,
    };
    app.hub.events().emit(now, scheduled).await;
    Ok(session_json(app, &row, p.patient.display_name).await)
}

/// The convention's territory condition, when configured: the practice's département is the
/// patient's. A refusal names the convention.
pub(crate) async fn check_territory(
    app: &AppState,
    kine: KineId,
    patient: PatientId,
) -> ApiResult<()> {
    if app.cfg.territory_check == admission::TerritoryCheck::Off {
        return Ok(());
    }
    let practice = app.store.practice_departement(kine).await?;
    let theirs = app.store.patient_departement(patient).await?;
    admission::territory(
        app.cfg.territory_check,
        practice.as_deref(),
        theirs.as_deref(),
    )
    .map_err(ApiError::refusal)
}

pub(crate) async fn own_session(app: &AppState, kine: KineId, id: Uuid) -> ApiResult<SessionRow> {
    app.store
        .session(SessionId(id))
        .await?
        .filter(|r| r.session.kine == kine)
        .ok_or_else(ApiError::not_found)
}

pub async fn get_session(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<rest::Session>> {
    get_session_for(&app, &kine, id).await.map(Json)
}

pub async fn get_session_for(app: &AppState, kine: &Kine, id: Uuid) -> ApiResult<rest::Session> {
    let row = own_session(app, kine.id, id).await?;
    let name = app
        .store
        .patient(kine.id, row.session.patient)
        .await?
        .map(|p| p.patient.display_name)
        .unwrap_or_default();
    Ok(session_json(app, &row, name).await)
}

/// Issues a join link for a seat of the session: the token is valid over the appointment window.
pub async fn issue_link(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<rest::NewLink>,
) -> ApiResult<(StatusCode, Json<rest::Link>)> {
    let link = issue_link_for(&app, &kine, id, body).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

pub async fn issue_link_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
    body: rest::NewLink,
) -> ApiResult<rest::Link> {
    let row = own_session(app, kine.id, id).await?;
    let now = Utc::now();
    if let Err(code) = session_open(&row.session, row.session.window_start.max(now)) {
        if code != RefusalCode::TooEarly {
            return Err(ApiError::refusal(code));
        }
    }
    let role = match body.role {
        wire::Role::Kine => Role::Kine,
        wire::Role::Patient => Role::Patient,
        wire::Role::Companion => Role::Companion,
    };
    // Patients and companions get a short link too (`/j#CODE`, for an SMS).
    let link = match role {
        Role::Kine => mint(app, &row, role, now).await?,
        _ => crate::reach::codes::mint_short(app, &row, role, now).await?,
    };
    tracing::info!(session = %row.session.id, role = role.as_str(), "link issued");
    let issued = DomainEvent::LinkIssued {
        kine: kine.id,
        session: row.session.id,
        role,
        jti: link.jti,
    };
    app.hub.events().emit(now, issued).await;
    Ok(link)
}

/// Creates the seat (if needed), records the link and signs its token.
pub async fn mint(
    app: &AppState,
    row: &SessionRow,
    role: Role,
    now: DateTime<Utc>,
) -> ApiResult<rest::Link> {
    let participant: ParticipantId = app.store.seat(row.session.id, role, now).await?;
    let jti = Uuid::new_v4();
    let not_before = telesoin_core::claims::link_not_before(role, row.session.window_start, now);
    let claims = JoinClaims {
        iss: app.public_url.to_string(),
        aud: JOIN_AUDIENCE.into(),
        sub: participant.0,
        sid: row.session.id.0,
        role,
        jti,
        nbf: not_before.timestamp(),
        exp: row.session.window_end.timestamp(),
        iat: now.timestamp(),
    };
    app.store
        .issue_link(&LinkRow {
            jti,
            session: row.session.id,
            participant,
            role,
            issued_at: now,
            not_before,
            expires_at: row.session.window_end,
        })
        .await?;
    let token = app.keys.sign(&claims)?;
    Ok(rest::Link {
        participant: participant.0,
        role: wire_role(role),
        jti,
        url: format!("{}/j#{token}", app.public_url),
        token,
        short_url: None,
        not_before,
        expires_at: row.session.window_end,
    })
}

pub async fn cancel_session(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<rest::Session>> {
    cancel_session_for(&app, &kine, id).await.map(Json)
}

pub async fn cancel_session_for(app: &AppState, kine: &Kine, id: Uuid) -> ApiResult<rest::Session> {
    let row = own_session(app, kine.id, id).await?;
    if row.session.status.is_closed() {
        return Err(ApiError::conflict("the session is already over"));
    }
    // The notice (if the patient had been told) is written with the cancellation itself.
    let notices = crate::reach::outbox::cancel_notices(app, row.session.id, Utc::now()).await?;
    app.hub
        .cancel_session(row.session.id, &notices, Utc::now())
        .await
        .map_err(ApiError::refusal)?;
    tracing::info!(session = %row.session.id, "session cancelled, links revoked");
    let cancelled = DomainEvent::SessionCancelled {
        kine: kine.id,
        session: row.session.id,
    };
    app.hub.events().emit(Utc::now(), cancelled).await;
    get_session_for(app, kine, id).await
}

pub async fn end_session(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<rest::Record>> {
    end_session_for(&app, &kine, id).await.map(Json)
}

pub async fn end_session_for(app: &AppState, kine: &Kine, id: Uuid) -> ApiResult<rest::Record> {
    let row = own_session(app, kine.id, id).await?;
    app.hub
        .end_session(row.session.id, "ended_by_kine", Utc::now())
        .await
        .map_err(ApiError::refusal)?;
    record_for(app, kine, id).await
}

pub async fn revoke_link(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(jti): Path<Uuid>,
) -> ApiResult<StatusCode> {
    revoke_link_for(&app, &kine, jti).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_link_for(app: &AppState, kine: &Kine, jti: Uuid) -> ApiResult<()> {
    let seat = app.store.link(jti).await?.ok_or_else(ApiError::not_found)?;
    own_session(app, kine.id, seat.session.0).await?;
    let now = Utc::now();
    app.store.revoke_link(jti, now).await?;
    app.hub
        .link_revoked(seat.session, seat.participant, now)
        .await;
    tracing::info!(session = %seat.session, "link revoked");
    let revoked = DomainEvent::LinkRevoked {
        kine: kine.id,
        session: seat.session,
        jti,
    };
    app.hub.events().emit(now, revoked).await;
    Ok(())
}

fn event_json(e: &telesoin_store::EventRow) -> rest::Event {
    rest::Event {
        seq: e.seq,
        at: e.at,
        participant: e.participant.map(|p| p.0),
        role: e.role.map(wire_role),
        kind: e.kind.as_str().into(),
        detail: e.detail.clone(),
    }
}

pub async fn record(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<rest::Record>> {
    record_for(&app, &kine, id).await.map(Json)
}

pub async fn record_for(app: &AppState, kine: &Kine, id: Uuid) -> ApiResult<rest::Record> {
    let row = own_session(app, kine.id, id).await?;
    let events = app.store.events(row.session.id).await?;
    let now = Utc::now();
    let presence: Vec<_> = events.iter().map(|e| e.presence()).collect();
    let provisional = telesoin_core::billing::billable_seconds(
        &presence,
        app.hub.billing_policy(),
        row.ended_at.unwrap_or(now),
    );
    let started_at = events
        .iter()
        .find(|e| e.kind == telesoin_core::billing::PresenceKind::Admitted)
        .map(|e| e.at);
    let act = acts::of_session(&row.session.act_code, row.session.day());
    let price = price_json(app, &row).await?;
    Ok(rest::Record {
        session: row.session.id.0,
        status: row.session.status.as_str().into(),
        outcome: model::outcome(row.session.status, row.billable_seconds)
            .as_str()
            .into(),
        kine_rpps: kine.rpps.clone(),
        act_code: row.session.act_code.clone(),
        amk_coefficient: act.map(|a| a.amk_coefficient).unwrap_or_default(),
        key_letter: price.key_letter,
        coefficient: price.coefficient,
        key_letter_value_cents: price.key_letter_value_cents,
        amount_cents: price.amount_cents,
        billing_class: row.billing_class.clone(),
        started_at,
        ended_at: row.ended_at,
        billable_seconds: row.billable_seconds,
        provisional_seconds: row.billable_seconds.unwrap_or(provisional),
        finalized_at: row.finalized_at,
        consent: crate::records::consent_of(app.store.as_ref(), &row, now)
            .await?
            .map(|(giver, _)| giver.words_fr()),
        attestations: crate::records::attested_of(app.store.as_ref(), row.session.id)
            .await?
            .iter()
            .map(|a| rest::Attestation {
                companion: match a.companion {
                    Companion::Parent => "parent".into(),
                    Companion::Aidant => "aidant".into(),
                },
                name: a.name.clone(),
                relation: a.relation.clone(),
                attested_at: a.attested_at,
                words: crate::records::attestation_words(a),
            })
            .collect(),
        price_accepted_at: app
            .store
            .hn_price_acceptance(row.session.id)
            .await?
            .map(|a| a.accepted_at),
        incidents: events
            .iter()
            .filter(|e| crate::records::is_incident(e))
            .map(event_json)
            .collect(),
        events: events.iter().map(event_json).collect(),
    })
}

/// What the join page shows before joining: who, when, which act, reimbursed or not. The token
/// travels in the body, never in a URL.
pub async fn join_info(
    State(app): State<AppState>,
    Json(body): Json<rest::JoinInfoRequest>,
) -> ApiResult<Json<wire::SessionInfo>> {
    let now = Utc::now();
    let verified = crate::platform::tokens::verify_join(&app, &body.token, now)
        .await
        .map_err(ApiError::refusal)?;
    let row = app
        .hub
        .linked_session(&verified, now)
        .await
        .map_err(ApiError::refusal)?;
    if row.session.status.is_closed() {
        session_open(&row.session, now).map_err(ApiError::refusal)?;
    }
    let mut minor = false;
    if verified.role() != Role::Kine {
        // Tell a patient who cannot be admitted before their page asks for the camera. Only
        // refusals count here: the lobby and attestations are the join's business.
        let patient = app
            .store
            .patient(row.session.kine, row.session.patient)
            .await?
            .ok_or_else(|| ApiError::refusal(RefusalCode::SessionNotFound))?;
        let visits: Vec<_> = app
            .store
            .visits(row.session.kine, row.session.patient)
            .await?
            .into_iter()
            .map(|v| v.visit)
            .collect();
        let consents: Vec<_> = app
            .store
            .consents(row.session.kine, row.session.patient)
            .await?
            .into_iter()
            .map(|c| c.consent)
            .collect();
        check_territory(&app, row.session.kine, row.session.patient).await?;
        let check_at = now.max(row.session.window_start);
        let decision = admission::decide(&AdmissionInput {
            now: check_at,
            role: verified.role(),
            session: &row.session,
            patient: &patient.patient,
            visits: &visits,
            consents: &consents,
            rule: app.cfg.in_person_rule,
            attested: admission::required_companion(&patient.patient, &row.session),
            // The price is shown and accepted on this very page, after this answer.
            price: admission::PriceAcceptance::default(),
            kine_present: true,
            admitted_by_kine: true,
        });
        if let Decision::Refuse(code) = decision {
            return Err(ApiError::refusal(code));
        }
        minor = representation::is_minor(&patient.patient, row.session.day());
    }
    let kine = app
        .store
        .kine(row.session.kine)
        .await?
        .ok_or_else(|| ApiError::refusal(RefusalCode::SessionNotFound))?;
    let act = acts::of_session(&row.session.act_code, row.session.day());
    Ok(Json(wire::SessionInfo {
        session: row.session.id.0,
        kine_name: kine.name,
        starts_at: row.session.starts_at,
        act_code: row.session.act_code.clone(),
        act_label: act.map(|a| a.label.to_owned()).unwrap_or_default(),
        billing_class: row.billing_class,
        consent_text_version: model::CONSENT_TEXT_VERSION.into(),
        minor,
    }))
}

/// The session's price as the join page shows it before the call (HN: the kiné's price; the
/// patient accepts it before joining, traced like a consent). The token travels in the body.
pub async fn join_price(
    State(app): State<AppState>,
    Json(body): Json<rest::JoinInfoRequest>,
) -> ApiResult<Json<rest::JoinPrice>> {
    let now = Utc::now();
    let (row, _) = join_seat(&app, &body.token, now).await?;
    Ok(Json(join_price_of(&app, &row).await?))
}

/// The patient (or the companion for them) accepts the HN price shown on the join page.
pub async fn accept_join_price(
    State(app): State<AppState>,
    Json(body): Json<rest::AcceptPrice>,
) -> ApiResult<Json<rest::JoinPrice>> {
    let now = Utc::now();
    let (row, participant) = join_seat(&app, &body.token, now).await?;
    let shown = join_price_of(&app, &row).await?;
    let Some(price) = shown.price_cents else {
        return Err(ApiError::conflict(
            "no price to accept: the session is reimbursable, or its HN price is 0",
        ));
    };
    if price != body.price_cents {
        return Err(ApiError::conflict(
            "the price changed: show the current price again",
        ));
    }
    app.store
        .accept_hn_price(&telesoin_store::PriceAcceptance {
            session: row.session.id,
            participant,
            price_cents: price,
            accepted_at: now,
        })
        .await?;
    tracing::info!(session = %row.session.id, "HN price accepted on the join page");
    Ok(Json(join_price_of(&app, &row).await?))
}

/// A patient or companion link of an open session.
async fn join_seat(
    app: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<(SessionRow, ParticipantId)> {
    let verified = crate::platform::tokens::verify_join(app, token, now)
        .await
        .map_err(ApiError::refusal)?;
    if verified.role() == Role::Kine {
        return Err(ApiError::refusal(RefusalCode::NotAllowed));
    }
    let row = app
        .hub
        .linked_session(&verified, now)
        .await
        .map_err(ApiError::refusal)?;
    session_open(&row.session, now.max(row.session.window_start)).map_err(ApiError::refusal)?;
    Ok((row, verified.participant()))
}

async fn join_price_of(app: &AppState, row: &SessionRow) -> ApiResult<rest::JoinPrice> {
    // The very price admission asks to be accepted (none at 0 EUR or when reimbursable).
    let to_accept = crate::records::hn_price_to_accept(app.store.as_ref(), row).await?;
    let accepted = app.store.hn_price_acceptance(row.session.id).await?;
    Ok(rest::JoinPrice {
        billing_class: row.billing_class.clone(),
        price_cents: to_accept,
        // Only an acceptance of the price shown now counts.
        accepted_at: accepted
            .filter(|a| Some(a.price_cents) == to_accept)
            .map(|a| a.accepted_at),
    })
}
