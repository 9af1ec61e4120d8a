//! The spine, end to end: a real server (port 0, temporary SQLite file) driven over HTTPS and
//! WebSocket by real clients.

mod burst;
mod call;
mod cluster;
mod evidence;
mod faults;
mod identity;
mod platform;
mod reach;
mod records;
mod representation;
mod restart;
mod room;
mod standing;
mod support;
mod turn;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::json;
use support::*;
use telesoin_core::claims::JoinClaims;
use telesoin_core::model::Role;
use uuid::Uuid;

async fn refused_code(port: u16, token: &str) -> (String, u16) {
    let mut ws = Ws::join(port, token).await;
    let m = ws.recv().await;
    assert_eq!(
        m["type"], "refused",
        "the first answer must be the refusal: {m}"
    );
    assert!(
        m["message_fr"].as_str().is_some_and(|s| !s.is_empty())
            && m["message_en"].as_str().is_some_and(|s| !s.is_empty())
    );
    let code = ws.closed().await;
    (m["code"].as_str().expect("code").to_owned(), code)
}

#[tokio::test]
async fn each_precondition_is_refused_with_its_code() {
    let server = Server::start().await;
    let api = server.kine("pre@example.fr").await;
    let port = server.port;

    // No in-person visit: refused before any lobby, naming the rule; the join page's preview
    // already says so, before the page asks for the camera.
    let p = api.patient("1958-03-14", false, &[], true).await;
    let s = api.session(p, json!({})).await;
    let (t, _) = api.link(s, "patient").await;
    let (status, preview) = api
        .call(
            reqwest::Method::POST,
            "/api/join-info",
            Some(json!({"token": t})),
        )
        .await;
    assert_eq!(
        (
            status,
            preview["code"].as_str(),
            preview["details"]["rule"].as_str()
        ),
        (403, Some("in_person_missing"), Some("arrete_2021"))
    );
    let mut ws = Ws::join(port, &t).await;
    assert_eq!(ws.recv().await["type"], "welcome");
    let r = ws.recv().await;
    assert_eq!(
        (
            r["type"].as_str(),
            r["code"].as_str(),
            r["details"]["rule"].as_str()
        ),
        (
            Some("refused"),
            Some("in_person_missing"),
            Some("arrete_2021")
        )
    );
    assert!(r["message_fr"].as_str().expect("fr").contains("cabinet"));
    assert_eq!(ws.closed().await, 4001);

    // No consent and the session does not ask for it on the join page.
    let p = api
        .patient("1958-03-14", false, &[(&today_minus(20), "bilan")], false)
        .await;
    let s = api.session(p, json!({})).await;
    let (t, _) = api.link(s, "patient").await;
    let (mut ws, _) = welcomed(port, &t).await;
    let r = ws.recv().await;
    assert_eq!(r["code"], "consent_missing", "{r}");

    // ... and when it does: the patient consents on the page, then waits for the kiné.
    let s = api
        .session(p, json!({"patient_consent_on_join": true}))
        .await;
    let (t, _) = api.link(s, "patient").await;
    let preview = api.post("/api/join-info", json!({"token": t})).await;
    assert_eq!(
        (
            preview["kine_name"].as_str(),
            preview["billing_class"].as_str()
        ),
        (Some("Claire Martin"), Some("hn"))
    );
    let (mut ws, w) = welcomed(port, &t).await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "consent_required"})
    );
    ws.send(json!({"type": "consent", "text_version": w["session"]["consent_text_version"]}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "kine_absent"})
    );
    let detail = api.get(&format!("/api/patients/{p}")).await;
    let c = &detail["consents"][0];
    assert_eq!(
        (c["recorded_by"].as_str(), c["method"].as_str()),
        (Some("patient"), Some("join_page")),
        "traced: {c}"
    );
    drop(ws);

    // Consent withdrawn before the call.
    let p = api.ready_patient().await;
    let cid = api.get(&format!("/api/patients/{p}")).await["consents"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    api.post(&format!("/api/consents/{cid}/withdraw"), json!({}))
        .await;
    let s = api
        .session(p, json!({"patient_consent_on_join": true}))
        .await;
    let (t, _) = api.link(s, "patient").await;
    let (mut ws, _) = welcomed(port, &t).await;
    assert_eq!(ws.recv().await["code"], "consent_withdrawn");

    // A minor: attestation first, the call only after it.
    let p = api
        .patient(
            &birth_years_ago(17, 0),
            false,
            &[(&today_minus(20), "bilan")],
            true,
        )
        .await;
    let s = api.session(p, json!({})).await;
    let (kt, _) = api.link(s, "kine").await;
    let (t, pid) = api.link(s, "patient").await;
    let (mut k, _) = welcomed(port, &kt).await;
    assert_eq!(k.recv().await["type"], "admitted");
    let (mut ws, _) = welcomed(port, &t).await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "attestation_parent"})
    );
    ws.send(
        json!({"type": "attest", "companion": "aidant", "name": "Marc Petit", "relation": "oncle"}),
    )
    .await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "attestation_parent"}),
        "an aidant is not a parent"
    );
    // An attestation names the companion: without a name it is refused, and changes nothing.
    ws.send(json!({"type": "attest", "companion": "parent"}))
        .await;
    let e = ws.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("companion_unnamed")),
        "{e}"
    );
    assert!(
        e["message_fr"].as_str().is_some_and(|m| m.contains("nom"))
            && e["message_en"].as_str().is_some()
    );
    ws.send(json!({"type": "attest", "companion": "parent", "name": "  ", "relation": "mère"}))
        .await;
    assert_eq!(
        ws.recv().await["code"],
        "companion_unnamed",
        "a blank name is no name"
    );
    ws.send(json!({"type": "attest", "companion": "parent", "name": "Sophie Dupont", "relation": "mère"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "awaiting_admission"})
    );
    k.until("lobby_waiting").await;
    k.send(json!({"type": "admit", "participant": pid})).await;
    assert_eq!(ws.recv().await["type"], "admitted");
    // The presence is an attestation, named, never an incident.
    let record = api.record(s).await;
    assert_eq!(
        record["attestations"].as_array().map(|a| a
            .iter()
            .map(|x| x["words"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()),
        Some(vec![
            "En présence de Marc Petit (oncle)".to_owned(),
            "En présence de Sophie Dupont (mère)".to_owned()
        ]),
        "{record}"
    );
    assert!(
        record["incidents"].as_array().is_some_and(|i| i.is_empty()),
        "an attested presence is no incident: {record}"
    );
    assert!(
        record["events"].as_array().is_some_and(|e| e
            .iter()
            .any(|e| e["kind"] == "attested" && e["detail"] == "parent")),
        "{record}"
    );
    assert_eq!(
        record["consent"],
        "Consentement au télésoin donné par Sophie Dupont (mère), représentant légal du patient mineur"
    );

    // Loss of autonomy: an aidant.
    let p = api
        .patient("1940-01-01", true, &[(&today_minus(20), "session")], true)
        .await;
    let s = api.session(p, json!({"auto_admit": true})).await;
    let (kt, _) = api.link(s, "kine").await;
    let (t, _) = api.link(s, "patient").await;
    let (mut k2, _) = welcomed(port, &kt).await;
    assert_eq!(k2.recv().await["type"], "admitted");
    let (mut ws, _) = welcomed(port, &t).await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "attestation_aidant"})
    );
    ws.send(
        json!({"type": "attest", "companion": "aidant", "name": "Paul Martin", "relation": "fils"}),
    )
    .await;
    assert_eq!(
        ws.recv().await["type"],
        "admitted",
        "auto-admit once the aidant is attested"
    );
    server.stop().await;
}

