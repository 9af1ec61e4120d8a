//! The NGAP acts a kiné may bill, as dated catalogues, with their coefficient, their in-person
//! key letter and whether télésoin allows them.
//!
//! Two catalogues, each in force from its date:
//! - [`ngap_2021`]: the 15 acts of seed 002 (arrêté du 3 juin 2021), billed in AMK;
//! - [`ngap_2024`]: the nomenclature in force since 22 February 2024 (UNCAM decision of
//!   14 December 2023, JORF of 8 February 2024; avenant 7), where every act may be done in
//!   télésoin except those needing direct contact or equipment the patient lacks. Its header says
//!   what was verified and what is uncertain.
//!
//! A session refers to an act by our stable code; an act that continues from one catalogue to
//! the next keeps its code. The money value of the key letter is not here: it changes over time
//! and is configuration (see [`crate::tariff`]).

use chrono::NaiveDate;

use crate::admission::RefusalCode;

mod ngap_2021;
mod ngap_2024;

/// Why an act cannot be done remotely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRemote {
    /// The act needs the kiné's hands on the patient (urgent airway clearance, manual drainage,
    /// perineal rehabilitation under manual control...).
    DirectContact,
    /// The act needs equipment a patient does not have at home (balnéothérapie).
    Equipment,
}

impl NotRemote {
    pub fn as_str(self) -> &'static str {
        match self {
            NotRemote::DirectContact => "direct_contact",
            NotRemote::Equipment => "equipment",
        }
    }
}

/// Whether télésoin allows an act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    Allowed,
    NotAllowed(NotRemote),
}

/// One act of a catalogue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Act {
    /// Our stable code for the act (the NGAP has no short code for these lines).
    pub code: &'static str,
    /// The NGAP wording, in French.
    pub label: &'static str,
    /// The coefficient as a float, kept for the wire types that already show it. Never compute
    /// money with it: use [`Act::coefficient_tenths`].
    pub amk_coefficient: f64,
    /// The same coefficient, exactly, in tenths (7.5 -> 75): every NGAP coefficient of the
    /// catalogue has at most one decimal, so money is computed in integers.
    pub coefficient_tenths: u32,
    /// The key letter written when the act is done in person (`AMK`, `AMS`, or one of the
    /// letters of 2024: `ARL`, `NMI`, `DRA`, `APM`, `PLL`...). `None`: not verified (see the
    /// catalogue's header). Télésoin bills [`crate::tariff::telesoin_letter`] whatever it is.
    pub in_person_letter: Option<&'static str>,
    pub remote: Remote,
    /// The line was checked against a source quoted in the catalogue's header.
    pub verified: bool,
}

impl Act {
    pub fn remote_allowed(&self) -> bool {
        self.remote == Remote::Allowed
    }
}

/// A catalogue and the day it came into force.
#[derive(Debug, Clone, Copy)]
pub struct Catalogue {
    /// `ngap_2021` or `ngap_2024`.
    pub id: &'static str,
    pub effective_from: NaiveDate,
    /// Where the list comes from.
    pub source: &'static str,
    pub acts: &'static [Act],
}

/// Every catalogue, oldest first.
pub fn catalogues() -> [Catalogue; 2] {
    [ngap_2021::catalogue(), ngap_2024::catalogue()]
}

/// The catalogue in force on `day` (in France). Before the first one, the first one.
pub fn catalogue_on(day: NaiveDate) -> Catalogue {
    let all = catalogues();
    all.iter()
        .rev()
        .find(|c| c.effective_from <= day)
        .copied()
        .unwrap_or(all[0])
}

/// The 2021 catalogue (seed 002), kept for sessions held before 22 February 2024.
pub const CATALOGUE_2021: &[Act] = ngap_2021::ACTS;

/// The catalogue in force since 22 February 2024.
pub const CATALOGUE: &[Act] = ngap_2024::ACTS;

/// The act with this code in the current catalogue, else in the 2021 one.
pub fn find(code: &str) -> Option<&'static Act> {
    CATALOGUE
        .iter()
        .chain(CATALOGUE_2021)
        .find(|a| a.code == code)
}

/// The act with this code in the catalogue in force on `day`.
pub fn find_on(code: &str, day: NaiveDate) -> Option<&'static Act> {
    catalogue_on(day).acts.iter().find(|a| a.code == code)
}

/// The act of a stored session of `day`: in that day's catalogue, else in any (a session kept
/// under a code of another catalogue still shows its act).
pub fn of_session(code: &str, day: NaiveDate) -> Option<&'static Act> {
    find_on(code, day).or_else(|| find(code))
}

/// May `code` be scheduled in télésoin on `day`? The act of the catalogue in force that day, or:
/// `InvalidInput` (no such act that day), `ActNotRemote` (it needs direct contact or equipment).
pub fn schedulable(code: &str, day: NaiveDate) -> Result<&'static Act, RefusalCode> {
    let act = find_on(code, day).ok_or(RefusalCode::InvalidInput)?;
    match act.remote {
        Remote::Allowed => Ok(act),
        Remote::NotAllowed(_) => Err(RefusalCode::ActNotRemote),
    }
}

