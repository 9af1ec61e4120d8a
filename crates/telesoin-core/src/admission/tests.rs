//! Table tests: inputs -> expected decision, one row per branch.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::*;
use crate::ids::{KineId, PatientId, SessionId};
use crate::model::{ConsentRecorder, Window};

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

/// Session on 2026-11-22 at 10:00 Paris (09:00 UTC).
fn session() -> Session {
    let starts_at = Utc
        .with_ymd_and_hms(2026, 11, 22, 9, 0, 0)
        .single()
        .expect("valid");
    let (window_start, window_end) = Session::window_for(starts_at, Window::default());
    Session {
        id: SessionId(uuid::Uuid::nil()),
        kine: KineId(uuid::Uuid::nil()),
        patient: PatientId(uuid::Uuid::nil()),
        starts_at,
        window_start,
        window_end,
        act_code: "MEMBRE".into(),
        status: SessionStatus::Scheduled,
        auto_admit: false,
        patient_consent_on_join: false,
    }
}

fn patient(birth: &str, loss_of_autonomy: bool) -> Patient {
    Patient {
        id: PatientId(uuid::Uuid::nil()),
        kine: KineId(uuid::Uuid::nil()),
        display_name: "Mme Dupont".into(),
        birth_date: date(birth),
        loss_of_autonomy,
        gp_contact: None,
    }
}

fn consent(recorded: &str, withdrawn: Option<&str>) -> Consent {
    Consent {
        recorded_by: ConsentRecorder::Kine,
        method: "oral".into(),
        text_version: "v1".into(),
        recorded_at: at(recorded),
        withdrawn_at: withdrawn.map(at),
    }
}

fn visit(d: &str, kind: VisitKind) -> InPersonVisit {
    InPersonVisit {
        date: date(d),
        kind,
    }
}

struct Case {
    name: &'static str,
    role: Role,
    status: SessionStatus,
    now: &'static str,
    birth: &'static str,
    loss_of_autonomy: bool,
    visits: Vec<InPersonVisit>,
    consents: Vec<Consent>,
    rule: InPersonRule,
    consent_on_join: bool,
    auto_admit: bool,
    attested: Option<Companion>,
    price: PriceAcceptance,
    kine_present: bool,
    admitted: bool,
    expect: Decision,
}

fn base(name: &'static str) -> Case {
    Case {
        name,
        role: Role::Patient,
        status: SessionStatus::Scheduled,
        now: "2026-11-22T09:01:00Z",
        birth: "1958-03-14",
        loss_of_autonomy: false,
        visits: vec![
            visit("2026-10-01", VisitKind::Bilan),
            visit("2026-11-15", VisitKind::Session),
        ],
        consents: vec![consent("2026-10-01T08:00:00Z", None)],
        rule: InPersonRule::Arrete2021,
        consent_on_join: false,
        auto_admit: false,
        attested: None,
        price: PriceAcceptance::default(),
        kine_present: true,
        admitted: true,
        expect: Decision::Admit,
    }
}

fn run(c: &Case) -> Decision {
    let mut s = session();
    s.status = c.status;
    s.patient_consent_on_join = c.consent_on_join;
    s.auto_admit = c.auto_admit;
    let p = patient(c.birth, c.loss_of_autonomy);
    decide(&AdmissionInput {
        now: at(c.now),
        role: c.role,
        session: &s,
        patient: &p,
        visits: &c.visits,
        consents: &c.consents,
        rule: c.rule,
        attested: c.attested,
        price: c.price,
        kine_present: c.kine_present,
        admitted_by_kine: c.admitted,
    })
}

