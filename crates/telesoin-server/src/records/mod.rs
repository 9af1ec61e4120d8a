//! Records after the call: the class fixed at finalization, the compte rendu (versioned), the
//! audit trail, exports (CSV, FHIR R4, PDF), the télésoin share, and retention.
//!
//! Every rule (class, tariff, share, retention, chain hashing) is telesoin-core's; this module
//! gathers inputs from the store and formats outputs.

pub mod audit;
pub mod cli;
pub mod fhir;
pub mod http;
pub mod pdf;

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use telesoin_core::acts;
use telesoin_core::admission::InPersonRule;
use telesoin_core::model::Session;
use telesoin_core::reimbursement::{self, BillingClass, ClassifyInput, DirectAccess};
use telesoin_core::representation::{Attestation, ConsentGiver, NamedPerson};
use telesoin_core::tariff::{self, Billed, KeyLetter, KeyLetterValue};
use telesoin_core::{KineId, SessionId};
use telesoin_store::KineSettings;
use telesoin_store::{AttestationRow, SessionBilling, SessionRow, Store, StoreError};

/// Parses `LETTER:EUROS:YYYY-MM-DD` (for example `AMK:2.15:2019-07-01`), the configured value of
/// a key letter from a date of effect.
pub fn parse_key_letter_value(s: &str) -> Option<KeyLetterValue> {
    let mut parts = s.trim().split(':');
    let letter = KeyLetter::parse(parts.next()?)?;
    let euros = parts.next()?;
    let effective_from = NaiveDate::parse_from_str(parts.next()?, "%Y-%m-%d").ok()?;
    if parts.next().is_some() {
        return None;
    }
    let (units, frac) = euros.split_once('.').unwrap_or((euros, "0"));
    if frac.len() > 2
        || units.is_empty()
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let cents = units.parse::<i64>().ok()? * 100 + format!("{frac:0<2}").parse::<i64>().ok()?;
    Some(KeyLetterValue {
        letter,
        cents,
        effective_from,
    })
}

/// Euros as written on a French invoice: `12,34 €`.
pub fn euros_fr(cents: i64) -> String {
    format!("{},{:02} €", cents / 100, (cents % 100).abs())
}

