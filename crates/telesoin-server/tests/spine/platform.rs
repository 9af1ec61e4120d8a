//! The platform API against a real server: keys scoped to kinés and operations, isolation
//! between platforms, idempotency, pagination, rate limits, platform-minted join tokens, and
//! webhooks delivered to a real HTTP receiver (signatures, retries, order, a restart).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};
use telesoin_core::KineId;
use telesoin_core::claims::{JOIN_TOKEN_TYPE, JoinClaims};
use telesoin_core::model::Role;
use telesoin_server::platform::auth::{Scope, new_key};
use telesoin_server::platform::webhooks::signature;
use telesoin_store::PlatformRow;
use uuid::Uuid;

use crate::support::*;

/// A platform registered in the server's store, as `telesoin platform add` does.
async fn platform(server: &Server, name: &str) -> PlatformRow {
    let id = Uuid::new_v4();
    let row = PlatformRow {
        id,
        name: name.into(),
        issuer: format!("https://{name}.example"),
        created_at: Utc::now(),
    };
    server
        .state
        .store
        .create_platform(&row)
        .await
        .expect("platform");
    row
}

/// A key for `platform`, as `telesoin api-key create` does.
async fn key(server: &Server, platform: Uuid, kines: &[Uuid], scopes: &[Scope]) -> String {
    let (key, row) = new_key(
        platform,
        kines.iter().map(|k| KineId(*k)).collect(),
        scopes,
        Utc::now(),
    );
    server.state.store.create_api_key(&row).await.expect("key");
    key
}

async fn kine_id(api: &Api) -> Uuid {
    serde_json::from_value(api.get("/api/me").await["id"].clone()).expect("id")
}

/// A client of `/api/v1` with one key.
#[derive(Clone)]
struct V1 {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl V1 {
    fn new(server: &Server, key: &str) -> V1 {
        V1 {
            http: http(),
            base: format!("{}/api/v1", server.base),
            key: key.to_owned(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, HeaderMap, Value) {
        let res = req
            .header("authorization", format!("Bearer {}", self.key))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, v) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        (s, v)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, v) = self
            .send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await;
        (s, v)
    }

    async fn ok(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body).await;
        assert!((200..300).contains(&s), "POST {path}: {s} {v}");
        v
    }

    /// A patient who may use télésoin (bilan a month ago, consent recorded), through the API.
    async fn ready_patient(&self, kine: Uuid) -> Uuid {
        let p = self
            .ok(
                &format!("/kines/{kine}/patients"),
                json!({"display_name": "Mme Dupont", "birth_date": "1958-03-14"}),
            )
            .await;
        let id = p["id"].as_str().expect("id").to_owned();
        self.ok(
            &format!("/kines/{kine}/patients/{id}/visits"),
            json!({"date": today_minus(30), "kind": "bilan"}),
        )
        .await;
        self.ok(
            &format!("/kines/{kine}/patients/{id}/consents"),
            json!({"text_version": telesoin_core::model::CONSENT_TEXT_VERSION}),
        )
        .await;
        id.parse().expect("uuid")
    }

    async fn session(&self, kine: Uuid, patient: Uuid) -> Uuid {
        let s = self
            .ok(
                &format!("/kines/{kine}/sessions"),
                json!({"patient": patient, "starts_at": Utc::now(), "act_code": "MEMBRE", "patient_consent_on_join": false}),
            )
            .await;
        s["id"].as_str().expect("id").parse().expect("uuid")
    }
}

