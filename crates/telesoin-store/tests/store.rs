//! The one store test suite. Every backend runs it; today the SQLite file backend.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use telesoin_core::billing::PresenceKind;
use telesoin_core::model::*;
use telesoin_core::{KineId, PatientId, SessionId};
use telesoin_store::sqlite::SqliteStore;
use telesoin_store::*;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
        .single()
        .expect("valid")
}

async fn suite(store: &dyn Store) {
    let now = t0();
    let kine = Kine {
        id: KineId(Uuid::new_v4()),
        rpps: "10001234567".into(),
        name: "Claire Martin".into(),
        email: "Claire@Example.fr".into(),
    };
    store.create_kine(&kine, "hash", now).await.expect("kine");
    let (found, hash) = store
        .kine_by_email("claire@example.FR")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((found.id, hash.as_str()), (kine.id, "hash"));
    assert!(matches!(
        store
            .create_kine(
                &Kine {
                    id: KineId(Uuid::new_v4()),
                    ..kine.clone()
                },
                "h",
                now
            )
            .await,
        Err(StoreError::Conflict(_))
    ));

    store
        .create_web_session(b"cookie-hash", kine.id, now, now + Duration::hours(1))
        .await
        .expect("web session");
    assert_eq!(
        store.web_session(b"cookie-hash", now).await.expect("ok"),
        Some(kine.id)
    );
    assert_eq!(
        store
            .web_session(b"cookie-hash", now + Duration::hours(2))
            .await
            .expect("ok"),
        None,
        "expired"
    );
    store
        .delete_web_session(b"cookie-hash")
        .await
        .expect("logout");
    assert_eq!(
        store.web_session(b"cookie-hash", now).await.expect("ok"),
        None
    );

    let patient = Patient {
        id: PatientId(Uuid::new_v4()),
        kine: kine.id,
        display_name: "Mme Dupont".into(),
        birth_date: NaiveDate::from_ymd_opt(1958, 3, 14).expect("date"),
        loss_of_autonomy: true,
        gp_contact: Some("Dr Leroy".into()),
    };
    store.create_patient(&patient, now).await.expect("patient");
    let other = KineId(Uuid::new_v4());
    assert!(
        store
            .patient(other, patient.id)
            .await
            .expect("ok")
            .is_none(),
        "another kiné cannot see the patient"
    );
    assert_eq!(
        store
            .patient(kine.id, patient.id)
            .await
            .expect("ok")
            .expect("row")
            .patient,
        patient
    );
    assert_eq!(store.patients(kine.id).await.expect("ok").len(), 1);

    let visit = InPersonVisit {
        date: NaiveDate::from_ymd_opt(2026, 10, 1).expect("date"),
        kind: VisitKind::Bilan,
    };
    store
        .add_visit(kine.id, patient.id, Uuid::new_v4(), visit, now)
        .await
        .expect("visit");
    assert_eq!(
        store.visits(kine.id, patient.id).await.expect("ok")[0].visit,
        visit
    );
    assert!(
        store
            .visits(other, patient.id)
            .await
            .expect("ok")
            .is_empty(),
        "visits are per (kiné, patient)"
    );

    let consent = Consent {
        recorded_by: ConsentRecorder::Kine,
        method: "oral".into(),
        text_version: "v1".into(),
        recorded_at: now,
        withdrawn_at: None,
    };
    let cid = Uuid::new_v4();
    store
        .add_consent(kine.id, patient.id, cid, &consent)
        .await
        .expect("consent");
    assert!(
        store
            .withdraw_consent(other, cid, now)
            .await
            .expect("ok")
            .is_none(),
        "only the kiné's own"
    );
    let w = store
        .withdraw_consent(kine.id, cid, now + Duration::minutes(1))
        .await
        .expect("ok")
        .expect("withdrawn");
    assert_eq!(w.consent.withdrawn_at, Some(now + Duration::minutes(1)));
    assert!(
        store
            .withdraw_consent(kine.id, cid, now + Duration::minutes(2))
            .await
            .expect("ok")
            .is_none(),
        "once"
    );

    store
        .add_prescription(
            patient.id,
            Uuid::new_v4(),
            NaiveDate::from_ymd_opt(2026, 9, 1).expect("d"),
            now,
        )
        .await
        .expect("rx");
    assert_eq!(store.prescriptions(patient.id).await.expect("ok").len(), 1);

    let (window_start, window_end) = Session::window_for(now, Window::default());
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
    store
        .create_session(&session, "reimbursable", now)
        .await
        .expect("session");
    let row = store.session(session.id).await.expect("ok").expect("row");
    assert_eq!(row.session, session);
    assert_eq!(
        store
            .sessions_between(kine.id, now - Duration::hours(1), now + Duration::hours(1))
            .await
            .expect("ok")
            .len(),
        1
    );
    assert!(
        store
            .sessions_between(
                kine.id,
                now + Duration::seconds(1),
                now + Duration::hours(1)
            )
            .await
            .expect("ok")
            .is_empty()
    );

    let seat = store
        .seat(session.id, Role::Patient, now)
        .await
        .expect("seat");
    assert_eq!(
        store
            .seat(session.id, Role::Patient, now)
            .await
            .expect("seat"),
        seat,
        "one patient seat"
    );
    assert_ne!(
        store.seat(session.id, Role::Kine, now).await.expect("seat"),
        seat
    );

    let jti = Uuid::new_v4();
    store
        .issue_link(&LinkRow {
            jti,
            session: session.id,
            participant: seat,
            role: Role::Patient,
            issued_at: now,
            not_before: window_start,
            expires_at: window_end,
        })
        .await
        .expect("link");
    let issued = store.link(jti).await.expect("ok").expect("seat");
    assert!(!issued.revoked && issued.participant == seat && issued.session == session.id);
    assert_eq!(
        store
            .revoke_session_links(session.id, now)
            .await
            .expect("ok"),
        1
    );
    assert!(store.link(jti).await.expect("ok").expect("seat").revoked);

    assert!(
        store
            .transition(session.id, &[SessionStatus::Scheduled], SessionStatus::Live)
            .await
            .expect("ok")
    );
    assert!(
        !store
            .transition(session.id, &[SessionStatus::Scheduled], SessionStatus::Live)
            .await
            .expect("ok")
    );
    assert_eq!(store.live_sessions().await.expect("ok").len(), 1);

    for (i, kind) in [
        PresenceKind::Joined,
        PresenceKind::MediaConnected,
        PresenceKind::MediaDisconnected,
    ]
    .into_iter()
    .enumerate()
    {
        let at = now + Duration::seconds(i as i64);
        store
            .append_event(
                session.id,
                &NewEvent {
                    at,
                    participant: Some(seat),
                    role: Some(Role::Patient),
                    kind,
                    detail: None,
                },
            )
            .await
            .expect("event");
    }
    let events = store.events(session.id).await.expect("events");
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            PresenceKind::Joined,
            PresenceKind::MediaConnected,
            PresenceKind::MediaDisconnected
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));

    assert!(
        store
            .finalize(session.id, now + Duration::minutes(30), 1200, now)
            .await
            .expect("ok")
    );
    assert!(
        !store
            .finalize(session.id, now + Duration::minutes(31), 1300, now)
            .await
            .expect("ok"),
        "exactly once"
    );
    let row = store.session(session.id).await.expect("ok").expect("row");
    assert_eq!(
        (row.session.status, row.billable_seconds),
        (SessionStatus::Ended, Some(1200))
    );
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn sqlite_store_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("telesoin.db"))
        .await
        .expect("open");
    suite(&store).await;
}

#[tokio::test]
async fn sqlite_presence_events_are_append_only_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("telesoin.db");
    let store = SqliteStore::open(&path).await.expect("open");
    suite(&store).await;
    store.close().await;
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    let live = reopened.live_sessions().await.expect("ok");
    assert!(live.is_empty(), "the finalized session is no longer live");
    reopened.close().await;
    // A hand-made UPDATE or DELETE is refused by the database itself.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw");
    assert!(
        sqlx::query("UPDATE presence_events SET kind = 'left'")
            .execute(&pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM presence_events")
            .execute(&pool)
            .await
            .is_err()
    );
}