#[tokio::test]
async fn convention_rule_names_itself() {
    let server = Server::start_with(|c| {
        c.in_person_rule = telesoin_core::admission::InPersonRule::Convention
    })
    .await;
    let api = server.kine("conv@example.fr").await;
    let p = api
        .patient("1958-03-14", false, &[(&today_minus(10), "session")], true)
        .await;
    let s = api.session(p, json!({})).await;
    let (t, _) = api.link(s, "patient").await;
    let (mut ws, _) = welcomed(server.port, &t).await;
    let r = ws.recv().await;
    assert_eq!(
        (r["code"].as_str(), r["details"]["rule"].as_str()),
        (Some("in_person_bilan_missing"), Some("convention"))
    );
    server.stop().await;
}

#[tokio::test]
async fn nothing_is_relayed_before_admission_nor_across_sessions() {
    let server = Server::start().await;
    let api = server.kine("relay@example.fr").await;
    let port = server.port;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let (kt, kid) = api.link(s, "kine").await;
    let (pt, pid) = api.link(s, "patient").await;
    let (mut k, _) = welcomed(port, &kt).await;
    k.until("admitted").await;
    let (mut pw, _) = welcomed(port, &pt).await;
    pw.until("waiting").await;
    k.until("lobby_waiting").await;

    // The waiting patient cannot send; the kiné cannot reach the waiting patient.
    pw.send(json!({"type": "offer", "to": kid, "data": {"type": "offer", "sdp": "v=0"}}))
        .await;
    assert_eq!(pw.recv().await["code"], "not_admitted");
    k.send(json!({"type": "offer", "to": pid, "data": {"type": "offer", "sdp": "v=0"}}))
        .await;
    assert_eq!(k.recv().await["code"], "unknown_peer");
    k.send(json!({"type": "offer", "data": {"type": "offer", "sdp": "v=0"}}))
        .await;
    assert_eq!(
        k.silent_for(Duration::from_millis(300)).await,
        None,
        "a broadcast reaches no unadmitted seat"
    );
    assert_eq!(
        pw.silent_for(Duration::from_millis(300)).await,
        None,
        "nothing reached the lobby"
    );
    pw.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    assert_eq!(
        pw.recv().await["code"],
        "not_admitted",
        "no billing before admission either"
    );

    // Another admitted pair in another session cannot be reached from this one.
    let (mut k2, mut p2, _s2, _k2id, p2id) = admitted_pair(&api, port).await;
    k.send(json!({"type": "admit", "participant": pid})).await;
    pw.until("admitted").await;
    k.until("peer_joined").await;
    k.send(json!({"type": "offer", "to": p2id, "data": {"sdp": "x"}}))
        .await;
    assert_eq!(k.recv().await["code"], "unknown_peer");
    k2.send(json!({"type": "admit", "participant": pid})).await;
    assert_eq!(
        k2.recv().await["code"],
        "unknown_peer",
        "a kiné cannot admit into another session"
    );
    assert_eq!(p2.silent_for(Duration::from_millis(300)).await, None);

    // Once admitted, relay is byte-identical.
    let raw = r#"{"type":"answer","to":"KINE","data":{"type":"answer","sdp":"v=0\r\na=fingerprint:sha-256 AB:CD\r\n",  "odd" : [1, 2.50, "é"]}}"#.replace("KINE", &kid.to_string());
    pw.send_raw(raw).await.expect("send");
    let tokio_tungstenite::tungstenite::Message::Text(got) =
        tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut k.inner))
            .await
            .expect("in time")
            .expect("frame")
            .expect("ok")
    else {
        panic!("text")
    };
    assert!(got.as_str().contains(r#""data":{"type":"answer","sdp":"v=0\r\na=fingerprint:sha-256 AB:CD\r\n",  "odd" : [1, 2.50, "é"]}"#), "{got}");
    assert!(got.as_str().contains(&format!(r#""from":"{pid}""#)));
    server.stop().await;
}

fn forge(server: &Server, claims: &JoinClaims) -> String {
    let keys =
        telesoin_server::keys::Keys::load_or_create(&server.dir.path().join("keys")).expect("keys");
    keys.sign(claims).expect("sign")
}

fn claims_of(token: &str) -> JoinClaims {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims")
}

#[tokio::test]
async fn bad_tokens_are_refused_before_anything_happens() {
    let server = Server::start().await;
    let api = server.kine("tok@example.fr").await;
    let port = server.port;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let other = api.session(p, json!({})).await;
    let (t, _) = api.link(s, "patient").await;
    let good = claims_of(&t);
    let now = Utc::now().timestamp();

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            forge(
                &server,
                &JoinClaims {
                    nbf: now - 7200,
                    exp: now - 60,
                    ..good.clone()
                },
            ),
            "token_expired",
        ),
        (
            "not yet valid",
            forge(
                &server,
                &JoinClaims {
                    nbf: now + 3600,
                    exp: now + 7200,
                    ..good.clone()
                },
            ),
            "token_not_yet_valid",
        ),
        (
            "another session",
            forge(
                &server,
                &JoinClaims {
                    sid: other,
                    ..good.clone()
                },
            ),
            "token_wrong_session",
        ),
        (
            "another role",
            forge(
                &server,
                &JoinClaims {
                    role: Role::Kine,
                    ..good.clone()
                },
            ),
            "token_wrong_role",
        ),
        (
            "another issuer",
            forge(
                &server,
                &JoinClaims {
                    iss: "https://evil.example".into(),
                    ..good.clone()
                },
            ),
            "token_invalid",
        ),
        (
            "unknown jti",
            forge(
                &server,
                &JoinClaims {
                    jti: Uuid::new_v4(),
                    ..good.clone()
                },
            ),
            "token_invalid",
        ),
        (
            "tampered",
            {
                let mut parts: Vec<String> = t.split('.').map(String::from).collect();
                parts[1] = URL_SAFE_NO_PAD.encode(
                    serde_json::to_vec(&JoinClaims {
                        role: Role::Kine,
                        ..good.clone()
                    })
                    .expect("json"),
                );
                parts.join(".")
            },
            "token_invalid",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"telesoin-join+jwt"}"#),
                t.split('.').nth(1).expect("p")
            ),
            "token_invalid",
        ),
        (
            "HS256",
            {
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                h.typ = Some("telesoin-join+jwt".into());
                jsonwebtoken::encode(&h, &good, &jsonwebtoken::EncodingKey::from_secret(b"guess"))
                    .expect("hs")
            },
            "token_invalid",
        ),
        ("garbage", "not.a.token".into(), "token_invalid"),
    ];
    for (name, token, want) in cases {
        let (code, close) = refused_code(port, &token).await;
        assert_eq!((code.as_str(), close), (want, 4001), "{name}");
    }
    // Nothing happened: no event was recorded for the session.
    assert_eq!(
        api.record(s).await["events"],
        json!([]),
        "refusals before the seat leave no trace in the record"
    );

    // The first message must be join.
    let mut ws = Ws::open(port, None).await.expect("open");
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.recv().await["code"], "join_first");
    server.stop().await;
}

