//! FHIR R4 JSON: a `collection` Bundle with, per finalized session, the Encounter (class VR,
//! period, participants), the Practitioner (RPPS) and Patient it references, the Consents on
//! record, and the compte rendu as a DocumentReference.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telesoin_core::acts;
use telesoin_store::{ConsentRow, ReportRow};

use super::BillingLine;

/// The OID of the RPPS identifier system (ANS).
const RPPS_SYSTEM: &str = "urn:oid:1.2.250.1.71.4.2.1";
/// The FR Core profile of a Patient identified by its INS.
const FR_CORE_PATIENT_INS: &str =
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient-ins";
/// FR Core's identifier types (`INS-NIR`, `INS-NIA`, `INS-NIR-TEST`, `INS-NIR-DEMO`).
const FR_CORE_IDENTIFIER_TYPE: &str = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203";

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What goes with a session in the bundle.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub consents: Vec<ConsentRow>,
    pub report: Option<ReportRow>,
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
        let mut patient_resource = json!({ "resourceType": "Patient", "id": patient, "name": [{ "text": l.patient_name }] });
        if let Some(ins) = &l.patient_ins {
            // Only a qualified INS is carried (RNIV), so the identity status is QUAL.
            patient_resource["meta"] = json!({ "profile": [FR_CORE_PATIENT_INS] });
            patient_resource["identifier"] = json!([{
                "use": ins.authority().fhir_use(),
                "type": { "coding": [{ "system": FR_CORE_IDENTIFIER_TYPE, "code": ins.authority().fhir_type() }] },
                "system": format!("urn:oid:{}", ins.authority().oid()),
                "value": ins.value()
            }]);
        }
        push(patient.clone(), patient_resource, &mut entries);
        let act = acts::find(&s.act_code);
        let mut enc = json!({
            "resourceType": "Encounter",
            "id": encounter,
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
        push(encounter.clone(), enc, &mut entries);
        for c in &extras.consents {
            let id = c.id.to_string();
            let mut consent = json!({
                "resourceType": "Consent",
                "id": id,
                "status": if c.consent.withdrawn_at.is_some() { "inactive" } else { "active" },
                "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment" }] },
                "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
                "patient": { "reference": format!("urn:uuid:{patient}") },
                "dateTime": ts(c.consent.recorded_at),
                "policyRule": { "text": format!("Consentement au télésoin (CSP L.6316-2), texte {}", c.consent.text_version) },
                "performer": [{ "reference": format!("urn:uuid:{}", if c.consent.recorded_by.as_str() == "kine" { &kine } else { &patient }) }]
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
