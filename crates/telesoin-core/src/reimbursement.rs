//! Reimbursable or hors nomenclature (HN)?
//!
//! Reimbursed like a cabinet session only if both: a prescription dated less than one year
//! before the session, and prior in-person care by this kiné (per the configured rule).
//! Otherwise HN: the kiné's own price, no key letter.

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::admission::{InPersonRule, in_person};
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
pub fn classify(
    session: &Session,
    prescriptions: &[NaiveDate],
    visits: &[InPersonVisit],
    rule: InPersonRule,
) -> BillingClass {
    let day = session.day();
    let prescribed = prescriptions.iter().any(|p| prescription_valid(*p, day));
    if prescribed && in_person(rule, visits, session).is_ok() {
        BillingClass::Reimbursable
    } else {
        BillingClass::Hn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