/// Euros as written in a CSV: `12.34`.
pub fn euros_dot(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

/// Classifies a session from what the store knows now (at scheduling, and at finalization,
/// when the class is fixed).
pub async fn classify(
    store: &dyn Store,
    session: &Session,
    rule: InPersonRule,
    direct_access: Option<DirectAccess>,
) -> Result<reimbursement::Classification, StoreError> {
    let visits: Vec<_> = store
        .visits(session.kine, session.patient)
        .await?
        .into_iter()
        .map(|v| v.visit)
        .collect();
    let prescriptions: Vec<_> = store
        .prescriptions(session.patient)
        .await?
        .into_iter()
        .map(|r| r.date)
        .collect();
    let settings = store.kine_settings(session.kine).await?;
    Ok(reimbursement::classify_full(&ClassifyInput {
        session_day: session.day(),
        prescriptions: &prescriptions,
        visits: &visits,
        rule,
        direct_access,
        cooperation_protocol: settings.cooperation_protocol,
    }))
}

/// Schedules a session: classifies it (shown up front) and stores it with its billing facts,
/// its privacy mode, the platform that asked (if any), its reminders (unless a platform asked:
/// platforms that send themselves keep doing so; one that asks us to send gets them with its
/// first send) and the webhook `session.scheduled`, in one transaction. The one way a session is
/// created (dashboard, API, demo); the caller emits the domain event (audit trail).
pub async fn schedule(
    app: &crate::AppState,
    session: Session,
    direct_access: Option<DirectAccess>,
    hn_price_cents: Option<i64>,
    relay_only: bool,
    platform: Option<uuid::Uuid>,
    now: DateTime<Utc>,
) -> Result<SessionRow, StoreError> {
    let c = classify(
        app.store.as_ref(),
        &session,
        app.cfg.in_person_rule,
        direct_access,
    )
    .await?;
    let billing = SessionBilling {
        direct_access: direct_access.map(|d| d.as_str().to_owned()),
        hn_price_cents,
        class_reason: Some(c.reason.code().to_owned()),
    };
    let row = SessionRow {
        session,
        billing_class: c.class.as_str().into(),
        class_reason: billing.class_reason.clone(),
        relay_only,
        ended_at: None,
        billable_seconds: None,
        finalized_at: None,
    };
    let reminders = if platform.is_none() {
        crate::reach::outbox::reminder_rows(app, &row, now).await?
    } else {
        Vec::new()
    };
    let scheduled =
        telesoin_store::Announcement::new("session.scheduled", now, serde_json::json!({}));
    app.store
        .schedule_announced(
            &telesoin_store::NewSchedule {
                session: &row.session,
                billing_class: c.class.as_str(),
                billing: &billing,
                relay_only,
                platform,
                reminders: &reminders,
                scheduled: &scheduled,
            },
            now,
        )
        .await?;
    Ok(row)
}

/// The plain words of a stored class reason.
pub fn reason_of(code: &str) -> Option<reimbursement::ClassReason> {
    use reimbursement::ClassReason::*;
    let any = reimbursement::DirectAccess::AnkleSprain;
    [
        PrescriptionAndInPerson,
        DirectAccess(any),
        NoInPersonCare(telesoin_core::RefusalCode::InPersonMissing(
            InPersonRule::Arrete2021,
        )),
        NoValidPrescription,
        DirectAccessWithoutProtocol(any),
    ]
    .into_iter()
    .find(|r| r.code() == code)
}

/// Fixes the class of a finalized session (the facts may have changed since scheduling: a
/// prescription added, a visit recorded).
pub async fn fix_class(
    store: &dyn Store,
    session: SessionId,
    rule: InPersonRule,
) -> Result<(), StoreError> {
    let Some(row) = store.session(session).await? else {
        return Ok(());
    };
    let mut billing = store.session_billing(session).await?;
    let direct = billing
        .direct_access
        .as_deref()
        .and_then(DirectAccess::parse);
    let c = classify(store, &row.session, rule, direct).await?;
    billing.class_reason = Some(c.reason.code().to_owned());
    store
        .set_session_billing(session, &billing, c.class.as_str())
        .await
}

/// What a session bills on its day (nothing if it was not held): the key letter in force, the act's coefficient and the
/// letter's value that day (reimbursable), or the HN price. `None` when it cannot be priced (an
/// unknown act, no value configured for the day).
pub fn price(
    row: &SessionRow,
    billing: &SessionBilling,
    settings: &KineSettings,
    schedule: &[KeyLetterValue],
) -> Option<Billed> {
    // A session "non réalisée" bills nothing; an open one shows what it will bill.
    if telesoin_core::model::outcome(row.session.status, row.billable_seconds)
        == telesoin_core::model::Outcome::NotHeld
    {
        return None;
    }
    let day = row.session.day();
    let class = if row.billing_class == "reimbursable" {
        BillingClass::Reimbursable
    } else {
        BillingClass::Hn
    };
    let hn_price = billing.hn_price_cents.unwrap_or(settings.hn_price_cents);
    let act = acts::of_session(&row.session.act_code, day)?;
    tariff::billed_amount(class, act, schedule, day, hn_price).ok()
}

/// The price an HN session asks the patient to accept on the join page before admission: the
/// session's own HN price, else the kiné's usual one; `None` for a reimbursable session or a
/// price of 0 EUR (nothing to accept). The join page shows it; admission requires it accepted.
pub async fn hn_price_to_accept(
    store: &dyn Store,
    row: &SessionRow,
) -> Result<Option<i64>, StoreError> {
    if row.billing_class != "hn" {
        return Ok(None);
    }
    // The session's own price, or else the kiné's default: one read.
    let price = store.hn_price_cents(row.session.id).await?;
    Ok(price.and_then(|p| hn_price_of(row, p)))
}

/// The HN price to accept for `row` given its price (the session's own, else the kiné's
/// default): none for a session that is not HN, nor for a free one.
fn hn_price_of(row: &SessionRow, price_cents: i64) -> Option<i64> {
    (row.billing_class == "hn" && price_cents > 0).then_some(price_cents)
}

/// The price side of an admission from what the join read with its link (the price and the
/// last acceptance): the same answer as [`hn_price_to_accept`] and the acceptance's read.
pub fn hn_price_acceptance_of(
    row: &SessionRow,
    price_cents: i64,
    accepted_cents: Option<i64>,
) -> telesoin_core::admission::PriceAcceptance {
    let to_accept = hn_price_of(row, price_cents);
    telesoin_core::admission::PriceAcceptance {
        to_accept_cents: to_accept,
        accepted_cents: to_accept.and(accepted_cents),
    }
}

/// Who consented for the session (the latest consent recorded by its end, or now), in words:
/// the patient, or the named legal representative of a minor; and when.
pub async fn consent_of(
    store: &dyn Store,
    row: &SessionRow,
    now: DateTime<Utc>,
) -> Result<Option<(ConsentGiver, DateTime<Utc>)>, StoreError> {
    let by = row.ended_at.unwrap_or(now);
    let consents = store
        .consents(row.session.kine, row.session.patient)
        .await?;
    let Some(c) = consents
        .into_iter()
        .filter(|c| c.consent.recorded_at <= by)
        .max_by_key(|c| c.consent.recorded_at)
    else {
        return Ok(None);
    };
    let giver = match store.consent_representative(c.id).await? {
        Some(r) => ConsentGiver::Representative(NamedPerson {
            name: r.name,
            relation: r.relation,
        }),
        None => ConsentGiver::Patient,
    };
    Ok(Some((giver, c.consent.recorded_at)))
}

/// The companions attested present in a session, once each (a return after a hang-up attests
/// the same person again), in the order they were first attested.
pub async fn attested_of(
    store: &dyn Store,
    session: SessionId,
) -> Result<Vec<AttestationRow>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    Ok(store
        .attestations(session)
        .await?
        .into_iter()
        .filter(|a| seen.insert((a.companion, a.name.clone(), a.relation.clone())))
        .collect())
}

