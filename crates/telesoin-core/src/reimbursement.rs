//! Reimbursable or hors nomenclature (HN)?
//!
//! Reimbursed like a cabinet session only if both: a prescription dated less than one year
//! before the session, and prior in-person care by this kiné (per the configured rule).
//! Otherwise HN: the kiné's own price, no key letter.
//!
//! # Direct access (accès direct), as read from the seeds
//!
//! Seed 004: without a prescription, a session is reimbursed only for **acute low back pain**
//! (lombalgie aiguë) or an **ankle sprain** (entorse de cheville), by a kiné working in a
//! coordinated structure who has signed a **cooperation protocol** with its doctors; every other
//! session without a prescription is HN. Seed 000: "l'accès direct au kiné par téléconsultation
//! est possible et remboursé pour l'entorse de cheville et la lombalgie aiguë".
//!
//! Our reading: direct access replaces the prescription, and only the prescription. No seed lifts
//! the télésoin condition of prior in-person care with this kiné (seeds 000, 001, 002; it is also
//! an admission precondition, so without it there is no call to bill), so a direct-access session
//! is reimbursable only when the configured in-person rule holds as well. The protocol is declared
//! by the kiné (the core cannot check it); the département where protocols apply (seed 004) is
//! part of that declaration. When a valid prescription is there, the prescription is the reason
//! (it does not depend on a declaration).
//!
//! The order of the reasons: prior in-person care is needed on every route, so its failure is
//! the reason whatever else is missing; then the prescription, then direct access.

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::admission::{InPersonRule, RefusalCode, in_person_on};
use crate::model::{InPersonVisit, Session};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingClass {
    Reimbursable,
    Hn,
}

impl BillingClass {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingClass::Reimbursable => "reimbursable",
            BillingClass::Hn => "hn",
        }
    }
}

/// A prescription is valid for télésoin reimbursement on `day` if it is dated on or before that
/// day and less than one year before it (a prescription exactly one year old no longer counts).
pub fn prescription_valid(prescription: NaiveDate, day: NaiveDate) -> bool {
    let year_before = day.checked_sub_months(Months::new(12)).unwrap_or(day);
    prescription <= day && prescription > year_before
}

/// The class of `session`, from the patient's prescriptions and in-person visits with this kiné.
/// No direct access: see [`classify_full`].
pub fn classify(
    session: &Session,
    prescriptions: &[NaiveDate],
    visits: &[InPersonVisit],
    rule: InPersonRule,
) -> BillingClass {
    classify_full(&ClassifyInput {
        session_day: session.day(),
        prescriptions,
        visits,
        rule,
        direct_access: None,
        cooperation_protocol: false,
    })
    .class
}

/// The two conditions for which a kiné may be consulted without a prescription and reimbursed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectAccess {
    /// Lombalgie aiguë.
    AcuteLowBackPain,
    /// Entorse de cheville.
    AnkleSprain,
}

impl DirectAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectAccess::AcuteLowBackPain => "acute_low_back_pain",
            DirectAccess::AnkleSprain => "ankle_sprain",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "acute_low_back_pain" => Some(DirectAccess::AcuteLowBackPain),
            "ankle_sprain" => Some(DirectAccess::AnkleSprain),
            _ => None,
        }
    }

    pub fn label_fr(self) -> &'static str {
        match self {
            DirectAccess::AcuteLowBackPain => "lombalgie aiguë",
            DirectAccess::AnkleSprain => "entorse de cheville",
        }
    }
}

/// Everything the class looks at, gathered by the caller.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyInput<'a> {
    /// The session day in France ([`Session::day`]).
    pub session_day: NaiveDate,
    /// The dates of the patient's prescriptions for kiné sessions.
    pub prescriptions: &'a [NaiveDate],
    /// In-person visits between this kiné and this patient.
    pub visits: &'a [InPersonVisit],
    pub rule: InPersonRule,
    /// The direct-access condition the kiné declares for this session, if any.
    pub direct_access: Option<DirectAccess>,
    /// The kiné declares working under a cooperation protocol in a coordinated structure.
    pub cooperation_protocol: bool,
}

/// Why a session is reimbursable or HN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassReason {
    /// Reimbursable: a prescription under one year old and prior in-person care.
    PrescriptionAndInPerson,
    /// Reimbursable without a valid prescription: direct access under a cooperation protocol,
    /// with prior in-person care.
    DirectAccess(DirectAccess),
    /// HN: the in-person rule does not hold. The code names the rule and what is missing; its
    /// `message_fr` says what to do.
    NoInPersonCare(RefusalCode),
    /// HN: no prescription dated on or before the session day and less than one year before it.
    NoValidPrescription,
    /// HN: a direct-access condition, but no cooperation protocol declared.
    DirectAccessWithoutProtocol(DirectAccess),
}

