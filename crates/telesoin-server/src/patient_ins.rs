//! The patient's INS at the HTTP edge: what the dashboard and `/api/v1` send is checked by
//! `telesoin_core::ins` (format, NIR key, status, traits), stored, and shown back. Documents and
//! exports ask [`document_ins`], which answers only for a qualified identity.
//!
//! There is no INSi teleservice call: it needs a CPS card and the national health network. The
//! kiné (or the platform, which may have made the call) says which status the identity has.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{NaiveDate, Utc};
use telesoin_core::ins::{IdentityInput, Matricule, PatientIdentity};
use telesoin_core::model::Kine;
use telesoin_core::{KineId, PatientId};
use telesoin_proto::rest;
use telesoin_store::{InsRow, Store, StoreError};
use uuid::Uuid;

use crate::api::own_patient;
use crate::app::AppState;
use crate::auth::CurrentKine;
use crate::error::{ApiError, ApiResult};

/// The core's check of what was sent, against the birth date on the patient's record. A refusal's
/// `details.field` is the body field it is about, after `prefix` (`"ins."` when the identity is
/// nested in a patient's body), so the dashboard shows it under that control.
pub fn check(
    body: &rest::PatientIns,
    record_birth_date: NaiveDate,
    prefix: &str,
) -> ApiResult<PatientIdentity> {
    let input = IdentityInput {
        status: &body.status,
        matricule: body.matricule.as_deref(),
        oid: body.oid.as_deref(),
        birth_names: &body.birth_names,
        first_names: &body.first_names,
        birth_date: body.birth_date,
        sex: &body.sex,
        birth_place: &body.birth_place,
        record_birth_date,
    };
    telesoin_core::ins::check(&input).map_err(|code| ApiError {
        details: serde_json::json!({
            "field": format!("{prefix}{}", telesoin_core::ins::refused_field(&input, code))
        }),
        ..ApiError::refusal(code)
    })
}

pub fn ins_json(row: &InsRow) -> rest::PatientIns {
    rest::PatientIns {
        status: row.status.clone(),
        matricule: row.matricule.clone(),
        oid: row.oid.clone(),
        birth_names: row.birth_names.clone(),
        first_names: row.first_names.clone(),
        birth_date: row.birth_date,
        sex: row.sex.clone(),
        birth_place: row.birth_place.clone(),
    }
}

/// Stores a checked identity for this kiné's patient.
pub async fn store(
    app: &AppState,
    kine: KineId,
    patient: PatientId,
    id: &PatientIdentity,
) -> ApiResult<rest::PatientIns> {
    let row = InsRow::from_identity(id, Utc::now());
    if !app.store.set_patient_ins(kine, patient, &row).await? {
        return Err(ApiError::not_found());
    }
    // Ids and the status only: the INS and the traits are personal data.
    tracing::info!(patient = %patient, status = id.status.as_str(), "INS recorded");
    app.hub
        .events()
        .emit(
            row.updated_at,
            crate::events::DomainEvent::InsRecorded {
                kine,
                patient,
                status: id.status.as_str(),
            },
        )
        .await;
    Ok(ins_json(&row))
}

pub async fn set_ins_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
    body: rest::PatientIns,
) -> ApiResult<rest::PatientIns> {
    let p = own_patient(app, kine.id, id).await?;
    let identity = check(&body, p.patient.birth_date, "")?;
    store(app, kine.id, p.patient.id, &identity).await
}

/// `PUT /api/patients/{id}/ins`: records or replaces the patient's INS.
pub async fn put_ins(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<rest::PatientIns>,
) -> ApiResult<Json<rest::PatientIns>> {
    set_ins_for(&app, &kine, id, body).await.map(Json)
}

/// The INS a document or an export may carry for this patient: only a qualified one. A stored
/// row that no longer passes the check (edited by hand) is not carried.
pub async fn document_ins(
    store: &dyn Store,
    patient: PatientId,
    record_birth_date: NaiveDate,
) -> Result<Option<Matricule>, StoreError> {
    Ok(store.patient_ins(patient).await?.and_then(|row| {
        row.identity(record_birth_date)
            .ok()
            .and_then(|id| id.document_ins().cloned())
    }))
}