fn assert_refusal(v: &Value, code: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert!(
        v["message_fr"].as_str().is_some_and(|s| !s.is_empty())
            && v["message_en"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn a_key_reaches_its_own_kines_only_within_its_scopes() {
    let server = Server::start().await;
    let (a, b) = (
        server.kine("a@platform.test").await,
        server.kine("b@platform.test").await,
    );
    let (ka, kb) = (kine_id(&a).await, kine_id(&b).await);
    let (pa, pb) = (
        platform(&server, "agenda").await,
        platform(&server, "mutuelle").await,
    );
    let va = V1::new(&server, &key(&server, pa.id, &[ka], &Scope::ALL).await);
    let vb = V1::new(&server, &key(&server, pb.id, &[kb], &Scope::ALL).await);

    let patient = va.ready_patient(ka).await;
    let session = va.session(ka, patient).await;
    let dashboard_patient = b.ready_patient().await;

    // Platform B sees nothing of kiné A, whatever the route: not even that it exists.
    for path in [
        format!("/kines/{ka}/patients"),
        format!("/kines/{ka}/patients/{patient}"),
        format!("/kines/{ka}/sessions"),
        format!("/kines/{ka}/sessions/{session}"),
        format!("/kines/{ka}/sessions/{session}/record"),
        format!("/kines/{ka}/sessions/{session}/report"),
        format!("/kines/{ka}/exports?from=2026-01-01&to=2026-12-31"),
        format!("/kines/{kb}/patients/{patient}"),
        format!("/kines/{kb}/sessions/{session}"),
    ] {
        let (s, v) = vb.get(&path).await;
        assert_eq!(s, 404, "{path}: {v}");
        assert_refusal(&v, "not_found");
    }
    for (path, body) in [
        (
            format!("/kines/{ka}/patients"),
            json!({"display_name": "X", "birth_date": "1970-01-01"}),
        ),
        (
            format!("/kines/{kb}/sessions"),
            json!({"patient": patient, "starts_at": Utc::now(), "act_code": "MEMBRE"}),
        ),
        (
            format!("/kines/{kb}/sessions/{session}/links"),
            json!({"role": "patient"}),
        ),
        (format!("/kines/{kb}/sessions/{session}/cancel"), json!({})),
        (format!("/kines/{ka}/sessions/{session}/end"), json!({})),
        (
            format!("/kines/{kb}/patients/{patient}/consents"),
            json!({"text_version": "x"}),
        ),
    ] {
        let (s, v) = vb.post(&path, body).await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    // Its own kiné's dashboard patient is readable; A's list holds A's patient only.
    assert_eq!(
        vb.get(&format!("/kines/{kb}/patients/{dashboard_patient}"))
            .await
            .0,
        200
    );
    let (_, list) = va.get(&format!("/kines/{ka}/patients")).await;
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    let (_, kines) = vb.get("/kines").await;
    assert_eq!(kines.as_array().expect("list").len(), 1);
    assert_eq!(kines[0]["id"], kb.to_string());

    // Scopes: a read-only key reads and is refused writes, with the missing scope named.
    let ro = V1::new(
        &server,
        &key(&server, pa.id, &[ka], &[Scope::PatientsRead]).await,
    );
    assert_eq!(ro.get(&format!("/kines/{ka}/patients")).await.0, 200);
    let (s, v) = ro
        .post(
            &format!("/kines/{ka}/patients"),
            json!({"display_name": "X", "birth_date": "1970-01-01"}),
        )
        .await;
    assert_eq!(
        (s, v["details"]["scope"].as_str()),
        (403, Some("patients:write"))
    );
    assert_refusal(&v, "scope_missing");
    assert_eq!(ro.get(&format!("/kines/{ka}/sessions")).await.0, 403);

    // Records through the API: the compte rendu once the session is over, and the exports.
    let (s, v) = va
        .post(
            &format!("/kines/{ka}/sessions/{session}/report"),
            json!({"text": "Bilan à distance."}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("conflict")),
        "not before the end: {v}"
    );
    va.ok(&format!("/kines/{ka}/sessions/{session}/end"), json!({}))
        .await;
    let report = va
        .ok(
            &format!("/kines/{ka}/sessions/{session}/report"),
            json!({"text": "Bilan à distance."}),
        )
        .await;
    assert_eq!(report["versions"][0]["text"], "Bilan à distance.");
    assert_eq!(
        va.get(&format!("/kines/{ka}/sessions/{session}/report"))
            .await
            .1["versions"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let (s, v) = ro
        .post(
            &format!("/kines/{ka}/sessions/{session}/report"),
            json!({"text": "x"}),
        )
        .await;
    assert_eq!(
        (s, v["details"]["scope"].as_str()),
        (403, Some("records:write"))
    );
    let day = telesoin_core::model::local_date(Utc::now());
    let res = va
        .http
        .get(format!(
            "{}/kines/{ka}/exports?from={day}&to={day}&format=csv",
            va.base
        ))
        .bearer_auth(&va.key)
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), 200);
    let csv = res.text().await.expect("csv");
    assert!(
        csv.starts_with("date,start,end,billable_seconds"),
        "the export answers: {csv}"
    );
    // The session was ended without a call: "non réalisée", not exported.
    assert!(!csv.contains(&patient.to_string()), "{csv}");

    // No key, a made-up key, a revoked key.
    let none = V1::new(&server, "");
    assert_refusal(&none.get("/kines").await.1, "unauthenticated");
    let fake = V1::new(&server, &format!("tsk_{}", "A".repeat(43)));
    assert_eq!(fake.get("/kines").await.0, 401);
    let (revocable, row) = new_key(pa.id, vec![KineId(ka)], &Scope::ALL, Utc::now());
    server.state.store.create_api_key(&row).await.expect("key");
    let rv = V1::new(&server, &revocable);
    assert_eq!(rv.get("/kines").await.0, 200);
    assert!(
        server
            .state
            .store
            .revoke_api_key(pa.id, row.id, Utc::now())
            .await
            .expect("revoke")
    );
    assert_eq!(rv.get("/kines").await.0, 401);

    // Bad input has the one error shape too.
    let (s, v) = va
        .post(&format!("/kines/{ka}/patients"), json!({"display_name": 3}))
        .await;
    assert_eq!(s, 422);
    assert_refusal(&v, "invalid_input");
    let (s, v) = va.get("/kines/not-a-uuid/patients").await;
    assert_eq!(s, 404, "{v}");
    assert!(v["code"].is_string(), "{v}");
    server.stop().await;
}

#[tokio::test]
async fn idempotent_posts_and_cursor_pages() {
    let server = Server::start().await;
    let a = server.kine("idem@platform.test").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let v = V1::new(&server, &key(&server, p.id, &[ka], &Scope::ALL).await);
    let path = format!("{}/kines/{ka}/patients", v.base);
    let body = json!({"display_name": "M. Petit", "birth_date": "1949-07-02"});
    let post = |b: Value, k: &str| v.http.post(&path).header("idempotency-key", k).json(&b);
    let (s1, _, first) = v.send(post(body.clone(), "create-petit-1")).await;
    let (s2, h2, again) = v.send(post(body.clone(), "create-petit-1")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, again, "a retried create returns the first result");
    assert_eq!(
        h2.get("idempotent-replayed").map(|h| h.as_bytes()),
        Some(&b"true"[..])
    );
    let (s3, _, reused) = v
        .send(post(
            json!({"display_name": "Autre", "birth_date": "1949-07-02"}),
            "create-petit-1",
        ))
        .await;
    assert_eq!(s3, 422);
    assert_refusal(&reused, "idempotency_key_reused");
    let (_, list) = v.get(&format!("/kines/{ka}/patients")).await;
    assert_eq!(
        list["items"].as_array().expect("items").len(),
        1,
        "created once"
    );

    for i in 0..4 {
        v.ok(
            &format!("/kines/{ka}/patients"),
            json!({"display_name": format!("Patient {i}"), "birth_date": "1960-01-01"}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (s, page) = v.get(&format!("/kines/{ka}/patients?limit=2{q}")).await;
        assert_eq!(s, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|p| p["id"].as_str().expect("id").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "every patient once");
    assert_eq!(
        v.get(&format!("/kines/{ka}/patients?cursor=zzz")).await.0,
        422
    );
    assert_eq!(v.get(&format!("/kines/{ka}/patients?limit=0")).await.0, 422);

    let patient = v.ready_patient(ka).await;
    v.session(ka, patient).await;
    let (s, page) = v.get(&format!("/kines/{ka}/sessions?limit=1")).await;
    assert_eq!((s, page["items"].as_array().map(Vec::len)), (200, Some(1)));
    server.stop().await;
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let server = Server::start_with(|c| {
        c.api_rate_per_second = 1;
        c.api_burst = 3;
    })
    .await;
    let a = server.kine("rate@platform.test").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let v = V1::new(&server, &key(&server, p.id, &[ka], &Scope::ALL).await);
    let other = V1::new(&server, &key(&server, p.id, &[ka], &Scope::ALL).await);
    for _ in 0..3 {
        assert_eq!(v.get("/kines").await.0, 200);
    }
    let (s, h, body) = v.send(v.http.get(format!("{}/kines", v.base))).await;
    assert_eq!(s, 429, "{body}");
    assert_refusal(&body, "rate_limited");
    let retry: u64 = h
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(other.get("/kines").await.0, 200, "one bucket per key");
    server.stop().await;
}

/// An Ed25519 key pair as a platform holds it: the signer and its public JWK.
fn platform_key(kid: &str) -> (jsonwebtoken::EncodingKey, Value) {
    let sk = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = sk.to_pkcs8_der().expect("der");
    let jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes()),
    });
    (jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()), jwk)
}

fn mint(key: &jsonwebtoken::EncodingKey, kid: &str, claims: &JoinClaims) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.typ = Some(JOIN_TOKEN_TYPE.into());
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

#[tokio::test]
async fn platform_minted_tokens_pass_our_checks_for_its_own_sessions_only() {
    let server = Server::start().await;
    let a = server.kine("mint@platform.test").await;
    let ka = kine_id(&a).await;
    let (p, other) = (
        platform(&server, "agenda").await,
        platform(&server, "autre").await,
    );
    let v = V1::new(&server, &key(&server, p.id, &[ka], &Scope::ALL).await);
    let vo = V1::new(&server, &key(&server, other.id, &[ka], &Scope::ALL).await);
    let (signer, jwk) = platform_key("agenda-2026");
    let (s, reg) = v
        .post("/signing-keys", json!({"jwk": jwk, "roles": ["patient"]}))
        .await;
    assert_eq!(s, 201, "{reg}");
    assert_eq!(reg["issuer"], p.issuer);
    let (s, v2) = v
        .post(
            "/signing-keys",
            json!({"jwk": {"kty": "OKP", "crv": "Ed25519", "kid": "x", "x": "AAAA", "d": "secret"}, "roles": ["patient"]}),
        )
        .await;
    assert_eq!(s, 422, "private keys are refused: {v2}");

    let patient = v.ready_patient(ka).await;
    let session = v.session(ka, patient).await;
    let seat = v
        .ok(
            &format!("/kines/{ka}/sessions/{session}/seats"),
            json!({"role": "patient"}),
        )
        .await;
    let sub: Uuid = seat["participant"]
        .as_str()
        .expect("participant")
        .parse()
        .expect("uuid");
    let row = server
        .state
        .store
        .session(telesoin_core::SessionId(session))
        .await
        .expect("ok")
        .expect("row")
        .session;
    let claims = |sid: Uuid, sub: Uuid, role: Role| JoinClaims {
        iss: p.issuer.clone(),
        aud: "telesoin-join".into(),
        sub,
        sid,
        role,
        jti: Uuid::new_v4(),
        nbf: row.window_start.timestamp(),
        exp: row.window_end.timestamp(),
        iat: Utc::now().timestamp(),
    };

    // Valid: the join page's preview and the WebSocket both take it.
    let token = mint(&signer, "agenda-2026", &claims(session, sub, Role::Patient));
    let (s, info) = a
        .call(
            reqwest::Method::POST,
            "/api/join-info",
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(s, 200, "{info}");
    let (mut ws, w) = welcomed(server.port, &token).await;
    assert_eq!(w["participant"], sub.to_string());
    let (waiting, _) = ws.until("waiting").await;
    assert_eq!(waiting["reason"], "kine_absent", "{waiting}");

    async fn refused(port: u16, token: &str) -> String {
        let mut ws = Ws::join(port, token).await;
        let m = ws.recv().await;
        assert_eq!(m["type"], "refused", "{m}");
        m["code"].as_str().expect("code").to_owned()
    }
    // A role the key is not registered for.
    let kine_seat = v
        .ok(
            &format!("/kines/{ka}/sessions/{session}/seats"),
            json!({"role": "kine"}),
        )
        .await;
    let kine_sub = kine_seat["participant"]
        .as_str()
        .expect("p")
        .parse()
        .expect("uuid");
    assert_eq!(
        refused(
            server.port,
            &mint(
                &signer,
                "agenda-2026",
                &claims(session, kine_sub, Role::Kine)
            )
        )
        .await,
        "token_wrong_role"
    );
    // `sub` that is not the seat of that role.
    assert_eq!(
        refused(
            server.port,
            &mint(
                &signer,
                "agenda-2026",
                &claims(session, Uuid::new_v4(), Role::Patient)
            )
        )
        .await,
        "token_wrong_role"
    );
    // Another platform's session, and a dashboard session of the same kiné.
    let other_patient = vo.ready_patient(ka).await;
    let other_session = vo.session(ka, other_patient).await;
    let other_seat = vo
        .ok(
            &format!("/kines/{ka}/sessions/{other_session}/seats"),
            json!({"role": "patient"}),
        )
        .await;
    let other_sub = other_seat["participant"]
        .as_str()
        .expect("p")
        .parse()
        .expect("uuid");
    assert_eq!(
        refused(
            server.port,
            &mint(
                &signer,
                "agenda-2026",
                &claims(other_session, other_sub, Role::Patient)
            )
        )
        .await,
        "token_wrong_session"
    );
    let dash_session = a.session(a.ready_patient().await, json!({})).await;
    assert_eq!(
        refused(
            server.port,
            &mint(
                &signer,
                "agenda-2026",
                &claims(dash_session, sub, Role::Patient)
            )
        )
        .await,
        "token_wrong_session"
    );
    // The right kid with the wrong key; another issuer; outside the session window.
    let (impostor, _) = platform_key("agenda-2026");
    assert_eq!(
        refused(
            server.port,
            &mint(
                &impostor,
                "agenda-2026",
                &claims(session, sub, Role::Patient)
            )
        )
        .await,
        "token_invalid"
    );
    let mut c = claims(session, sub, Role::Patient);
    c.iss = other.issuer.clone();
    assert_eq!(
        refused(server.port, &mint(&signer, "agenda-2026", &c)).await,
        "token_invalid"
    );
    let mut c = claims(session, sub, Role::Patient);
    c.exp += 86_400;
    assert_eq!(
        refused(server.port, &mint(&signer, "agenda-2026", &c)).await,
        "token_invalid"
    );
    // `exp` is whole seconds and a window's end need not be: a platform that rounds the end
    // up to the next second is not refused for it; a second more is.
    let patient3 = v.ready_patient(ka).await;
    let starts = DateTime::from_timestamp(Utc::now().timestamp(), 500_000_000).expect("instant");
    let s3 = v
        .ok(
            &format!("/kines/{ka}/sessions"),
            json!({"patient": patient3, "starts_at": starts, "act_code": "MEMBRE", "patient_consent_on_join": false}),
        )
        .await;
    let session3: Uuid = s3["id"].as_str().expect("id").parse().expect("uuid");
    let seat3 = v
        .ok(
            &format!("/kines/{ka}/sessions/{session3}/seats"),
            json!({"role": "patient"}),
        )
        .await;
    let sub3: Uuid = seat3["participant"]
        .as_str()
        .expect("p")
        .parse()
        .expect("uuid");
    let row3 = server
        .state
        .store
        .session(telesoin_core::SessionId(session3))
        .await
        .expect("ok")
        .expect("row")
        .session;
    assert_eq!(
        row3.window_end.timestamp_subsec_millis(),
        500,
        "a window that ends between two seconds"
    );
    let rounded_up = JoinClaims {
        nbf: row3.window_start.timestamp(),
        exp: row3.window_end.timestamp() + 1,
        ..claims(session3, sub3, Role::Patient)
    };
    let (s, info) = a
        .call(
            reqwest::Method::POST,
            "/api/join-info",
            Some(json!({"token": mint(&signer, "agenda-2026", &rounded_up)})),
        )
        .await;
    assert_eq!(s, 200, "the window's end rounded up: {info}");
    let past = JoinClaims {
        exp: rounded_up.exp + 1,
        jti: Uuid::new_v4(),
        ..rounded_up
    };
    assert_eq!(
        refused(server.port, &mint(&signer, "agenda-2026", &past)).await,
        "token_invalid",
        "a second past the window's end"
    );

    // Revocation: cancelling the session refuses the connected holder and every new token.
    v.ok(&format!("/kines/{ka}/sessions/{session}/cancel"), json!({}))
        .await;
    let (r, _) = ws.until("refused").await;
    assert_eq!(r["code"], "session_cancelled");
    assert_eq!(
        refused(
            server.port,
            &mint(&signer, "agenda-2026", &claims(session, sub, Role::Patient))
        )
        .await,
        "session_cancelled"
    );
    // A revoked signing key stops working at once.
    let patient2 = v.ready_patient(ka).await;
    let session2 = v.session(ka, patient2).await;
    let seat2 = v
        .ok(
            &format!("/kines/{ka}/sessions/{session2}/seats"),
            json!({"role": "patient"}),
        )
        .await;
    let sub2 = seat2["participant"]
        .as_str()
        .expect("p")
        .parse()
        .expect("uuid");
    // Minted with session2's own window, as a platform reads it: `claims` carries the first
    // session's, which opens earlier by the time this test has taken (over a second under
    // load), and a patient's token opening before its session's window is refused.
    let row2 = server
        .state
        .store
        .session(telesoin_core::SessionId(session2))
        .await
        .expect("ok")
        .expect("row")
        .session;
    let in_window2 = |c: JoinClaims| JoinClaims {
        nbf: row2.window_start.timestamp(),
        exp: row2.window_end.timestamp(),
        ..c
    };
    let early = JoinClaims {
        nbf: row2.window_start.timestamp() - 1,
        ..in_window2(claims(session2, sub2, Role::Patient))
    };
    assert_eq!(
        refused(server.port, &mint(&signer, "agenda-2026", &early)).await,
        "token_invalid",
        "a patient's token opening before its session's window"
    );
    let token2 = mint(
        &signer,
        "agenda-2026",
        &in_window2(claims(session2, sub2, Role::Patient)),
    );
    let _ = welcomed(server.port, &token2).await;
    assert_eq!(
        v.post("/signing-keys/agenda-2026/revoke", json!({}))
            .await
            .0,
        204
    );
    assert_eq!(refused(server.port, &token2).await, "token_invalid");
    server.stop().await;
}

/// What the test receiver got: (event id, type, body) of each request answered 2xx, in order.
#[derive(Default)]
struct Inbox {
    secret: parking_lot::Mutex<String>,
    delivered: parking_lot::Mutex<Vec<(String, String, Value)>>,
    /// Requests answered 500 before succeeding.
    fail_first: AtomicUsize,
    /// Requests held without answer (the server gives up on them after its timeout).
    hang_next: AtomicUsize,
    requests: AtomicUsize,
    hung: tokio::sync::Notify,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: String) -> StatusCode {
    inbox.requests.fetch_add(1, Ordering::SeqCst);
    let sig = headers
        .get("telesoin-signature")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Receiver-side check, as docs/embedding.md shows it.
    let t: i64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default();
    let expected = signature(&inbox.secret.lock(), t, &body);
    if sig != expected || (Utc::now().timestamp() - t).abs() > 300 {
        return StatusCode::UNAUTHORIZED;
    }
    if inbox
        .hang_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        inbox.hung.notify_one();
        tokio::time::sleep(Duration::from_secs(30)).await;
        return StatusCode::OK;
    }
    if inbox
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let v: Value = serde_json::from_str(&body).expect("json body");
    let id = headers["telesoin-event-id"]
        .to_str()
        .expect("id")
        .to_owned();
    assert_eq!(v["id"], id.as_str());
    inbox.delivered.lock().push((
        id,
        v["type"].as_str().expect("type").to_owned(),
        v["data"].clone(),
    ));
    StatusCode::NO_CONTENT
}

async fn wait_for(inbox: &Inbox, what: impl Fn(&[(String, String, Value)]) -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if what(&inbox.delivered.lock()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("deliveries: {:?}", inbox.delivered.lock()));
}

fn types(d: &[(String, String, Value)]) -> Vec<String> {
    d.iter().map(|(_, t, _)| t.clone()).collect()
}

#[tokio::test]
async fn webhooks_are_signed_retried_in_order_and_survive_a_restart() {
    let inbox = Arc::new(Inbox::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let data = tempfile::tempdir().expect("dir");
    let dir = data.path().to_path_buf();
    let tweak = move |c: &mut telesoin_server::Config| {
        c.data_dir = dir.clone();
        c.webhook_allow_http = true;
        // The receiver is on loopback: allowed explicitly, as an operator would.
        c.webhook_allowed_networks = vec!["127.0.0.1/32".into()];
        c.webhook_retry_seconds = 1;
        c.webhook_timeout_seconds = 1;
    };
    let server = Server::start_with(tweak.clone()).await;
    let a = server.kine("hooks@platform.test").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let key = key(&server, p.id, &[ka], &Scope::ALL).await;
    let v = V1::new(&server, &key);
    let (s, hook) = v.post("/webhooks", json!({"url": receiver})).await;
    assert_eq!(s, 201, "{hook}");
    *inbox.secret.lock() = hook["secret"].as_str().expect("secret").to_owned();
    let (_, listed) = v.get("/webhooks").await;
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(v.post("/webhooks", json!({"url": "ftp://x"})).await.0, 422);

    // The first request is answered 500: it is retried, and the session's later events wait.
    inbox.fail_first.store(1, Ordering::SeqCst);
    let patient = v.ready_patient(ka).await;
    let session = v.session(ka, patient).await;
    v.ok(&format!("/kines/{ka}/sessions/{session}/end"), json!({}))
        .await;
    wait_for(&inbox, |d| {
        let t = types(d);
        t.contains(&"session.ended".to_owned()) && t.contains(&"consent.recorded".to_owned())
    })
    .await;
    let got = inbox.delivered.lock().clone();
    assert!(
        inbox.requests.load(Ordering::SeqCst) > got.len(),
        "a retry happened"
    );
    let of_session: Vec<_> = got
        .iter()
        .filter(|(_, _, d)| d["session"] == session.to_string())
        .map(|(_, t, d)| (t.clone(), d.clone()))
        .collect();
    assert_eq!(
        of_session
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>(),
        ["session.scheduled", "session.ended"],
        "per-session order"
    );
    let ended = &of_session[1].1;
    assert_eq!(ended["billable_seconds"], 0);
    assert_eq!(ended["act_code"], "MEMBRE");
    assert_eq!(ended["billing_class"], "hn");
    assert!(types(&got).contains(&"consent.recorded".to_owned()));
    let mut ids: Vec<_> = got.iter().map(|(id, _, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        got.len(),
        "each event delivered once, with a unique id"
    );

    // A delivery in flight when the server stops is sent again by the next one.
    inbox.hang_next.store(1, Ordering::SeqCst);
    let consents = v.get(&format!("/kines/{ka}/patients/{patient}")).await.1["consents"].clone();
    let consent = consents[0]["id"].as_str().expect("consent").to_owned();
    v.ok(
        &format!("/kines/{ka}/consents/{consent}/withdraw"),
        json!({}),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), inbox.hung.notified())
        .await
        .expect("the delivery started");
    server.stop().await;
    let before = inbox.delivered.lock().len();
    let server = Server::start_with(tweak).await;
    wait_for(&inbox, |d| {
        types(d).contains(&"consent.withdrawn".to_owned())
    })
    .await;
    let last = inbox.delivered.lock()[before].clone();
    assert_eq!(
        (last.1.as_str(), &last.2["patient"]),
        ("consent.withdrawn", &json!(patient))
    );
    server.stop().await;
}

#[tokio::test]
async fn bulk_scheduling_is_one_request_checked_whole_and_idempotent() {
    let server = Server::start().await;
    let a = server.kine("bulk@platform.test").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let v = V1::new(&server, &key(&server, p.id, &[ka], &Scope::ALL).await);
    let patient = v.ready_patient(ka).await;
    let one = |act: &str| {
        json!({
            "session": {"patient": patient, "starts_at": Utc::now(), "act_code": act,
                        "auto_admit": true, "patient_consent_on_join": false},
            "links": ["kine", "patient"],
        })
    };
    let path = format!("/kines/{ka}/sessions/bulk");
    let count = |v: V1| async move {
        let (_, page) = v.get(&format!("/kines/{ka}/sessions?limit=100")).await;
        page["items"].as_array().map(Vec::len).unwrap_or_default()
    };

    // One refused item refuses the request, names its index, and nothing is written.
    let (s, refused) = v
        .post(
            &path,
            json!({"sessions": [one("MEMBRE"), one("NOPE"), one("MEMBRE")]}),
        )
        .await;
    assert_eq!(s, 422, "{refused}");
    assert_refusal(&refused, "invalid_input");
    assert_eq!(
        (
            refused["details"]["index"].as_u64(),
            refused["details"]["field"].as_str()
        ),
        (Some(1), Some("act_code"))
    );
    let mut twice = one("MEMBRE");
    twice["links"] = json!(["patient", "patient"]);
    let (s, v2) = v.post(&path, json!({"sessions": [twice]})).await;
    assert_eq!((s, v2["details"]["index"].as_u64()), (422, Some(0)), "{v2}");
    let too_many: Vec<Value> = (0..201).map(|_| one("MEMBRE")).collect();
    assert_eq!(v.post(&path, json!({"sessions": too_many})).await.0, 422);
    assert_eq!(v.post(&path, json!({"sessions": []})).await.0, 422);
    assert_eq!(count(v.clone()).await, 0, "nothing was scheduled");

    // Three sessions and their links in one request; the retry with the same key gets the
    // same answer and schedules nothing more.
    let body = json!({"sessions": [one("MEMBRE"), one("MEMBRE"), one("MEMBRE")]});
    let send = || {
        v.http
            .post(format!("{}{path}", v.base))
            .header("idempotency-key", "bulk-2026-12-02")
            .json(&body)
    };
    let (s, _, made) = v.send(send()).await;
    assert_eq!(s, 201, "{made}");
    let items = made["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    let (s, h, again) = v.send(send()).await;
    assert_eq!((s, &again), (201, &made));
    assert_eq!(
        h.get("idempotent-replayed").map(|h| h.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(count(v.clone()).await, 3, "scheduled once");

    // The links work: the kiné and the patient of the second session join and are admitted.
    let links = items[1]["links"].as_array().expect("links");
    assert_eq!(
        links.iter().map(|l| l["role"].as_str()).collect::<Vec<_>>(),
        [Some("kine"), Some("patient")]
    );
    let (mut kine_ws, w) = welcomed(server.port, links[0]["token"].as_str().expect("token")).await;
    assert_eq!(w["session"]["session"], items[1]["session"]["id"]);
    kine_ws.until("admitted").await;
    let (mut patient_ws, _) =
        welcomed(server.port, links[1]["token"].as_str().expect("token")).await;
    patient_ws.until("admitted").await;

    // Links need links:write; sessions alone need sessions:write only.
    let no_links = V1::new(
        &server,
        &key(&server, p.id, &[ka], &[Scope::SessionsWrite]).await,
    );
    let (s, v3) = no_links
        .post(&path, json!({"sessions": [one("MEMBRE")]}))
        .await;
    assert_eq!(
        (s, v3["details"]["scope"].as_str()),
        (403, Some("links:write"))
    );
    let mut bare = one("MEMBRE");
    bare["links"] = json!([]);
    let (s, v4) = no_links.post(&path, json!({"sessions": [bare]})).await;
    assert_eq!(
        (s, v4["items"][0]["links"].as_array().map(Vec::len)),
        (201, Some(0))
    );
    server.stop().await;
}

#[test]
fn rate_limit_defaults_let_a_platform_schedule_thousands_of_sessions() {
    // 9,000 sessions with their links: 45 bulk requests, inside the default burst; one by one
    // (3 requests each) about 9 minutes at the default rate, not 45.
    let c = telesoin_server::Config::default();
    let bulk_requests = 9_000usize.div_ceil(telesoin_server::platform::v1::BULK_MAX_SESSIONS);
    assert!(bulk_requests as u32 <= c.api_burst, "{bulk_requests}");
    let one_by_one_secs = 27_000 / c.api_rate_per_second;
    assert!(one_by_one_secs <= 600, "{one_by_one_secs}");
}

/// A move and a cancellation reach the platform as `session.moved` and `session.cancelled`, in
/// the session's order, each written with the change itself; a platform reads and sets the
/// kiné's reminder offsets, and a refusal names the field and the entry in French and English.
#[tokio::test]
async fn moves_and_cancellations_are_webhook_events_and_reminders_are_set_through_v1() {
    let inbox = Arc::new(Inbox::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = Server::start_with(|c| {
        c.webhook_allow_http = true;
        c.webhook_allowed_networks = vec!["127.0.0.1/32".into()];
        c.webhook_retry_seconds = 1;
    })
    .await;
    let a = server.kine("moves@platform.test").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let key = key(&server, p.id, &[ka], &Scope::ALL).await;
    let v = V1::new(&server, &key);
    let (_, hook) = v.post("/webhooks", json!({"url": receiver})).await;
    *inbox.secret.lock() = hook["secret"].as_str().expect("secret").to_owned();

    let patient = v.ready_patient(ka).await;
    let session = v.session(ka, patient).await;
    let to =
        chrono::DateTime::from_timestamp((Utc::now() + chrono::Duration::hours(3)).timestamp(), 0)
            .expect("time");
    let (s, moved) = v
        .post(
            &format!("/kines/{ka}/sessions/{session}/move"),
            json!({"starts_at": to}),
        )
        .await;
    assert_eq!(s, 200, "{moved}");
    v.ok(&format!("/kines/{ka}/sessions/{session}/cancel"), json!({}))
        .await;
    wait_for(&inbox, |d| {
        types(d).contains(&"session.cancelled".to_owned())
    })
    .await;
    let got = inbox.delivered.lock().clone();
    let of_session: Vec<_> = got
        .iter()
        .filter(|(_, _, d)| d["session"] == session.to_string())
        .collect();
    assert_eq!(
        of_session
            .iter()
            .map(|(_, t, _)| t.as_str())
            .collect::<Vec<_>>(),
        ["session.scheduled", "session.moved", "session.cancelled"],
        "{got:?}"
    );
    let moved = &of_session[1].2;
    assert_eq!(moved["kine"], json!(ka));
    assert_eq!(
        moved["starts_at"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<Utc>>().expect("time")),
        Some(to)
    );
    assert_eq!(of_session[2].2["kine"], json!(ka));

    // Reminder offsets through /api/v1: the default, then the kiné's own.
    let (s, r) = v.get(&format!("/kines/{ka}/reminders")).await;
    assert_eq!(
        (s, &r["reminder_offsets_minutes"]),
        (200, &json!([1440, 60]))
    );
    let put = |body: Value| {
        let v = v.clone();
        async move {
            let (s, _, r) = v
                .send(
                    v.http
                        .put(format!("{}/kines/{ka}/reminders", v.base))
                        .json(&body),
                )
                .await;
            (s, r)
        }
    };
    let (s, r) = put(json!({"reminder_offsets_minutes": [60, 2880, 60]})).await;
    assert_eq!(
        (s, &r["reminder_offsets_minutes"]),
        (200, &json!([2880, 60])),
        "{r}"
    );
    assert_eq!(
        a.get("/api/reach").await["reminder_offsets_minutes"],
        json!([2880, 60]),
        "the dashboard sees the same"
    );
    let (s, r) = put(json!({"reminder_offsets_minutes": [60, 0]})).await;
    assert_eq!(s, 422, "{r}");
    assert_refusal(&r, "invalid_input");
    assert_eq!(r["details"]["field"], "reminder_offsets_minutes");
    assert_eq!(r["details"]["index"], 1, "the entry at fault");
    assert!(
        r["details"]["problem_fr"]
            .as_str()
            .is_some_and(|p| p.contains("entre 1 minute et 30 jours")),
        "{r}"
    );
    assert!(
        r["details"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("43200")),
        "{r}"
    );
    let (s, r) = put(json!({"reminder_offsets_minutes": [1, 2, 3, 4, 5, 6]})).await;
    assert_eq!((s, r["details"]["index"].is_null()), (422, true), "{r}");
    assert!(
        r["details"]["problem_fr"]
            .as_str()
            .is_some_and(|p| p.contains("au plus 5")),
        "{r}"
    );
    let (s, r) = put(json!({"reminder_offsets_minutes": []})).await;
    assert_eq!(
        (s, &r["reminder_offsets_minutes"]),
        (200, &json!([])),
        "none"
    );
    // Another kiné's offsets are not this key's (not even their existence).
    let b = server.kine("other@platform.test").await;
    let kb = kine_id(&b).await;
    assert_eq!(v.get(&format!("/kines/{kb}/reminders")).await.0, 404);
    server.stop().await;
}

/// Starts the real binary on `dir` with webhooks to loopback allowed, retried every second.
async fn spawn_binary(dir: &std::path::Path, port: u16) -> tokio::process::Child {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("TELESOIN_WEBHOOK_ALLOW_HTTP", "true")
        .env("TELESOIN_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
        .env("TELESOIN_WEBHOOK_RETRY_SECONDS", "1")
        .env("TELESOIN_WEBHOOK_TIMEOUT_SECONDS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn telesoin");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("listening on") {
                return;
            }
        }
        panic!("telesoin exited before listening");
    })
    .await
    .expect("server started in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// `kill -9` right after a cancellation and an end answered: `session.cancelled` and
/// `session.ended` were written with the change itself, so the restarted server delivers them
/// (the receiver refused everything before the kill, so nothing had gone yet).
#[tokio::test]
async fn a_cancellation_and_an_end_announced_before_a_kill_9_are_delivered_after_the_restart() {
    let inbox = Arc::new(Inbox::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("dir");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args([
            "add-kine",
            "--email",
            "crash@platform.test",
            "--name",
            "Claire Martin",
            "--rpps",
            "10007777777",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("TELESOIN_NEW_PASSWORD", PASSWORD)
        .status()
        .await
        .expect("add-kine");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = spawn_binary(dir.path(), port).await;
    let api = Api {
        http: http(),
        base: format!("https://localhost:{port}"),
        cookie: String::new(),
    }
    .login("crash@platform.test")
    .await;
    let ka = kine_id(&api).await;
    // The platform and its key, written in the server's database as the CLI does.
    let db = format!("sqlite://{}", dir.path().join("telesoin.db").display());
    let store = telesoin_store::SqlStore::connect(&db).await.expect("store");
    let p = PlatformRow {
        id: Uuid::new_v4(),
        name: "agenda".into(),
        issuer: "https://agenda.example".into(),
        created_at: Utc::now(),
    };
    use telesoin_store::PlatformStore;
    store.create_platform(&p).await.expect("platform");
    let (key, row) = new_key(p.id, vec![KineId(ka)], &Scope::ALL, Utc::now());
    store.create_api_key(&row).await.expect("key");
    store.close().await;
    let v = V1 {
        http: http(),
        base: format!("{}/api/v1", api.base),
        key,
    };
    // Everything is refused until the kill: nothing is delivered before it.
    inbox.fail_first.store(usize::MAX / 2, Ordering::SeqCst);
    let (s, hook) = v.post("/webhooks", json!({"url": receiver})).await;
    assert_eq!(s, 201, "{hook}");
    *inbox.secret.lock() = hook["secret"].as_str().expect("secret").to_owned();
    let patient = api.ready_patient().await;
    let session = api
        .session_at(patient, Utc::now() + chrono::Duration::hours(2), json!({}))
        .await;
    let ended = api.session(patient, json!({})).await;
    api.post(&format!("/api/sessions/{session}/cancel"), json!({}))
        .await;
    api.post(&format!("/api/sessions/{ended}/end"), json!({}))
        .await;
    server.kill().await.expect("kill -9");
    assert!(
        inbox.delivered.lock().is_empty(),
        "nothing went before the kill"
    );

    inbox.fail_first.store(0, Ordering::SeqCst);
    let mut server = spawn_binary(dir.path(), port).await;
    wait_for(&inbox, |d| {
        let t = types(d);
        t.contains(&"session.cancelled".to_owned()) && t.contains(&"session.ended".to_owned())
    })
    .await;
    let got = inbox.delivered.lock().clone();
    let of = |s: Uuid| -> Vec<&str> {
        got.iter()
            .filter(|(_, _, d)| d["session"] == s.to_string())
            .map(|(_, t, _)| t.as_str())
            .collect()
    };
    assert_eq!(
        of(session),
        ["session.scheduled", "session.cancelled"],
        "{got:?}"
    );
    assert_eq!(of(ended), ["session.scheduled", "session.ended"], "{got:?}");
    server.kill().await.expect("kill");
}

/// `kill -9` right after an admission: `participant.waiting` and `participant.admitted` were
/// written with their presence events, so the restarted server delivers them (the receiver
/// refused everything before the kill).
#[tokio::test]
async fn an_admission_before_a_kill_9_is_announced_after_the_restart() {
    let inbox = Arc::new(Inbox::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("dir");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_telesoin"))
        .args([
            "add-kine",
            "--email",
            "admit@platform.test",
            "--name",
            "Claire Martin",
            "--rpps",
            "10007777778",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("TELESOIN_NEW_PASSWORD", PASSWORD)
        .status()
        .await
        .expect("add-kine");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = spawn_binary(dir.path(), port).await;
    let api = Api {
        http: http(),
        base: format!("https://localhost:{port}"),
        cookie: String::new(),
    }
    .login("admit@platform.test")
    .await;
    let ka = kine_id(&api).await;
    let db = format!("sqlite://{}", dir.path().join("telesoin.db").display());
    let store = telesoin_store::SqlStore::connect(&db).await.expect("store");
    let p = PlatformRow {
        id: Uuid::new_v4(),
        name: "agenda".into(),
        issuer: "https://agenda.example".into(),
        created_at: Utc::now(),
    };
    use telesoin_store::PlatformStore;
    store.create_platform(&p).await.expect("platform");
    let (key, row) = new_key(p.id, vec![KineId(ka)], &Scope::ALL, Utc::now());
    store.create_api_key(&row).await.expect("key");
    store.close().await;
    let v = V1 {
        http: http(),
        base: format!("{}/api/v1", api.base),
        key,
    };
    inbox.fail_first.store(usize::MAX / 2, Ordering::SeqCst);
    let (s, hook) = v.post("/webhooks", json!({"url": receiver})).await;
    assert_eq!(s, 201, "{hook}");
    *inbox.secret.lock() = hook["secret"].as_str().expect("secret").to_owned();
    let (_k, _p, session, _kid, pid) = admitted_pair(&api, port).await;
    server.kill().await.expect("kill -9");
    assert!(
        inbox.delivered.lock().is_empty(),
        "nothing went before the kill"
    );

    inbox.fail_first.store(0, Ordering::SeqCst);
    let mut server = spawn_binary(dir.path(), port).await;
    let admitted_patient = |d: &[(String, String, Value)]| {
        d.iter().any(|(_, t, data)| {
            t == "participant.admitted" && data["participant"] == pid.to_string()
        })
    };
    wait_for(&inbox, admitted_patient).await;
    let got = inbox.delivered.lock().clone();
    let patient_events: Vec<&str> = got
        .iter()
        .filter(|(_, _, d)| {
            d["session"] == session.to_string() && d["participant"] == pid.to_string()
        })
        .map(|(_, t, _)| t.as_str())
        .collect();
    assert_eq!(
        patient_events,
        ["participant.waiting", "participant.admitted"],
        "{got:?}"
    );
    let admitted = got
        .iter()
        .find(|(_, t, d)| t == "participant.admitted" && d["participant"] == pid.to_string())
        .expect("admitted");
    assert_eq!(admitted.2["role"], "patient");
    assert_eq!(admitted.2["kine"], ka.to_string());
    server.kill().await.expect("kill");
}

/// A platform that asks telesoin to send: `POST /api/v1/.../send` sends the invitation by SMS
/// (a local HTTP receiver plays the gateway), and every delivery state reaches the platform's
/// webhook: `message.sent` for the invitation; after the cancellation, `message.cancelled` for
/// each pending reminder, `message.sent` for the SMS notice and `message.skipped` for the e-mail
/// one (no relay configured).
#[tokio::test]
async fn a_platform_that_asks_us_to_send_gets_a_webhook_per_delivery_state() {
    let inbox = Arc::new(Inbox::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let sms: Arc<parking_lot::Mutex<Vec<Value>>> = Arc::default();
    async fn gateway(
        State(got): State<Arc<parking_lot::Mutex<Vec<Value>>>>,
        body: String,
    ) -> StatusCode {
        got.lock()
            .push(serde_json::from_str(&body).unwrap_or(Value::Null));
        StatusCode::OK
    }
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(inbox.clone())
        .merge(
            axum::Router::new()
                .route("/sms", axum::routing::post(gateway))
                .with_state(sms.clone()),
        );
    let gateway_url = format!("http://{}/sms", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = Server::start_with(|c| {
        c.webhook_allow_http = true;
        c.webhook_allowed_networks = vec!["127.0.0.1/32".into()];
        c.webhook_retry_seconds = 1;
        c.sms_gateway_url = Some(gateway_url.clone());
    })
    .await;
    let a = server.kine("sends@platform.test").await;
    let ka = kine_id(&a).await;
    let p = platform(&server, "agenda").await;
    let key = key(&server, p.id, &[ka], &Scope::ALL).await;
    let v = V1::new(&server, &key);
    let (_, hook) = v.post("/webhooks", json!({"url": receiver})).await;
    *inbox.secret.lock() = hook["secret"].as_str().expect("secret").to_owned();
    let patient = v.ready_patient(ka).await;
    let (s, _, c) = v
        .send(
            v.http
                .put(format!("{}/kines/{ka}/patients/{patient}/contact", v.base))
                .json(&json!({"phone": "06 12 34 56 78", "email": "p@example.fr", "preferred_channel": "both"})),
        )
        .await;
    assert_eq!(s, 200, "{c}");
    let session: Uuid = v
        .ok(
            &format!("/kines/{ka}/sessions"),
            json!({"patient": patient, "starts_at": Utc::now() + chrono::Duration::days(2), "act_code": "MEMBRE", "patient_consent_on_join": false}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let (s, sent) = v
        .post(
            &format!("/kines/{ka}/sessions/{session}/send"),
            json!({"channels": ["sms"]}),
        )
        .await;
    assert_eq!(s, 201, "{sent}");
    assert_eq!(sent[0]["state"], "sent", "{sent}");
    assert_eq!(sms.lock().len(), 1, "the gateway got the invitation");
    let message = sent[0]["id"].clone();
    wait_for(&inbox, |d| {
        d.iter()
            .any(|(_, t, data)| t == "message.sent" && data["message"] == message)
    })
    .await;

    v.ok(&format!("/kines/{ka}/sessions/{session}/cancel"), json!({}))
        .await;
    // The notices go by the worker; the reminders were stopped with the cancellation.
    wait_for(&inbox, |d| {
        let of = |t: &str, kind: &str| {
            d.iter()
                .filter(|(_, ty, data)| ty == t && data["kind"] == kind)
                .count()
        };
        of("message.sent", "cancelled") == 1 && of("message.skipped", "cancelled") == 1
    })
    .await;
    let got = inbox.delivered.lock().clone();
    let cancelled: Vec<_> = got
        .iter()
        .filter(|(_, t, _)| t == "message.cancelled")
        .map(|(_, _, d)| d.clone())
        .collect();
    assert_eq!(cancelled.len(), 4, "two reminders by two channels: {got:?}");
    assert!(
        cancelled
            .iter()
            .all(|d| d["kind"] == "reminder" && d["detail"] == "session_cancelled"),
        "{cancelled:?}"
    );
    let skipped = got
        .iter()
        .find(|(_, t, _)| t == "message.skipped")
        .expect("skipped");
    assert_eq!(
        (&skipped.2["channel"], &skipped.2["detail"]),
        (&json!("email"), &json!("not_configured"))
    );
    let order: Vec<&str> = got
        .iter()
        .filter(|(_, _, d)| d["session"] == session.to_string())
        .map(|(_, t, _)| t.as_str())
        .collect();
    assert_eq!(order.first(), Some(&"session.scheduled"), "{order:?}");
    let cancel_at = order
        .iter()
        .position(|t| *t == "session.cancelled")
        .expect("session.cancelled");
    assert!(
        order[cancel_at + 1..cancel_at + 5]
            .iter()
            .all(|t| *t == "message.cancelled"),
        "the stopped reminders follow the cancellation: {order:?}"
    );
    assert_eq!(sms.lock().len(), 2, "the invitation and the notice by SMS");
    server.stop().await;
}
