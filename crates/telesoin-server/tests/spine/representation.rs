//! Who speaks for the patient and who sits next to them, end to end (issue 9, items 6 and 7):
//! a minor's consent given on the join page by the named legal representative, a kiné-recorded
//! consent for a minor naming them, a companion's presence attested by name (never an
//! incident) and said in words in the record, the report, the invoice and the FHIR export; and
//! an HN session's price accepted on the join page before admission.

use std::time::Duration;

use serde_json::{Value, json};

use crate::records::{fhir_schema, get_bytes, pdf_text};
use crate::support::*;

/// Both sides report video for about `ms`, then the kiné hangs up.
async fn call_for(k: &mut Ws, p: &mut Ws, ms: u64) {
    for ws in [&mut *k, &mut *p] {
        ws.send(
            json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}),
        )
        .await;
    }
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    k.send(json!({"type": "hangup"})).await;
    k.until("ended").await;
}

fn kinds(record: &Value) -> Vec<String> {
    record["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_minor_consents_through_the_named_representative_and_the_parent_is_attested_by_name() {
    let server = Server::start().await;
    let api = server.kine("minor@example.fr").await;
    let port = server.port;
    let p = api
        .patient(
            &birth_years_ago(12, 0),
            false,
            &[(&today_minus(20), "bilan")],
            false,
        )
        .await;
    let s = api
        .session(
            p,
            json!({"patient_consent_on_join": true, "auto_admit": true}),
        )
        .await;
    let (kt, _) = api.link(s, "kine").await;
    let (pt, _) = api.link(s, "patient").await;
    let (mut k, _) = welcomed(port, &kt).await;
    assert_eq!(k.recv().await["type"], "admitted");

    let (mut ws, w) = welcomed(port, &pt).await;
    assert_eq!(w["session"]["minor"], true, "the page asks the parent: {w}");
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "consent_required"})
    );
    let version = w["session"]["consent_text_version"].clone();
    // The 12-year-old cannot consent herself.
    ws.send(json!({"type": "consent", "text_version": version}))
        .await;
    let e = ws.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("representative_consent_required")),
        "{e}"
    );
    assert!(
        e["message_fr"]
            .as_str()
            .is_some_and(|m| m.contains("représentant légal"))
            && e["message_en"]
                .as_str()
                .is_some_and(|m| m.contains("legal representative"))
    );
    let detail = api.get(&format!("/api/patients/{p}")).await;
    assert_eq!(
        detail["consents"].as_array().map(Vec::len),
        Some(0),
        "nothing recorded: {detail}"
    );
    ws.send(json!({"type": "consent", "text_version": version, "representative_name": " Sophie Petit ", "representative_relation": "mère"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "attestation_parent"})
    );
    let detail = api.get(&format!("/api/patients/{p}")).await;
    let c = &detail["consents"][0];
    assert_eq!(
        (
            c["recorded_by"].as_str(),
            c["method"].as_str(),
            c["representative_name"].as_str(),
            c["representative_relation"].as_str()
        ),
        (
            Some("patient"),
            Some("join_page"),
            Some("Sophie Petit"),
            Some("mère")
        ),
        "the representative's consent, named: {c}"
    );
    ws.send(json!({"type": "attest", "companion": "parent", "relation": "mère"}))
        .await;
    assert_eq!(ws.recv().await["code"], "companion_unnamed");
    ws.send(json!({"type": "attest", "companion": "parent", "name": "Sophie Petit", "relation": "mère"}))
        .await;
    assert_eq!(ws.recv().await["type"], "admitted");
    call_for(&mut k, &mut ws, 1200).await;

    // The record says it in words; the presence is no incident.
    let record = api.record(s).await;
    assert_eq!(
        record["consent"],
        "Consentement au télésoin donné par Sophie Petit (mère), représentant légal du patient mineur"
    );
    assert_eq!(
        record["attestations"][0]["words"], "En présence de Sophie Petit (mère)",
        "{record}"
    );
    assert_eq!(record["attestations"][0]["companion"], "parent");
    assert!(kinds(&record).contains(&"attested".to_owned()), "{record}");
    assert!(
        record["incidents"].as_array().is_some_and(|i| i.is_empty()),
        "{record}"
    );

    // The report (PDF) says who consented and who was present.
    let (status, bytes, _) = get_bytes(&api, &format!("/api/sessions/{s}/report.pdf")).await;
    assert_eq!(status, 200);
    let text = pdf_text(&bytes);
    if !text.is_empty() {
        for want in [
            "Consentement au télésoin donné par Sophie Petit (mère), représentant légal du patient mineur",
            "En présence de Sophie Petit (mère)",
            "Incidents techniques : aucun",
        ] {
            assert!(text.contains(want), "{want:?} in the report:\n{text}");
        }
        assert!(!text.contains("attested"), "{text}");
    }

    // FHIR: the companion is a participant of the Encounter (escort), a named RelatedPerson.
    let today = telesoin_core::model::local_date(chrono::Utc::now());
    let (status, body, _) = get_bytes(
        &api,
        &format!("/api/exports?from={today}&to={today}&format=fhir"),
    )
    .await;
    assert_eq!(status, 200);
    let bundle: Value = serde_json::from_slice(&body).expect("json");
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let encounter = resources
        .iter()
        .find(|r| r["resourceType"] == "Encounter" && r["id"] == s.to_string())
        .expect("the encounter");
    let escort = encounter["participant"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["type"][0]["coding"][0]["code"] == "ESC")
        })
        .expect("the companion participates");
    assert_eq!(
        escort["type"][0]["text"],
        "En présence de Sophie Petit (mère)"
    );
    let reference = escort["individual"]["reference"]
        .as_str()
        .expect("reference");
    let rp = resources
        .iter()
        .find(|r| format!("urn:uuid:{}", r["id"].as_str().unwrap_or_default()) == reference)
        .expect("the RelatedPerson is in the bundle");
    assert_eq!(
        (
            rp["resourceType"].as_str(),
            rp["name"][0]["text"].as_str(),
            rp["relationship"][0]["text"].as_str()
        ),
        (Some("RelatedPerson"), Some("Sophie Petit"), Some("mère"))
    );
    if let Some(path) = fhir_schema() {
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("schema"))
            .expect("schema json");
        let validator = jsonschema::draft6::new(&schema).expect("compiles");
        let errors: Vec<String> = validator
            .iter_errors(&bundle)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .take(5)
            .collect();
        assert!(
            errors.is_empty(),
            "the bundle breaks the FHIR R4 schema: {errors:#?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_kine_recorded_consent_for_a_minor_names_the_representative() {
    let server = Server::start().await;
    let api = server.kine("minor-kine@example.fr").await;
    let minor = api
        .patient(&birth_years_ago(12, 0), false, &[], false)
        .await;
    let body =
        json!({"text_version": telesoin_core::model::CONSENT_TEXT_VERSION, "method": "oral"});
    let (status, e) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/patients/{minor}/consents"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (status, e["code"].as_str(), e["details"]["field"].as_str()),
        (
            422,
            Some("representative_required"),
            Some("representative_name")
        ),
        "{e}"
    );
    assert!(
        e["message_fr"]
            .as_str()
            .is_some_and(|m| m.contains("mineur"))
    );
    let mut named = body.clone();
    named["representative_name"] = json!("Sophie Petit");
    let (status, e) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/patients/{minor}/consents"),
            Some(named.clone()),
        )
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("representative_required")),
        "a name without a relation: {e}"
    );
    named["representative_relation"] = json!("mère");
    let c = api
        .post(&format!("/api/patients/{minor}/consents"), named.clone())
        .await;
    assert_eq!(
        (
            c["representative_name"].as_str(),
            c["representative_relation"].as_str()
        ),
        (Some("Sophie Petit"), Some("mère"))
    );
    let adult = api.patient("1980-01-01", false, &[], false).await;
    let (status, e) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/patients/{adult}/consents"),
            Some(named),
        )
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("representative_unexpected")),
        "{e}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_hn_price_is_accepted_on_the_join_page_before_admission() {
    let server = Server::start().await;
    let api = server.kine("hn-price@example.fr").await;
    let port = server.port;
    let p = api.ready_patient().await;
    let s = api
        .session(p, json!({"hn_price_cents": 3250, "auto_admit": true}))
        .await;
    let (kt, _) = api.link(s, "kine").await;
    let (pt, _) = api.link(s, "patient").await;
    let info = api.post("/api/join-info", json!({"token": pt})).await;
    assert_eq!(info["billing_class"], "hn");
    let price = api.post("/api/join-price", json!({"token": pt})).await;
    assert_eq!(
        (
            price["price_cents"].as_i64(),
            price["accepted_at"].is_null()
        ),
        (Some(3250), true),
        "{price}"
    );
    let (mut k, _) = welcomed(port, &kt).await;
    assert_eq!(k.recv().await["type"], "admitted");

    // Not accepted: not admitted, with its code and words.
    let (mut ws, _) = welcomed(port, &pt).await;
    let r = ws.recv().await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("refused"), Some("price_acceptance_required")),
        "{r}"
    );
    assert!(
        r["message_fr"].as_str().is_some_and(|m| m.contains("prix"))
            && r["message_en"]
                .as_str()
                .is_some_and(|m| m.contains("price"))
    );
    assert_eq!(ws.closed().await, 4001);

    // Another price than the one shown is not an acceptance.
    let (status, e) = api
        .call(
            reqwest::Method::POST,
            "/api/join-price/accept",
            Some(json!({"token": pt, "price_cents": 3000})),
        )
        .await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")));
    let accepted = api
        .post(
            "/api/join-price/accept",
            json!({"token": pt, "price_cents": 3250}),
        )
        .await;
    let at = accepted["accepted_at"]
        .as_str()
        .expect("timestamped")
        .to_owned();
    let (mut ws, _) = welcomed(port, &pt).await;
    assert_eq!(ws.recv().await["type"], "admitted");
    call_for(&mut k, &mut ws, 1200).await;

    let record = api.record(s).await;
    assert_eq!(record["price_accepted_at"].as_str(), Some(at.as_str()));
    let (status, bytes, _) = get_bytes(&api, &format!("/api/sessions/{s}/invoice.pdf")).await;
    assert_eq!(status, 200);
    let text = pdf_text(&bytes);
    if !text.is_empty() {
        for want in [
            "Tarif annoncé et accepté le",
            "32,50 €",
            "Consentement au télésoin donné par le patient",
        ] {
            assert!(text.contains(want), "{want:?} in the invoice:\n{text}");
        }
    }

    // At 0 EUR there is nothing to accept: the patient enters as before.
    let s0 = api
        .session(p, json!({"hn_price_cents": 0, "auto_admit": true}))
        .await;
    let (kt, _) = api.link(s0, "kine").await;
    let (pt, _) = api.link(s0, "patient").await;
    let price = api.post("/api/join-price", json!({"token": pt})).await;
    assert!(price["price_cents"].is_null(), "{price}");
    let (mut k, _) = welcomed(port, &kt).await;
    assert_eq!(k.recv().await["type"], "admitted");
    let (mut ws, _) = welcomed(port, &pt).await;
    assert_eq!(ws.recv().await["type"], "admitted");
    server.stop().await;
}
