//! The records' HTTP routes for the dashboard (cookie) and the documents they serve.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use telesoin_core::model::{Kine, local_date};
use telesoin_core::reimbursement::BillingClass;
use telesoin_core::tariff::{self, Billed};
use telesoin_core::{KineId, share};
use telesoin_store::{KineSettings, Store};
use uuid::Uuid;

use super::fhir::Extras;
use super::pdf::{Line, render};
use super::{BillingLine, billing_lines, csv, euros_fr, paris};
use crate::app::AppState;
use crate::auth::CurrentKine;
use crate::error::{ApiError, ApiResult};
use crate::events::DomainEvent;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub text: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportVersion {
    pub version: i64,
    pub text: String,
    pub written_at: chrono::DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub session: Uuid,
    /// Every version, oldest first; the last one is in force.
    pub versions: Vec<ReportVersion>,
}

async fn report_json(store: &dyn Store, session: telesoin_core::SessionId) -> ApiResult<Report> {
    let versions = store
        .reports(session)
        .await?
        .into_iter()
        .map(|r| ReportVersion {
            version: r.version,
            text: r.text,
            written_at: r.written_at,
        })
        .collect();
    Ok(Report {
        session: session.0,
        versions,
    })
}

pub async fn get_report(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Report>> {
    get_report_for(&app, &kine, id).await.map(Json)
}

/// The compte rendu of one of this kiné's sessions (dashboard and `/api/v1`).
pub async fn get_report_for(app: &AppState, kine: &Kine, id: Uuid) -> ApiResult<Report> {
    let row = crate::api::own_session(app, kine.id, id).await?;
    report_json(app.store.as_ref(), row.session.id).await
}

/// Writes the compte rendu, or amends it: a new version, the earlier ones kept.
pub async fn write_report(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
    Json(body): Json<NewReport>,
) -> ApiResult<(StatusCode, Json<Report>)> {
    let report = write_report_for(&app, &kine, id, &body.text).await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// Writes or amends the compte rendu of one of this kiné's sessions (dashboard and `/api/v1`).
pub async fn write_report_for(
    app: &AppState,
    kine: &Kine,
    id: Uuid,
    text: &str,
) -> ApiResult<Report> {
    let row = crate::api::own_session(app, kine.id, id).await?;
    if row.finalized_at.is_none() {
        return Err(ApiError::conflict(
            "the compte rendu is written once the session is over",
        ));
    }
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > 20_000
        || text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ApiError::invalid("text", "1 to 20000 characters"));
    }
    let now = Utc::now();
    // The webhook is written with the version, in its transaction (the store adds `version`).
    let announce = app
        .hub
        .webhooks()
        .announce("report.written", now, serde_json::json!({}))
        .await;
    let version = app
        .store
        .add_report(row.session.id, kine.id, text, now, announce.as_ref())
        .await?;
    let written = DomainEvent::ReportWritten {
        kine: kine.id,
        session: row.session.id,
        version,
    };
    app.hub.events().emit(now, written).await;
    report_json(app.store.as_ref(), row.session.id).await
}

