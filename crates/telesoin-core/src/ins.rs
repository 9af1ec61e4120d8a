//! INS, the identité nationale de santé (mandatory in every exchange since 1 January 2021).
//!
//! An INS is a matricule (the NIR, or a temporary NIA) with the OID of the authority that assigned
//! it, and the five reference traits from the national register: birth names, first names, birth
//! date, sex and birth place code (INSEE). The identity has a status, as the national identity
//! vigilance rules (RNIV) define it:
//!
//! | status | identity checked on an ID document | INS retrieved from INSi |
//! |---|---|---|
//! | `provisoire` | no | no |
//! | `validee` | yes | no |
//! | `recuperee` | no | yes |
//! | `qualifiee` | yes | yes |
//!
//! So a matricule exists only for `recuperee` and `qualifiee`, and the INS may be carried in a
//! document or an export only once `qualifiee` ([`PatientIdentity::document_ins`]). The check
//! here is the format and the NIR key, and the coherence of the matricule with the traits: the
//! INSi teleservice call itself needs a CPS card and the national network and is not made.

use chrono::{Datelike, NaiveDate};

use crate::RefusalCode;

/// Who assigned the matricule, by OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsAuthority {
    /// INS-NIR: the NIR (numéro d'inscription au répertoire), 1.2.250.1.213.1.4.8.
    Nir,
    /// INS-NIA: a temporary identification number, 1.2.250.1.213.1.4.9.
    Nia,
    /// INS-NIR of a test patient (test data sets), 1.2.250.1.213.1.4.10.
    NirTest,
    /// INS-NIR of a fictitious demonstration patient, 1.2.250.1.213.1.4.11.
    NirDemo,
}

impl InsAuthority {
    pub const ALL: [InsAuthority; 4] = [
        InsAuthority::Nir,
        InsAuthority::Nia,
        InsAuthority::NirTest,
        InsAuthority::NirDemo,
    ];

    pub fn oid(self) -> &'static str {
        match self {
            InsAuthority::Nir => "1.2.250.1.213.1.4.8",
            InsAuthority::Nia => "1.2.250.1.213.1.4.9",
            InsAuthority::NirTest => "1.2.250.1.213.1.4.10",
            InsAuthority::NirDemo => "1.2.250.1.213.1.4.11",
        }
    }

    /// Accepts the bare OID or its `urn:oid:` form.
    pub fn parse(oid: &str) -> Option<Self> {
        let oid = oid.trim();
        let oid = oid.strip_prefix("urn:oid:").unwrap_or(oid);
        Self::ALL.into_iter().find(|a| a.oid() == oid)
    }

    /// The identifier type code of FR Core (`fr-core-cs-v2-0203`).
    pub fn fhir_type(self) -> &'static str {
        match self {
            InsAuthority::Nir => "INS-NIR",
            InsAuthority::Nia => "INS-NIA",
            InsAuthority::NirTest => "INS-NIR-TEST",
            InsAuthority::NirDemo => "INS-NIR-DEMO",
        }
    }

    /// FR Core: an INS-NIR is `official`, an INS-NIA `temp`.
    pub fn fhir_use(self) -> &'static str {
        match self {
            InsAuthority::Nia => "temp",
            _ => "official",
        }
    }
}

/// The identity status of the RNIV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStatus {
    Provisoire,
    Recuperee,
    Validee,
    Qualifiee,
}

impl IdentityStatus {
    pub const ALL: [IdentityStatus; 4] = [
        IdentityStatus::Provisoire,
        IdentityStatus::Recuperee,
        IdentityStatus::Validee,
        IdentityStatus::Qualifiee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityStatus::Provisoire => "provisoire",
            IdentityStatus::Recuperee => "recuperee",
            IdentityStatus::Validee => "validee",
            IdentityStatus::Qualifiee => "qualifiee",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }

    /// The FR Core identity status code (`fr-core-cs-identity-status`).
    pub fn fhir_code(self) -> &'static str {
        match self {
            IdentityStatus::Provisoire => "PROV",
            IdentityStatus::Recuperee => "RECUP",
            IdentityStatus::Validee => "VALI",
            IdentityStatus::Qualifiee => "QUAL",
        }
    }

    /// Whether the INS was retrieved from the national register: only then is there a matricule.
    pub fn has_matricule(self) -> bool {
        matches!(self, IdentityStatus::Recuperee | IdentityStatus::Qualifiee)
    }
}

