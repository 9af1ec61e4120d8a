//! Money: the value of a key letter on a date, the amount of an act, and what a session bills.
//!
//! Which key letter prices a télésoin act depends on the day: since **22 February 2024**
//! (avenant 7 to the kinés' national convention; UNCAM decision of 14 December 2023, JORF of
//! 8 February 2024, which adds "TMK - Acte de télésoin pratiqué par le masseur-kinésithérapeute"
//! to the NGAP key letters) a télésoin act is billed `TMK x coefficient`, the coefficient being
//! the one of the same act in person. Before that day the 2021 rule applies (arrêté du 3 juin
//! 2021, seed 002): the act is billed with the in-person letter, AMK. See [`telesoin_letter`].
//!
//! The monetary value of a key letter (AMK, AMS, AMC, TMK) changes over time by convention and
//! avenant: it is configuration (a schedule of values with a date of effect), never a constant in
//! this crate. Amounts are integer cents; a coefficient is held in tenths (7.5 -> 75), so
//! "coefficient x value, rounded to the cent" is exact integer arithmetic, half up, with no
//! floating-point surprise.
//!
//! A hors nomenclature (HN) session bills the kiné's own price and writes no key letter.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::acts::Act;
use crate::reimbursement::BillingClass;

/// The NGAP key letters a kiné writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLetter {
    /// Actes de masso-kinésithérapie, in the cabinet or at home.
    Amk,
    /// Actes de rééducation des affections orthopédiques et rhumatologiques (AMS).
    Ams,
    /// Actes in an institution (établissement).
    Amc,
    /// Acte de télésoin pratiqué par le masseur-kinésithérapeute (since 2024-02-22).
    Tmk,
}

impl KeyLetter {
    /// How the letter is written on a feuille de soins or an invoice.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyLetter::Amk => "AMK",
            KeyLetter::Ams => "AMS",
            KeyLetter::Amc => "AMC",
            KeyLetter::Tmk => "TMK",
        }
    }

    /// Accepts the written form, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "AMK" => Some(KeyLetter::Amk),
            "AMS" => Some(KeyLetter::Ams),
            "AMC" => Some(KeyLetter::Amc),
            "TMK" => Some(KeyLetter::Tmk),
            _ => None,
        }
    }
}

/// The day avenant 7 came into force: télésoin billed with TMK, AMK/AMS/AMC revalued.
pub fn avenant_7_effective() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 2, 22).unwrap_or(NaiveDate::MIN)
}

/// The key letter a télésoin act done on `day` (in France) is billed with: TMK from
/// 2024-02-22 on (avenant 7), the in-person letter AMK before (the 2021 rule, seed 002).
pub fn telesoin_letter(day: NaiveDate) -> KeyLetter {
    if day >= avenant_7_effective() {
        KeyLetter::Tmk
    } else {
        KeyLetter::Amk
    }
}

/// One line of the configured schedule: from `effective_from` on, `letter` is worth `cents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLetterValue {
    pub letter: KeyLetter,
    pub cents: i64,
    pub effective_from: NaiveDate,
}

/// The value of `letter` on `on`: the line with the latest `effective_from` not after `on`.
/// A value takes effect on its own date. If two lines share that date, the later one in the
/// schedule wins (a correction appended to the configuration). `None` before the first value.
pub fn key_letter_value(
    schedule: &[KeyLetterValue],
    letter: KeyLetter,
    on: NaiveDate,
) -> Option<i64> {
    schedule
        .iter()
        .filter(|v| v.letter == letter && v.effective_from <= on)
        // `max_by_key` returns the last of equal maxima: the later line wins a tie.
        .max_by_key(|v| v.effective_from)
        .map(|v| v.cents)
}

/// `tenths / 10 x cents`, rounded to the cent, half up (towards +infinity); `None` if it does
/// not fit an `i64`.
pub fn amount_from_tenths(coefficient_tenths: u32, cents: i64) -> Option<i64> {
    let tenth_cents = i128::from(coefficient_tenths) * i128::from(cents);
    i64::try_from((tenth_cents + 5).div_euclid(10)).ok()
}

/// The amount of `act` billed with `letter` on `on`: coefficient x the letter's value that day,
/// rounded to the cent, half up. `None` when the schedule has no value for that day.
pub fn act_amount_cents(
    act: &Act,
    schedule: &[KeyLetterValue],
    letter: KeyLetter,
    on: NaiveDate,
) -> Option<i64> {
    let value = key_letter_value(schedule, letter, on)?;
    amount_from_tenths(act.coefficient_tenths, value)
}