impl ClassReason {
    /// The stable code clients and exports use.
    pub fn code(self) -> &'static str {
        match self {
            ClassReason::PrescriptionAndInPerson => "prescription_and_in_person",
            ClassReason::DirectAccess(_) => "direct_access",
            ClassReason::NoInPersonCare(_) => "no_in_person_care",
            ClassReason::NoValidPrescription => "no_valid_prescription",
            ClassReason::DirectAccessWithoutProtocol(_) => "direct_access_without_protocol",
        }
    }

    /// Plain French, shown to the kiné and the patient before the session.
    pub fn message_fr(self) -> &'static str {
        match self {
            ClassReason::PrescriptionAndInPerson => {
                "Séance remboursable : ordonnance de moins d'un an et soins en cabinet avec ce kinésithérapeute."
            }
            ClassReason::DirectAccess(_) => {
                "Séance remboursable sans ordonnance (accès direct, protocole de coopération)."
            }
            ClassReason::NoInPersonCare(_) => {
                "Séance non remboursée : il faut d'abord une séance en cabinet avec ce kinésithérapeute."
            }
            ClassReason::NoValidPrescription => {
                "Séance non remboursée : pas d'ordonnance de moins d'un an. Le prix est fixé par le kinésithérapeute."
            }
            ClassReason::DirectAccessWithoutProtocol(_) => {
                "Séance non remboursée : l'accès direct n'est remboursé que dans le cadre d'un protocole de coopération."
            }
        }
    }

    /// The same in English.
    pub fn message_en(self) -> &'static str {
        match self {
            ClassReason::PrescriptionAndInPerson => {
                "Reimbursable: a prescription under one year old and in-person care with this physiotherapist."
            }
            ClassReason::DirectAccess(_) => {
                "Reimbursable without a prescription (direct access, cooperation protocol)."
            }
            ClassReason::NoInPersonCare(_) => {
                "Not reimbursed: an in-person session with this physiotherapist is needed first."
            }
            ClassReason::NoValidPrescription => {
                "Not reimbursed: no prescription under one year old. The physiotherapist sets the price."
            }
            ClassReason::DirectAccessWithoutProtocol(_) => {
                "Not reimbursed: direct access is reimbursed only under a cooperation protocol."
            }
        }
    }
}

/// The class and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub class: BillingClass,
    pub reason: ClassReason,
}