/// The sex trait of the INS: `M`, `F`, or `I` (indéterminé).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
    Undetermined,
}

impl Sex {
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
            Sex::Undetermined => "I",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "M" => Some(Sex::Male),
            "F" => Some(Sex::Female),
            "I" => Some(Sex::Undetermined),
            _ => None,
        }
    }

    /// FHIR `Patient.gender`.
    pub fn fhir_gender(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Undetermined => "unknown",
        }
    }
}

/// A matricule that passed its format and key check. Only [`check`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matricule {
    value: String,
    authority: InsAuthority,
}

impl Matricule {
    /// The 15 characters (13 + the 2-digit key), without spaces.
    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn authority(&self) -> InsAuthority {
        self.authority
    }
}

/// The five reference traits, as the national register spells them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traits {
    /// Nom(s) de naissance.
    pub birth_names: String,
    /// Prénom(s) de naissance, in order, separated by spaces.
    pub first_names: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    /// Code INSEE of the birth place: a commune (`75056`, `2A004`, `97105`) or `99xxx` abroad.
    pub birth_place: String,
}

/// A patient's identity that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientIdentity {
    pub status: IdentityStatus,
    pub matricule: Option<Matricule>,
    pub traits: Traits,
}

impl PatientIdentity {
    /// The INS a document or an export may carry: only a `qualifiee` identity's (RNIV).
    pub fn document_ins(&self) -> Option<&Matricule> {
        match self.status {
            IdentityStatus::Qualifiee => self.matricule.as_ref(),
            _ => None,
        }
    }
}

/// What a kiné or a platform typed, before any check.
#[derive(Debug, Clone, Copy)]
pub struct IdentityInput<'a> {
    pub status: &'a str,
    pub matricule: Option<&'a str>,
    /// Defaults to the INS-NIR OID when a matricule is given without one.
    pub oid: Option<&'a str>,
    pub birth_names: &'a str,
    pub first_names: &'a str,
    pub birth_date: NaiveDate,
    pub sex: &'a str,
    pub birth_place: &'a str,
    /// The birth date already on the patient's record: the traits must agree with it.
    pub record_birth_date: NaiveDate,
}

/// The NIR key of the first 13 characters: 97 - (number mod 97), Corsica's `2A`/`2B` counted
/// as `19`/`18`. None if the 13 characters are not a NIR body.
pub fn nir_key(body: &str) -> Option<u32> {
    let b = body.as_bytes();
    if b.len() != 13 {
        return None;
    }
    let digits: String = match &body[5..7] {
        "2A" => format!("{}19{}", &body[..5], &body[7..]),
        "2B" => format!("{}18{}", &body[..5], &body[7..]),
        _ => body.to_owned(),
    };
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(97 - (n % 97) as u32)
}

/// Checks a matricule's format and key: 15 characters, digits except Corsica's `2A`/`2B` in the
/// department, a first digit that gives a sex (1-4, 7, 8), and the key. Spaces are ignored.
pub fn check_matricule(raw: &str, authority: InsAuthority) -> Result<Matricule, RefusalCode> {
    let value: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let value = value.to_ascii_uppercase();
    if value.len() != 15 || !value.is_ascii() {
        return Err(RefusalCode::InsFormat);
    }
    let (body, key) = value.split_at(13);
    if !matches!(value.as_bytes()[0], b'1'..=b'4' | b'7' | b'8')
        || !key.bytes().all(|c| c.is_ascii_digit())
    {
        return Err(RefusalCode::InsFormat);
    }
    let expected = nir_key(body).ok_or(RefusalCode::InsFormat)?;
    if key.parse::<u32>().ok() != Some(expected) {
        return Err(RefusalCode::InsKey);
    }
    Ok(Matricule { value, authority })
}

fn valid_name(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.chars().count() <= 100
        && s.chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\''))
}

fn valid_birth_place(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && (b.iter().all(u8::is_ascii_digit)
            || (b[0] == b'2'
                && matches!(b[1], b'A' | b'B')
                && b[2..].iter().all(u8::is_ascii_digit)))
}