/// Builds a line of a catalogue (the data files stay one line per act).
const fn act(
    code: &'static str,
    label: &'static str,
    coefficient_tenths: u32,
    in_person_letter: Option<&'static str>,
    remote: Remote,
    verified: bool,
) -> Act {
    Act {
        code,
        label,
        amk_coefficient: coefficient_tenths as f64 / 10.0,
        coefficient_tenths,
        in_person_letter,
        remote,
        verified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn catalogue_2021_matches_seed_002() {
        assert_eq!(CATALOGUE_2021.len(), 15);
        assert!(
            CATALOGUE_2021
                .iter()
                .all(|a| a.remote_allowed() && a.verified)
        );
        assert_eq!(
            find_on("NEURO_MULTI", d("2023-01-01")).map(|a| a.amk_coefficient),
            Some(10.0)
        );
        assert_eq!(
            find_on("HEMIPLEGIE", d("2023-01-01")).map(|a| a.amk_coefficient),
            Some(9.0)
        );
        assert!(find_on("BALNEO", d("2023-01-01")).is_none());
    }

    #[test]
    fn codes_are_unique_in_each_catalogue() {
        for c in catalogues() {
            let mut codes: Vec<_> = c.acts.iter().map(|a| a.code).collect();
            codes.sort_unstable();
            let n = codes.len();
            codes.dedup();
            assert_eq!(codes.len(), n, "{}", c.id);
        }
    }

    #[test]
    fn exact_coefficient_agrees_with_the_float() {
        for act in CATALOGUE.iter().chain(CATALOGUE_2021) {
            assert_eq!(
                f64::from(act.coefficient_tenths) / 10.0,
                act.amk_coefficient,
                "{}",
                act.code
            );
            assert!(act.coefficient_tenths > 0, "{}", act.code);
        }
        assert_eq!(
            find("NEURO_UN_MEMBRE").map(|a| a.coefficient_tenths),
            Some(83)
        );
        assert_eq!(find("MEMBRE").map(|a| a.coefficient_tenths), Some(75));
    }

    #[test]
    fn the_catalogue_in_force_by_date() {
        for (day, want) in [
            ("2021-06-04", "ngap_2021"),
            ("2024-02-21", "ngap_2021"),
            ("2024-02-22", "ngap_2024"),
            ("2026-12-02", "ngap_2024"),
            ("2000-01-01", "ngap_2021"),
        ] {
            assert_eq!(catalogue_on(d(day)).id, want, "{day}");
        }
        // Acts new in 2024 cannot be scheduled on a day before it.
        assert!(find_on("AMPUTATION_MEMBRE", d("2024-02-21")).is_none());
        assert!(find_on("AMPUTATION_MEMBRE", d("2024-02-22")).is_some());
    }

    #[test]
    fn the_2024_catalogue_is_the_new_nomenclature() {
        assert!(CATALOGUE.len() >= 40, "{} acts", CATALOGUE.len());
        // Every act of 2021 continues under its code.
        for a in CATALOGUE_2021 {
            assert!(
                CATALOGUE.iter().any(|b| b.code == a.code),
                "{} missing in 2024",
                a.code
            );
        }
        // The exclusions named by the convention.
        for (code, why) in [
            ("DESENCOMBREMENT_URGENT", NotRemote::DirectContact),
            ("BALNEOTHERAPIE", NotRemote::Equipment),
            ("DRAINAGE_LYMPHATIQUE_MEMBRE", NotRemote::DirectContact),
            ("PERINEE", NotRemote::DirectContact),
        ] {
            assert_eq!(
                find_on(code, d("2024-03-01")).map(|a| a.remote),
                Some(Remote::NotAllowed(why)),
                "{code}"
            );
        }
        assert!(
            CATALOGUE.iter().filter(|a| a.remote_allowed()).count() > CATALOGUE.len() * 3 / 4,
            "all acts but a few are allowed remotely"
        );
    }

    #[test]
    fn schedulable_table() {
        for (code, day, want) in [
            ("MEMBRE", "2026-12-02", Ok("MEMBRE")),
            ("MEMBRE", "2023-12-02", Ok("MEMBRE")),
            (
                "DESENCOMBREMENT_URGENT",
                "2026-12-02",
                Err(RefusalCode::ActNotRemote),
            ),
            (
                "BALNEOTHERAPIE",
                "2026-12-02",
                Err(RefusalCode::ActNotRemote),
            ),
            (
                "AMPUTATION_MEMBRE",
                "2023-12-02",
                Err(RefusalCode::InvalidInput),
            ),
            ("NOPE", "2026-12-02", Err(RefusalCode::InvalidInput)),
        ] {
            assert_eq!(
                schedulable(code, d(day)).map(|a| a.code),
                want,
                "{code} {day}"
            );
        }
        let code = RefusalCode::ActNotRemote;
        assert_eq!(code.code(), "act_not_remote");
        assert!(code.message_fr().contains("au cabinet"));
    }
}
