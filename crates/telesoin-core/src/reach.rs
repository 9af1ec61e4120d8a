//! Reaching the patient: contact details, the SMS and e-mail texts, and when reminders are due.
//!
//! - [`normalize_phone`]: a French or international number as typed (`06 12 34 56 78`,
//!   `+33 6 12 34 56 78`, `0033612345678`, `06.12.34.56.78`) -> E.164 (`+33612345678`).
//! - [`normalize_email`]: a plausible address, trimmed and with a lower-case domain.
//! - [`Channel`], [`Preference`]: e-mail, SMS, both or neither, as the patient prefers.
//! - [`reminder_due`]: the instants reminders are due for a session, given the kiné's offsets
//!   and `now` (a reminder already past when the session is scheduled is not sent late).
//! - [`gsm7_units`], [`sms_invitation`]: the SMS text, kept to one 160-unit GSM-7 segment when
//!   the link leaves room for it.
//! - [`Wording`]: the plain French words of invitations, reminders and notices, with the date
//!   and hour in Europe/Paris.
//!
//! Pure functions over values: no clock, no IO.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Why a phone number or an e-mail address is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("not a phone number: 10 digits starting with 0 (06 12 34 56 78) or +CC...")]
    Phone,
    #[error("not an e-mail address")]
    Email,
}

/// A phone number as typed -> E.164. French national numbers (10 digits, a leading 0) become
/// `+33` and the nine digits; `0033` and `+33` prefixes are the same number; a `+33` followed by
/// the trunk `0` (`+33 (0)6 ...`) drops it. Other countries are accepted in `+CC...` or `00CC...`
/// form (8 to 15 digits in all). Spaces, dots, dashes and parentheses are ignored.
pub fn normalize_phone(input: &str) -> Result<String, ContactError> {
    let trimmed = input.trim();
    let mut digits = String::new();
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '.' | '-' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(ContactError::Phone),
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if digits.len() == 10 && digits.starts_with('0') && !digits.starts_with("00") {
        format!("33{}", &digits[1..])
    } else {
        return Err(ContactError::Phone);
    };
    // `+33 0 6 ...`: the national trunk prefix written after the country code.
    let international = match international.strip_prefix("330") {
        Some(rest) if rest.len() == 9 => format!("33{rest}"),
        _ => international,
    };
    if international.starts_with('0') || !(8..=15).contains(&international.len()) {
        return Err(ContactError::Phone);
    }
    if let Some(national) = international.strip_prefix("33")
        && (national.len() != 9 || national.starts_with('0'))
    {
        return Err(ContactError::Phone);
    }
    Ok(format!("+{international}"))
}