/// An event for the record's incident list. A presence attested before attestations were named
/// (an `incident` `attested_parent` / `attested_aidant`) is no incident either.
pub fn is_incident(e: &telesoin_store::EventRow) -> bool {
    e.kind.is_incident() && legacy_attestation(e).is_none()
}

/// The companion of a presence attested before attestations were named, if `e` is one.
pub fn legacy_attestation(e: &telesoin_store::EventRow) -> Option<&'static str> {
    match (e.kind, e.detail.as_deref()) {
        (telesoin_core::billing::PresenceKind::Incident, Some("attested_parent")) => Some("parent"),
        (telesoin_core::billing::PresenceKind::Incident, Some("attested_aidant")) => Some("aidant"),
        _ => None,
    }
}

/// "En présence de Sophie Petit (mère)", the words of the record, report, invoice and FHIR.
pub fn attestation_words(a: &AttestationRow) -> String {
    Attestation {
        companion: a.companion,
        person: NamedPerson {
            name: a.name.clone(),
            relation: a.relation.clone(),
        },
    }
    .words_fr()
}

/// One line of the billing export.
#[derive(Debug, Clone)]
pub struct BillingLine {
    pub row: SessionRow,
    pub billing: SessionBilling,
    pub kine_rpps: String,
    pub kine_name: String,
    pub patient_name: String,
    pub patient_birth_date: Option<NaiveDate>,
    pub prescription: Option<NaiveDate>,
    pub billed: Option<Billed>,
    /// The patient's INS, only when qualified (`telesoin_core::ins`).
    pub patient_ins: Option<telesoin_core::ins::Matricule>,
}

impl BillingLine {
    /// The act of the session, in the catalogue of its day.
    pub fn act(&self) -> Option<&'static acts::Act> {
        let s = &self.row.session;
        acts::of_session(&s.act_code, s.day())
    }

    pub fn class(&self) -> BillingClass {
        if self.row.billing_class == "reimbursable" {
            BillingClass::Reimbursable
        } else {
            BillingClass::Hn
        }
    }
}