/// The full check of an identity: each trait's form, the status against the matricule's
/// presence, the matricule's format and key, and its coherence with the traits (the sex digit,
/// the year and, when it is a real month, the month of birth; the birth date on record).
pub fn check(input: &IdentityInput<'_>) -> Result<PatientIdentity, RefusalCode> {
    let status = IdentityStatus::parse(input.status).ok_or(RefusalCode::InsStatus)?;
    let sex = Sex::parse(input.sex).ok_or(RefusalCode::InsTraits)?;
    let birth_place = input.birth_place.trim().to_ascii_uppercase();
    if !valid_name(input.birth_names)
        || !valid_name(input.first_names)
        || !valid_birth_place(&birth_place)
    {
        return Err(RefusalCode::InsTraits);
    }
    if input.birth_date != input.record_birth_date {
        return Err(RefusalCode::InsMismatch);
    }
    let traits = Traits {
        birth_names: input.birth_names.trim().to_owned(),
        first_names: input.first_names.trim().to_owned(),
        birth_date: input.birth_date,
        sex,
        birth_place,
    };
    let raw = input.matricule.map(str::trim).filter(|m| !m.is_empty());
    let matricule = match (status.has_matricule(), raw) {
        (true, Some(raw)) => {
            let authority = match input.oid.map(str::trim).filter(|o| !o.is_empty()) {
                Some(oid) => InsAuthority::parse(oid).ok_or(RefusalCode::InsOid)?,
                None => InsAuthority::Nir,
            };
            let m = check_matricule(raw, authority)?;
            coherent(&m, &traits)?;
            Some(m)
        }
        // A retrieved identity has its matricule; one never retrieved cannot have one.
        (true, None) | (false, Some(_)) => return Err(RefusalCode::InsStatus),
        (false, None) => None,
    };
    Ok(PatientIdentity {
        status,
        matricule,
        traits,
    })
}