/// An e-mail address, trimmed, with its domain in lower case: one `@`, a non-empty local part,
/// a domain with a dot, no spaces or control characters, at most 254 characters.
pub fn normalize_email(input: &str) -> Result<String, ContactError> {
    let v = input.trim();
    let (local, domain) = v.rsplit_once('@').ok_or(ContactError::Email)?;
    let bad = |s: &str| {
        s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    };
    if v.len() > 254
        || local.is_empty()
        || local.len() > 64
        || bad(local)
        || bad(domain)
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || local.contains(['<', '>', ',', ';', '"'])
        || domain.contains(['<', '>', ',', ';', '"', '/', '\\'])
    {
        return Err(ContactError::Email);
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// A way of reaching the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which channels the patient wants to be reached by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preference {
    Email,
    Sms,
    #[default]
    Both,
    /// Never sent anything (the kiné hands the link over by other means).
    None,
}

impl Preference {
    pub fn as_str(self) -> &'static str {
        match self {
            Preference::Email => "email",
            Preference::Sms => "sms",
            Preference::Both => "both",
            Preference::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Preference> {
        [
            Preference::Email,
            Preference::Sms,
            Preference::Both,
            Preference::None,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    pub fn wants(self, c: Channel) -> bool {
        matches!(
            (self, c),
            (Preference::Both, _)
                | (Preference::Email, Channel::Email)
                | (Preference::Sms, Channel::Sms)
        )
    }
}

/// The patient's contact details, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// E.164.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub preference: Preference,
}

/// Why a message is not sent on a channel, when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The patient prefers another channel.
    NotPreferred,
    /// No phone number (SMS) or no address (e-mail) on file.
    NoAddress,
}

impl Skip {
    pub fn code(self) -> &'static str {
        match self {
            Skip::NotPreferred => "not_preferred",
            Skip::NoAddress => "no_address",
        }
    }
}

impl Contact {
    /// Where to send on `channel`, or why not.
    pub fn address(&self, channel: Channel) -> Result<&str, Skip> {
        if !self.preference.wants(channel) {
            return Err(Skip::NotPreferred);
        }
        match channel {
            Channel::Email => self.email.as_deref(),
            Channel::Sms => self.phone.as_deref(),
        }
        .ok_or(Skip::NoAddress)
    }
}

/// The reminder offsets of a kiné by default: the day before, and one hour before.
pub const DEFAULT_REMINDER_MINUTES: [i64; 2] = [24 * 60, 60];

/// When each reminder of a session starting at `starts_at` is due, for offsets in minutes
/// before the start: `(offset, due)`, latest offset first. A reminder whose time has already
/// passed at `now` (the session was scheduled late, or moved) is left out rather than sent
/// late. Duplicate and non-positive offsets count once or not at all.
pub fn reminder_due(
    starts_at: DateTime<Utc>,
    offsets_minutes: &[i64],
    now: DateTime<Utc>,
) -> Vec<(i64, DateTime<Utc>)> {
    let mut offsets: Vec<i64> = offsets_minutes.iter().copied().filter(|m| *m > 0).collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets.dedup();
    offsets
        .into_iter()
        .map(|m| (m, starts_at - Duration::minutes(m)))
        .filter(|(_, due)| *due > now)
        .collect()
}

/// Parses offsets written as minutes (`1440,60`); each 1 minute to 30 days.
pub fn parse_offsets(s: &str) -> Option<Vec<i64>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let m: i64 = part.parse().ok()?;
        if !(1..=30 * 24 * 60).contains(&m) {
            return None;
        }
        out.push(m);
    }
    (out.len() <= 5).then_some(out)
}

/// GSM 03.38 basic set (one unit each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (an escape and the character: two units each).
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// The GSM-7 length of `text` in septets, or None when a character needs UCS-2 (then a segment
/// holds 70 characters, not 160).
pub fn gsm7_units(text: &str) -> Option<usize> {
    text.chars().try_fold(0usize, |n, c| {
        if GSM7_BASIC.contains(c) {
            Some(n + 1)
        } else if GSM7_EXTENDED.contains(c) {
            Some(n + 2)
        } else {
            None
        }
    })
}

/// One SMS segment in GSM-7.
pub const SMS_SEGMENT: usize = 160;

/// Characters outside GSM-7 replaced by their nearest GSM-7 neighbour (a kiné's name with
/// `ç`, `ê`, `ï`...), so that one such letter does not turn the SMS into a 70-character UCS-2
/// segment.
pub fn to_gsm7(text: &str) -> String {
    text.chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) || GSM7_EXTENDED.contains(c) {
                return c;
            }
            match c {
                'â' | 'á' | 'ã' => 'a',
                'ê' | 'ë' => 'e',
                'î' | 'ï' | 'í' => 'i',
                'ô' | 'ó' | 'õ' => 'o',
                'û' | 'ú' => 'u',
                'ç' => 'c',
                'ÿ' => 'y',
                'À' | 'Â' | 'Á' => 'A',
                'È' | 'Ê' | 'Ë' => 'E',
                'Î' | 'Ï' => 'I',
                'Ô' => 'O',
                'Û' | 'Ù' => 'U',
                '’' | '‘' => '\'',
                '«' | '»' | '“' | '”' => '"',
                '–' | '—' => '-',
                _ => '?',
            }
        })
        .collect()
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// "Envoyer le lien": the invitation with the link.
    Invitation,
    /// A reminder before the session, with the link.
    Reminder,
    /// The session is cancelled: no link.
    Cancelled,
    /// The session moved to another time, with the link.
    Moved,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Invitation => "invitation",
            MessageKind::Reminder => "reminder",
            MessageKind::Cancelled => "cancelled",
            MessageKind::Moved => "moved",
        }
    }

    pub fn parse(s: &str) -> Option<MessageKind> {
        [
            MessageKind::Invitation,
            MessageKind::Reminder,
            MessageKind::Cancelled,
            MessageKind::Moved,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether the message carries the join link.
    pub fn has_link(self) -> bool {
        self != MessageKind::Cancelled
    }
}

/// The words of one message, in French: what the patient reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wording {
    pub kind: MessageKind,
    pub kine_name: String,
    pub starts_at: DateTime<Utc>,
    /// The short link (`https://HOST/j#CODE`); absent for a cancellation.
    pub link: Option<String>,
}