/// The finalized sessions of a kiné (or everyone's) started in `[from, to]` (French days) that
/// were held: a session "non réalisée" (ended or cancelled without a billable second) bills
/// nothing and is left out.
pub async fn billing_lines(
    store: &dyn Store,
    kine: Option<KineId>,
    from: NaiveDate,
    to: NaiveDate,
    schedule: &[KeyLetterValue],
) -> Result<Vec<BillingLine>, StoreError> {
    let start =
        from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - chrono::Duration::hours(3);
    let end = to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + chrono::Duration::hours(27);
    let mut out = Vec::new();
    for row in store.finalized_sessions(kine, start, end).await? {
        let day = row.session.day();
        if day < from
            || day > to
            || !telesoin_core::model::outcome(row.session.status, row.billable_seconds).billable()
        {
            continue;
        }
        let k = store.kine(row.session.kine).await?;
        let p = store.patient(row.session.kine, row.session.patient).await?;
        let billing = store.session_billing(row.session.id).await?;
        let settings = store.kine_settings(row.session.kine).await?;
        let prescription = store
            .prescriptions(row.session.patient)
            .await?
            .into_iter()
            .map(|r| r.date)
            .filter(|d| reimbursement::prescription_valid(*d, day))
            .max();
        let billed = price(&row, &billing, &settings, schedule);
        let patient_ins = match &p {
            Some(p) => {
                crate::patient_ins::document_ins(store, p.patient.id, p.patient.birth_date).await?
            }
            None => None,
        };
        out.push(BillingLine {
            patient_ins,
            kine_rpps: k.as_ref().map(|k| k.rpps.clone()).unwrap_or_default(),
            kine_name: k.map(|k| k.name).unwrap_or_default(),
            patient_birth_date: p.as_ref().map(|p| p.patient.birth_date),
            patient_name: p.map(|p| p.patient.display_name).unwrap_or_default(),
            row,
            billing,
            prescription,
            billed,
        });
    }
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r', ';']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The billing CSV: one row per finalized session.
pub fn csv(lines: &[BillingLine]) -> String {
    let mut out = String::from(
        "date,start,end,billable_seconds,kine_rpps,patient_reference,act_code,act_label,amk_coefficient,key_letter,amount_eur,hn_price_eur,class,class_reason,prescription_date,key_letter_value_eur,patient_ins,patient_ins_oid\n",
    );
    for l in lines {
        let s = &l.row.session;
        let act = l.act();
        let (letter, coefficient, value, amount, hn) = match l.billed {
            Some(Billed::Reimbursable {
                letter,
                coefficient_tenths,
                value_cents,
                cents,
            }) => (
                letter.as_str().to_owned(),
                tariff::format_coefficient(coefficient_tenths),
                euros_dot(value_cents),
                euros_dot(cents),
                String::new(),
            ),
            Some(Billed::Hn { cents }) => (
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                euros_dot(cents),
            ),
            None => Default::default(),
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.day(),
            l.row
                .session
                .starts_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            l.row
                .ended_at
                .map(|e| e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            l.row.billable_seconds.unwrap_or(0),
            csv_field(&l.kine_rpps),
            s.patient,
            s.act_code,
            csv_field(act.map(|a| a.label).unwrap_or_default()),
            coefficient,
            letter,
            amount,
            hn,
            l.row.billing_class,
            l.billing.class_reason.as_deref().unwrap_or_default(),
            l.prescription.map(|d| d.to_string()).unwrap_or_default(),
            value,
            l.patient_ins
                .as_ref()
                .map(|m| m.value())
                .unwrap_or_default(),
            l.patient_ins
                .as_ref()
                .map(|m| m.authority().oid())
                .unwrap_or_default(),
        );
    }
    out
}

/// Euros with a decimal comma, for French spreadsheets: `12,34`.
pub fn euros_comma(cents: i64) -> String {
    euros_dot(cents).replace('.', ",")
}

fn csv_fr_field(s: &str) -> String {
    if s.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// What the media reports of a held session prove (issue 9.4): the seconds with video both
/// ways (what télésoin bills), and the seconds connected without it (shown, not billed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evidence {
    pub video_seconds: i64,
    pub audio_only_seconds: i64,
}

/// The evidence of each line, from its presence events, read with `policy` as the hub does
/// (audio-only time is never counted as video here, whatever `bill_audio_only` says).
pub async fn evidence(
    store: &dyn Store,
    lines: &[BillingLine],
    policy: &telesoin_core::billing::Policy,
) -> Result<Vec<Evidence>, StoreError> {
    let video_only = telesoin_core::billing::Policy {
        bill_audio_only: false,
        ..*policy
    };
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        let events: Vec<_> = store
            .events(l.row.session.id)
            .await?
            .iter()
            .map(|e| e.presence())
            .collect();
        let until = l.row.ended_at.unwrap_or(l.row.session.window_end);
        let f = telesoin_core::billing::figures(&events, &video_only, until);
        out.push(Evidence {
            video_seconds: f.billable_seconds(),
            audio_only_seconds: f.audio_only_seconds(),
        });
    }
    Ok(out)
}

/// The billing CSV for French spreadsheets (Excel, LibreOffice in a French locale): UTF-8 with a
/// byte-order mark, `;` between fields, CRLF line ends, decimal commas, dates as `JJ/MM/AAAA`
/// and times in French time. One row per held session; the patient by name and birth date.
/// `evidence` (one per line, from [`evidence`]) gives the video and audio-only seconds and the
/// video evidence column: `oui` when video flowed both ways for at least a second.
pub fn csv_fr(lines: &[BillingLine], evidence: &[Evidence]) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(
        "date;heure_debut;heure_fin;patient;date_naissance;ins;kine_rpps;acte_code;acte;lettre_cle;coefficient;valeur_lettre_eur;montant_eur;prix_hn_eur;classe;motif;secondes_facturables;secondes_audio_seules;secondes_video;preuve_video;ordonnance\r\n",
    );
    let time = |at: DateTime<Utc>| {
        at.with_timezone(&chrono_tz::Europe::Paris)
            .format("%H:%M:%S")
            .to_string()
    };
    for (i, l) in lines.iter().enumerate() {
        let s = &l.row.session;
        let act = l.act();
        let ev = evidence.get(i).copied().unwrap_or_default();
        let (letter, coefficient, value, amount, hn) = match l.billed {
            Some(Billed::Reimbursable {
                letter,
                coefficient_tenths,
                value_cents,
                cents,
            }) => (
                letter.as_str().to_owned(),
                tariff::format_coefficient(coefficient_tenths).replace('.', ","),
                euros_comma(value_cents),
                euros_comma(cents),
                String::new(),
            ),
            Some(Billed::Hn { cents }) => (
                String::new(),
                String::new(),
                String::new(),
                euros_comma(cents),
                euros_comma(cents),
            ),
            None => Default::default(),
        };
        let class = match l.class() {
            BillingClass::Reimbursable => "remboursable",
            BillingClass::Hn => "hors nomenclature",
        };
        let fields = [
            s.day().format("%d/%m/%Y").to_string(),
            time(s.starts_at),
            l.row.ended_at.map(time).unwrap_or_default(),
            csv_fr_field(&l.patient_name),
            l.patient_birth_date
                .map(|d| d.format("%d/%m/%Y").to_string())
                .unwrap_or_default(),
            String::new(),
            csv_fr_field(&l.kine_rpps),
            s.act_code.clone(),
            csv_fr_field(act.map(|a| a.label).unwrap_or_default()),
            letter,
            coefficient,
            value,
            amount,
            hn,
            class.to_owned(),
            l.billing.class_reason.clone().unwrap_or_default(),
            l.row.billable_seconds.unwrap_or(0).to_string(),
            ev.audio_only_seconds.to_string(),
            ev.video_seconds.to_string(),
            if ev.video_seconds > 0 { "oui" } else { "non" }.to_owned(),
            l.prescription
                .map(|d| d.format("%d/%m/%Y").to_string())
                .unwrap_or_default(),
        ];
        out.push_str(&fields.join(";"));
        out.push_str("\r\n");
    }
    out
}

