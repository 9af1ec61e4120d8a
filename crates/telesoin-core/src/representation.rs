//! Who speaks for the patient, and who sits next to them.
//!
//! - **Consent.** An adult consents for themselves. For a minor (under 18 on the day the consent
//!   is given, in France), the consent is the legal representative's: it is recorded with their
//!   name and their relation to the patient ("mère", "père", "tuteur"...), whether the kiné
//!   records it or the representative gives it on the join page. Without them it is refused,
//!   with `representative_required` (the kiné's form) or `representative_consent_required` (the
//!   join page: the minor cannot consent herself); a representative named for an adult is
//!   refused with `representative_unexpected`.
//! - **Companions.** The presence of a parent or an aidant next to the patient is an
//!   *attestation* with the companion's name and relation, never a technical incident: the
//!   record, the report, the invoice and the FHIR export say "En présence de <nom> (<relation>)".
//!   An attestation without a name (or a relation) is refused with `companion_unnamed`.
//!
//! Names are trimmed; blank is absent. At most [`NAME_MAX`] and [`RELATION_MAX`] characters, no
//! control character (longer or stranger text is refused as `invalid_input`).

use chrono::NaiveDate;

use crate::admission::RefusalCode;
use crate::model::{Companion, Patient};

/// The longest name kept (characters).
pub const NAME_MAX: usize = 120;
/// The longest relation kept (characters).
pub const RELATION_MAX: usize = 40;

/// A person named in the record: a legal representative or a companion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPerson {
    pub name: String,
    /// Their relation to the patient, in their own words: "mère", "père", "tuteur", "fils"...
    pub relation: String,
}

impl NamedPerson {
    /// "Sophie Petit (mère)".
    pub fn words(&self) -> String {
        format!("{} ({})", self.name, self.relation)
    }
}

/// Who gave a consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentGiver {
    /// The patient, an adult, for themselves.
    Patient,
    /// The legal representative of a minor patient.
    Representative(NamedPerson),
}

impl ConsentGiver {
    /// What the record, the report and the invoice say, in French.
    pub fn words_fr(&self) -> String {
        match self {
            ConsentGiver::Patient => "Consentement au télésoin donné par le patient".into(),
            ConsentGiver::Representative(p) => format!(
                "Consentement au télésoin donné par {}, représentant légal du patient mineur",
                p.words()
            ),
        }
    }
}

/// Where a consent is given: the rule is the same, the refusal says what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentChannel {
    /// The kiné records it (oral or written) in the patient's file.
    Kine,
    /// The patient's side gives it on the join page.
    JoinPage,
}

/// A name and a relation as typed: `Ok(None)` when either is absent or blank.
fn named(name: Option<&str>, relation: Option<&str>) -> Result<Option<NamedPerson>, RefusalCode> {
    let clean = |s: Option<&str>, max: usize| -> Result<Option<String>, RefusalCode> {
        let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if s.chars().count() > max || s.chars().any(char::is_control) {
            return Err(RefusalCode::InvalidInput);
        }
        Ok(Some(s.to_owned()))
    };
    let name = clean(name, NAME_MAX)?;
    let relation = clean(relation, RELATION_MAX)?;
    Ok(match (name, relation) {
        (Some(name), Some(relation)) => Some(NamedPerson { name, relation }),
        _ => None,
    })
}

/// Is the patient a minor on `on` (the day the consent is given, or the session day)?
pub fn is_minor(patient: &Patient, on: NaiveDate) -> bool {
    patient.age_on(on) < 18
}

/// Who gives this consent: the adult patient, or the named legal representative of a minor.
pub fn consent_giver(
    patient: &Patient,
    on: NaiveDate,
    channel: ConsentChannel,
    representative_name: Option<&str>,
    representative_relation: Option<&str>,
) -> Result<ConsentGiver, RefusalCode> {
    let given = representative_name.is_some_and(|s| !s.trim().is_empty())
        || representative_relation.is_some_and(|s| !s.trim().is_empty());
    let person = named(representative_name, representative_relation)?;
    match (is_minor(patient, on), person) {
        (true, Some(p)) => Ok(ConsentGiver::Representative(p)),
        (true, None) => Err(match channel {
            ConsentChannel::Kine => RefusalCode::RepresentativeRequired,
            ConsentChannel::JoinPage => RefusalCode::RepresentativeConsentRequired,
        }),
        (false, _) if given => Err(RefusalCode::RepresentativeUnexpected),
        (false, _) => Ok(ConsentGiver::Patient),
    }
}

/// An attested presence next to the patient: who (by name), and as what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    pub companion: Companion,
    pub person: NamedPerson,
}

impl Attestation {
    /// "En présence de Sophie Petit (mère)".
    pub fn words_fr(&self) -> String {
        format!("En présence de {}", self.person.words())
    }
}

