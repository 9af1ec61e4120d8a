//! FHIR R4 JSON: a `collection` Bundle with, per held session, the Encounter (class VR,
//! period, participants, cotation), the Practitioner (RPPS) and Patient it references, the
//! Consents on record (with the RelatedPerson who consented for a minor), and the compte rendu
//! as a DocumentReference.
//!
//! The French profiles (FR Core, Interop'Santé, `hl7.fhir.fr.core`) are declared in
//! `meta.profile` and their required elements are filled: `fr-core-encounter` (identifier with
//! type, system and value; class system and code; at most one type; period), `fr-core-patient`
//! (the `PI` identifier slice: use `usual`, type v2-0203 `PI`, system, value; a name; the birth
//! date), `fr-core-consent` (patient and performer references to allowed targets, on top of
//! R4's status, scope, category and policy rule).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telesoin_store::{ConsentRow, ReportRow};

use super::BillingLine;

/// The OID of the RPPS identifier system (ANS).
const RPPS_SYSTEM: &str = "urn:oid:1.2.250.1.71.4.2.1";
/// The FR Core profile of a Patient identified by its INS.
const FR_CORE_PATIENT_INS: &str =
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins";
/// FR Core's identifier types (`INS-NIR`, `INS-NIA`, `INS-NIR-TEST`, `INS-NIR-DEMO`).
const FR_CORE_IDENTIFIER_TYPE: &str = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203";

/// FR Core profile canonicals.
pub const FR_CORE_ENCOUNTER: &str =
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-encounter";
pub const FR_CORE_PATIENT: &str = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient";
pub const FR_CORE_CONSENT: &str = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-consent";

/// Our identifier systems (the service's own ids).
const PATIENT_ID_SYSTEM: &str = "https://telesoin.example/fhir/patient-id";
const ENCOUNTER_ID_SYSTEM: &str = "https://telesoin.example/fhir/session-id";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What goes with a session in the bundle.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub consents: Vec<ConsentRow>,
    /// Who consented for a minor, by consent id.
    pub representatives: std::collections::HashMap<uuid::Uuid, telesoin_store::Representative>,
    pub report: Option<ReportRow>,
    /// Companions attested present (each an Encounter participant: a RelatedPerson, escort).
    pub attestations: Vec<telesoin_store::AttestationRow>,
}