fn pdf_response(bytes: Vec<u8>, name: &str) -> Response {
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

async fn line_of(app: &AppState, kine: &Kine, id: Uuid) -> ApiResult<BillingLine> {
    let row = crate::api::own_session(app, kine.id, id).await?;
    let day = row.session.day();
    billing_lines(
        app.store.as_ref(),
        Some(kine.id),
        day,
        day,
        &app.cfg.key_letter_schedule(),
    )
    .await?
    .into_iter()
    .find(|l| l.row.session.id == row.session.id)
    .ok_or_else(|| ApiError::conflict("the session is not finalized yet"))
}

/// The décret 2021-707 trace: date, time, professionals, act, incidents: nobody types it.
async fn trace_lines(app: &AppState, l: &BillingLine) -> ApiResult<Vec<Line>> {
    let s = &l.row.session;
    let act = l.act();
    let events = app.store.events(s.id).await?;
    let incidents: Vec<String> = events
        .iter()
        .filter(|e| super::is_incident(e))
        .map(|e| {
            format!(
                "{} : {}{}",
                paris(e.at),
                e.kind.as_str(),
                e.detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let mut out = vec![
        Line::Text(format!("Date et heure : {}", paris(s.starts_at))),
        Line::Text(format!(
            "Fin : {}",
            l.row.ended_at.map(paris).unwrap_or_else(|| "—".into())
        )),
        Line::Text(format!(
            "Durée facturable : {} min {} s",
            l.row.billable_seconds.unwrap_or(0) / 60,
            l.row.billable_seconds.unwrap_or(0) % 60
        )),
        Line::Text(format!(
            "Masseur-kinésithérapeute : {} (RPPS {})",
            l.kine_name, l.kine_rpps
        )),
        Line::Text(format!("Patient : {}", l.patient_name)),
    ];
    // The INS only when the identity is qualified (RNIV): `patient_ins` is None otherwise.
    if let Some(ins) = &l.patient_ins {
        out.push(Line::Text(format!(
            "INS : {} (OID {}, identité qualifiée)",
            ins.value(),
            ins.authority().oid()
        )));
    }
    out.extend([
        Line::Text(format!(
            "Acte : {}",
            act.map(|a| a.label).unwrap_or_default()
        )),
        Line::Text("Modalité : télésoin par vidéotransmission (CSP L.6316-2)".into()),
    ]);
    if let Some(Billed::Reimbursable {
        letter,
        coefficient_tenths,
        value_cents,
        cents,
    }) = l.billed
    {
        out.push(Line::Text(format!(
            "Cotation : {} {} (valeur de la lettre clé le jour de la séance : {}) = {}",
            letter.as_str(),
            tariff::format_coefficient(coefficient_tenths).replace('.', ","),
            euros_fr(value_cents),
            euros_fr(cents)
        )));
    }
    // Who consented, and who sat next to the patient: said in words, never as incidents.
    if let Some((giver, at)) = super::consent_of(app.store.as_ref(), &l.row, Utc::now()).await? {
        out.push(Line::Text(format!("{} le {}", giver.words_fr(), paris(at))));
    }
    for a in super::attested_of(app.store.as_ref(), s.id).await? {
        out.push(Line::Text(super::attestation_words(&a)));
    }
    // Recorded before attestations were named: the presence, without a name.
    let legacy: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(super::legacy_attestation)
        .collect();
    for companion in legacy {
        out.push(Line::Text(format!(
            "En présence d'un {} (attestée, nom non enregistré)",
            if companion == "parent" {
                "parent"
            } else {
                "aidant"
            }
        )));
    }
    if incidents.is_empty() {
        out.push(Line::Text("Incidents techniques : aucun".into()));
    } else {
        out.push(Line::Text("Incidents techniques :".into()));
        out.extend(
            incidents
                .into_iter()
                .map(|i| Line::Text(format!("  • {i}"))),
        );
    }
    Ok(out)
}

pub async fn report_pdf(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let l = line_of(&app, &kine, id).await?;
    let reports = app.store.reports(l.row.session.id).await?;
    let mut lines = vec![
        Line::Title("Compte rendu de séance de télésoin".into()),
        Line::Blank,
    ];
    lines.extend(trace_lines(&app, &l).await?);
    lines.push(Line::Blank);
    match reports.last() {
        Some(r) => {
            lines.push(Line::Heading(format!(
                "Compte rendu (version {}, {})",
                r.version,
                paris(r.written_at)
            )));
            lines.push(Line::Text(r.text.clone()));
            if reports.len() > 1 {
                lines.push(Line::Blank);
                lines.push(Line::Text(format!(
                    "Versions antérieures conservées : {}",
                    reports.len() - 1
                )));
            }
        }
        None => lines.push(Line::Text("Compte rendu non encore rédigé.".into())),
    }
    Ok(pdf_response(render(&lines)?, "compte-rendu.pdf"))
}

/// An invoice number as printed: the kiné's sequence, zero-padded (`TS-000042`).
pub fn invoice_number(seq: i64) -> String {
    format!("TS-{seq:06}")
}

/// The invoice a patient receives for a hors-nomenclature session: the kiné's price, no key letter.
pub async fn invoice_pdf(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let l = line_of(&app, &kine, id).await?;
    if l.class() != BillingClass::Hn {
        return Err(ApiError::conflict(
            "a reimbursable session is billed with a feuille de soins, not an invoice",
        ));
    }
    let Some(Billed::Hn { cents }) = l.billed else {
        return Err(ApiError::conflict(
            "no HN price: set one in the session or in your settings",
        ));
    };
    // The kiné's next number in a continuous, chronological sequence (the same number if the
    // invoice was issued before).
    let invoice = app
        .store
        .issue_invoice(kine.id, l.row.session.id, Utc::now())
        .await?;
    let number = invoice_number(invoice.seq);
    let accepted = app.store.hn_price_acceptance(l.row.session.id).await?;
    let mut lines = vec![
        Line::Title("Facture — séance de télésoin".into()),
        Line::Text(format!(
            "Facture n° {number}, émise le {}",
            local_date(invoice.issued_at).format("%d/%m/%Y")
        )),
        Line::Blank,
        Line::Heading("Prestation".into()),
    ];
    lines.extend(trace_lines(&app, &l).await?);
    lines.extend([
        Line::Blank,
        Line::Heading(format!("Montant : {}", euros_fr(cents))),
        Line::Text("Acte hors nomenclature (HN) : non remboursable par l'Assurance Maladie, aucune lettre clé (AMK, AMS, AMC) n'est portée.".into()),
        Line::Text(match &accepted {
            Some(a) => format!(
                "Tarif annoncé et accepté le {} : {}, prix fixé par le masseur-kinésithérapeute avec tact et mesure, affiché au patient et accepté sur la page de connexion avant la séance.",
                paris(a.accepted_at),
                euros_fr(a.price_cents)
            ),
            None => "Prix fixé par le masseur-kinésithérapeute avec tact et mesure (son acceptation par le patient avant la séance n'a pas été tracée par telesoin).".into(),
        }),
        Line::Blank,
        Line::Text("TVA non applicable, article 261-4-1° du CGI (soins dispensés par les professions médicales et paramédicales).".into()),
    ]);
    Ok(pdf_response(
        render(&lines)?,
        &format!("facture-{number}.pdf"),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RangeQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(default)]
    pub format: Option<String>,
}

pub fn check_range(q: &RangeQuery) -> ApiResult<()> {
    if q.to < q.from || (q.to - q.from).num_days() > 3660 {
        return Err(ApiError::invalid(
            "to",
            "a range of at most 10 years, from <= to",
        ));
    }
    Ok(())
}

/// The CSV or the FHIR Bundle of a range, with the consents and the compte rendu of each session.
pub async fn export_body(
    store: &dyn Store,
    schedule: &[telesoin_core::tariff::KeyLetterValue],
    policy: &telesoin_core::billing::Policy,
    kine: Option<KineId>,
    from: NaiveDate,
    to: NaiveDate,
    format: &str,
) -> ApiResult<(String, &'static str)> {
    let lines = billing_lines(store, kine, from, to, schedule).await?;
    match format {
        "csv" => Ok((csv(&lines), "text/csv; charset=utf-8")),
        "csv_fr" => {
            let evidence = super::evidence(store, &lines, policy).await?;
            Ok((super::csv_fr(&lines, &evidence), "text/csv; charset=utf-8"))
        }
        "fhir" => {
            let mut with = Vec::new();
            for l in lines {
                let s = &l.row.session;
                let consents = store.consents(s.kine, s.patient).await?;
                let mut representatives = std::collections::HashMap::new();
                for c in &consents {
                    if let Some(r) = store.consent_representative(c.id).await? {
                        representatives.insert(c.id, r);
                    }
                }
                let report = store.reports(s.id).await?.pop();
                let attestations = super::attested_of(store, s.id).await?;
                with.push((
                    l,
                    Extras {
                        consents,
                        representatives,
                        report,
                        attestations,
                    },
                ));
            }
            let bundle = super::fhir::bundle(&with, Utc::now());
            Ok((
                serde_json::to_string_pretty(&bundle).map_err(|e| anyhow::anyhow!(e))?,
                "application/fhir+json",
            ))
        }
        _ => Err(ApiError::invalid("format", "csv, csv_fr or fhir")),
    }
}

pub async fn export(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Response> {
    check_range(&q)?;
    let format = q.format.as_deref().unwrap_or("csv");
    let schedule = app.cfg.key_letter_schedule();
    let (body, mime) = export_body(
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
    app.hub
        .events()
        .emit(
            Utc::now(),
            DomainEvent::Exported {
                kine: kine.id,
                format: name,
            },
        )
        .await;
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    Ok(res)
}

#[derive(Debug, Serialize)]
pub struct ShareJson {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub remote_sessions: u64,
    pub total_sessions: u64,
    pub ratio: f64,
    pub cap_percent: u32,
    pub over_cap: bool,
    /// Within the cap, but one more remote session would exceed it: warn before scheduling.
    pub next_exceeds: bool,
}

/// The share of a kiné's sessions done remotely over a period (the convention caps it).
pub async fn share_of(
    store: &dyn Store,
    kine: KineId,
    from: NaiveDate,
    to: NaiveDate,
    cap: u32,
) -> ApiResult<ShareJson> {
    let remote = billing_lines(store, Some(kine), from, to, &[])
        .await?
        .iter()
        .filter(|l| l.row.billable_seconds.unwrap_or(0) > 0)
        .count();
    let in_person = store.in_person_count(kine, from, to).await?;
    let s = share::telesoin_share(u32::try_from(remote).unwrap_or(u32::MAX), in_person, cap);
    Ok(ShareJson {
        from,
        to,
        remote_sessions: u64::from(s.remote_sessions),
        total_sessions: s.total_sessions,
        ratio: s.ratio,
        cap_percent: cap,
        over_cap: s.over_cap,
        next_exceeds: s.next_exceeds,
    })
}

pub async fn share(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<ShareJson>> {
    check_range(&q)?;
    Ok(Json(
        share_of(
            app.store.as_ref(),
            kine.id,
            q.from,
            q.to,
            app.cfg.share_cap_percent,
        )
        .await?,
    ))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub cooperation_protocol: bool,
    pub hn_price_cents: i64,
    /// The practice's département (`75`, `2A`, `971`), for the convention's territory check.
    #[serde(default)]
    pub practice_departement: Option<String>,
}

pub async fn get_settings(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
) -> ApiResult<Json<Settings>> {
    let s = app.store.kine_settings(kine.id).await?;
    Ok(Json(Settings {
        cooperation_protocol: s.cooperation_protocol,
        hn_price_cents: s.hn_price_cents,
        practice_departement: app.store.practice_departement(kine.id).await?,
    }))
}

pub async fn put_settings(
    State(app): State<AppState>,
    CurrentKine(kine): CurrentKine,
    Json(body): Json<Settings>,
) -> ApiResult<Json<Settings>> {
    if !(0..=1_000_000).contains(&body.hn_price_cents) {
        return Err(ApiError::invalid(
            "hn_price_cents",
            "a price in cents, 0 to 1000000",
        ));
    }
    let departement = match body.practice_departement.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => Some(telesoin_core::admission::departement_of(d).ok_or_else(|| {
            ApiError::invalid(
                "practice_departement",
                "a French département (75, 2A, 971) or postcode",
            )
        })?),
    };
    let s = KineSettings {
        cooperation_protocol: body.cooperation_protocol,
        hn_price_cents: body.hn_price_cents,
    };
    app.store.set_kine_settings(kine.id, s).await?;
    app.store
        .set_practice_departement(kine.id, departement.as_deref())
        .await?;
    Ok(Json(Settings {
        practice_departement: departement,
        ..body
    }))
}

/// The amount a session bills, for the record view.
pub fn billed_json(b: Option<Billed>) -> serde_json::Value {
    match b {
        Some(Billed::Reimbursable {
            letter,
            coefficient_tenths,
            value_cents,
            cents,
        }) => serde_json::json!({
            "kind": "reimbursable", "key_letter": letter.as_str(),
            "coefficient": tariff::format_coefficient(coefficient_tenths),
            "key_letter_value_cents": value_cents, "amount_cents": cents,
        }),
        Some(Billed::Hn { cents }) => serde_json::json!({ "kind": "hn", "amount_cents": cents }),
        None => serde_json::Value::Null,
    }
}