/// A coefficient in tenths as the NGAP writes it, with a decimal point: 75 -> "7.5", 100 -> "10".
pub fn format_coefficient(tenths: u32) -> String {
    match tenths % 10 {
        0 => format!("{}", tenths / 10),
        d => format!("{}.{d}", tenths / 10),
    }
}

/// What a session bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Billed {
    /// Coded with the NGAP: key letter x coefficient, the amount on the session day.
    Reimbursable {
        letter: KeyLetter,
        coefficient_tenths: u32,
        /// The value of `letter` on the session day, in cents.
        value_cents: i64,
        cents: i64,
    },
    /// Hors nomenclature: the kiné's price, no key letter, an invoice to the patient.
    Hn { cents: i64 },
}

impl Billed {
    pub fn cents(&self) -> i64 {
        match *self {
            Billed::Reimbursable { cents, .. } | Billed::Hn { cents } => cents,
        }
    }

    /// The key letter written, if any (never for HN).
    pub fn letter(&self) -> Option<KeyLetter> {
        match *self {
            Billed::Reimbursable { letter, .. } => Some(letter),
            Billed::Hn { .. } => None,
        }
    }
}

/// Why a session cannot be priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TariffError {
    /// The configured schedule has no value for this letter on this day: configuration to fix.
    #[error("no value configured for {} on {on}", letter.as_str())]
    NoKeyLetterValue { letter: KeyLetter, on: NaiveDate },
    /// The amount does not fit in cents (a misconfigured value).
    #[error("amount out of range")]
    Overflow,
    /// An HN price is a price: zero or more.
    #[error("negative HN price")]
    NegativeHnPrice,
}

/// What a télésoin session of `class` held on `on` bills: for a reimbursable session, `act`
/// coded with the letter in force that day ([`telesoin_letter`]) at its value that day; for an
/// HN session, `hn_price_cents` (the kiné's price) and no key letter.
pub fn billed_amount(
    class: BillingClass,
    act: &Act,
    schedule: &[KeyLetterValue],
    on: NaiveDate,
    hn_price_cents: i64,
) -> Result<Billed, TariffError> {
    billed_amount_with(
        class,
        act,
        schedule,
        telesoin_letter(on),
        on,
        hn_price_cents,
    )
}