/// `mercredi 3 décembre 2026`, in Europe/Paris.
pub fn french_date(at: DateTime<Utc>) -> String {
    use chrono::Datelike;
    let local = at.with_timezone(&chrono_tz::Europe::Paris);
    const DAYS: [&str; 7] = [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ];
    const MONTHS: [&str; 12] = [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ];
    format!(
        "{} {} {} {}",
        DAYS[local.weekday().num_days_from_monday() as usize],
        local.day(),
        MONTHS[local.month0() as usize],
        local.year()
    )
}

/// `14h30` (or `9h00`), in Europe/Paris.
pub fn french_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Paris)
        .format("%-Hh%M")
        .to_string()
}

/// `03/12`, in Europe/Paris.
fn short_date(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Paris)
        .format("%d/%m")
        .to_string()
}

/// What to prepare, in full (e-mail).
pub const PREPARE_FR: [&str; 3] = [
    "un endroit calme, où vous pouvez parler librement ;",
    "votre téléphone (ou tablette, ordinateur) chargé et près d'une prise ;",
    "assez de place pour bouger : les exercices se font debout et allongé.",
];

impl Wording {
    /// The subject line of the e-mail.
    pub fn subject(&self) -> String {
        let when = format!(
            "{} à {}",
            french_date(self.starts_at),
            french_time(self.starts_at)
        );
        match self.kind {
            MessageKind::Invitation => format!("Votre séance de kiné en vidéo le {when}"),
            MessageKind::Reminder => format!("Rappel : séance de kiné en vidéo le {when}"),
            MessageKind::Cancelled => format!("Séance annulée : {when}"),
            MessageKind::Moved => format!("Séance déplacée au {when}"),
        }
    }

    /// The plain-text body of the e-mail (the HTML part says the same).
    pub fn email_paragraphs(&self) -> Vec<String> {
        let date = french_date(self.starts_at);
        let time = french_time(self.starts_at);
        let kine = &self.kine_name;
        let mut out = vec!["Bonjour,".to_owned()];
        out.push(match self.kind {
            MessageKind::Invitation => format!(
                "{kine}, votre kinésithérapeute, vous propose une séance en vidéo le {date} à {time} (heure de Paris)."
            ),
            MessageKind::Reminder => format!(
                "Nous vous rappelons votre séance en vidéo avec {kine} le {date} à {time} (heure de Paris)."
            ),
            MessageKind::Cancelled => format!(
                "Votre séance en vidéo avec {kine} du {date} à {time} est annulée. Le lien reçu ne fonctionne plus. Votre kinésithérapeute vous proposera une autre date."
            ),
            MessageKind::Moved => format!(
                "Votre séance en vidéo avec {kine} est déplacée au {date} à {time} (heure de Paris)."
            ),
        });
        if let Some(link) = &self.link {
            out.push(format!(
                "Le moment venu, ouvrez ce lien sur votre téléphone, votre tablette ou votre ordinateur : {link}"
            ));
            out.push("Vous pouvez l'ouvrir dès maintenant pour essayer la caméra et le son. Rien à installer.".to_owned());
            out.push(format!(
                "Pour la séance, prévoyez : {}",
                PREPARE_FR.join(" ")
            ));
        }
        out.push(format!("À bientôt,\n{kine}"));
        out
    }