pub fn bundle(lines: &[(BillingLine, Extras)], now: DateTime<Utc>) -> Value {
    let mut entries: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |id: String, resource: Value, entries: &mut Vec<Value>| {
        if seen.insert(id.clone()) {
            entries.push(json!({ "fullUrl": format!("urn:uuid:{id}"), "resource": resource }));
        }
    };
    for (l, extras) in lines {
        let s = &l.row.session;
        let (kine, patient, encounter) =
            (s.kine.to_string(), s.patient.to_string(), s.id.to_string());
        push(
            kine.clone(),
            json!({
                "resourceType": "Practitioner",
                "id": kine,
                "identifier": [{ "system": RPPS_SYSTEM, "value": l.kine_rpps }],
                "name": [{ "text": l.kine_name }],
                "qualification": [{ "code": { "text": "Masseur-kinésithérapeute" } }]
            }),
            &mut entries,
        );
        let mut pat = json!({
            "resourceType": "Patient",
            "id": patient,
            "meta": { "profile": [FR_CORE_PATIENT] },
            "identifier": [{
                "use": "usual",
                "type": { "coding": [{ "system": V2_0203, "code": "PI", "display": "Patient internal identifier" }] },
                "system": PATIENT_ID_SYSTEM,
                "value": patient
            }],
            "name": [{ "use": "usual", "text": l.patient_name }]
        });
        if let Some(b) = l.patient_birth_date {
            pat["birthDate"] = json!(b.to_string());
        }
        if let Some(ins) = &l.patient_ins {
            // Only a qualified INS is carried (RNIV), so the identity status is QUAL.
            pat["meta"] = json!({ "profile": [FR_CORE_PATIENT_INS] });
            if let Some(ids) = pat["identifier"].as_array_mut() {
                ids.push(json!({
                    "use": ins.authority().fhir_use(),
                    "type": { "coding": [{ "system": FR_CORE_IDENTIFIER_TYPE, "code": ins.authority().fhir_type() }] },
                    "system": format!("urn:oid:{}", ins.authority().oid()),
                    "value": ins.value()
                }));
            }
        }
        push(patient.clone(), pat, &mut entries);
        let act = l.act();
        let mut enc = json!({
            "resourceType": "Encounter",
            "id": encounter,
            "meta": { "profile": [FR_CORE_ENCOUNTER] },
            "identifier": [{
                "use": "official",
                "type": { "coding": [{ "system": V2_0203, "code": "VN", "display": "Visit number" }] },
                "system": ENCOUNTER_ID_SYSTEM,
                "value": encounter
            }],
            "status": "finished",
            "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual" },
            "type": [{ "text": act.map(|a| a.label).unwrap_or_default() }],
            "subject": { "reference": format!("urn:uuid:{patient}") },
            "participant": [{ "individual": { "reference": format!("urn:uuid:{kine}"), "display": l.kine_name } }],
            "period": { "start": ts(s.starts_at) },
            "length": { "value": l.row.billable_seconds.unwrap_or(0), "unit": "s", "system": "http://unitsofmeasure.org", "code": "s" },
            "extension": [{ "url": "https://telesoin.example/fhir/billing-class", "valueCode": l.row.billing_class }]
        });
        if let Some(end) = l.row.ended_at {
            enc["period"]["end"] = json!(ts(end));
        }
        // A companion's presence is an attestation: a participant (escort) of the Encounter,
        // the RelatedPerson named with their relation, "En présence de <nom> (<relation>)".
        for (i, a) in extras.attestations.iter().enumerate() {
            let rp = format!("{encounter}-companion-{}", i + 1);
            push(
                rp.clone(),
                json!({
                    "resourceType": "RelatedPerson",
                    "id": rp,
                    "patient": { "reference": format!("urn:uuid:{patient}") },
                    "relationship": [{ "text": a.relation }],
                    "name": [{ "text": a.name }]
                }),
                &mut entries,
            );
            if let Some(ps) = enc["participant"].as_array_mut() {
                ps.push(json!({
                    "type": [{
                        "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ESC", "display": "escort" }],
                        "text": super::attestation_words(a)
                    }],
                    "period": { "start": ts(a.attested_at) },
                    "individual": { "reference": format!("urn:uuid:{rp}"), "display": a.name }
                }));
            }
        }
        if let Some(telesoin_core::tariff::Billed::Reimbursable {
            letter,
            coefficient_tenths,
            value_cents,
            cents,
        }) = l.billed
        {
            let cotation = json!({
                "url": "https://telesoin.example/fhir/cotation",
                "extension": [
                    { "url": "keyLetter", "valueCode": letter.as_str() },
                    { "url": "coefficient", "valueDecimal": f64::from(coefficient_tenths) / 10.0 },
                    { "url": "keyLetterValue", "valueMoney": { "value": value_cents as f64 / 100.0, "currency": "EUR" } },
                    { "url": "amount", "valueMoney": { "value": cents as f64 / 100.0, "currency": "EUR" } }
                ]
            });
            if let Some(ext) = enc["extension"].as_array_mut() {
                ext.push(cotation);
            }
        }
        push(encounter.clone(), enc, &mut entries);
        for c in &extras.consents {
            let id = c.id.to_string();
            let representative = extras.representatives.get(&c.id);
            let performer = match (representative, c.consent.recorded_by.as_str()) {
                (Some(r), _) => {
                    let rp = format!("{id}-representative");
                    push(
                        rp.clone(),
                        json!({
                            "resourceType": "RelatedPerson",
                            "id": rp,
                            "patient": { "reference": format!("urn:uuid:{patient}") },
                            "relationship": [{ "text": r.relation }],
                            "name": [{ "text": r.name }]
                        }),
                        &mut entries,
                    );
                    rp
                }
                (None, "kine") => kine.clone(),
                (None, _) => patient.clone(),
            };
            let mut consent = json!({
                "resourceType": "Consent",
                "id": id,
                "meta": { "profile": [FR_CORE_CONSENT] },
                "status": if c.consent.withdrawn_at.is_some() { "inactive" } else { "active" },
                "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment" }] },
                "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
                "patient": { "reference": format!("urn:uuid:{patient}") },
                "dateTime": ts(c.consent.recorded_at),
                "policyRule": { "text": format!("Consentement au télésoin (CSP L.6316-2), texte {}", c.consent.text_version) },
                "performer": [{ "reference": format!("urn:uuid:{performer}") }]
            });
            if let Some(w) = c.consent.withdrawn_at {
                consent["provision"] = json!({ "type": "deny", "period": { "start": ts(w) } });
            }
            push(id, consent, &mut entries);
        }
        if let Some(r) = &extras.report {
            let id = format!("{}-cr-{}", s.id, r.version);
            push(
                id.clone(),
                json!({
                    "resourceType": "DocumentReference",
                    "id": id,
                    "status": "current",
                    "type": { "coding": [{ "system": "http://loinc.org", "code": "11488-4", "display": "Consult note" }], "text": "Compte rendu de télésoin" },
                    "subject": { "reference": format!("urn:uuid:{patient}") },
                    "date": ts(r.written_at),
                    "author": [{ "reference": format!("urn:uuid:{kine}") }],
                    "description": format!("Version {}", r.version),
                    "content": [{ "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "language": "fr",
                        "data": STANDARD.encode(r.text.as_bytes()),
                        "title": "Compte rendu de télésoin"
                    } }],
                    "context": { "encounter": [{ "reference": format!("urn:uuid:{encounter}") }] }
                }),
                &mut entries,
            );
        }
    }
    json!({ "resourceType": "Bundle", "type": "collection", "timestamp": ts(now), "entry": entries })
}