/// The class of a session, with its reason (see the module doc for the direct-access reading).
pub fn classify_full(input: &ClassifyInput<'_>) -> Classification {
    let hn = |reason| Classification {
        class: BillingClass::Hn,
        reason,
    };
    let reimbursable = |reason| Classification {
        class: BillingClass::Reimbursable,
        reason,
    };
    let day = input.session_day;
    if let Err(code) = in_person_on(input.rule, input.visits, day) {
        return hn(ClassReason::NoInPersonCare(code));
    }
    if input
        .prescriptions
        .iter()
        .any(|p| prescription_valid(*p, day))
    {
        return reimbursable(ClassReason::PrescriptionAndInPerson);
    }
    match input.direct_access {
        Some(condition) if input.cooperation_protocol => {
            reimbursable(ClassReason::DirectAccess(condition))
        }
        Some(condition) => hn(ClassReason::DirectAccessWithoutProtocol(condition)),
        None => hn(ClassReason::NoValidPrescription),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VisitKind;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn prescription_age_table() {
        let day = d("2026-11-22");
        for (rx, want) in [
            ("2026-11-22", true),
            ("2026-01-01", true),
            ("2025-11-23", true),
            ("2025-11-22", false),
            ("2024-05-01", false),
            ("2026-11-23", false),
        ] {
            assert_eq!(prescription_valid(d(rx), day), want, "{rx}");
        }
    }

    #[test]
    fn prescription_age_around_29_february() {
        for (rx, day, want) in [
            // A year before 29 Feb 2028 is 28 Feb 2027: exactly one year, no longer valid.
            ("2027-02-28", "2028-02-29", false),
            ("2027-03-01", "2028-02-29", true),
            // Written on 29 Feb 2024: still valid on 28 Feb 2025, one year old on 1 March.
            ("2024-02-29", "2025-02-28", true),
            ("2024-02-29", "2025-03-01", false),
        ] {
            assert_eq!(prescription_valid(d(rx), d(day)), want, "{rx} on {day}");
        }
    }

    fn visit(date: &str, kind: VisitKind) -> InPersonVisit {
        InPersonVisit {
            date: d(date),
            kind,
        }
    }

    use BillingClass::{Hn, Reimbursable};
    use ClassReason::{
        DirectAccessWithoutProtocol, NoInPersonCare, NoValidPrescription, PrescriptionAndInPerson,
    };
    use DirectAccess::{AcuteLowBackPain, AnkleSprain};
    use InPersonRule::{Arrete2021, Convention};
    use VisitKind::{Bilan, Session as Seance};

    struct Case {
        name: &'static str,
        rule: InPersonRule,
        prescriptions: &'static [&'static str],
        visits: Vec<InPersonVisit>,
        direct_access: Option<DirectAccess>,
        protocol: bool,
        want: (BillingClass, ClassReason),
    }

    /// Sessions on 2026-11-22. One row per line, so the table reads as a table.
    #[rustfmt::skip]
    fn cases() -> Vec<Case> {
        let seen = || vec![visit("2026-10-01", Bilan)];
        let case = |name, rule, prescriptions, visits, direct_access, protocol, want| Case {
            name,
            rule,
            prescriptions,
            visits,
            direct_access,
            protocol,
            want,
        };
        vec![
            case("prescription and visit", Arrete2021, &["2026-01-01"], seen(), None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("prescription of the session day", Arrete2021, &["2026-11-22"], seen(), None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("prescription one year minus a day old", Arrete2021, &["2025-11-23"], seen(), None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("prescription exactly one year old", Arrete2021, &["2025-11-22"], seen(), None, false, (Hn, NoValidPrescription)),
            case("prescription dated after the session", Arrete2021, &["2026-11-23"], seen(), None, false, (Hn, NoValidPrescription)),
            case("no prescription", Arrete2021, &[], seen(), None, false, (Hn, NoValidPrescription)),
            case("one stale, one valid prescription", Arrete2021, &["2024-01-01", "2026-06-01"], seen(), None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("first in-person visit on the session day counts", Arrete2021, &["2026-11-01"], vec![visit("2026-11-22", Seance)], None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("first in-person visit the day after does not", Arrete2021, &["2026-11-01"], vec![visit("2026-11-23", Bilan)], None, false, (Hn, NoInPersonCare(RefusalCode::InPersonMissing(Arrete2021)))),
            case("never seen in person", Arrete2021, &["2026-11-01"], vec![], None, false, (Hn, NoInPersonCare(RefusalCode::InPersonMissing(Arrete2021)))),
            case("never seen and no prescription: in-person is the reason", Arrete2021, &[], vec![], None, false, (Hn, NoInPersonCare(RefusalCode::InPersonMissing(Arrete2021)))),
            case("arrêté: an old visit is enough", Arrete2021, &["2026-11-01"], vec![visit("2019-03-01", Seance)], None, false, (Reimbursable, PrescriptionAndInPerson)),
            // The convention variant (avenant 7): bilan in person, and in person within 12 months.
            case("convention: bilan within 12 months", Convention, &["2026-11-01"], seen(), None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("convention: old bilan, recent session", Convention, &["2026-11-01"], vec![visit("2023-01-10", Bilan), visit("2026-06-01", Seance)], None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("convention: in person exactly 12 months before still counts", Convention, &["2026-11-01"], vec![visit("2025-11-22", Bilan)], None, false, (Reimbursable, PrescriptionAndInPerson)),
            case("convention: last in person 12 months and a day before", Convention, &["2026-11-01"], vec![visit("2025-11-21", Bilan)], None, false, (Hn, NoInPersonCare(RefusalCode::InPersonStale))),
            case("convention: sessions but no bilan in person", Convention, &["2026-11-01"], vec![visit("2026-10-01", Seance)], None, false, (Hn, NoInPersonCare(RefusalCode::InPersonBilanMissing))),
            case("convention: never seen", Convention, &["2026-11-01"], vec![], None, false, (Hn, NoInPersonCare(RefusalCode::InPersonMissing(Convention)))),
            case("convention: bilan on the session day", Convention, &["2026-11-01"], vec![visit("2026-11-22", Bilan)], None, false, (Reimbursable, PrescriptionAndInPerson)),
            // Direct access.
            case("low back pain, protocol, no prescription", Arrete2021, &[], seen(), Some(AcuteLowBackPain), true, (Reimbursable, ClassReason::DirectAccess(AcuteLowBackPain))),
            case("ankle sprain, protocol, no prescription", Arrete2021, &[], seen(), Some(AnkleSprain), true, (Reimbursable, ClassReason::DirectAccess(AnkleSprain))),
            case("ankle sprain, protocol, expired prescription", Arrete2021, &["2025-11-22"], seen(), Some(AnkleSprain), true, (Reimbursable, ClassReason::DirectAccess(AnkleSprain))),
            case("low back pain without protocol", Arrete2021, &[], seen(), Some(AcuteLowBackPain), false, (Hn, DirectAccessWithoutProtocol(AcuteLowBackPain))),
            case("ankle sprain without protocol", Arrete2021, &[], seen(), Some(AnkleSprain), false, (Hn, DirectAccessWithoutProtocol(AnkleSprain))),
            case("direct access and a valid prescription: the prescription is the reason", Arrete2021, &["2026-11-01"], seen(), Some(AnkleSprain), true, (Reimbursable, PrescriptionAndInPerson)),
            case("direct access without protocol but a valid prescription", Arrete2021, &["2026-11-01"], seen(), Some(AnkleSprain), false, (Reimbursable, PrescriptionAndInPerson)),
            case("direct access with protocol still needs in-person care", Arrete2021, &[], vec![], Some(AcuteLowBackPain), true, (Hn, NoInPersonCare(RefusalCode::InPersonMissing(Arrete2021)))),
            case("direct access under the convention rule, stale", Convention, &[], vec![visit("2024-01-01", Bilan)], Some(AcuteLowBackPain), true, (Hn, NoInPersonCare(RefusalCode::InPersonStale))),
            case("direct access under the convention rule", Convention, &[], seen(), Some(AcuteLowBackPain), true, (Reimbursable, ClassReason::DirectAccess(AcuteLowBackPain))),
            case("a protocol alone is not direct access", Arrete2021, &[], seen(), None, true, (Hn, NoValidPrescription)),
        ]
    }

    #[test]
    fn classification_table() {
        for c in cases() {
            let prescriptions: Vec<NaiveDate> = c.prescriptions.iter().map(|p| d(p)).collect();
            let got = classify_full(&ClassifyInput {
                session_day: d("2026-11-22"),
                prescriptions: &prescriptions,
                visits: &c.visits,
                rule: c.rule,
                direct_access: c.direct_access,
                cooperation_protocol: c.protocol,
            });
            let want = Classification {
                class: c.want.0,
                reason: c.want.1,
            };
            assert_eq!(got, want, "{}", c.name);
        }
    }

    /// The old entry point is `classify_full` without direct access, on the session's day in
    /// France: 23:30 UTC on 21 November is already 22 November in Paris.
    #[test]
    fn classify_is_the_thin_wrapper() {
        use chrono::TimeZone;
        let starts_at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 21, 23, 30, 0)
            .single()
            .expect("valid");
        let session = Session {
            id: crate::ids::SessionId(uuid::Uuid::nil()),
            kine: crate::ids::KineId(uuid::Uuid::nil()),
            patient: crate::ids::PatientId(uuid::Uuid::nil()),
            starts_at,
            window_start: starts_at,
            window_end: starts_at,
            act_code: "MEMBRE".into(),
            status: crate::model::SessionStatus::Scheduled,
            auto_admit: false,
            patient_consent_on_join: false,
        };
        assert_eq!(session.day(), d("2026-11-22"));
        for c in cases().into_iter().filter(|c| c.direct_access.is_none()) {
            let prescriptions: Vec<NaiveDate> = c.prescriptions.iter().map(|p| d(p)).collect();
            assert_eq!(
                classify(&session, &prescriptions, &c.visits, c.rule),
                c.want.0,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn every_reason_has_a_code_and_words() {
        let reasons = [
            PrescriptionAndInPerson,
            ClassReason::DirectAccess(AnkleSprain),
            NoInPersonCare(RefusalCode::InPersonStale),
            NoValidPrescription,
            DirectAccessWithoutProtocol(AcuteLowBackPain),
        ];
        let mut codes: Vec<_> = reasons.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), reasons.len());
        for r in reasons {
            assert!(!r.message_fr().is_empty() && !r.message_en().is_empty());
        }
        for a in [AcuteLowBackPain, AnkleSprain] {
            assert_eq!(DirectAccess::parse(a.as_str()), Some(a));
        }
    }
}