#[tokio::test]
async fn cancelling_kills_links_at_once_even_in_the_lobby() {
    let server = Server::start().await;
    let api = server.kine("cancel@example.fr").await;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let (t, _) = api.link(s, "patient").await;
    let (mut ws, _) = welcomed(server.port, &t).await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "waiting", "reason": "kine_absent"})
    );
    api.post(&format!("/api/sessions/{s}/cancel"), json!({}))
        .await;
    let r = ws.recv().await;
    assert_eq!(
        (r["type"].as_str(), r["code"].as_str()),
        (Some("refused"), Some("session_cancelled"))
    );
    assert_eq!(ws.closed().await, 4001);
    let (code, _) = refused_code(server.port, &t).await;
    assert_eq!(code, "session_cancelled", "the link is dead and says why");
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/sessions/{s}/links"),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("session_cancelled"))
    );

    // Revoking one link refuses its holder at once.
    let s = api.session(p, json!({})).await;
    let link = api
        .post(
            &format!("/api/sessions/{s}/links"),
            json!({"role": "patient"}),
        )
        .await;
    let t = link["token"].as_str().expect("token").to_owned();
    let (mut ws, _) = welcomed(server.port, &t).await;
    ws.recv().await;
    api.post(
        &format!("/api/links/{}/revoke", link["jti"].as_str().expect("jti")),
        json!({}),
    )
    .await;
    assert_eq!(ws.recv().await["code"], "token_revoked");
    server.stop().await;
}