/// The patient's side attests that `companion` is present: only with a name and a relation.
pub fn attestation(
    companion: Companion,
    name: Option<&str>,
    relation: Option<&str>,
) -> Result<Attestation, RefusalCode> {
    match named(name, relation)? {
        Some(person) => Ok(Attestation { companion, person }),
        None => Err(RefusalCode::CompanionUnnamed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{KineId, PatientId};
    use uuid::Uuid;

    fn patient(birth: &str) -> Patient {
        Patient {
            id: PatientId(Uuid::nil()),
            kine: KineId(Uuid::nil()),
            display_name: "Léo Petit".into(),
            birth_date: birth.parse().expect("date"),
            loss_of_autonomy: false,
            gp_contact: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn mother() -> ConsentGiver {
        ConsentGiver::Representative(NamedPerson {
            name: "Sophie Petit".into(),
            relation: "mère".into(),
        })
    }

    #[test]
    fn rule_consent_giver() {
        use ConsentChannel::*;
        use RefusalCode::*;
        let long = "x".repeat(NAME_MAX + 1);
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, &str, ConsentChannel, Option<&str>, Option<&str>, Result<ConsentGiver, RefusalCode>)> = vec![
            ("an adult consents for themselves", "1980-01-01", "2026-11-22", Kine, None, None, Ok(ConsentGiver::Patient)),
            ("an adult on the join page", "1980-01-01", "2026-11-22", JoinPage, None, None, Ok(ConsentGiver::Patient)),
            ("blank fields are absent", "1980-01-01", "2026-11-22", JoinPage, Some("  "), Some(""), Ok(ConsentGiver::Patient)),
            ("a representative named for an adult", "1980-01-01", "2026-11-22", Kine, Some("Sophie Petit"), Some("mère"), Err(RepresentativeUnexpected)),
            ("a minor: the representative, named, trimmed", "2014-03-01", "2026-11-22", Kine, Some(" Sophie Petit "), Some("mère "), Ok(mother())),
            ("a minor on the join page: the representative", "2014-03-01", "2026-11-22", JoinPage, Some("Sophie Petit"), Some("mère"), Ok(mother())),
            ("a minor, recorded by the kiné without a name", "2014-03-01", "2026-11-22", Kine, None, None, Err(RepresentativeRequired)),
            ("a minor, a name without a relation", "2014-03-01", "2026-11-22", Kine, Some("Sophie Petit"), None, Err(RepresentativeRequired)),
            ("a minor consenting herself on the join page", "2014-03-01", "2026-11-22", JoinPage, None, None, Err(RepresentativeConsentRequired)),
            ("a minor, a blank name on the join page", "2014-03-01", "2026-11-22", JoinPage, Some(" "), Some("mère"), Err(RepresentativeConsentRequired)),
            ("the day before 18: still a minor", "2008-11-23", "2026-11-22", JoinPage, None, None, Err(RepresentativeConsentRequired)),
            ("18 today: an adult", "2008-11-22", "2026-11-22", JoinPage, None, None, Ok(ConsentGiver::Patient)),
            ("a name too long", "2014-03-01", "2026-11-22", Kine, Some(long.as_str()), Some("mère"), Err(InvalidInput)),
            ("a control character", "2014-03-01", "2026-11-22", Kine, Some("Sophie\u{7}"), Some("mère"), Err(InvalidInput)),
        ];
        for (name, birth, on, channel, rep, rel, want) in cases {
            assert_eq!(
                consent_giver(&patient(birth), day(on), channel, rep, rel),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn rule_attestation_is_named() {
        use Companion::*;
        #[rustfmt::skip]
        let cases: Vec<(&str, Companion, Option<&str>, Option<&str>, Result<&str, RefusalCode>)> = vec![
            ("a parent, named", Parent, Some("Sophie Petit"), Some("mère"), Ok("En présence de Sophie Petit (mère)")),
            ("an aidant, named", Aidant, Some(" Marc Durand "), Some("fils"), Ok("En présence de Marc Durand (fils)")),
            ("no name", Parent, None, Some("mère"), Err(RefusalCode::CompanionUnnamed)),
            ("a blank name", Aidant, Some("   "), Some("fils"), Err(RefusalCode::CompanionUnnamed)),
            ("no relation", Parent, Some("Sophie Petit"), None, Err(RefusalCode::CompanionUnnamed)),
            ("nothing at all (an older client)", Parent, None, None, Err(RefusalCode::CompanionUnnamed)),
        ];
        for (name, companion, n, r, want) in cases {
            let got = attestation(companion, n, r);
            match want {
                Ok(words) => {
                    let a = got.expect(name);
                    assert_eq!(
                        (a.companion, a.words_fr().as_str()),
                        (companion, words),
                        "{name}"
                    );
                }
                Err(code) => assert_eq!(got, Err(code), "{name}"),
            }
        }
    }

    #[test]
    fn consent_words() {
        assert_eq!(
            ConsentGiver::Patient.words_fr(),
            "Consentement au télésoin donné par le patient"
        );
        assert_eq!(
            mother().words_fr(),
            "Consentement au télésoin donné par Sophie Petit (mère), représentant légal du patient mineur"
        );
    }

    #[test]
    fn refusals_have_words() {
        for code in [
            RefusalCode::RepresentativeRequired,
            RefusalCode::RepresentativeConsentRequired,
            RefusalCode::RepresentativeUnexpected,
            RefusalCode::CompanionUnnamed,
        ] {
            assert!(!code.message_fr().is_empty() && !code.message_en().is_empty());
        }
    }
}