/// [`billed_amount`] with the key letter given (an act coded in person, or a test).
pub fn billed_amount_with(
    class: BillingClass,
    act: &Act,
    schedule: &[KeyLetterValue],
    letter: KeyLetter,
    on: NaiveDate,
    hn_price_cents: i64,
) -> Result<Billed, TariffError> {
    match class {
        BillingClass::Reimbursable => {
            let value = key_letter_value(schedule, letter, on)
                .ok_or(TariffError::NoKeyLetterValue { letter, on })?;
            let cents =
                amount_from_tenths(act.coefficient_tenths, value).ok_or(TariffError::Overflow)?;
            Ok(Billed::Reimbursable {
                letter,
                coefficient_tenths: act.coefficient_tenths,
                value_cents: value,
                cents,
            })
        }
        BillingClass::Hn if hn_price_cents < 0 => Err(TariffError::NegativeHnPrice),
        BillingClass::Hn => Ok(Billed::Hn {
            cents: hn_price_cents,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acts::find;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn v(letter: KeyLetter, cents: i64, from: &str) -> KeyLetterValue {
        KeyLetterValue {
            letter,
            cents,
            effective_from: d(from),
        }
    }

    /// A test schedule; the figures are the tests' own, not the convention's.
    fn schedule() -> Vec<KeyLetterValue> {
        vec![
            v(KeyLetter::Amk, 216, "2020-01-01"),
            v(KeyLetter::Amk, 220, "2024-07-01"),
            v(KeyLetter::Amk, 230, "2025-07-01"),
            v(KeyLetter::Amc, 200, "2024-07-01"),
            // Out of order in the configuration on purpose.
            v(KeyLetter::Ams, 245, "2025-07-01"),
            v(KeyLetter::Ams, 240, "2024-01-01"),
        ]
    }

    #[test]
    fn key_letter_value_table() {
        let s = schedule();
        use KeyLetter::*;
        for (letter, on, want) in [
            (Amk, "2019-12-31", None),
            (Amk, "2020-01-01", Some(216)),
            (Amk, "2024-06-30", Some(216)),
            (Amk, "2024-07-01", Some(220)),
            (Amk, "2025-06-30", Some(220)),
            (Amk, "2025-07-01", Some(230)),
            (Amk, "2040-01-01", Some(230)),
            (Amc, "2024-06-30", None),
            (Amc, "2024-07-01", Some(200)),
            (Ams, "2024-12-31", Some(240)),
            (Ams, "2025-07-01", Some(245)),
        ] {
            assert_eq!(key_letter_value(&s, letter, d(on)), want, "{letter:?} {on}");
        }
        assert_eq!(key_letter_value(&[], Amk, d("2025-01-01")), None);
    }

    #[test]
    fn same_date_the_later_line_wins() {
        let s = vec![
            v(KeyLetter::Amk, 100, "2025-01-01"),
            v(KeyLetter::Amk, 101, "2025-01-01"),
        ];
        assert_eq!(
            key_letter_value(&s, KeyLetter::Amk, d("2025-02-01")),
            Some(101)
        );
    }

    #[test]
    fn rounding_table() {
        // (tenths, value cents, expected cents): exact, half up, below half.
        for (tenths, cents, want) in [
            (75, 216, 1620),  // 7.5 x 2.16 = 16.20
            (83, 215, 1785),  // 8.3 x 2.15 = 17.845 -> 17.85 (half up)
            (83, 213, 1768),  // 8.3 x 2.13 = 17.679 -> 17.68
            (76, 211, 1604),  // 7.6 x 2.11 = 16.036 -> 16.04
            (76, 212, 1611),  // 7.6 x 2.12 = 16.112 -> 16.11
            (95, 201, 1910),  // 9.5 x 2.01 = 19.095 -> 19.10 (half up)
            (100, 216, 2160), // 10 x 2.16
            (75, 1, 8),       // 7.5 x 1 cent = 7.5 cents -> 8
            (75, 0, 0),
            (5, 1, 1), // 0.5 x 0.01 = 0.005 -> 0.01 (half up)
            (4, 1, 0), // 0.4 x 0.01 = 0.004 -> 0.00
        ] {
            assert_eq!(
                amount_from_tenths(tenths, cents),
                Some(want),
                "{tenths} x {cents}"
            );
        }
        // 7.5 x 2.03 EUR = 15.225 EUR -> 15.23 EUR; the float route says 15.22.
        assert_eq!(amount_from_tenths(75, 203), Some(1523));
        assert_eq!((7.5_f64 * 2.03 * 100.0).round(), 1522.0);
        assert_eq!(amount_from_tenths(u32::MAX, i64::MAX), None);
    }

    #[test]
    fn act_amount_table() {
        let s = schedule();
        for (code, on, want) in [
            ("MEMBRE", "2024-07-01", Some(1650)),           // 7.5 x 2.20
            ("NEURO_UN_MEMBRE", "2024-07-01", Some(1826)),  // 8.3 x 2.20 = 18.26
            ("NEURO_UN_MEMBRE", "2025-07-01", Some(1909)),  // 8.3 x 2.30 = 19.09
            ("RHUMATISME_LOCAL", "2020-05-01", Some(1642)), // 7.6 x 2.16 = 16.416
            ("NEURO_MULTI", "2025-07-01", Some(2300)),
            ("MEMBRE", "2019-01-01", None),
        ] {
            let act = find(code).expect("act");
            assert_eq!(
                act_amount_cents(act, &s, KeyLetter::Amk, d(on)),
                want,
                "{code} {on}"
            );
        }
    }

    #[test]
    fn billed_amount_table() {
        let s = schedule();
        let act = find("MEMBRE").expect("act");
        let on = d("2025-07-01");
        use BillingClass::*;
        for (class, letter, hn, want) in [
            (
                Reimbursable,
                KeyLetter::Amk,
                10_000,
                Ok(Billed::Reimbursable {
                    letter: KeyLetter::Amk,
                    coefficient_tenths: 75,
                    value_cents: 230,
                    cents: 1725,
                }),
            ),
            (
                Reimbursable,
                KeyLetter::Amc,
                0,
                Ok(Billed::Reimbursable {
                    letter: KeyLetter::Amc,
                    coefficient_tenths: 75,
                    value_cents: 200,
                    cents: 1500,
                }),
            ),
            // Seed 000: one hour at 100 EUR, not reimbursed. No key letter.
            (Hn, KeyLetter::Amk, 10_000, Ok(Billed::Hn { cents: 10_000 })),
            (Hn, KeyLetter::Amk, 0, Ok(Billed::Hn { cents: 0 })),
            (Hn, KeyLetter::Amk, -1, Err(TariffError::NegativeHnPrice)),
        ] {
            assert_eq!(
                billed_amount_with(class, act, &s, letter, on, hn),
                want,
                "{class:?} {letter:?}"
            );
        }
        assert_eq!(
            billed_amount_with(Reimbursable, act, &s, KeyLetter::Amk, d("2019-01-01"), 0),
            Err(TariffError::NoKeyLetterValue {
                letter: KeyLetter::Amk,
                on: d("2019-01-01")
            })
        );
        assert_eq!(
            billed_amount(Hn, act, &[], on, 4_500).map(|b| b.letter()),
            Ok(None),
            "HN never needs nor writes a key letter"
        );
    }

    #[test]
    fn letters_and_coefficients_are_written_as_the_ngap_does() {
        for l in [
            KeyLetter::Amk,
            KeyLetter::Ams,
            KeyLetter::Amc,
            KeyLetter::Tmk,
        ] {
            assert_eq!(KeyLetter::parse(l.as_str()), Some(l));
            assert_eq!(KeyLetter::parse(&l.as_str().to_lowercase()), Some(l));
        }
        assert_eq!(KeyLetter::parse("AMX"), None);
        for (tenths, want) in [(75, "7.5"), (100, "10"), (83, "8.3"), (90, "9"), (5, "0.5")] {
            assert_eq!(format_coefficient(tenths), want);
        }
    }

    /// The default schedule of the server's configuration (`key_letter_values`), as documented
    /// in the README: AMK/AMS/AMC 2,15 EUR, then 2,21 EUR from 2024-02-22; TMK 2,15 EUR from
    /// 2024-02-22.
    fn default_schedule() -> Vec<KeyLetterValue> {
        use KeyLetter::*;
        vec![
            v(Amk, 215, "2012-01-01"),
            v(Ams, 215, "2012-01-01"),
            v(Amc, 215, "2012-01-01"),
            v(Amk, 221, "2024-02-22"),
            v(Ams, 221, "2024-02-22"),
            v(Amc, 221, "2024-02-22"),
            v(Tmk, 215, "2024-02-22"),
        ]
    }

    #[test]
    fn telesoin_letter_by_date_of_effect() {
        for (day, want) in [
            ("2021-06-04", KeyLetter::Amk),
            ("2024-02-20", KeyLetter::Amk),
            ("2024-02-21", KeyLetter::Amk),
            ("2024-02-22", KeyLetter::Tmk),
            ("2024-02-23", KeyLetter::Tmk),
            ("2026-12-02", KeyLetter::Tmk),
        ] {
            assert_eq!(telesoin_letter(d(day)), want, "{day}");
        }
    }

    #[test]
    fn a_session_is_priced_with_the_letter_and_value_of_its_day() {
        let s = default_schedule();
        let membre = find("MEMBRE").expect("act"); // 7.5
        let neuro = find("NEURO_UN_MEMBRE").expect("act"); // 8.3
        use KeyLetter::*;
        // (act, day, letter, value, amount)
        for (act, day, letter, value, cents) in [
            (membre, "2024-02-21", Amk, 215, 1613), // 7.5 x 2.15 = 16.125 -> 16.13
            (membre, "2024-02-22", Tmk, 215, 1613), // TMK stayed at 2.15
            (membre, "2026-12-02", Tmk, 215, 1613),
            (neuro, "2024-02-21", Amk, 215, 1785), // 8.3 x 2.15 = 17.845 -> 17.85
            (neuro, "2024-02-22", Tmk, 215, 1785),
        ] {
            assert_eq!(
                billed_amount(BillingClass::Reimbursable, act, &s, d(day), 0),
                Ok(Billed::Reimbursable {
                    letter,
                    coefficient_tenths: act.coefficient_tenths,
                    value_cents: value,
                    cents,
                }),
                "{} {day}",
                act.code
            );
        }
        // The in-person letters were revalued the same day: 2.15 -> 2.21 EUR.
        for (letter, day, want) in [
            (Amk, "2024-02-21", Some(215)),
            (Amk, "2024-02-22", Some(221)),
            (Ams, "2024-02-21", Some(215)),
            (Ams, "2024-02-22", Some(221)),
            (Amc, "2024-02-22", Some(221)),
            (Tmk, "2024-02-21", None),
            (Tmk, "2024-02-22", Some(215)),
        ] {
            assert_eq!(
                key_letter_value(&s, letter, d(day)),
                want,
                "{letter:?} {day}"
            );
        }
        // 7.5 x 2.21 = 16.575 -> 16.58: what the same act in person costs since that day.
        assert_eq!(
            act_amount_cents(membre, &s, Ams, d("2024-02-22")),
            Some(1658)
        );
        // No TMK configured: a session after 2024-02-22 cannot be priced (no silent AMK).
        let old: Vec<_> = s.iter().copied().filter(|v| v.letter != Tmk).collect();
        assert_eq!(
            billed_amount(BillingClass::Reimbursable, membre, &old, d("2024-03-01"), 0),
            Err(TariffError::NoKeyLetterValue {
                letter: Tmk,
                on: d("2024-03-01")
            })
        );
    }
}