    /// The SMS: one GSM-7 segment when the link leaves room. The longest wording that fits is
    /// used (the preparation advice shortens first, then goes); a kiné name outside GSM-7 is
    /// transliterated.
    pub fn sms(&self) -> String {
        let kine = to_gsm7(&self.kine_name);
        let day = short_date(self.starts_at);
        let time = french_time(self.starts_at);
        let candidates: Vec<String> = match (&self.kind, &self.link) {
            (MessageKind::Cancelled, _) | (_, None) => vec![
                format!(
                    "Votre séance vidéo avec {kine} du {day} à {time} est annulée. Le lien ne fonctionne plus."
                ),
                format!("Séance vidéo {kine} du {day} {time} annulée."),
            ],
            (kind, Some(link)) => {
                let head = match kind {
                    MessageKind::Reminder => {
                        format!("Rappel: séance vidéo avec {kine} le {day} à {time}")
                    }
                    MessageKind::Moved => {
                        format!("Séance vidéo avec {kine} déplacée au {day} à {time}")
                    }
                    _ => format!("Séance vidéo avec {kine} le {day} à {time}"),
                };
                let short_head = match kind {
                    MessageKind::Reminder => format!("Rappel kiné {kine} {day} {time}"),
                    MessageKind::Moved => format!("Kiné {kine} déplacé {day} {time}"),
                    _ => format!("Kiné {kine} {day} {time}"),
                };
                vec![
                    format!(
                        "{head}: {link} Prévoyez un endroit calme, le téléphone chargé et de la place pour bouger."
                    ),
                    format!("{head}: {link} Prévoir: calme, téléphone chargé, place pour bouger."),
                    format!("{short_head}: {link} Prévoir: calme, tél. chargé, place pour bouger."),
                    format!("{head}: {link}"),
                    format!("{short_head}: {link}"),
                ]
            }
        };
        let last = candidates.last().cloned().unwrap_or_default();
        candidates
            .into_iter()
            .find(|c| gsm7_units(c).is_some_and(|n| n <= SMS_SEGMENT))
            .unwrap_or(last)
    }
}