#[tokio::test]
async fn reconnection_inside_the_grace_window_keeps_the_seat() {
    let server = Server::start().await;
    let api = server.kine("grace@example.fr").await;
    let (mut k, p, s, _kid, pid) = admitted_pair(&api, server.port).await;
    let pt = api.link(s, "patient").await.0;
    drop(p);
    let (left, _) = k.until("peer_left").await;
    assert_eq!(
        left,
        json!({"type": "peer_left", "participant": pid, "reconnecting": true})
    );
    let (mut p, w) = welcomed(server.port, &pt).await;
    assert_eq!(w["resumed"], true);
    assert_eq!(w["participant"], pid.to_string(), "same seat");
    assert_eq!(
        p.recv().await["type"],
        "admitted",
        "no second admission needed"
    );
    let (joined, _) = k.until("peer_joined").await;
    assert_eq!(
        joined["peer"]["participant"],
        pid.to_string(),
        "the kiné learns of the return and re-offers"
    );

    // A second device with the same token takes over; the first is told why.
    let (mut p2, w2) = welcomed(server.port, &pt).await;
    assert_eq!(w2["participant"], pid.to_string());
    let (replaced, _) = p.until("replaced").await;
    assert_eq!(replaced["type"], "replaced");
    assert_eq!(p.closed().await, 4002);
    assert_eq!(p2.recv().await["type"], "admitted");

    // Past the grace window the seat is gone: the lobby again.
    drop(p2);
    k.until("peer_left").await;
    let (gone, _) = k.until("peer_left").await;
    assert_eq!(gone["reconnecting"], false);
    let (mut p3, w3) = welcomed(server.port, &pt).await;
    assert_eq!(w3["resumed"], false);
    assert_eq!(
        p3.recv().await,
        json!({"type": "waiting", "reason": "awaiting_admission"})
    );
    let kinds: Vec<String> = api.record(s).await["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for k in ["socket_lost", "reconnected", "left"] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn limits_oversized_message_foreign_origin_and_ping() {
    let server = Server::start().await;
    let api = server.kine("limits@example.fr").await;
    let (mut k, _p, _s, _, _) = admitted_pair(&api, server.port).await;
    k.send(json!({"type": "ping"})).await;
    assert_eq!(k.recv().await, json!({"type": "pong"}));
    k.send(json!({"type": "hello"})).await;
    assert_eq!(k.recv().await["code"], "bad_message");
    let big = format!(
        r#"{{"type":"candidate","data":{{"candidate":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    let _ = k.send_raw(big).await;
    assert_eq!(k.closed().await, 1009);

    match Ws::open(server.port, Some("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a foreign origin must be refused"),
    }
    Ws::open(server.port, Some(&server.base))
        .await
        .expect("own origin is allowed");
    server.stop().await;
}

#[tokio::test]
async fn kine_hangup_finalizes_once_with_billable_time_from_media_events() {
    let server = Server::start().await;
    let api = server.kine("bill@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    k.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    k.send(json!({"type": "hangup"})).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ended, _) = p.until("ended").await;
    let billed = ended["billable_seconds"].as_i64().expect("seconds");
    assert!(
        (billed as f64 - elapsed).abs() <= 1.0,
        "billed {billed} s for {elapsed:.2} s"
    );
    let rec = api.record(s).await;
    assert_eq!(rec["status"], "ended");
    assert_eq!(rec["billable_seconds"].as_i64(), Some(billed));
    let first_final = rec["finalized_at"].clone();
    let again = api.post(&format!("/api/sessions/{s}/end"), json!({})).await;
    assert_eq!(
        (again["billable_seconds"].as_i64(), &again["finalized_at"]),
        (Some(billed), &first_final),
        "finalized exactly once"
    );
    let ended_events = rec["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "ended")
        .count();
    assert_eq!(ended_events, 1);
    server.stop().await;
}

#[tokio::test]
async fn rest_is_scoped_to_the_logged_in_kine_and_validates_input() {
    let server = Server::start().await;
    let a = server.kine("a@example.fr").await;
    let b = server.kine("b@example.fr").await;
    let p = a.ready_patient().await;
    let s = a.session(p, json!({})).await;
    for path in [
        format!("/api/patients/{p}"),
        format!("/api/sessions/{s}"),
        format!("/api/sessions/{s}/record"),
    ] {
        let (status, body) = b.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (status, _) = b
        .call(
            reqwest::Method::POST,
            &format!("/api/sessions/{s}/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = a
        .call(
            reqwest::Method::POST,
            "/api/sessions",
            Some(json!({"patient": p, "starts_at": Utc::now(), "act_code": "NOPE"})),
        )
        .await;
    assert_eq!(
        (
            status,
            body["code"].as_str(),
            body["details"]["field"].as_str()
        ),
        (422, Some("invalid_input"), Some("act_code"))
    );
    assert!(body["message_fr"].as_str().is_some() && body["message_en"].as_str().is_some());
    let anon = Api {
        cookie: String::new(),
        ..a.clone()
    };
    let (status, body) = anon.call(reqwest::Method::GET, "/api/patients", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let res = http()
        .post(format!("{}/api/login", server.base))
        .header("origin", &server.base)
        .json(&json!({"email": "a@example.fr", "password": "wrong"}))
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 401);
    let created = a.get(&format!("/api/sessions/{s}")).await;
    assert_eq!(
        created["billing_class"], "hn",
        "no prescription: hors nomenclature, shown up front"
    );
    server.stop().await;
}

#[tokio::test]
async fn withdrawing_consent_ends_a_live_call() {
    let server = Server::start().await;
    let api = server.kine("withdraw@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    let patient = api.get(&format!("/api/sessions/{s}")).await["patient"]
        .as_str()
        .expect("patient")
        .to_owned();
    let cid = api.get(&format!("/api/patients/{patient}")).await["consents"][0]["id"]
        .as_str()
        .expect("consent")
        .to_owned();
    api.post(&format!("/api/consents/{cid}/withdraw"), json!({}))
        .await;
    let (r, _) = p.until("refused").await;
    assert_eq!(r["code"], "consent_withdrawn");
    let (ended, _) = k.until("ended").await;
    assert_eq!(ended["reason"], "consent_withdrawn");
    assert_eq!(api.record(s).await["status"], "ended");
    server.stop().await;
}

#[tokio::test]
async fn idle_sockets_are_closed() {
    let server = Server::start_with(|c| c.idle_timeout_seconds = 5).await;
    let api = server.kine("idle@example.fr").await;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let (t, _) = api.link(s, "kine").await;
    let (mut k, _) = welcomed(server.port, &t).await;
    k.until("admitted").await;
    let started = std::time::Instant::now();
    let (e, _) = k.until("error").await;
    assert_eq!(e["code"], "idle_timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "not before the timeout"
    );
    assert_eq!(k.closed().await, 1000);
    server.stop().await;
}

#[tokio::test]
async fn jwks_verifies_issued_links_and_configured_certificates_are_used() {
    let dir = tempfile::tempdir().expect("dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(dir.path().join("c.pem"), cert.cert.pem()).expect("write");
    std::fs::write(dir.path().join("k.pem"), cert.signing_key.serialize_pem()).expect("write");
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let server = Server::start_with(|cfg| {
        cfg.tls_cert = Some(c);
        cfg.tls_key = Some(k);
    })
    .await;
    // The configured certificate is the one presented.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("tcp");
    let tls = tokio_rustls::TlsConnector::from(tls_client())
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("handshake");
    let presented = tls.get_ref().1.peer_certificates().expect("certs")[0]
        .as_ref()
        .to_vec();
    assert_eq!(presented, cert.cert.der().to_vec());
    assert!(
        !server.dir.path().join("tls/cert.pem").exists(),
        "no self-signed certificate when one is configured"
    );

    let api = server.kine("jwks@example.fr").await;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let (token, pid) = api.link(s, "patient").await;
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(api.get("/.well-known/jwks.json").await).expect("jwks");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(
        (header.alg, header.typ.as_deref()),
        (jsonwebtoken::Algorithm::EdDSA, Some("telesoin-join+jwt"))
    );
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid published");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["telesoin-join"]);
    v.set_issuer(&[server.base.as_str()]);
    let data = jsonwebtoken::decode::<JoinClaims>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &v,
    )
    .expect("valid");
    assert_eq!(
        (data.claims.sub, data.claims.sid, data.claims.role),
        (pid, s, Role::Patient)
    );
    server.stop().await;
}

#[tokio::test]
async fn the_kine_hears_of_lobby_departures_and_the_lobby_of_the_kines() {
    let server = Server::start().await;
    let api = server.kine("lobby@example.fr").await;
    let p = api.ready_patient().await;
    let s = api.session(p, json!({})).await;
    let (kt, _) = api.link(s, "kine").await;
    let (pt, pid) = api.link(s, "patient").await;
    let (mut k, _) = welcomed(server.port, &kt).await;
    k.until("admitted").await;
    let (pw, _) = welcomed(server.port, &pt).await;
    k.until("lobby_waiting").await;
    drop(pw);
    let (left, _) = k.until("peer_left").await;
    assert_eq!(
        left,
        json!({"type": "peer_left", "participant": pid, "reconnecting": false})
    );

    let (mut pw, _) = welcomed(server.port, &pt).await;
    assert_eq!(
        pw.recv().await,
        json!({"type": "waiting", "reason": "awaiting_admission"})
    );
    drop(k);
    assert_eq!(
        pw.recv().await,
        json!({"type": "waiting", "reason": "kine_absent"}),
        "the lobby is told the kiné left"
    );
    let (mut k, _) = welcomed(server.port, &kt).await;
    k.until("admitted").await;
    assert_eq!(
        pw.recv().await,
        json!({"type": "waiting", "reason": "awaiting_admission"})
    );
    k.until("lobby_waiting").await;
    server.stop().await;
}

#[tokio::test]
async fn revoking_an_admitted_patients_link_stops_their_billing() {
    let server = Server::start().await;
    let api = server.kine("revoke@example.fr").await;
    let (mut k, mut p, s, _, _) = admitted_pair(&api, server.port).await;
    k.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "media", "state": "connected", "video_in": true, "video_out": true}))
        .await;
    p.send(json!({"type": "ping"})).await;
    p.until("pong").await;
    let link = api
        .post(
            &format!("/api/sessions/{s}/links"),
            json!({"role": "patient"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    api.post(
        &format!("/api/links/{}/revoke", link["jti"].as_str().expect("jti")),
        json!({}),
    )
    .await;
    assert_eq!(p.until("refused").await.0["code"], "token_revoked");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    k.send(json!({"type": "hangup"})).await;
    let (ended, _) = k.until("ended").await;
    let billed = ended["billable_seconds"].as_i64().expect("seconds");
    assert!(
        (1..=2).contains(&billed),
        "billing stopped at the revocation, not at the end: {billed} s"
    );
    server.stop().await;
}
