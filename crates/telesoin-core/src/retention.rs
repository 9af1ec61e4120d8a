//! Retention: when a patient's record may be purged.
//!
//! CNIL referential 2020-081 for a liberal practice: 20 years after the last care (5 active + 15
//! archived). The number of years is configuration; [`DEFAULT_RETENTION_YEARS`] is its default.
//!
//! We keep a record through the whole anniversary day of the last care and may purge it from the
//! next day: never a day early. The anniversary of a 29 February falls on 1 March in a year
//! without one (as for ages in [`crate::model::age_on`]), which again keeps the record longer.

use chrono::{Days, NaiveDate};

use crate::model::age_on;

/// CNIL referential 2020-081: 20 years after the last care.
pub const DEFAULT_RETENTION_YEARS: u32 = 20;

/// May the record of a patient last cared for on `last_care` be purged on `today`, with a
/// retention of `retention_years` years after the last care?
pub fn purge_eligible(last_care: NaiveDate, today: NaiveDate, retention_years: u32) -> bool {
    if today <= last_care {
        return false;
    }
    // Purgeable today iff the retention was already complete yesterday: full years elapsed
    // between the last care and yesterday reach the retention.
    let Some(yesterday) = today.checked_sub_days(Days::new(1)) else {
        return false;
    };
    i64::from(age_on(last_care, yesterday)) >= i64::from(retention_years)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn purge_table() {
        let y = DEFAULT_RETENTION_YEARS;
        for (last, today, years, want) in [
            ("2026-01-10", "2026-01-10", y, false),
            ("2026-01-10", "2045-12-31", y, false),
            ("2026-01-10", "2046-01-09", y, false),
            ("2026-01-10", "2046-01-10", y, false), // the anniversary day is still kept
            ("2026-01-10", "2046-01-11", y, true),
            ("2026-01-10", "2080-01-01", y, true),
            // Last care on 29 February.
            ("2024-02-29", "2044-02-29", y, false), // 2044 is a leap year: anniversary
            ("2024-02-29", "2044-03-01", y, true),
            ("2024-02-29", "2025-02-28", 1, false),
            ("2024-02-29", "2025-03-01", 1, false), // anniversary in a common year
            ("2024-02-29", "2025-03-02", 1, true),
            // Anniversary on 29 February of a leap year, last care on 28 February.
            ("2027-02-28", "2028-02-28", 1, false),
            ("2027-02-28", "2028-02-29", 1, true),
            // A last care "in the future" (data entered ahead, clock skew) is never purged.
            ("2030-01-01", "2026-01-01", y, false),
            // Zero years: purgeable from the day after the last care.
            ("2026-01-10", "2026-01-10", 0, false),
            ("2026-01-10", "2026-01-11", 0, true),
            ("2026-01-10", "9999-12-31", u32::MAX, false),
        ] {
            assert_eq!(
                purge_eligible(d(last), d(today), years),
                want,
                "{last} {today} {years}"
            );
        }
    }
}