#[test]
fn admission_table() {
    use Decision::*;
    use RefusalCode::*;
    let cases = vec![
        base("all preconditions hold, admitted by the kiné"),
        Case {
            admitted: false,
            expect: Wait(WaitReason::AwaitingAdmission),
            ..base("kiné here, not yet admitted")
        },
        Case {
            admitted: false,
            auto_admit: true,
            ..base("auto-admit session")
        },
        Case {
            kine_present: false,
            auto_admit: true,
            expect: Wait(WaitReason::KineAbsent),
            ..base("auto-admit still waits for the kiné")
        },
        Case {
            kine_present: false,
            expect: Wait(WaitReason::KineAbsent),
            ..base("kiné absent")
        },
        Case {
            status: SessionStatus::Cancelled,
            expect: Refuse(SessionCancelled),
            ..base("cancelled")
        },
        Case {
            status: SessionStatus::Ended,
            expect: Refuse(SessionEnded),
            ..base("ended")
        },
        Case {
            status: SessionStatus::Live,
            ..base("live session takes joins")
        },
        Case {
            now: "2026-11-22T08:44:59Z",
            expect: Refuse(TooEarly),
            ..base("one second before the window")
        },
        Case {
            now: "2026-11-22T08:45:00Z",
            ..base("window opens 15 min before")
        },
        Case {
            now: "2026-11-22T11:00:00Z",
            expect: Refuse(TooLate),
            ..base("window closes 2 h after")
        },
        Case {
            now: "2026-11-22T10:59:59Z",
            ..base("last second of the window")
        },
        // The kiné is never held by the patient's preconditions.
        Case {
            role: Role::Kine,
            visits: vec![],
            consents: vec![],
            admitted: false,
            ..base("kiné joins")
        },
        // The kiné may open the room early (hours before), never after the window.
        Case {
            role: Role::Kine,
            now: "2026-11-22T08:44:59Z",
            ..base("kiné, one second before the window")
        },
        Case {
            role: Role::Kine,
            now: "2026-11-22T05:00:00Z",
            ..base("kiné, four hours early")
        },
        Case {
            role: Role::Kine,
            now: "2026-11-22T11:00:00Z",
            expect: Refuse(TooLate),
            ..base("kiné, window closed")
        },
        Case {
            role: Role::Companion,
            now: "2026-11-22T08:44:59Z",
            expect: Refuse(TooEarly),
            ..base("companion, early")
        },
        Case {
            role: Role::Kine,
            status: SessionStatus::Cancelled,
            expect: Refuse(SessionCancelled),
            ..base("kiné, cancelled")
        },
        // Prior in-person care, arrêté 2021.
        Case {
            visits: vec![],
            expect: Refuse(InPersonMissing(InPersonRule::Arrete2021)),
            ..base("no in-person visit")
        },
        Case {
            visits: vec![visit("2026-11-23", VisitKind::Bilan)],
            expect: Refuse(InPersonMissing(InPersonRule::Arrete2021)),
            ..base("only a future visit")
        },
        Case {
            visits: vec![visit("2026-11-22", VisitKind::Session)],
            ..base("in-person visit the same morning counts")
        },
        Case {
            visits: vec![visit("2019-01-10", VisitKind::Session)],
            ..base("arrêté: an old session suffices")
        },
        // Convention variant.
        Case {
            rule: InPersonRule::Convention,
            ..base("convention: bilan + recent session")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![],
            expect: Refuse(InPersonMissing(InPersonRule::Convention)),
            ..base("convention: nothing")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![visit("2026-11-01", VisitKind::Session)],
            expect: Refuse(InPersonBilanMissing),
            ..base("convention: sessions but no bilan")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![
                visit("2024-01-01", VisitKind::Bilan),
                visit("2025-11-21", VisitKind::Session),
            ],
            expect: Refuse(InPersonStale),
            ..base("convention: last visit 12 months and a day ago")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![
                visit("2024-01-01", VisitKind::Bilan),
                visit("2025-11-22", VisitKind::Session),
            ],
            ..base("convention: last visit exactly 12 months ago")
        },
        // The hospital-discharge exception.
        Case {
            rule: InPersonRule::Convention,
            visits: vec![visit("2026-11-15", VisitKind::HospitalBilan)],
            ..base("convention: bilan by a hospital kiné before discharge")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![
                visit("2026-11-15", VisitKind::HospitalBilan),
                visit("2026-11-18", VisitKind::Session),
            ],
            ..base("convention: hospital bilan, then a session in the cabinet")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![visit("2025-11-21", VisitKind::HospitalBilan)],
            expect: Refuse(InPersonStale),
            ..base("convention: hospital bilan 12 months and a day ago")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![visit("2026-11-23", VisitKind::HospitalBilan)],
            expect: Refuse(InPersonMissing(InPersonRule::Convention)),
            ..base("convention: a discharge bilan after the session day")
        },
        Case {
            visits: vec![visit("2026-11-15", VisitKind::HospitalBilan)],
            expect: Refuse(InPersonMissing(InPersonRule::Arrete2021)),
            ..base("arrêté 2021: a hospital bilan is not a session with this kiné")
        },
        Case {
            rule: InPersonRule::Convention,
            visits: vec![
                visit("2024-03-01", VisitKind::Bilan),
                visit("2025-11-22", VisitKind::Session),
            ],
            ..base("convention: bilan long ago, a session exactly 12 months ago")
        },
        // Consent.
        Case {
            consents: vec![],
            expect: Refuse(ConsentMissing),
            ..base("no consent, kiné must record it")
        },
        Case {
            consents: vec![],
            consent_on_join: true,
            expect: Wait(WaitReason::ConsentRequired),
            ..base("no consent, the patient may give it on the join page")
        },
        Case {
            consents: vec![consent(
                "2026-10-01T08:00:00Z",
                Some("2026-11-20T08:00:00Z"),
            )],
            consent_on_join: true,
            expect: Refuse(ConsentWithdrawn),
            ..base("consent withdrawn before the call")
        },
        Case {
            consents: vec![consent(
                "2026-10-01T08:00:00Z",
                Some("2026-11-22T10:00:00Z"),
            )],
            ..base("withdrawal dated after now is not yet in force")
        },
        Case {
            consents: vec![
                consent("2026-10-01T08:00:00Z", Some("2026-11-20T08:00:00Z")),
                consent("2026-11-21T08:00:00Z", None),
            ],
            ..base("consent given again after a withdrawal")
        },
        Case {
            consents: vec![consent("2026-11-22T09:30:00Z", None)],
            expect: Refuse(ConsentMissing),
            ..base("consent recorded after now does not count")
        },
        // Minors and loss of autonomy.
        Case {
            birth: "2008-11-23",
            expect: NeedsAttestation(Companion::Parent),
            ..base("turns 18 the day after the session: minor")
        },
        Case {
            birth: "2008-11-22",
            ..base("turns 18 on the session day: adult")
        },
        Case {
            birth: "2008-11-23",
            attested: Some(Companion::Parent),
            ..base("minor with a parent attested")
        },
        Case {
            birth: "2008-11-23",
            attested: Some(Companion::Aidant),
            expect: NeedsAttestation(Companion::Parent),
            ..base("minor with only an aidant attested")
        },
        Case {
            loss_of_autonomy: true,
            expect: NeedsAttestation(Companion::Aidant),
            ..base("loss of autonomy without aidant")
        },
        Case {
            loss_of_autonomy: true,
            attested: Some(Companion::Aidant),
            ..base("loss of autonomy with aidant")
        },
        Case {
            birth: "2015-05-05",
            loss_of_autonomy: true,
            attested: Some(Companion::Parent),
            ..base("a parent is the aidant of a minor")
        },
        Case {
            role: Role::Companion,
            birth: "2015-05-05",
            ..base("the companion's own seat needs no attestation")
        },
        Case {
            birth: "2008-11-23",
            kine_present: false,
            attested: Some(Companion::Parent),
            expect: Wait(WaitReason::KineAbsent),
            ..base("attested minor then waits for the kiné")
        },
        // HN: the price shown on the join page is accepted before admission.
        Case {
            price: PriceAcceptance {
                to_accept_cents: Some(3_250),
                accepted_cents: None,
            },
            expect: Refuse(PriceAcceptanceRequired),
            ..base("HN price not accepted")
        },
        Case {
            price: PriceAcceptance {
                to_accept_cents: Some(3_250),
                accepted_cents: Some(3_250),
            },
            ..base("HN price accepted")
        },
        Case {
            role: Role::Companion,
            price: PriceAcceptance {
                to_accept_cents: Some(3_250),
                accepted_cents: None,
            },
            expect: Refuse(PriceAcceptanceRequired),
            ..base("the companion's seat too waits for the accepted price")
        },
        Case {
            role: Role::Kine,
            price: PriceAcceptance {
                to_accept_cents: Some(3_250),
                accepted_cents: None,
            },
            ..base("the kiné needs no price acceptance")
        },
        Case {
            consents: vec![],
            consent_on_join: true,
            price: PriceAcceptance {
                to_accept_cents: Some(3_250),
                accepted_cents: None,
            },
            expect: Refuse(PriceAcceptanceRequired),
            ..base("the price comes before the consent, as on the join page")
        },
        // Order: preconditions are told before the lobby.
        Case {
            visits: vec![],
            kine_present: false,
            expect: Refuse(InPersonMissing(InPersonRule::Arrete2021)),
            ..base("refusal before waiting")
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let got = run(c);
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                c.name, c.expect, got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rule_hn_price_accepted_before_admission() {
    #[rustfmt::skip]
    let cases: Vec<(&str, Option<i64>, Option<i64>, Result<(), RefusalCode>)> = vec![
        ("reimbursable: nothing to accept", None, None, Ok(())),
        ("HN at 0 EUR: nothing to accept", Some(0), None, Ok(())),
        ("HN, not accepted", Some(3_250), None, Err(RefusalCode::PriceAcceptanceRequired)),
        ("HN, accepted", Some(3_250), Some(3_250), Ok(())),
        ("HN, another price accepted (changed since)", Some(4_000), Some(3_250), Err(RefusalCode::PriceAcceptanceRequired)),
    ];
    for (name, to_accept_cents, accepted_cents, want) in cases {
        let p = PriceAcceptance {
            to_accept_cents,
            accepted_cents,
        };
        assert_eq!(price_accepted(p), want, "{name}");
    }
    assert_eq!(
        RefusalCode::PriceAcceptanceRequired.code(),
        "price_acceptance_required"
    );
}

#[test]
fn session_day_is_the_day_in_france() {
    // 23:30 UTC on 21 November is 00:30 on 22 November in Paris.
    let mut s = session();
    s.starts_at = Utc
        .with_ymd_and_hms(2026, 11, 21, 23, 30, 0)
        .single()
        .expect("valid");
    assert_eq!(s.day(), date("2026-11-22"));
    assert_eq!(required_companion(&patient("2008-11-22", false), &s), None);
    let _ = Duration::zero();
}

#[test]
fn every_refusal_has_both_messages_and_rule_refusals_name_the_rule() {
    for code in [
        RefusalCode::InPersonMissing(InPersonRule::Arrete2021),
        RefusalCode::InPersonMissing(InPersonRule::Convention),
        RefusalCode::InPersonBilanMissing,
        RefusalCode::InPersonStale,
        RefusalCode::OutOfTerritory,
        RefusalCode::ActNotRemote,
        RefusalCode::ConsentMissing,
        RefusalCode::TokenInvalid,
        RefusalCode::Unavailable,
    ] {
        assert!(!code.message_fr().is_empty() && !code.message_en().is_empty());
        assert_ne!(code.message_fr(), code.message_en());
    }
    assert_eq!(
        RefusalCode::InPersonStale.rule(),
        Some(InPersonRule::Convention)
    );
    assert_eq!(
        RefusalCode::InPersonMissing(InPersonRule::Arrete2021).rule(),
        Some(InPersonRule::Arrete2021)
    );
    assert_eq!(RefusalCode::ConsentMissing.rule(), None);
}

#[test]
fn territory_table() {
    use TerritoryCheck::*;
    for (check, practice, patient, want) in [
        (Off, None, None, Ok(())),
        (Off, Some("75"), Some("13"), Ok(())),
        (Departement, Some("75"), Some("75"), Ok(())),
        (Departement, Some("75011"), Some("75"), Ok(())),
        (
            Departement,
            Some("75"),
            Some("92"),
            Err(RefusalCode::OutOfTerritory),
        ),
        (Departement, Some("2A"), Some("2a"), Ok(())),
        (
            Departement,
            Some("2A"),
            Some("2B"),
            Err(RefusalCode::OutOfTerritory),
        ),
        (Departement, Some("97110"), Some("971"), Ok(())),
        (
            Departement,
            Some("97110"),
            Some("972"),
            Err(RefusalCode::OutOfTerritory),
        ),
        (
            Departement,
            Some("75"),
            None,
            Err(RefusalCode::OutOfTerritory),
        ),
        (
            Departement,
            None,
            Some("75"),
            Err(RefusalCode::OutOfTerritory),
        ),
        (
            Departement,
            Some("Paris"),
            Some("75"),
            Err(RefusalCode::OutOfTerritory),
        ),
        (
            Departement,
            Some("20000"),
            Some("20000"),
            Err(RefusalCode::OutOfTerritory),
        ),
    ] {
        assert_eq!(
            territory(check, practice, patient),
            want,
            "{check:?} {practice:?} {patient:?}"
        );
    }
    assert_eq!(
        RefusalCode::OutOfTerritory.rule(),
        Some(InPersonRule::Convention),
        "the refusal names the convention"
    );
    assert_eq!(RefusalCode::OutOfTerritory.code(), "out_of_territory");
    for (s, want) in [
        ("75", Some("75")),
        ("01", Some("01")),
        ("00", None),
        ("974", Some("974")),
        ("2b", Some("2B")),
        ("13008", Some("13")),
        ("", None),
        ("7", None),
    ] {
        assert_eq!(departement_of(s).as_deref(), want, "{s:?}");
    }
}
