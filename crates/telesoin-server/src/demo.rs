//! Demo data: a kiné, a patient who may use télésoin (in-person bilan, consent, prescription),
//! and a session starting now, with its links.

use base64::Engine;
use chrono::{Duration, Utc};
use rand::RngCore;
use telesoin_core::model::{
    self, Consent, ConsentRecorder, InPersonVisit, Kine, Patient, Role, Session, SessionStatus,
    VisitKind,
};
use telesoin_core::{KineId, PatientId, SessionId};
use uuid::Uuid;

use crate::app::AppState;

pub const DEMO_EMAIL: &str = "demo@telesoin.test";

#[derive(Debug, serde::Serialize)]
pub struct DemoData {
    pub url: String,
    pub dashboard_url: String,
    pub email: String,
    pub password: String,
    pub session: Uuid,
    pub patient_link: String,
    pub kine_link: String,
}

/// Creates (or reuses) the demo kiné and patient, and schedules a new session starting now.
pub async fn seed(app: &AppState, password: Option<String>) -> anyhow::Result<DemoData> {
    let now = Utc::now();
    let pw_file = app.cfg.data_dir.join("demo-password");
    let (kine, password) = match app.store.kine_by_email(DEMO_EMAIL).await? {
        Some((kine, _)) => {
            let pw = std::fs::read_to_string(&pw_file)
                .unwrap_or_else(|_| "(set at the first demo run)".into());
            (kine, pw.trim().to_owned())
        }
        None => {
            let pw = password.unwrap_or_else(|| {
                let mut raw = [0u8; 9];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
            });
            let kine = Kine {
                id: KineId(Uuid::new_v4()),
                rpps: "10001234567".into(),
                name: "Claire Martin".into(),
                email: DEMO_EMAIL.into(),
            };
            app.store
                .create_kine(&kine, &crate::auth::hash_password(&pw)?, now)
                .await?;
            let _ = std::fs::remove_file(&pw_file);
            crate::keys::write_private(&pw_file, pw.as_bytes())?;
            (kine, pw)
        }
    };
    let patient = match app
        .store
        .patients(kine.id)
        .await?
        .into_iter()
        .find(|p| p.patient.display_name == "Jeanne Dupont")
    {
        Some(p) => p.patient,
        None => {
            let p = Patient {
                id: PatientId(Uuid::new_v4()),
                kine: kine.id,
                display_name: "Jeanne Dupont".into(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1958, 3, 14).unwrap_or_default(),
                loss_of_autonomy: false,
                gp_contact: Some("Dr Paul Leroy, cabinet de Saint-Flour".into()),
            };
            app.store.create_patient(&p, now).await?;
            let today = model::local_date(now);
            app.store
                .add_visit(
                    kine.id,
                    p.id,
                    Uuid::new_v4(),
                    InPersonVisit {
                        date: today - Duration::days(30),
                        kind: VisitKind::Bilan,
                    },
                    now,
                )
                .await?;
            app.store
                .add_visit(
                    kine.id,
                    p.id,
                    Uuid::new_v4(),
                    InPersonVisit {
                        date: today - Duration::days(7),
                        kind: VisitKind::Session,
                    },
                    now,
                )
                .await?;
            app.store
                .add_prescription(p.id, Uuid::new_v4(), today - Duration::days(45), now)
                .await?;
            let consent = Consent {
                recorded_by: ConsentRecorder::Kine,
                method: "oral".into(),
                text_version: model::CONSENT_TEXT_VERSION.into(),
                recorded_at: now,
                withdrawn_at: None,
            };
            app.store
                .add_consent(kine.id, p.id, Uuid::new_v4(), &consent, None, None)
                .await?;
            p
        }
    };
    let (window_start, window_end) = Session::window_for(now, app.cfg.window());
    let session = Session {
        id: SessionId(Uuid::new_v4()),
        kine: kine.id,
        patient: patient.id,
        starts_at: now,
        window_start,
        window_end,
        act_code: "MEMBRE".into(),
        status: SessionStatus::Scheduled,
        auto_admit: false,
        patient_consent_on_join: true,
    };
    let row = crate::records::schedule(app, session, None, None, false, None, now).await?;
    let patient_link = crate::api::mint(app, &row, Role::Patient, now)
        .await
        .map_err(|e| anyhow::anyhow!("{:?}", e.code))?;
    let kine_link = crate::api::mint(app, &row, Role::Kine, now)
        .await
        .map_err(|e| anyhow::anyhow!("{:?}", e.code))?;
    Ok(DemoData {
        url: app.public_url.to_string(),
        dashboard_url: format!("{}/app", app.public_url),
        email: DEMO_EMAIL.into(),
        password,
        session: row.session.id.0,
        patient_link: patient_link.url,
        kine_link: kine_link.url,
    })
}