/// The instant formatted in French time, for documents a person reads.
pub fn paris(at: DateTime<Utc>) -> String {
    at.with_timezone(&chrono_tz::Europe::Paris)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use telesoin_core::billing::PresenceKind;
    use telesoin_store::EventRow;

    fn ev(kind: PresenceKind, detail: Option<&str>) -> EventRow {
        EventRow {
            seq: 1,
            at: Utc::now(),
            participant: None,
            role: None,
            kind,
            detail: detail.map(str::to_owned),
        }
    }

    #[test]
    fn an_attested_presence_is_never_an_incident() {
        #[rustfmt::skip]
        let cases = [
            ("a named attestation", ev(PresenceKind::Attested, Some("parent")), false, None),
            ("recorded before names: a parent", ev(PresenceKind::Incident, Some("attested_parent")), false, Some("parent")),
            ("recorded before names: an aidant", ev(PresenceKind::Incident, Some("attested_aidant")), false, Some("aidant")),
            ("a client incident", ev(PresenceKind::Incident, Some("ice_failed")), true, None),
            ("a lost socket", ev(PresenceKind::SocketLost, None), true, None),
        ];
        for (name, e, incident, legacy) in cases {
            assert_eq!(
                (is_incident(&e), legacy_attestation(&e)),
                (incident, legacy),
                "{name}"
            );
        }
    }
}