/// The SMS text of a message (see [`Wording::sms`]).
pub fn sms_invitation(w: &Wording) -> String {
    w.sms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_table() {
        let cases: &[(&str, Result<&str, ContactError>)] = &[
            ("06 12 34 56 78", Ok("+33612345678")),
            ("0612345678", Ok("+33612345678")),
            ("06.12.34.56.78", Ok("+33612345678")),
            ("06-12-34-56-78", Ok("+33612345678")),
            ("+33 6 12 34 56 78", Ok("+33612345678")),
            ("+33612345678", Ok("+33612345678")),
            ("0033 6 12 34 56 78", Ok("+33612345678")),
            ("+33 (0)6 12 34 56 78", Ok("+33612345678")),
            ("01 23 45 67 89", Ok("+33123456789")),
            ("  07 00 00 00 01 ", Ok("+33700000001")),
            ("+32 470 12 34 56", Ok("+32470123456")),
            ("0032470123456", Ok("+32470123456")),
            ("+262 692 12 34 56", Ok("+262692123456")),
            ("06 12 34 56", Err(ContactError::Phone)),
            ("06 12 34 56 78 9", Err(ContactError::Phone)),
            ("612345678", Err(ContactError::Phone)),
            ("+33 12 34", Err(ContactError::Phone)),
            ("+3361234567890", Err(ContactError::Phone)),
            ("06 12 34 56 7a", Err(ContactError::Phone)),
            ("6+33612345678", Err(ContactError::Phone)),
            ("", Err(ContactError::Phone)),
            ("+", Err(ContactError::Phone)),
            ("+0612345678", Err(ContactError::Phone)),
            ("+1234567890123456", Err(ContactError::Phone)),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_phone(input).as_deref().map_err(|e| *e),
                want.as_ref().map(|s| *s).map_err(|e| *e),
                "{input:?}"
            );
        }
    }

    #[test]
    fn email_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("marie@example.FR", Some("marie@example.fr")),
            (
                "  Jean.Dupont+kine@Mail.Example.org ",
                Some("Jean.Dupont+kine@mail.example.org"),
            ),
            ("no-at.example.fr", None),
            ("a@b", None),
            ("@example.fr", None),
            ("a b@example.fr", None),
            ("a@exa mple.fr", None),
            ("a@.example.fr", None),
            ("a@example..fr", None),
            ("a@example.fr.", None),
            ("a<b>@example.fr", None),
            ("x@y@example.fr", None),
            ("a@example.fr\n", Some("a@example.fr")),
            ("a@exam\rple.fr", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_email(input).ok().as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn preference_and_address_table() {
        let c = |phone: bool, email: bool, p: Preference| Contact {
            phone: phone.then(|| "+33612345678".to_owned()),
            email: email.then(|| "a@b.fr".to_owned()),
            preference: p,
        };
        use Channel::*;
        let cases = [
            (c(true, true, Preference::Both), Sms, Ok("+33612345678")),
            (c(true, true, Preference::Both), Email, Ok("a@b.fr")),
            (
                c(true, true, Preference::Sms),
                Email,
                Err(Skip::NotPreferred),
            ),
            (
                c(true, true, Preference::Email),
                Sms,
                Err(Skip::NotPreferred),
            ),
            (c(false, true, Preference::Both), Sms, Err(Skip::NoAddress)),
            (
                c(true, false, Preference::Email),
                Email,
                Err(Skip::NoAddress),
            ),
            (
                c(true, true, Preference::None),
                Sms,
                Err(Skip::NotPreferred),
            ),
        ];
        for (contact, channel, want) in cases {
            assert_eq!(contact.address(channel), want, "{contact:?} {channel:?}");
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("instant").to_utc()
    }

    #[test]
    fn reminders_table() {
        let start = at("2026-12-03T13:30:00Z");
        let cases: &[(&str, &[i64], &[(i64, &str)])] = &[
            // Scheduled a week ahead: both reminders.
            (
                "2026-11-26T09:00:00Z",
                &[1440, 60],
                &[(1440, "2026-12-02T13:30:00Z"), (60, "2026-12-03T12:30:00Z")],
            ),
            // Scheduled the same morning: the day-before one is past, not sent late.
            (
                "2026-12-03T08:00:00Z",
                &[1440, 60],
                &[(60, "2026-12-03T12:30:00Z")],
            ),
            // Scheduled 40 minutes ahead: none.
            ("2026-12-03T12:50:00Z", &[1440, 60], &[]),
            // Due in 30 seconds: still ahead, queued; due right now: past.
            (
                "2026-12-03T12:29:30Z",
                &[60],
                &[(60, "2026-12-03T12:30:00Z")],
            ),
            ("2026-12-03T12:30:00Z", &[60], &[]),
            // The kiné's own offsets, unordered and repeated; non-positive ones ignored.
            (
                "2026-11-26T09:00:00Z",
                &[30, 2880, 30, 0, -5],
                &[(2880, "2026-12-01T13:30:00Z"), (30, "2026-12-03T13:00:00Z")],
            ),
            // No reminders wanted.
            ("2026-11-26T09:00:00Z", &[], &[]),
        ];
        for (now, offsets, want) in cases {
            let got = reminder_due(start, offsets, at(now));
            let want: Vec<_> = want.iter().map(|(m, d)| (*m, at(d))).collect();
            assert_eq!(got, want, "now {now}, offsets {offsets:?}");
        }
    }

    #[test]
    fn offsets_parse_table() {
        let cases: &[(&str, Option<&[i64]>)] = &[
            ("1440,60", Some(&[1440, 60])),
            (" 60 ", Some(&[60])),
            ("", Some(&[])),
            ("0", None),
            ("60,abc", None),
            ("43201", None),
            ("1,2,3,4,5,6", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_offsets(s).as_deref(), *want, "{s:?}");
        }
    }

    #[test]
    fn gsm7_table() {
        let cases: &[(&str, Option<usize>)] = &[
            ("Séance à 14h30", Some(14)),
            ("prévoyez", Some(8)),
            ("€", Some(2)),
            ("[x]", Some(5)),
            ("ê", None),
            ("ç", None),
            ("Ç", Some(1)),
            ("https://kine.example.fr/j#AbC-_09", Some(33)),
        ];
        for (s, want) in cases {
            assert_eq!(gsm7_units(s), *want, "{s:?}");
        }
        assert_eq!(
            to_gsm7("François Lefèvre-Hélène"),
            "Francois Lefèvre-Hélène"
        );
        assert!(gsm7_units(&to_gsm7("Gaëlle Côté ‘ok’ — “x”")).is_some());
    }

    fn link(host: &str) -> String {
        // A 22-character code, as the server mints them.
        format!("https://{host}/j#AbCdEfGhIjKlMnOpQrStUv")
    }

    #[test]
    fn sms_fits_one_segment_where_the_host_allows() {
        // 2026-12-03 13:30 UTC is 14h30 in Paris (winter time).
        let start = at("2026-12-03T13:30:00Z");
        for (host, kine, kind) in [
            ("telesoin.fr", "Camille Durand", MessageKind::Invitation),
            (
                "visio.cabinet-kine-exemple.fr",
                "Camille Durand",
                MessageKind::Reminder,
            ),
            (
                "kine.example.fr",
                "Marie-Christine Delacroix-Beaumont",
                MessageKind::Invitation,
            ),
            ("kine.example.fr", "François Lefèvre", MessageKind::Moved),
            ("localhost:8443", "Dr Anaïs Leroy", MessageKind::Reminder),
        ] {
            let w = Wording {
                kind,
                kine_name: kine.into(),
                starts_at: start,
                link: Some(link(host)),
            };
            let sms = w.sms();
            let units = gsm7_units(&sms).expect("GSM-7 only");
            assert!(units <= SMS_SEGMENT, "{units} units: {sms}");
            assert!(sms.contains(&link(host)), "{sms}");
            assert!(sms.contains("03/12") && sms.contains("14h30"), "{sms}");
        }
        // A short host and name leave room for the preparation advice.
        let w = Wording {
            kind: MessageKind::Invitation,
            kine_name: "Camille Durand".into(),
            starts_at: start,
            link: Some(link("telesoin.fr")),
        };
        let sms = w.sms();
        assert!(
            sms.contains("calme") && sms.contains("chargé") && sms.contains("bouger"),
            "{sms}"
        );
        // Summer time: 2026-07-01 12:00 UTC is 14h00 in Paris.
        let summer = Wording {
            starts_at: at("2026-07-01T12:00:00Z"),
            ..w.clone()
        };
        assert!(summer.sms().contains("01/07 à 14h00"), "{}", summer.sms());
        // A host too long for one segment: still one message, the link whole.
        let long = Wording {
            link: Some(link(&format!("{}.example.fr", "x".repeat(120)))),
            ..w
        };
        assert!(long.sms().contains(long.link.as_deref().unwrap_or("?")));
    }

    #[test]
    fn email_words_say_who_when_and_what_to_prepare() {
        let w = Wording {
            kind: MessageKind::Invitation,
            kine_name: "Camille Durand".into(),
            starts_at: at("2026-12-03T13:30:00Z"),
            link: Some(link("telesoin.fr")),
        };
        assert_eq!(
            w.subject(),
            "Votre séance de kiné en vidéo le jeudi 3 décembre 2026 à 14h30"
        );
        let text = w.email_paragraphs().join("\n");
        for needle in [
            "Camille Durand",
            "jeudi 3 décembre 2026 à 14h30",
            "calme",
            "chargé",
            "bouger",
            &link("telesoin.fr"),
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        let cancelled = Wording {
            kind: MessageKind::Cancelled,
            link: None,
            ..w
        };
        assert!(cancelled.email_paragraphs().join(" ").contains("annulée"));
        assert!(!cancelled.sms().contains("https://"));
    }
}