/// Which field of the identity a refusal of [`check`] is about (the JSON names of the REST body:
/// `status`, `matricule`, `oid`, `birth_names`, `first_names`, `birth_date`, `sex`, `birth_place`).
pub fn refused_field(input: &IdentityInput<'_>, code: RefusalCode) -> &'static str {
    match code {
        RefusalCode::InsStatus => "status",
        RefusalCode::InsOid => "oid",
        RefusalCode::InsTraits if Sex::parse(input.sex).is_none() => "sex",
        RefusalCode::InsTraits if !valid_name(input.birth_names) => "birth_names",
        RefusalCode::InsTraits if !valid_name(input.first_names) => "first_names",
        RefusalCode::InsTraits => "birth_place",
        RefusalCode::InsMismatch if input.birth_date != input.record_birth_date => "birth_date",
        _ => "matricule",
    }
}

/// The matricule says the sex and the year (and month) of birth: they must match the traits.
fn coherent(m: &Matricule, t: &Traits) -> Result<(), RefusalCode> {
    let v = m.value.as_bytes();
    let sex_digit = v[0] - b'0';
    let sex_ok = match t.sex {
        Sex::Male => sex_digit % 2 == 1,
        Sex::Female => sex_digit % 2 == 0,
        Sex::Undetermined => true,
    };
    let year: i32 = m.value[1..3].parse().unwrap_or(-1);
    let month: u32 = m.value[3..5].parse().unwrap_or(0);
    // Months 20-42 and 50-99 stand for an unknown month in the register.
    let month_ok = !(1..=12).contains(&month) || month == t.birth_date.month();
    if sex_ok && year == t.birth_date.year().rem_euclid(100) && month_ok {
        Ok(())
    } else {
        Err(RefusalCode::InsMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn nir_key_table() {
        // Keys computed independently (97 - n mod 97, 2A -> 19, 2B -> 18).
        for (body, key) in [
            ("1841275056123", Some(55)),
            ("2950599350001", Some(96)),
            ("2690549588157", Some(80)),
            ("185052A004012", Some(70)),
            ("185052B004012", Some(97)),
            ("1550399123456", Some(87)),
            ("185052C004012", None),
            ("18412750561", None),
            ("18412750561234", None),
            ("1841275O56123", None),
        ] {
            assert_eq!(nir_key(body), key, "{body}");
        }
    }

    #[test]
    fn matricule_table() {
        use RefusalCode::{InsFormat, InsKey};
        for (raw, expected) in [
            ("184127505612355", Ok("184127505612355")),
            ("1 84 12 75 056 123 55", Ok("184127505612355")),
            ("185052a00401270", Ok("185052A00401270")),
            ("185052B00401297", Ok("185052B00401297")),
            ("184127505612354", Err(InsKey)),
            ("185052A00401271", Err(InsKey)),
            ("18412750561235", Err(InsFormat)),
            ("1841275056123555", Err(InsFormat)),
            ("584127505612355", Err(InsFormat)),
            ("18412750561235X", Err(InsFormat)),
            ("185052C00401270", Err(InsFormat)),
            ("", Err(InsFormat)),
        ] {
            assert_eq!(
                check_matricule(raw, InsAuthority::Nir).map(|m| m.value),
                expected.map(str::to_owned),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn oid_table() {
        for (oid, expected) in [
            ("1.2.250.1.213.1.4.8", Some(InsAuthority::Nir)),
            ("urn:oid:1.2.250.1.213.1.4.9", Some(InsAuthority::Nia)),
            ("1.2.250.1.213.1.4.10", Some(InsAuthority::NirTest)),
            ("1.2.250.1.213.1.4.11", Some(InsAuthority::NirDemo)),
            ("1.2.250.1.213.1.4.1", None),
            ("1.2.250.1.71.4.2.1", None),
        ] {
            assert_eq!(InsAuthority::parse(oid), expected, "{oid}");
        }
    }

    fn input<'a>(status: &'a str, matricule: Option<&'a str>) -> IdentityInput<'a> {
        IdentityInput {
            status,
            matricule,
            oid: None,
            birth_names: "DUPONT",
            first_names: "JEAN PIERRE",
            birth_date: d("1984-12-03"),
            sex: "M",
            birth_place: "75056",
            record_birth_date: d("1984-12-03"),
        }
    }

    #[test]
    fn identity_table() {
        use RefusalCode::*;
        let good = "184127505612355";
        let cases: Vec<(&str, IdentityInput<'_>, Result<IdentityStatus, RefusalCode>)> = vec![
            (
                "qualified",
                input("qualifiee", Some(good)),
                Ok(IdentityStatus::Qualifiee),
            ),
            (
                "recovered",
                input("recuperee", Some(good)),
                Ok(IdentityStatus::Recuperee),
            ),
            (
                "provisional",
                input("provisoire", None),
                Ok(IdentityStatus::Provisoire),
            ),
            (
                "validated",
                input("validee", None),
                Ok(IdentityStatus::Validee),
            ),
            (
                "blank matricule is none",
                input("validee", Some("  ")),
                Ok(IdentityStatus::Validee),
            ),
            (
                "qualified needs a matricule",
                input("qualifiee", None),
                Err(InsStatus),
            ),
            (
                "provisional has none",
                input("provisoire", Some(good)),
                Err(InsStatus),
            ),
            ("unknown status", input("verified", None), Err(InsStatus)),
            (
                "bad key",
                input("qualifiee", Some("184127505612354")),
                Err(InsKey),
            ),
            (
                "NIA OID",
                IdentityInput {
                    oid: Some("1.2.250.1.213.1.4.9"),
                    ..input("qualifiee", Some(good))
                },
                Ok(IdentityStatus::Qualifiee),
            ),
            (
                "unknown OID",
                IdentityInput {
                    oid: Some("1.2.3"),
                    ..input("qualifiee", Some(good))
                },
                Err(InsOid),
            ),
            (
                "sex digit 1 is not F",
                IdentityInput {
                    sex: "F",
                    ..input("qualifiee", Some(good))
                },
                Err(InsMismatch),
            ),
            (
                "sex I matches any digit",
                IdentityInput {
                    sex: "I",
                    ..input("qualifiee", Some(good))
                },
                Ok(IdentityStatus::Qualifiee),
            ),
            (
                "year differs",
                IdentityInput {
                    birth_date: d("1985-12-03"),
                    record_birth_date: d("1985-12-03"),
                    ..input("qualifiee", Some(good))
                },
                Err(InsMismatch),
            ),
            (
                "month differs",
                IdentityInput {
                    birth_date: d("1984-11-03"),
                    record_birth_date: d("1984-11-03"),
                    ..input("qualifiee", Some(good))
                },
                Err(InsMismatch),
            ),
            (
                // Month 99 in the NIR: unknown month, any month of birth is coherent.
                "unknown month in the NIR",
                IdentityInput {
                    birth_date: d("1955-06-01"),
                    record_birth_date: d("1955-06-01"),
                    ..input("qualifiee", Some("155992A00401237"))
                },
                Ok(IdentityStatus::Qualifiee),
            ),
            (
                "traits disagree with the record",
                IdentityInput {
                    record_birth_date: d("1984-12-04"),
                    ..input("validee", None)
                },
                Err(InsMismatch),
            ),
            (
                "no sex",
                IdentityInput {
                    sex: "X",
                    ..input("validee", None)
                },
                Err(InsTraits),
            ),
            (
                "no name",
                IdentityInput {
                    birth_names: " ",
                    ..input("validee", None)
                },
                Err(InsTraits),
            ),
            (
                "digits in a name",
                IdentityInput {
                    first_names: "JEAN2",
                    ..input("validee", None)
                },
                Err(InsTraits),
            ),
            (
                "Corsican birth place",
                IdentityInput {
                    birth_place: "2a004",
                    ..input("validee", None)
                },
                Ok(IdentityStatus::Validee),
            ),
            (
                "birth place abroad",
                IdentityInput {
                    birth_place: "99100",
                    ..input("validee", None)
                },
                Ok(IdentityStatus::Validee),
            ),
            (
                "bad birth place",
                IdentityInput {
                    birth_place: "7505",
                    ..input("validee", None)
                },
                Err(InsTraits),
            ),
        ];
        for (name, i, expected) in cases {
            assert_eq!(check(&i).map(|p| p.status), expected, "{name}");
        }
    }

    #[test]
    fn refused_field_table() {
        let good = "184127505612355";
        let cases: Vec<(IdentityInput<'_>, &str)> = vec![
            (input("verified", None), "status"),
            (input("qualifiee", Some("184127505612354")), "matricule"),
            (input("qualifiee", Some("18412750561")), "matricule"),
            (
                IdentityInput {
                    oid: Some("1.2.3"),
                    ..input("qualifiee", Some(good))
                },
                "oid",
            ),
            (
                IdentityInput {
                    sex: "F",
                    ..input("qualifiee", Some(good))
                },
                "matricule",
            ),
            (
                IdentityInput {
                    record_birth_date: d("1984-12-04"),
                    ..input("validee", None)
                },
                "birth_date",
            ),
            (
                IdentityInput {
                    sex: "X",
                    ..input("validee", None)
                },
                "sex",
            ),
            (
                IdentityInput {
                    birth_names: " ",
                    ..input("validee", None)
                },
                "birth_names",
            ),
            (
                IdentityInput {
                    first_names: "JEAN2",
                    ..input("validee", None)
                },
                "first_names",
            ),
            (
                IdentityInput {
                    birth_place: "7505",
                    ..input("validee", None)
                },
                "birth_place",
            ),
        ];
        for (i, field) in cases {
            let code = check(&i).expect_err(field);
            assert_eq!(refused_field(&i, code), field, "{code:?}");
        }
    }

    #[test]
    fn carried_in_documents_only_when_qualified() {
        let good = "184127505612355";
        for (status, carried) in [("qualifiee", true), ("recuperee", false)] {
            let id = check(&input(status, Some(good))).expect("valid");
            assert_eq!(id.document_ins().is_some(), carried, "{status}");
        }
        for status in ["provisoire", "validee"] {
            let id = check(&input(status, None)).expect("valid");
            assert!(id.document_ins().is_none(), "{status}");
        }
        let q = check(&input("qualifiee", Some(good))).expect("valid");
        let m = q.document_ins().expect("carried");
        assert_eq!(
            (m.value(), m.authority().oid()),
            (good, "1.2.250.1.213.1.4.8")
        );
    }
}
